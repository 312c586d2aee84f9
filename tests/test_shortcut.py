"""The shortcut cue: a marker on the asked bar or row at rate p in training, on another one in the shifted split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
from iapo_gym.attribution import ComponentLayout
from iapo_gym.benchmarks import learning
from iapo_gym.envs.base import SPLITS, ToolVQAEnv
from iapo_gym.envs.shortcuts import PLACES, plant_shortcut
from iapo_gym.scene import Scene
from iapo_gym.teachers import OracleTeacher

FAMILIES = ["HBar", "VBar", "TableQA", "TableSynth", "TableFact"]


def _scene(family: str, scene_id: int, split: str = "train", difficulty: int = 0, **kwargs: Any) -> Scene:
    env = gym.make(f"VisualToolVQA-{family}-v0", split=split, difficulty=difficulty, **kwargs)
    _, info = env.reset(options={"scene_id": scene_id})
    return cast(Scene, info["scene"])


def _changed(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero((a != b).any(axis=2))
    return None if len(xs) == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("rate", [0.3, 0.8])
def test_the_marker_points_at_the_asked_item_at_rate_p_in_training(rate: float) -> None:
    env = gym.make("VisualToolVQA-v0", task=FAMILIES, difficulty=1, shortcut=rate)
    marked = []
    for i in range(400):
        _, info = env.reset(seed=i)
        cue = info["scene"].meta["shortcut"]
        assert cue["marked"] in (None, cue["target"]) and not cue["misleading"]
        marked.append(cue["marked"] is not None)
    assert abs(np.mean(marked) - rate) < 3 * np.sqrt(rate * (1 - rate) / 400)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("difficulty", [0, 1, 2])
@pytest.mark.parametrize("place", ["value", "label"])
def test_the_shifted_split_always_marks_another_item_and_leaves_the_rest_of_the_scene(
    family: str, difficulty: int, place: str
) -> None:
    for scene_id in range(SPLITS["test"][0], SPLITS["test"][0] + 6):
        plain = _scene(family, scene_id, "test", difficulty)
        shifted = _scene(family, scene_id, "test", difficulty, shortcut_shift=True, shortcut_place=place)
        cue = shifted.meta["shortcut"]
        assert cue["place"] == place
        assert cue["misleading"] and cue["marked"] != cue["target"]
        assert shifted.meta["decoy"] == plain.layout[cue["marked"]]
        # the same item: question, answers, evidence, texts; pixels differ only inside the marked slot
        assert (shifted.question, shifted.answers, shifted.evidence, shifted.texts) == (
            plain.question,
            plain.answers,
            plain.evidence,
            plain.texts,
        )
        x0, y0, x1, y1, _ = plain.meta[PLACES[place]][cue["marked"]]
        assert cue["box"] == (x0, y0, x1, y1)
        assert 0 <= x0 and 0 <= y0 and x1 <= plain.width and y1 <= plain.height
        changed = _changed(plain.image, shifted.image)
        assert changed is not None
        assert x0 - 2 <= changed[0] and y0 - 2 <= changed[1] and changed[2] <= x1 + 3 and changed[3] <= y1 + 3
        assert (shifted.image[y0:y1, x0:x1] < 60).all(axis=2).sum() >= 40  # a solid black triangle
        # the marker covers no evidence and no printed word, so the oracle's attribution never points at it
        box = (changed[0] / plain.width, changed[1] / plain.height, changed[2] / plain.width, changed[3] / plain.height)
        for region in plain.evidence:
            assert not _overlap(box, region.box)
        for item in plain.texts:
            assert not _overlap(box, item.box)


def test_a_chart_marker_by_the_label_sits_across_the_plot_from_the_evidence() -> None:
    for family in ("HBar", "VBar"):
        for scene_id in range(6):
            by_value = _scene(family, scene_id, shortcut=1.0)
            by_label = _scene(family, scene_id, shortcut=1.0, shortcut_place="label")
            assert by_value.meta["shortcut"]["marked"] == by_label.meta["shortcut"]["marked"]  # the same item
            (evidence,) = by_value.evidence
            ex = (evidence.box[0] + evidence.box[2]) / 2 * by_value.width
            ey = (evidence.box[1] + evidence.box[3]) / 2 * by_value.height
            centre = lambda b: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)  # noqa: E731
            near, far = centre(by_value.meta["shortcut"]["box"]), centre(by_label.meta["shortcut"]["box"])
            # a quarter of the canvas or more from the printed value (beside it: a few tens of pixels)
            assert np.hypot(far[0] - ex, far[1] - ey) > by_value.width / 4 > np.hypot(near[0] - ex, near[1] - ey)


def test_the_oracle_teachers_attribution_ignores_the_marker() -> None:
    layout = ComponentLayout(grid=16)
    teacher = OracleTeacher()
    for family in FAMILIES:
        plain = _scene(family, 5)
        marked = _scene(family, 5, shortcut=1.0)
        assert marked.meta["shortcut"]["marked"] == marked.meta["shortcut"]["target"]
        a, b = teacher.parts(plain, layout), teacher.parts(marked, layout)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_planted_scenes_glance_is_the_glance_of_its_image() -> None:
    from iapo_gym.tools.base import view_region

    env = gym.make("VisualToolVQA-HBar-v0", shortcut=1.0)
    obs, info = env.reset(seed=3)
    scene = info["scene"]
    expected = view_region(scene.image, (0, 0, scene.width, scene.height), 128)
    assert np.array_equal(obs["image"], expected)


def test_training_and_test_scene_ids_are_disjoint() -> None:
    train = cast(ToolVQAEnv, gym.make("VisualToolVQA-v0", task=FAMILIES, shortcut=1.0).unwrapped).scene_id_range()
    test = cast(ToolVQAEnv, gym.make("VisualToolVQA-v0", task=FAMILIES, shortcut_shift=True, split="test").unwrapped)
    lo, hi = test.scene_id_range()
    assert train[1] <= lo or hi <= train[0]


def test_bad_shortcut_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="shortcut must be a rate in"):
        gym.make("VisualToolVQA-HBar-v0", shortcut=1.5)
    with pytest.raises(ValueError, match="shortcut_place must be one of value, label"):
        gym.make("VisualToolVQA-HBar-v0", shortcut=1.0, shortcut_place="corner")
    with pytest.raises(ValueError, match="shortcut_shift must be True or False"):
        gym.make("VisualToolVQA-HBar-v0", shortcut_shift="yes")
    with pytest.raises(ValueError, match="no marker slots in: FineDetail"):
        gym.make("VisualToolVQA-FineDetail-v0", shortcut=0.5)
    with pytest.raises(ValueError, match="no marker slots in: SciChart"):
        gym.make("VisualToolVQA-v0", task=["HBar", "SciChart"], shortcut_shift=True)
    scene = _scene("TextRead", 0)
    with pytest.raises(ValueError, match="TextRead family has no marker slots"):
        plant_shortcut(scene, 0, 1.0, False)


def test_the_learning_benchmark_reports_the_shifted_and_the_in_distribution_test(tmp_path: Path) -> None:
    argv = ["--condition", "shift", "--out", str(tmp_path), "--seeds", "0", "--starts", "weak", "--methods", "grpo", "default"]
    argv += ["--steps", "40", "--start-episodes", "6", "6", "--warm-epochs", "1", "1", "--eval-episodes", "2"]
    argv += ["--eval-every", "1", "--curve-episodes", "2", "--cue-rate", "0.9"]
    learning.main(argv)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["weak"]) == {"warm start", "grpo", "default"} and 0 <= summary["weak"]["grpo"]["0"] <= 1
    assert set(summary["in_distribution"]["weak"]) == {"warm start", "grpo", "default"}
    assert "default" in summary["in_distribution_paired_difference_vs_grpo"]["weak"]
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in runs} == {"shift"}
    assert set(runs[0]["final"]) == set(FAMILIES) and set(runs[0]["final_iid"]) == set(FAMILIES)
    assert all(d is not None for r in runs for f in r["final"].values() for d in f["decoy"])  # always a misleading marker
    assert all(d is None for r in runs for f in r["final_iid"].values() for d in f["decoy"])
    assert (tmp_path / "warm" / "bc-6ep-1epochs-d0-shortcut0.9-seed0").exists()
    table = (tmp_path / "table.md").read_text()
    assert "in-distribution average" in table and "looked where the misleading marker points" in table
    with pytest.raises(SystemExit):  # one --out per condition
        learning.main([a if a != "shift" else "iid" for a in argv])
