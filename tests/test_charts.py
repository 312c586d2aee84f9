"""The bar-chart families: the oracle needs its tools, and difficulty 0 asks about a bar found at a glance
(the one coloured bar, or the clearly longest/tallest one) whose value still needs the tools."""

from __future__ import annotations

import numpy as np
import pytest
from iapo_gym.agents.oracle import read_color
from iapo_gym.envs.charts import LONGEST_MARGIN, NEUTRAL, HBarEnv, VBarEnv

import iapo_gym  # noqa: F401  (registers the env ids)
from iapo_gym.scene import Scene, solve
from iapo_gym.tools import SceneOCR
from iapo_gym.vocab import COLORS

from .conftest import assert_oracle_needs_tools, glance_box, questions_digest

FAMILIES = (HBarEnv, VBarEnv)
SEEDS = range(30)  # the full 200-episode check is a script; tests keep to a fast sample
SATURATED = 80
"""A glance pixel whose channels differ by more than this is "coloured" (grey, black and white are not)."""
EXTREME = {"HBar": "longest", "VBar": "tallest"}


def saturated(glance: np.ndarray) -> np.ndarray:
    px = glance.astype(int)
    return (px.max(axis=2) - px.min(axis=2)) > SATURATED


def assert_centroid_on_target(glance: np.ndarray, scene: Scene, min_pixels: int) -> None:
    """The glance's coloured pixels are many enough and centred on the target's box (within a pixel)."""
    ys, xs = np.nonzero(saturated(glance))
    assert len(xs) >= min_pixels, f"only {len(xs)} coloured glance pixels: {scene.question}"
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5  # pixel (x, y) covers [x, x + 1) x [y, y + 1)
    x0, y0, x1, y1 = glance_box(scene, scene.meta["target_box"], glance.shape[0])  # type: ignore[arg-type]
    assert x0 - 1 <= cx <= x1 + 1 and y0 - 1 <= cy <= y1 + 1, (scene.question, (cx, cy), (x0, y0, x1, y1))


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_oracle_needs_tools(cls: type, difficulty: int) -> None:
    assert_oracle_needs_tools(cls, difficulty, SEEDS, glance_ceiling=0.2)


@pytest.mark.parametrize("cls", FAMILIES)
def test_easy_question_names_a_glance_cue(cls: type) -> None:
    ocr, cues = SceneOCR(), set()
    for seed in range(60):
        scene = cls.generate(np.random.default_rng(seed), 0)
        cue = scene.meta["cue"]
        cues.add(cue)
        (ev,) = scene.evidence
        assert scene.program.op == "read" and scene.answers == (ev.value,)
        assert solve(scene.program, [ev.value], [ev.label]) == ev.value
        assert [t.text for t in ocr.visible(scene.texts, ev.box, 1.0)] == [ev.value]  # the value label alone
        target = next(r for r in scene.layout if r.label == ev.label)
        bars = scene.meta["bar_boxes"]
        assert len(bars) == len(scene.layout) == 5
        values = [int(r.value) for r in scene.layout]
        assert all(15 <= v <= 99 for v in values)
        assert scene.meta["target_box"] == bars[scene.layout.index(target)]
        for bar, region in zip(bars, scene.layout):  # each bar lies within its layout region
            x0, y0, x1, y1 = region.box
            assert x0 <= bar[0] and y0 <= bar[1] and bar[2] <= x1 and bar[3] <= y1
        if cue == "colour":
            word = scene.key_tokens[0]
            assert word in COLORS and word != "black"
            assert scene.question == f"What is the value of the {word} bar?"
            # that bar has the named colour, every other one is grey
            for bar in bars:
                x0, y0, x1, y1 = scene.to_pixels(bar)
                middle = scene.image[(y0 + y1) // 2, (x0 + x1) // 2]
                expected = COLORS[word] if bar == scene.meta["target_box"] else NEUTRAL
                assert tuple(int(v) for v in middle) == expected
        else:
            word = EXTREME[cls.family]
            assert scene.question == f"What is the value of the {word} bar?"
            assert int(ev.value) >= max(v for v in values if str(v) != ev.value) + LONGEST_MARGIN
            assert not saturated(scene.image).any()  # all bars grey
        assert scene.key_tokens == (word, "value") and all(t in scene.question for t in scene.key_tokens)
    assert cues == {"colour", "extreme"}


@pytest.mark.parametrize("cls", FAMILIES)
def test_easy_target_is_visible_at_a_glance(cls: type) -> None:
    """For 30 scenes at difficulty 0 the target is found in the 128 px glance: the coloured pixels are
    centred on the target bar (colour questions), or the target bar is longer than every other by several
    glance pixels (longest/tallest questions)."""
    env = cls(difficulty=0)
    axis = 0 if cls.family == "HBar" else 1  # bars grow along x (HBar) or y (VBar)
    kinds = []
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        scene: Scene = info["scene"]
        glance = obs["image"]
        assert glance.shape == (128, 128, 3)
        kinds.append(scene.meta["cue"])
        if scene.meta["cue"] == "colour":
            assert_centroid_on_target(glance, scene, min_pixels=12)
            x0, y0, x1, y1 = (int(round(v)) for v in glance_box(scene, scene.meta["target_box"], 128))
            assert read_color(glance[y0:y1, x0:x1]) == scene.key_tokens[0]  # the named colour, seen at a glance
        else:
            assert not saturated(glance).any()
            boxes = [glance_box(scene, b, 128) for b in scene.meta["bar_boxes"]]
            lengths = [b[axis + 2] - b[axis] for b in boxes]
            target = glance_box(scene, scene.meta["target_box"], 128)
            target_length = target[axis + 2] - target[axis]
            others = sorted(lengths)[:-1]
            assert target_length == max(lengths) and target_length - others[-1] >= 4.0  # glance pixels
    assert {"colour", "extreme"} <= set(kinds)


# Digest of the questions and answers of scenes 0..39 at difficulties 1 and 2, as generated before
# difficulty 0 became the glance curriculum: changing an rng draw there changes every later scene.
HARDER_DIGESTS = {
    ("HBar", 1): "3b6a07e68122182b",
    ("HBar", 2): "9e809642dde0b575",
    ("VBar", 1): "88dc1476a176d946",
    ("VBar", 2): "ab9a487c2d65c367",
}


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("difficulty", [1, 2])
def test_harder_difficulties_unchanged(cls: type, difficulty: int) -> None:
    assert questions_digest(cls, difficulty) == HARDER_DIGESTS[cls.family, difficulty]
    meta = cls.generate(np.random.default_rng(0), difficulty).meta
    # no cue at these difficulties; only where a shortcut marker would go, and what names the asked bars
    assert set(meta) == {"marker_slots", "marker_label_slots", "marker_target", "locators"}


def test_generation_is_deterministic() -> None:
    for cls in FAMILIES:
        for difficulty in (0, 1, 2):
            a = cls.generate(np.random.default_rng(7), difficulty)
            assert a == cls.generate(np.random.default_rng(7), difficulty)
