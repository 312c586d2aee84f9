"""Real images from files or bytes: a pixel limit checked before decoding, and a decoded-image cache bounded
in bytes.

A data set's image may be any size, aspect ratio and format OpenCV decodes (PNG, JPEG, ...). Its size is read
from the file's header first (Pillow reads only the header), so an oversized image — a decompression bomb, or
a scan far larger than any benchmark needs — is refused with a clear error before a single pixel is decoded
(a 1.2 MB PNG of 20,000 x 20,000 white pixels would otherwise take 2.4 GB of memory). Decoded images are
kept in a least-recently-used cache of at most :data:`CACHE_BYTES` bytes, keyed by the file's path, size and
modification time (a file changed on disk is read again).
"""

from __future__ import annotations

import io
import os
import warnings
from collections import OrderedDict
from collections.abc import Hashable

import cv2
import numpy as np

MAX_PIXELS = 40_000_000
"""Largest image (width x height) decoded by default: 40 megapixels (e.g. 8000 x 5000), 120 MB as RGB."""
CACHE_BYTES = 512 * 1024 * 1024
"""Decoded images kept in memory, in bytes (least recently used are dropped first)."""

_CACHE: OrderedDict[Hashable, np.ndarray] = OrderedDict()
_cached_bytes = 0


def image_size(source: str | bytes, where: str = "") -> tuple[int, int]:
    """``(width, height)`` of an image file (a path) or encoded bytes, read from its header only.

    Raises ``ValueError`` naming ``where`` (or the path) when the data is missing or not an image.
    """
    from PIL import Image

    shown = where or (source if isinstance(source, str) else "image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as img:
                return int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:  # Pillow's own guard (> 179 MP): the size is in its message
        raise ValueError(f"{shown}: image too large to decode ({exc}); the limit is {MAX_PIXELS:,} pixels") from None
    except FileNotFoundError:
        raise ValueError(f"{shown}: image file not found") from None
    except OSError as exc:  # Pillow's UnidentifiedImageError is an OSError too
        raise ValueError(f"{shown}: not a readable image ({exc})") from None


def check_pixels(width: int, height: int, max_pixels: int, where: str) -> None:
    """Refuse an image of more than ``max_pixels`` pixels, saying what to do."""
    if width * height > max_pixels:
        raise ValueError(
            f"{where}: image of {width} x {height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (max_pixels=); downscale it, or raise the limit if you mean to decode it"
        )


def load_image(path: str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to a read-only uint8 HxWx3 RGB array (cached; see the module docstring).

    Grayscale becomes RGB, transparency is composited over white, 16-bit and float images are scaled to
    8 bits. Raises ``ValueError`` naming the path if the file cannot be read or decoded, or exceeds
    ``max_pixels``.
    """
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ValueError(f"cannot read image {path!r}: {exc.strerror or exc}") from None
    key = ("file", path, stat.st_size, stat.st_mtime_ns)
    cached = _get(key)
    if cached is not None:
        return cached
    width, height = image_size(path, f"image {path!r}")
    check_pixels(width, height, max_pixels, f"image {path!r}")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # imdecode, unlike imread, also takes non-ASCII paths on Windows
    except OSError as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}") from None
    return _put(key, _decode(data, f"image {path!r}"))


def decode_image(data: bytes, key: Hashable, where: str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (a PNG or JPEG held in a data file) like :func:`load_image`; ``key`` names
    them in the cache (e.g. the data file and row), ``where`` in error messages."""
    cached = _get(("bytes", key))
    if cached is not None:
        return cached
    width, height = image_size(data, where)
    check_pixels(width, height, max_pixels, where)
    return _put(("bytes", key), _decode(np.frombuffer(data, dtype=np.uint8), where))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_png(data: np.ndarray) -> np.ndarray | None:
    """An 8-bit RGB or RGBA PNG (what charts and tables are saved as) through libspng (``pyspng``), about twice
    as fast as OpenCV's libpng here (a 1,600 x 1,200 chart: ~12 ms against ~20 ms), in RGB(A) order; ``None``
    for any other PNG (gray, palette, 16-bit, a transparency chunk) or what it cannot decode: OpenCV does those."""
    head = data[:64].tobytes()
    if len(head) < 26 or head[12:16] != b"IHDR" or head[24] != 8 or head[25] not in (2, 6):
        return None
    idat = data.tobytes().find(b"IDAT")
    if idat < 0 or b"tRNS" in data[:idat].tobytes():
        return None
    try:
        import pyspng

        return pyspng.load(data.tobytes())
    except (ImportError, RuntimeError, ValueError):
        return None


def _decode(data: np.ndarray, where: str) -> np.ndarray:
    img = _decode_png(data) if data[:8].tobytes() == PNG_SIGNATURE else None
    is_rgb = img is not None  # libspng gives RGB(A); OpenCV gives BGR(A)
    if img is None:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(
            f"cannot decode {where}: the file is empty, corrupt or not an image format OpenCV reads (PNG, JPEG, ...)"
        )
    if img.dtype == np.uint16:
        img = np.right_shift(img, 8).astype(np.uint8)  # the ufunc of >>, which cv2's types (a float image too) reject
    elif img.dtype.kind == "f":
        img = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"cannot use {where}: pixel type {img.dtype} is not supported; save it as 8-bit PNG or JPEG")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels > 4:
        raise ValueError(f"cannot use {where}: {channels} channels; expected 1 (gray), 3 (colour) or 4 (with alpha)")
    gray = channels <= 2
    colour = img.reshape(img.shape[0], img.shape[1], -1)[:, :, : 1 if gray else 3]
    colour = cv2.cvtColor(colour, cv2.COLOR_GRAY2RGB) if gray else colour if is_rgb else cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    if channels in (2, 4):  # composite over white: transparent backgrounds are meant to look blank, not black
        alpha = img[:, :, -1:].astype(np.float32) / 255.0
        colour = (colour.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    rgb = np.ascontiguousarray(colour)
    rgb.setflags(write=False)  # shared by the cache: writers must copy (ToolContext.editable_image does)
    return rgb


def _get(key: Hashable) -> np.ndarray | None:
    image = _CACHE.get(key)
    if image is not None:
        _CACHE.move_to_end(key)
    return image


def _put(key: Hashable, image: np.ndarray) -> np.ndarray:
    global _cached_bytes
    if image.nbytes > CACHE_BYTES:
        return image  # larger than the whole cache: handed out, not kept
    _CACHE[key] = image
    _cached_bytes += image.nbytes
    while _cached_bytes > CACHE_BYTES:
        _, old = _CACHE.popitem(last=False)
        _cached_bytes -= old.nbytes
    return image


def clear_cache() -> None:
    """Drop every decoded image (tests; or to free memory at once)."""
    global _cached_bytes
    _CACHE.clear()
    _cached_bytes = 0


__all__ = ["CACHE_BYTES", "MAX_PIXELS", "check_pixels", "clear_cache", "decode_image", "image_size", "load_image"]
