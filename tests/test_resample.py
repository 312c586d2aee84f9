"""The compiled area kernel (``iapo_gym._area``) gives cv2.resize(INTER_AREA)'s exact pixels, and
``area_resize`` falls back to cv2 wherever the kernel is absent, turned off or does not apply."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iapo_gym.tools import resample
from iapo_gym.tools.resample import area_resize

try:
    from iapo_gym._area import resize as kernel_resize
except ImportError:  # built at install; CI requires it (IAPO_REQUIRE_AREA_KERNEL=1)
    kernel_resize = None

needs_kernel = pytest.mark.skipif(kernel_resize is None, reason="iapo_gym._area was not built (no C compiler at install)")


def cv2_area(region: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)


def test_the_kernel_is_in_use_exactly_where_built_and_on() -> None:
    if os.environ.get("IAPO_REQUIRE_AREA_KERNEL") == "1":  # CI: it must build here
        assert kernel_resize is not None, "iapo_gym._area did not build: is a C compiler installed?"
    off = os.environ.get("IAPO_GYM_AREA_KERNEL", "1").strip().lower() in resample._OFF
    if kernel_resize is None or off:
        assert resample.kernel() is None
    else:
        assert resample.kernel() is kernel_resize, "the kernel was built but failed its check against cv2"


def canvas(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """A test image: noise, white with sparse dark strokes (a drawn scene), white rows and columns, or white."""
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "scene":
        img[:] = 255
        for _ in range(8):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            img[y : y + int(rng.integers(1, 4)), :] = rng.integers(0, 256, 3, dtype=np.uint8)  # grid line
            img[:, x : x + 1] = 0
            img[y : y + 9, x : x + 30] = rng.integers(0, 256, (min(9, h - y), min(30, w - x), 3), dtype=np.uint8)
    elif kind == "stripes":
        img[:: int(rng.integers(2, 5))] = 255
        img[:, :: int(rng.integers(2, 7))] = 255
    elif kind == "white":
        img[:] = 255
    return img


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["noise", "scene", "stripes", "white"]),
    h=st.integers(1, 320),
    w=st.integers(1, 320),
    fy=st.floats(0.0, 1.0),
    fx=st.floats(0.0, 1.0),
    pad=st.integers(0, 9),
)
def test_the_kernel_equals_cv2_at_any_shrink(seed: int, kind: str, h: int, w: int, fy: float, fx: float, pad: int) -> None:
    rng = np.random.default_rng(seed)
    big = canvas(rng, kind, h + pad, w + pad)
    region = big[pad:, pad:]  # a strided view, as a zoom's region is
    height, width = max(1, round(h * fy)), max(1, round(w * fx))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    ref = cv2_area(region, width, height)
    if kernel_resize(region, out):
        np.testing.assert_array_equal(out, ref)
    else:  # declined: OpenCV's own 1x and 2x integer paths, and blocks over 257 rows (16-bit sums)
        assert h % height == 0 and w % width == 0 and (min(h // height, w // width) <= 2 or h // height > 257)
    np.testing.assert_array_equal(area_resize(region, width, height), ref)


@needs_kernel
@pytest.mark.parametrize("k", [3, 4, 5, 8, 16])
def test_integer_ratios_of_three_or_more_are_the_kernels(k: int) -> None:
    rng = np.random.default_rng(k)
    for kind in ("noise", "scene", "white"):
        region = canvas(rng, kind, 128 * k // 2, 96 * k // 2)
        out = np.empty((64, 48, 3), dtype=np.uint8)
        assert kernel_resize(region, out)
        np.testing.assert_array_equal(out, cv2_area(region, 48, 64))


@needs_kernel
def test_the_kernel_declines_what_opencv_does_its_own_way() -> None:
    region = np.full((64, 64, 3), 7, dtype=np.uint8)
    for size in (64, 32):  # a copy, and the vectorised 2x2 path
        out = np.zeros((size, size, 3), dtype=np.uint8)
        assert not kernel_resize(region, out)
        assert not out.any(), "a declined resize leaves dst untouched"


@needs_kernel
@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), np.zeros((4, 4, 3), np.uint8), "uint8"),
        (np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8), "3-d"),
        (np.zeros((8, 8, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), "3 channels"),
        (np.zeros((8, 8, 3), np.uint8)[:, ::2], np.zeros((4, 3, 3), np.uint8), "contiguous pixels"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((4, 8, 3), np.uint8)[:, ::2], "C-contiguous"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((9, 4, 3), np.uint8), "no larger than src"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((0, 4, 3), np.uint8), "non-empty"),
    ],
)
def test_bad_arrays_are_refused_by_name(src: np.ndarray, dst: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kernel_resize(src, dst)


def test_area_resize_is_cv2_for_what_the_kernel_does_not_take() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    np.testing.assert_array_equal(area_resize(gray, 30, 20), cv2_area(gray, 30, 20))
    floats = rng.random((50, 70, 3), dtype=np.float32)
    np.testing.assert_array_equal(area_resize(floats, 30, 20), cv2_area(floats, 30, 20))
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # an enlargement
    np.testing.assert_array_equal(area_resize(small, 60, 40), cv2_area(small, 60, 40))


def test_a_kernel_that_differs_from_cv2_fails_the_check() -> None:
    def off_by_one(src: np.ndarray, dst: np.ndarray) -> bool:
        dst[:] = cv2_area(src, dst.shape[1], dst.shape[0]) ^ 1
        return True

    def declines(src: np.ndarray, dst: np.ndarray) -> bool:
        return False

    assert not resample._self_check(off_by_one)
    assert resample._self_check(declines)
    if kernel_resize is not None:
        assert resample._self_check(kernel_resize)


def test_the_kernel_can_be_turned_off_from_the_environment() -> None:
    code = "from iapo_gym.tools.resample import kernel; print(kernel() is None)"
    env = dict(os.environ, IAPO_GYM_AREA_KERNEL="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"
