"""Area resampling of RGB views: ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` bit for bit, faster.

Shrinking a zoom's region to the view size is the most expensive part of a step. At a non-integer ratio
OpenCV runs a generic scalar loop (~120-200 µs for a 130-200 px crop at the default view of 128);
``iapo_gym._area``, a small C module built at install, does the same float32 operations in the same order
with SIMD registers and skips rows that are white throughout (most rows of a drawn scene), so its output is
the same array, 2-6x sooner. It is used only after it has been checked against ``cv2.resize`` on this
machine (:func:`kernel`); where the module was not built (no C compiler at install), where the check
fails (an OpenCV built with fused multiply-adds, say), or with ``IAPO_GYM_AREA_KERNEL=0`` in the
environment, :func:`area_resize` is ``cv2.resize``. At integer ratios of 3 or more (the glance: a 1024 px
canvas to a 128 px view) the kernel sums each block in 16-bit lanes; the 2x and 1x cases stay with
OpenCV (its vectorised 2x2 path rounds its own way).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable

import cv2
import numpy as np

KernelFn = Callable[[np.ndarray, np.ndarray], bool]

_OFF = ("0", "off", "false", "no")


def _applies(region: np.ndarray, width: int, height: int) -> bool:
    """Whether the kernel may be asked: a shrink of a uint8 RGB region with contiguous pixels (it answers
    ``False`` itself where OpenCV's 1x or 2x integer path applies, which stays with OpenCV)."""
    if region.dtype != np.uint8 or region.ndim != 3 or region.shape[2] != 3 or region.strides[1:] != (3, 1):
        return False
    h, w = region.shape[:2]
    return 0 < height <= h and 0 < width <= w


def _self_check(fn: KernelFn) -> bool:
    """The kernel against ``cv2.resize`` on views of a fixed random image (noise, white rows, white
    columns, thin lines) at a spread of shapes; a few milliseconds."""
    rng = np.random.default_rng(20261202)
    image = rng.integers(0, 256, (420, 420, 3), dtype=np.uint8)
    image[::3] = 255  # white rows
    image[:, 5::7] = 255  # white columns
    image[200:] = 255
    image[300:, 100::25] = 0  # thin dark lines on white
    for i in range(60):
        if i % 3:  # any ratio
            h, w = (int(v) for v in rng.integers(2, 210, 2))
            height, width = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        else:  # integer ratios (the glance's)
            height, width = (int(v) for v in rng.integers(1, 40, 2))
            h, w = height * int(rng.integers(3, 6)), width * int(rng.integers(3, 6))
        y, x = (int(v) for v in rng.integers(0, 420 - max(h, w), 2))
        region = image[y : y + h, x : x + w]
        out = np.empty((height, width, 3), dtype=np.uint8)
        if fn(region, out) and not np.array_equal(out, cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)):
            return False
    return True


@functools.cache
def kernel() -> KernelFn | None:
    """The compiled kernel, when it is built, not turned off and equal to ``cv2.resize`` on this machine;
    else ``None`` (checked once per process)."""
    if os.environ.get("IAPO_GYM_AREA_KERNEL", "1").strip().lower() in _OFF:
        return None
    try:
        from iapo_gym._area import resize
    except ImportError:
        return None
    fn: KernelFn = resize
    if not _self_check(fn):
        warnings.warn(
            "iapo_gym._area differs from cv2.resize(INTER_AREA) on this machine; using cv2.resize (same views, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return fn


def area_resize(region: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)``: the same array, from the
    compiled kernel where it applies (a uint8 RGB shrink at a non-integer ratio)."""
    fn = kernel()
    if fn is not None and _applies(region, width, height):
        out = np.empty((height, width, 3), dtype=np.uint8)
        if fn(region, out):
            return out
    return cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)


__all__ = ["area_resize", "kernel"]
