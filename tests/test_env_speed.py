"""The env speed benchmark runs end to end at a tiny scale (Minigrid stood in for by CartPole when absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from iapo_gym.benchmarks import env_speed
from iapo_gym.tools import resample


def test_plain_table_per_family(capsys: Any) -> None:
    env_speed.main(["--episodes", "2", "--families", "HBar", "TableQA", "--skip-easyocr"])
    out = capsys.readouterr().out
    assert "steps/s" in out and "HBar" in out and "TableQA" in out


def test_vs_minigrid_writes_medians_with_the_ratio_range(tmp_path: Path, monkeypatch: Any) -> None:
    try:
        import minigrid  # noqa: F401
    except ImportError:  # the bench extra is not installed: a discrete-action stand-in with the same protocol

        def stand_in() -> tuple[gym.Env, Any]:
            return gym.make("CartPole-v1"), lambda rng, k: [int(a) for a in rng.integers(2, size=k)]

        monkeypatch.setattr(env_speed, "minigrid_env", stand_in)
    env_speed.main(
        [
            "--vs-minigrid",
            "--families",
            "HBar",
            "--steps",
            "30",
            "--rounds",
            "2",
            "--updates",
            "1",
            "--skip-easyocr",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "env_speed.json").read_text())
    row = result["vs_minigrid"]["HBar"]
    assert result["rounds"] == 2 and "--rounds 2" in result["command"]
    for protocol in ("fresh", "grouped"):
        lo, hi = row[f"{protocol}_ratio_range"]
        assert 0 < lo <= row[f"{protocol}_ratio"] <= hi
        assert row[f"{protocol}_steps_per_s"] > 0
    assert np.isfinite(result["resets"]["HBar"]["speedup"])
    page = (tmp_path / "env_speed.md").read_text()
    assert "| HBar * |" in page and "median of 2 repeats" in page
    assert result["area_kernel"] == (resample.kernel() is not None)
    if result["area_kernel"]:  # the A/B of the compiled area kernel against cv2.resize, and the toggle restored
        ab = result["kernel_ab"]["HBar"]
        assert ab["cv2_steps_per_s"] > 0 and ab["kernel_steps_per_s"] > 0
        assert "by the compiled area kernel" in page and "| HBar | " in page
        assert resample.kernel() is not None and os.environ.get("IAPO_GYM_AREA_KERNEL") != "0"  # restored
    else:
        assert result["kernel_ab"] == {} and "`cv2.resize` (the compiled area kernel absent" in page


def test_a_zero_count_is_a_clear_error(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        env_speed.main(["--vs-minigrid", "--rounds", "0"])
    assert "--rounds must be a positive integer; got 0" in capsys.readouterr().err
