"""The SciChart, FineDetail and TextRead families: the oracle needs the tools and succeeds with them, and the
scenes keep the promises the oracle relies on (labels apart, the asked object alone in its evidence box)."""

from __future__ import annotations

import numpy as np
import pytest

from iapo_gym.agents import OracleAgent
from iapo_gym.agents.oracle import read_color
from iapo_gym.envs.families import FAMILY_ENVS
from iapo_gym.envs.scenes import FineDetailEnv, TextReadEnv
from iapo_gym.envs.scichart import SciChartEnv
from iapo_gym.scene import box_intersection, pad_box, solve
from iapo_gym.text import tokenize
from iapo_gym.tools import SceneOCR
from iapo_gym.tools.base import ToolContext

from .conftest import run_episode

FAMILIES = [SciChartEnv, FineDetailEnv, TextReadEnv]
SEEDS = range(30)  # the 200-seed numbers are in the report; this keeps the file fast


def _accuracy(env_cls: type, difficulty: int, agent: OracleAgent) -> float:
    env = env_cls(difficulty=difficulty)
    return float(np.mean([run_episode(env, agent, seed)[0]["correct"] for seed in SEEDS]))


@pytest.mark.parametrize("difficulty", [0, 1, 2])
@pytest.mark.parametrize("env_cls", FAMILIES, ids=lambda c: c.family)
def test_oracle_with_tools_is_near_perfect_and_glance_is_not(env_cls: type, difficulty: int) -> None:
    assert _accuracy(env_cls, difficulty, OracleAgent()) >= 0.95
    # glance only: text is illegible (0%); a tiny object's colour is blended away (chance is 1/8)
    assert _accuracy(env_cls, difficulty, OracleAgent(use_tools=False)) <= 0.35


def test_families_are_registered() -> None:
    for cls in FAMILIES:
        assert FAMILY_ENVS[cls.family] is cls
        assert "## Description" in (cls.__doc__ or "")


@pytest.mark.parametrize("env_cls", FAMILIES, ids=lambda c: c.family)
def test_scenes_are_deterministic_and_self_consistent(env_cls: type) -> None:
    for difficulty in (0, 1, 2):
        for seed in range(10):
            scene = env_cls.generate(np.random.default_rng(seed), difficulty)
            assert scene == env_cls.generate(np.random.default_rng(seed), difficulty)
            assert scene.family == env_cls.family and scene.image.shape == (1024, 1024, 3)
            assert scene.layout and scene.texts and scene.evidence
            labels = [r.label for r in scene.evidence]
            assert solve(scene.program, [r.value for r in scene.evidence], labels) == scene.answers[0]
            words = set(tokenize(scene.question))
            assert all(set(tokenize(k)) <= words for k in scene.key_tokens), scene.key_tokens


def test_scichart_labels_never_share_an_ocr_box() -> None:
    ocr = SceneOCR()
    for difficulty in (0, 1, 2):
        for seed in range(40):
            scene = SciChartEnv.generate(np.random.default_rng(seed), difficulty)
            for item in scene.texts:  # every word, padded like the evidence, reads as itself alone
                seen = ocr.visible(scene.texts, pad_box(item.box, 0.006), 1.0)
                assert [t.text for t in seen] == [item.text], (seed, item.text)
            values = np.array(scene.meta["values"])
            assert values.shape == (len(scene.meta["series"]), (6, 8, 10)[difficulty])
            series = [r.label for r in scene.layout if r.kind == "series"]
            assert series == scene.meta["series"] and len(series) == (2, 3, 4)[difficulty]
            if scene.program.op == "argmax":  # read every series, then answer: within the default budget
                assert len(scene.evidence) + 1 <= 6


def test_scichart_focus_on_a_series() -> None:
    env = SciChartEnv()
    obs, info = env.reset(seed=1)
    name = info["scene"].meta["series"][0]
    obs, _, _, _, info = env.step(f'{{"tool": "focus", "args": {{"axis": "series", "labels": ["{name}"]}}}}')
    assert info["error"] is None and name in obs["tool_output"]


def test_finedetail_target_is_alone_and_clear_in_its_zoom() -> None:
    for difficulty in (0, 1, 2):
        for seed in range(40):
            scene = FineDetailEnv.generate(np.random.default_rng(seed), difficulty)
            (ev,) = scene.evidence
            others = [r for r in scene.layout if r.label != ev.label]
            assert all(box_intersection(pad_box(r.box, 1 / 1024), ev.box) == 0 for r in others)
            assert not [t for t in scene.texts if box_intersection(t.box, ev.box) > 0]
            assert sum(r.value != ev.value for r in others if box_intersection(r.box, pad_box(ev.box, 0.02)) > 0) >= 1
            ctx = ToolContext(scene, scene.image, 128, SceneOCR())
            assert read_color(ctx.view(ev.box)) == scene.answers[0]
            tags = [r.label for r in scene.layout]
            assert len(set(tags)) == len(tags) and ev.label in scene.question


def test_textread_names_a_building_seen_at_a_glance() -> None:
    for difficulty in (0, 1, 2):
        for seed in range(20):
            scene = TextReadEnv.generate(np.random.default_rng(seed), difficulty)
            buildings = [r for r in scene.layout if r.kind == "building"]
            assert len(buildings) == (3, 5, 7)[difficulty]
            assert len({b.label for b in buildings}) == len(buildings)  # colours are distinct
            (ev,) = scene.evidence
            assert any(box_intersection(ev.box, b.box) > 0 and b.value == ev.value for b in buildings)
            seen = SceneOCR().visible(scene.texts, ev.box, 1.0)
            assert [t.text for t in seen] == [scene.answers[0]]
