"""The drawing canvas's ink map, and the glance and views computed with it: the same pixels as a plain resize."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest

from iapo_gym.envs.charts import HBarEnv, VBarEnv
from iapo_gym.envs.render import Canvas, glance, ink_map
from iapo_gym.envs.scichart import SciChartEnv
from iapo_gym.envs.tables import TableFactEnv, TableQAEnv, TableSynthEnv
from iapo_gym.tools.base import ToolContext, blank_view, view_region

CANVAS_FAMILIES = (HBarEnv, VBarEnv, SciChartEnv, TableQAEnv, TableSynthEnv, TableFactEnv)


@pytest.mark.parametrize("cls", CANVAS_FAMILIES, ids=lambda c: c.family)
def test_every_drawn_pixel_is_inside_the_inked_box_and_the_glance_is_the_plain_resize(cls: type) -> None:
    for difficulty in (0, 1, 2):
        for seed in range(12):
            image = cls.generate(np.random.default_rng(seed), difficulty).image
            ink = ink_map(image)
            assert ink is not None
            ys, xs = np.nonzero((image != 255).any(axis=2))
            box = ink.box
            assert xs.min() >= box[0] and ys.min() >= box[1] and xs.max() < box[2] and ys.max() < box[3]
            assert ink.tiles[ys // ink.tile, xs // ink.tile].all()  # every drawn pixel is in a marked tile
            assert not ink.tiles.all()
            for view in (128, 64, 100, 256, 448, 512):  # 100, 448: not a divisor; 512: k = 2, the plain path
                assert np.array_equal(glance(image, view), view_region(image, (0, 0, 1024, 1024), view)), (seed, view)


def test_an_unrecorded_or_edited_canvas_takes_the_plain_path() -> None:
    c = Canvas()
    c.text("42", 500, 500)
    assert ink_map(c.image) is None  # final_image() not called: unknown
    image = c.final_image()
    assert ink_map(image).box == tuple(c.ink) and ink_map(image.copy()) is None
    blank = Canvas().final_image()
    assert np.array_equal(glance(blank, 128), np.full((128, 128, 3), 255, np.uint8))


def test_a_white_region_views_as_the_blank_view() -> None:
    white = np.full((1024, 1024, 3), 255, np.uint8)
    rng = np.random.default_rng(0)
    sizes = [(h, w) for h in range(1, 41, 3) for w in range(1, 41, 3)] + [
        tuple(int(v) for v in rng.integers(1, 1025, 2)) for _ in range(150)
    ]
    for view in (128, 64, 100, 448):
        for h, w in sizes:
            assert np.array_equal(view_region(white, (0, 0, w, h), view), blank_view(h, w, view)), (h, w, view)


@pytest.mark.parametrize("cls", (HBarEnv, TableSynthEnv), ids=lambda c: c.family)
def test_views_of_white_parts_are_the_plain_resize(cls: type) -> None:
    scene = cls.generate(np.random.default_rng(3), 1)
    ink = ink_map(scene.image)
    ctx = ToolContext(scene, scene.image, 128, None, ink=ink)
    rng = np.random.default_rng(1)
    blank = 0
    for _ in range(300):
        x0, y0 = rng.uniform(0, 0.8, 2)
        s = rng.uniform(0.02, 0.2)
        box = (float(x0), float(y0), float(x0 + s), float(y0 + s))
        px = scene.to_pixels(box)
        blank += ink.blank(*px)
        assert np.array_equal(ctx.view(box), view_region(scene.image, px, 128))
    assert blank > 30


# sha256 (first 16 hex digits) of the glances, crops and tool outputs of a fixed rollout, recorded at 836be81: a speed-up
# of drawing or resampling must leave every observation bit-identical
ROLLOUT_DIGESTS = {
    "HBar": "cc41970c85460069",
    "VBar": "45a9a9faa8b7ab9f",
    "SciChart": "e2365a21da777ac7",
    "TableQA": "48ca0bfb3d03c4fe",
    "TableSynth": "0ec44aaa2bb59428",
    "TableFact": "0b5be1f530c194c1",
}
ROLLOUT = (
    ("zoom", [0.1, 0.1, 0.27, 0.25]),
    ("ocr", [0.3, 0.42, 0.46, 0.6]),
    ("zoom", [0.0, 0.0, 1.0, 1.0]),
    ("zoom", [0.5, 0.5, 0.55, 0.56]),
    ("ocr", [0.2, 0.6, 0.43, 0.75]),
)  # shrinks by 1.2-1.4, by 8, a blow-up


@pytest.mark.parametrize("family", list(ROLLOUT_DIGESTS))
def test_observations_are_the_bits_recorded_before(family: str) -> None:
    env = gym.make(f"VisualToolVQA-{family}-v0", budget=8)
    digest = hashlib.sha256()
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        digest.update(obs["image"].tobytes())
        for tool, box in ROLLOUT:
            obs, *_ = env.step(json.dumps({"tool": tool, "args": {"box": box}}))
            digest.update(obs["crop"].tobytes())
            digest.update(obs["tool_output"].encode())
    assert digest.hexdigest()[:16] == ROLLOUT_DIGESTS[family]
