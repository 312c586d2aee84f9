"""The per-process scene cache: cached resets give bit-identical observations, episodes cannot reach the
cached scene, the cache stays bounded; and the memoised OCR backends return what they computed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from iapo_gym.envs.cache import scene_cache, scene_cache_size, set_scene_cache_size

from iapo_gym import FAMILIES
from iapo_gym.tools import SceneOCR, ToolContext
from iapo_gym.tools.ocr import EasyOCR


@pytest.fixture
def cache_size() -> Iterator[None]:
    previous = scene_cache_size()
    scene_cache().clear()
    yield
    set_scene_cache_size(previous)
    scene_cache().clear()


def _calls(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    calls = []
    for k in range(5):
        x0, y0 = rng.uniform(0, 0.8, 2)
        s = float(rng.uniform(0.03, 0.3))
        calls.append(json.dumps({"tool": ("zoom", "ocr")[k % 2], "args": {"box": [x0, y0, x0 + s, y0 + s]}}))
    calls.append(json.dumps({"tool": "focus", "args": {"axis": "rows", "labels": ["nope"]}}))
    return calls


def _episode(env: gym.Env, scene_id: int) -> list[Any]:
    obs, info = env.reset(seed=scene_id, options={"scene_id": scene_id})
    out: list[Any] = [obs, info["scene"]]
    for call in _calls(scene_id):
        obs, reward, terminated, truncated, info = env.step(call)
        out += [obs, reward, info["error"]]
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return bool(a == b)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_and_fresh_resets_give_bit_identical_episodes(family: str, cache_size: None) -> None:
    env = gym.make(f"VisualToolVQA-{family}-v0", budget=10)
    set_scene_cache_size(0)
    fresh = [_episode(env, i) for i in (3, 7)]
    set_scene_cache_size(4)
    first = [_episode(env, i) for i in (3, 7)]  # drawn and cached
    again = [_episode(env, i) for i in (3, 7)]  # from the cache
    assert len(scene_cache()) == 2
    for a, b, c in zip(fresh, first, again):
        assert len(a) == len(b) == len(c)
        assert all(_same(x, y) and _same(x, z) for x, y, z in zip(a, b, c))


def test_an_episode_cannot_change_the_cached_scene(cache_size: None) -> None:
    set_scene_cache_size(4)
    env = gym.make("VisualToolVQA-TableQA-v0", budget=10)
    obs, info = env.reset(options={"scene_id": 11})
    scene = info["scene"]
    pristine = scene.image.copy()
    with pytest.raises(ValueError):  # read-only: an in-place edit fails loudly instead of leaking
        scene.image[0, 0] = 0
    scene.meta["mine"] = [1]
    label = scene.layout[0].label
    obs, *_ = env.step(json.dumps({"tool": "focus", "args": {"axis": "rows", "labels": [label], "mode": "mask"}}))
    assert env.unwrapped.ctx.image is not scene.image  # focus edited a copy
    obs, info = env.reset(options={"scene_id": 11})
    again = info["scene"]
    assert again is not scene and "mine" not in again.meta
    assert np.array_equal(again.image, pristine) and np.array_equal(env.unwrapped.ctx.image, pristine)
    obs["image"][:] = 0  # observations are copies too
    assert env.reset(options={"scene_id": 11})[0]["image"].any()


def test_the_cache_is_bounded_and_shared_by_the_envs_of_a_process(cache_size: None) -> None:
    set_scene_cache_size(3)
    envs = [gym.make("VisualToolVQA-HBar-v0") for _ in range(2)]
    for i in range(10):
        for env in envs:
            env.reset(options={"scene_id": i})
    assert len(scene_cache()) == 3
    a = envs[0].reset(options={"scene_id": 9})[1]["scene"]
    b = envs[1].reset(options={"scene_id": 9})[1]["scene"]
    assert a.image is b.image  # drawn once, shared read-only
    mixture = gym.make("VisualToolVQA-v0", task=["VBar"])
    assert mixture.reset(options={"scene_id": 9})[1]["scene"].family == "VBar"  # keys differ per env kind
    set_scene_cache_size(1)
    assert len(scene_cache()) == 1
    with pytest.raises(ValueError, match="non-negative int"):
        set_scene_cache_size(-1)


def test_scene_ocr_vectorised_reads_the_same_words_as_the_definition() -> None:
    from iapo_gym.scene import box_area, box_intersection

    env = gym.make("VisualToolVQA-TableSynth-v0")
    ocr = SceneOCR()
    rng = np.random.default_rng(0)
    for seed in range(5):
        scene = env.reset(seed=seed)[1]["scene"]
        for _ in range(40):
            x0, y0 = rng.uniform(0, 0.9, 2)
            box = (float(x0), float(y0), float(x0 + rng.uniform(0.01, 0.5)), float(y0 + rng.uniform(0.01, 0.5)))
            scale = float(rng.uniform(0.1, 1.0))
            expected = [
                t
                for t in scene.texts
                if t.height * scale >= ocr.min_legible_px
                and box_intersection(t.box, box) >= ocr.min_overlap * max(box_area(t.box), 1e-12)
            ]
            assert ocr.visible(scene.texts, box, scale) == expected


def test_easyocr_is_memoised_per_box_and_image_state_within_an_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    scene = env.reset(seed=0)[1]["scene"]
    ocr = EasyOCR()
    runs: list[tuple[float, ...]] = []
    monkeypatch.setattr(ocr, "_read", lambda ctx, box: runs.append(tuple(box)) or f"text {len(runs)}")
    ctx = ToolContext(scene, scene.image, 128, ocr)
    box = (0.1, 0.1, 0.3, 0.3)
    assert ocr.read(ctx, box) == ocr.read(ctx, list(box)) == "text 1" and len(runs) == 1
    assert ocr.read(ctx, (0.2, 0.1, 0.3, 0.3)) == "text 2"
    ctx.editable_image()  # a focus edit: the same box may now read differently
    assert ocr.read(ctx, box) == "text 3"
    fresh = ToolContext(scene, scene.image, 128, ocr)  # the next episode starts with an empty memo
    assert ocr.read(fresh, box) == "text 4"
