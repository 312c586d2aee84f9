"""The shortcut-attribution benchmark: the loss's own divergence on marked scenes next to the same scenes
without the marker, for a behaviour-cloned start, written where it says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.benchmarks import learning, shortcut_attribution
from scipy.stats import spearmanr


@pytest.fixture(scope="module")
def warm_start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = learning.CONDITIONS["shift"].train_kwargs({"difficulty": 0, "cue_rate": 1.0})
    path = tmp_path_factory.mktemp("warm") / "bc"
    CompactAgent(learning._warm(6, 0, train, 1)).save(path)
    return path


def test_it_compares_marked_and_clean_scenes_with_the_loss_divergence(warm_start: Path, tmp_path: Path) -> None:
    argv = [
        "--checkpoints",
        str(warm_start),
        "--families",
        "HBar",
        "--scenes",
        "3",
        "--grids",
        "4",
        "32",
        "--per-scene",
        "--out",
        str(tmp_path),
    ]
    summary = shortcut_attribution.main(argv)
    written = json.loads((tmp_path / "shortcut_attribution.json").read_text())
    assert written["families"] == json.loads(json.dumps(summary["families"]))
    assert (tmp_path / "shortcut_attribution.png").read_bytes()[:4] == b"\x89PNG"
    assert "### HBar: 3 scenes" in (tmp_path / "shortcut_attribution.md").read_text()
    lines = (tmp_path / "shortcut_attribution_scenes.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert {r["family"] for r in rows} == {"HBar"}
    assert [r["scene_id"] for r in rows] == [1000, 1001, 1002]
    for r in rows:
        assert np.isfinite(r["reliance"])
        for g in (4, 32):
            for base in ("black", "white"):
                for gran in ("within", "blocks"):
                    for tag in ("marked", "clean"):
                        assert 0.0 <= r[f"div/{base}/{g}/{gran}/{tag}"] <= np.log(2) + 1e-6  # JS
            # the teacher's map is the scene's evidence, marker or not, and never on the marker's own cells
            assert r[f"teacher_evidence/{g}/marked"] == pytest.approx(r[f"teacher_evidence/{g}/clean"])
            assert r[f"teacher_evidence/{g}/marked"] > 0.5
            assert r[f"teacher_marker/{g}/marked"] <= 0.05
        # at 4 cells a side the marker shares its cell with the printed value: it has no cell of its own
        assert r["student_marker/black/4/marked"] == pytest.approx(0.0, abs=1e-9)
    fam = summary["families"]["HBar"]
    per = fam["grids"]["32"]["white"]["within"]
    assert per["marked_minus_clean"][0] == pytest.approx(per["marked"] - per["clean"])
    assert 0.0 <= fam["changes_without_marker"] <= 1.0


def test_it_measures_again_after_training_with_a_method(warm_start: Path, tmp_path: Path) -> None:
    argv = ["--checkpoints", str(warm_start), "--families", "VBar", "--scenes", "2", "--grids", "4"]
    argv += ["--pixel-baselines", "black", "--teacher", "oracle:locators", "--train", "default-locators"]
    summary = shortcut_attribution.main([*argv, "--train-steps", "16", "--out", str(tmp_path)])
    assert summary["teacher"] == "oracle:locators"
    assert summary["after"]["method"] == "default-locators" and summary["after"]["env_steps"] == 16
    before, after = summary["families"]["VBar"], summary["after"]["families"]["VBar"]
    assert before["scenes"] == after["scenes"] == 2
    assert before["grids"]["4"]["black"]["within"] != after["grids"]["4"]["black"]["within"]  # the policy moved
    assert (
        "After training each checkpoint with default-locators for 16 env steps"
        in (tmp_path / "shortcut_attribution.md").read_text()
    )


def test_integrated_gradients_and_the_raw_outside_mass(warm_start: Path, tmp_path: Path) -> None:
    argv = ["--checkpoints", str(warm_start), "--families", "HBar", "--scenes", "2", "--grids", "32"]
    argv += ["--pixel-baselines", "white", "--granularities", "within", "--per-scene"]
    runs = {}
    for method in ("gradient_x_input", "integrated_gradients"):
        out = tmp_path / method
        summary = shortcut_attribution.main([*argv, "--method", method, "--out", str(out)])
        assert summary["method"] == method and f"Student's attribution: {method}" in (out / "shortcut_attribution.md").read_text()
        runs[method] = [json.loads(line) for line in (out / "shortcut_attribution_scenes.jsonl").read_text().splitlines()]
        per = summary["families"]["HBar"]["grids"]["32"]["white"]
        m, c = per["student_outside"]["marked"], per["student_outside"]["clean"]
        assert per["outside_marked_minus_clean"][0] == pytest.approx(m - c)
    for gxi, ig in zip(runs["gradient_x_input"], runs["integrated_gradients"]):
        assert gxi["reliance"] == ig["reliance"]  # the decision and its reliance do not depend on the attribution
        for tag in ("marked", "clean"):
            assert gxi[f"student_outside/white/32/{tag}"] >= 0 and ig[f"student_outside/white/32/{tag}"] >= 0
            assert gxi[f"student_outside/white/32/{tag}"] != pytest.approx(ig[f"student_outside/white/32/{tag}"])
        assert 0 <= ig["student_marker_raw/white/32/marked"] and 0 <= ig["student_marker_raw/white/32/clean"]


def test_it_refuses_a_missing_checkpoint_and_a_family_without_the_marker(tmp_path: Path, warm_start: Path) -> None:
    with pytest.raises(SystemExit):
        shortcut_attribution.main(["--checkpoints", str(tmp_path / "nope"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        shortcut_attribution.main(["--checkpoints", str(warm_start), "--families", "Pie", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        shortcut_attribution.main(["--checkpoints", str(warm_start), "--teacher", "nope", "--out", str(tmp_path)])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=3, max_size=30, unique_by=(lambda t: t[0], lambda t: t[1])
    )
)
def test_spearman_matches_scipy_without_ties(pairs: list[tuple[float, float]]) -> None:
    x, y = zip(*pairs)
    ours = shortcut_attribution.spearman(x, y)
    assert ours == pytest.approx(float(spearmanr(x, y).statistic), abs=1e-9)
