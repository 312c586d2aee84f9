"""Randomised rendering (``style="random"``): the fixed style is unchanged, a random style is a pure function
of the scene id and varies, and whatever the style the evidence boxes, texts and marker slots stay exact."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
from iapo_gym.agents import OracleAgent
from iapo_gym.envs.base import SPLITS
from iapo_gym.envs.families import FAMILY_ENVS
from iapo_gym.envs.style import FIXED, draw_style
from iapo_gym.scene import Scene
from iapo_gym.tools.base import view_region

from .conftest import run_episode

STYLED = ["HBar", "VBar", "TableQA", "TableSynth", "TableFact"]
"""The bar and table families: a random style keeps their items exactly, and they carry marker slots."""
HEADLINE = [*STYLED, "SciChart"]
"""Every family that draws styles (SciChart's values change where a landscape canvas caps its plot)."""
TEST0 = SPLITS["test"][0]


def _reset(family: str, scene_id: int, difficulty: int = 1, **kwargs: Any) -> tuple[dict[str, Any], gym.Env]:
    env = gym.make(f"VisualToolVQA-{family}-v0", difficulty=difficulty, **kwargs)
    obs, _ = env.reset(options={"scene_id": scene_id})
    return obs, env


def _scene(family: str, scene_id: int, difficulty: int = 1, **kwargs: Any) -> Scene:
    _, env = _reset(family, scene_id, difficulty, **kwargs)
    return cast(Scene, env.unwrapped.scene)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("family", HEADLINE)
def test_the_fixed_style_is_the_default_and_draws_the_original_scenes(family: str) -> None:
    cls = FAMILY_ENVS[family]
    for scene_id in (0, 1, TEST0):
        split = "test" if scene_id >= TEST0 else "train"
        for difficulty in (0, 2):
            original = cls.generate(np.random.default_rng(scene_id), difficulty)  # as every caller drew it before
            assert _scene(family, scene_id, difficulty, split=split) == original
            assert _scene(family, scene_id, difficulty, split=split, style="fixed") == original
            assert cls.generate(np.random.default_rng(scene_id), difficulty, FIXED) == original


@pytest.mark.parametrize("family", HEADLINE)
def test_a_random_style_is_a_pure_function_of_the_scene_id_and_keeps_the_item(family: str) -> None:
    for scene_id in range(12):
        a = _scene(family, scene_id, style="random")
        fresh = FAMILY_ENVS[family].generate(np.random.default_rng(scene_id), 1, draw_style(scene_id))  # not from the cache
        assert a == fresh and draw_style(scene_id) == draw_style(scene_id)
        fixed = _scene(family, scene_id)
        assert not np.array_equal(a.image, fixed.image)
        if family not in STYLED:
            continue
        # the style has its own generator: the same question about the same labels and values, drawn otherwise
        assert (a.question, a.answers, a.key_tokens, a.program) == (
            fixed.question,
            fixed.answers,
            fixed.key_tokens,
            fixed.program,
        )
        assert [(r.label, r.value) for r in a.evidence] == [(r.label, r.value) for r in fixed.evidence]
        assert [t.text for t in a.texts if t.text in {r.value for r in a.evidence}]  # the values are printed


def test_random_styles_vary_over_scenes() -> None:
    styles = [draw_style(i) for i in range(200)]
    fonts = Counter(s.font for s in styles)
    assert len(fonts) >= 5 and min(fonts.values()) >= 10
    assert set(Counter((s.width, s.height) for s in styles)) == {(1024, 1024), (1024, 768), (768, 1024)}
    assert set(Counter(s.value_label for s in styles)) == {"end", "inside", "above"}
    assert {s.gridlines for s in styles} == {True, False} and {s.column_rules for s in styles} == {True, False}
    assert {s.cell_align for s in styles} == {"center", "right"}
    assert len({s.palette for s in styles}) >= 50 and len({s.background for s in styles}) >= 4
    scales, fills = [s.scale for s in styles], [s.bar_fill for s in styles]
    assert max(scales) - min(scales) > 0.5 and max(fills) - min(fills) > 0.4
    # and the canvases really are drawn at those sizes
    for scene_id in range(30):
        style = draw_style(scene_id)
        scene = FAMILY_ENVS["VBar"].generate(np.random.default_rng(scene_id), 1, style)
        assert scene.image.shape == (style.height, style.width, 3)


@pytest.mark.parametrize("family", HEADLINE)
@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_every_evidence_box_reads_its_printed_value_in_every_style(family: str, difficulty: int) -> None:
    """The scene OCR on an evidence box returns exactly that box's value; on a read question, the answer.
    Every word and every marker slot lies inside the canvas, and no slot covers a word or an evidence box."""
    for scene_id in range(40):
        obs, env = _reset(family, scene_id, difficulty, style="random", budget=12)
        scene = cast(Scene, env.unwrapped.scene)
        for region in scene.evidence:
            obs, *_ = env.step(json.dumps({"tool": "ocr", "args": {"box": list(region.box)}}))
            assert obs["tool_output"] == region.value, (scene_id, region, draw_style(scene_id))
        if scene.program.op == "read":
            assert scene.answers == (scene.evidence[0].value,)
        for item in scene.texts:
            assert 0 < item.box[0] and 0 < item.box[1] and item.box[2] < 1 and item.box[3] < 1, (scene_id, item)
        w, h = scene.width, scene.height
        slots = [*scene.meta.get("marker_slots", ()), *scene.meta.get("marker_label_slots", ())]  # type: ignore[misc]
        for x0, y0, x1, y1, _ in cast(list[tuple[int, int, int, int, str]], slots):
            assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
            slot = (x0 / w, y0 / h, x1 / w, y1 / h)
            assert not any(_overlap(slot, t.box) for t in scene.texts), (scene_id, slot)
            assert not any(_overlap(slot, r.box) for r in scene.evidence), (scene_id, slot)


@pytest.mark.parametrize("family", HEADLINE)
def test_the_oracle_answers_in_random_styles(family: str) -> None:
    agent = OracleAgent()
    for difficulty in (0, 1):
        env = gym.make(f"VisualToolVQA-{family}-v0", difficulty=difficulty, style="random")
        correct = [run_episode(env, agent, seed)[0]["correct"] for seed in range(15)]
        assert np.mean(correct) >= 0.9, (family, difficulty, correct)


def test_the_shortcut_marker_is_planted_in_random_styles() -> None:
    for family in STYLED:
        for scene_id in range(TEST0, TEST0 + 4):
            plain = _scene(family, scene_id, split="test", style="random")
            shifted = _scene(family, scene_id, split="test", style="random", shortcut_shift=True)
            x0, y0, x1, y1, _ = plain.meta["marker_slots"][shifted.meta["shortcut"]["marked"]]  # type: ignore[index]
            changed = np.nonzero((plain.image != shifted.image).any(axis=2))
            assert changed[0].size and y0 - 2 <= changed[0].min() and changed[0].max() < y1 + 3
            assert x0 - 2 <= changed[1].min() and changed[1].max() < x1 + 3


def test_a_non_square_canvas_is_letterboxed_into_the_view() -> None:
    seen = set()
    for scene_id in range(20):
        style = draw_style(scene_id)
        if (style.width, style.height) in seen:
            continue
        seen.add((style.width, style.height))
        obs, env = _reset("HBar", scene_id, view_size=96, style="random")
        scene = cast(Scene, env.unwrapped.scene)
        assert scene.image.shape == (style.height, style.width, 3)
        assert obs["image"].shape == (96, 96, 3) and env.observation_space.contains(obs)
        assert np.array_equal(obs["image"], view_region(scene.image, (0, 0, scene.width, scene.height), 96))
        if style.width != style.height:  # the letterbox pads the short side with zeros
            pad = obs["image"][:2] if style.width > style.height else obs["image"][:, :2]
            assert not pad.any()
        obs, *_ = env.step(json.dumps({"tool": "zoom", "args": {"box": [0.1, 0.2, 0.5, 0.4]}}))
        assert obs["crop"].shape == (96, 96, 3)
    assert seen == {(1024, 1024), (1024, 768), (768, 1024)}


def test_the_scene_cache_tells_styles_apart() -> None:
    fixed, random = _scene("TableQA", 5), _scene("TableQA", 5, style="random")
    assert fixed != random and _scene("TableQA", 5) == fixed and _scene("TableQA", 5, style="random") == random


def test_the_mixture_draws_random_styles_of_its_families() -> None:
    env = gym.make("VisualToolVQA-v0", task=HEADLINE, style="random")
    shapes = set()
    for seed in range(12):
        _, info = env.reset(seed=seed)
        scene = info["scene"]
        style = draw_style(info["scene_id"])  # drawn from the scene id, whichever family the mixture picked
        assert scene.image.shape == (style.height, style.width, 3)
        shapes.add(scene.image.shape)
    assert len(shapes) >= 2


@pytest.mark.parametrize("style", ["Random", "", None, 1, ("random",)])
def test_a_bad_style_is_refused_naming_the_allowed_values(style: object) -> None:
    with pytest.raises(ValueError, match=r"style must be one of 'fixed', 'random'; got"):
        gym.make("VisualToolVQA-HBar-v0", style=style)


def test_a_random_style_is_refused_where_a_family_cannot_draw_it() -> None:
    with pytest.raises(ValueError, match="none in: FineDetail"):
        gym.make("VisualToolVQA-FineDetail-v0", style="random")
    with pytest.raises(ValueError, match="none in: FineDetail, TextRead"):
        gym.make("VisualToolVQA-v0", style="random")
    gym.make("VisualToolVQA-FineDetail-v0", style="fixed")  # the fixed style is every family's
