"""Drawing helpers for the procedural families: a white canvas that records every word it renders, and
the area it drew on, so that the glance of the scene resizes only that area."""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from typing import Literal

import cv2
import numpy as np

from iapo_gym.scene import Box, TextItem, unit_box
from iapo_gym.tools.base import InkMap, view_region
from iapo_gym.tools.resample import area_resize

FONT = cv2.FONT_HERSHEY_SIMPLEX
SMALL = 0.42  # ~9 px glyphs: illegible in the glance, legible in a zoom of <= ~1/6 of the canvas
MEDIUM = 0.55


@functools.lru_cache(maxsize=4096)  # labels and numbers recur across scenes
def text_size(text: str, scale: float, thickness: int = 1, font: int = FONT) -> tuple[tuple[int, int], int]:
    """``cv2.getTextSize`` of ``text`` in ``font``: ``((width, height), baseline)`` in pixels."""
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    return (width, height), baseline


class Canvas:
    """An RGB canvas; :meth:`text` draws a word and records it as a :class:`TextItem`.

    Every drawing method also records the pixel box (with a margin) holding every pixel it may have
    changed, and grows :attr:`ink`, the box around them all; a family that draws only through these
    methods returns :meth:`final_image`, which records where the image is still white (an
    :class:`~iapo_gym.tools.base.InkMap`) for :func:`glance` and for views that show only white.
    ``background`` is a grey level or an RGB colour; ``font`` and ``text_color`` are :meth:`text`'s defaults."""

    def __init__(
        self,
        width: int = 1024,
        height: int = 1024,
        background: int | tuple[int, int, int] = 255,
        font: int = FONT,
        text_color: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.image = np.full((height, width, 3), background, dtype=np.uint8)
        self.texts: list[TextItem] = []
        self.background = background
        self.font, self.text_color = font, text_color
        self.ink = [width, height, 0, 0]  # empty
        self._marks: list[tuple[int, int, int, int]] = []

    def _inked(self, x0: int, y0: int, x1: int, y1: int, margin: int) -> None:
        """Grow :attr:`ink` over the pixels ``x0..x1`` x ``y0..y1`` (inclusive, in either order) and ``margin``."""
        if x1 < x0:
            x0, x1 = x1, x0
        if y1 < y0:
            y0, y1 = y1, y0
        x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin + 1, y1 + margin + 1
        self._marks.append((x0, y0, x1, y1))
        ink = self.ink
        if x0 < ink[0]:
            ink[0] = x0
        if y0 < ink[1]:
            ink[1] = y0
        if x1 > ink[2]:
            ink[2] = x1
        if y1 > ink[3]:
            ink[3] = y1

    def final_image(self) -> np.ndarray:
        """The image, once drawing is done, for a family that drew on it only through this canvas: records
        the inked box so that :func:`glance` resizes only that part (the rest is background)."""
        if self.background in (255, (255, 255, 255)):
            _remember_ink(self.image, self.ink_map())
        return self.image

    def ink_map(self, tile: int = 16) -> InkMap:
        """Where this canvas may have drawn: :attr:`ink` and the ``tile`` x ``tile`` squares its marks touch."""
        h, w = self.image.shape[:2]
        rows, cols = -(-h // tile), -(-w // tile)
        marks = np.array(self._marks, dtype=np.int64).reshape(-1, 4)
        x0, x1 = np.clip(marks[:, 0], 0, w), np.clip(marks[:, 2], 0, w)
        y0, y1 = np.clip(marks[:, 1], 0, h), np.clip(marks[:, 3], 0, h)
        keep = (x0 < x1) & (y0 < y1)
        tx0, tx1, ty0, ty1 = x0[keep] // tile, (x1[keep] - 1) // tile + 1, y0[keep] // tile, (y1[keep] - 1) // tile + 1
        # each mark's tile rectangle as +1/-1 at its corners; the 2-d running sum counts the marks over a tile
        corners = np.zeros((rows + 1, cols + 1), dtype=np.int64)
        for ys, xs, sign in ((ty0, tx0, 1), (ty0, tx1, -1), (ty1, tx0, -1), (ty1, tx1, 1)):
            np.add.at(corners, (ys, xs), sign)
        tiles = corners.cumsum(axis=0).cumsum(axis=1)[:rows, :cols] > 0
        tiles.setflags(write=False)
        return InkMap((self.ink[0], self.ink[1], self.ink[2], self.ink[3]), tiles, tile)

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    def unit(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """Pixel box -> normalised box, clipped to [0, 1] (plain Python: called hundreds of times a scene)."""
        h, w = self.image.shape[:2]
        return unit_box(x0, y0, x1, y1, w, h)

    def text(
        self,
        text: str,
        x: float,
        y: float,
        scale: float = SMALL,
        color: tuple[int, int, int] | None = None,
        align: Literal["left", "center", "right"] = "left",
        thickness: int = 1,
    ) -> TextItem:
        """Draw ``text`` with its vertical centre at ``y``; ``align`` says where ``x`` is; ``color`` defaults
        to the canvas's text colour. Returns the item."""
        (tw, th), base = text_size(text, scale, thickness, self.font)
        if align == "center":
            x -= tw / 2
        elif align == "right":
            x -= tw
        ox, oy = int(round(x)), int(round(y + th / 2))
        rgb = self.text_color if color is None else color
        cv2.putText(self.image, text, (ox, oy), self.font, scale, rgb, thickness, cv2.LINE_AA)
        self._inked(ox, oy - th, ox + tw, oy + base, th + 2 * thickness + 2)  # glyph overhang and antialiasing
        item = TextItem(text, self.unit(ox, oy - th, ox + tw, oy + base), float(th))
        self.texts.append(item)
        return item

    def text_size(self, text: str, scale: float = SMALL) -> tuple[int, int]:
        """``(width, height)`` in pixels of ``text`` as :meth:`text` draws it here (glyphs above the baseline)."""
        return text_size(text, scale, 1, self.font)[0]

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: tuple[int, int, int], filled: bool = True) -> Box:
        p0, p1 = (int(x0), int(y0)), (int(x1), int(y1))
        cv2.rectangle(self.image, p0, p1, color, -1 if filled else 1)
        self._inked(p0[0], p0[1], p1[0], p1[1], 1)
        return self.unit(x0, y0, x1, y1)

    def line(self, p0: tuple[float, float], p1: tuple[float, float], color: tuple[int, int, int], thickness: int = 1) -> None:
        a, b = (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1]))
        cv2.line(self.image, a, b, color, thickness, cv2.LINE_AA)
        self._inked(a[0], a[1], b[0], b[1], thickness + 2)


def union(*boxes: Box) -> Box:
    """Smallest box containing all ``boxes`` (the first of equal values, as ``min`` and ``max`` give)."""
    x0, y0, x1, y1 = boxes[0]
    for b in boxes[1:]:
        if b[0] < x0:
            x0 = b[0]
        if b[1] < y0:
            y0 = b[1]
        if b[2] > x1:
            x1 = b[2]
        if b[3] > y1:
            y1 = b[3]
    return (x0, y0, x1, y1)


INK_MEMORY = 64
"""Images whose ink map :func:`ink_map` remembers (a drawn scene's glance is taken right after drawing)."""
_INK: OrderedDict[int, tuple[weakref.ref[np.ndarray], InkMap]] = OrderedDict()


def _remember_ink(image: np.ndarray, ink: InkMap) -> None:
    _INK[id(image)] = (weakref.ref(image), ink)
    if len(_INK) > INK_MEMORY:
        _INK.popitem(last=False)


def ink_map(image: np.ndarray) -> InkMap | None:
    """Where ``image`` may differ from white (255), when a :class:`Canvas` recorded it
    (:meth:`Canvas.final_image`); ``None`` when unknown."""
    entry = _INK.get(id(image))
    if entry is None or entry[0]() is not image:
        return None
    return entry[1]


def draw_triangle(image: np.ndarray, box: tuple[int, int, int, int], apex: str, color: tuple[int, int, int]) -> np.ndarray:
    """A copy of ``image`` with a filled triangle in the pixel box ``(x0, y0, x1, y1)`` pointing ``apex``
    (``"left"``, ``"right"``, ``"up"`` or ``"down"``). The copy keeps the original's ink map (when one was
    recorded), grown over the triangle, so its glance stays as fast."""
    x0, y0, x1, y1 = box
    xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
    points = {
        "left": [(x0, ym), (x1, y0), (x1, y1)],
        "right": [(x1, ym), (x0, y0), (x0, y1)],
        "up": [(xm, y0), (x0, y1), (x1, y1)],
        "down": [(xm, y1), (x0, y0), (x1, y0)],
    }
    if apex not in points:
        raise ValueError(f"apex must be one of {', '.join(points)}; got {apex!r}")
    out = image.copy()
    cv2.fillPoly(out, [np.array(points[apex], dtype=np.int32)], color, cv2.LINE_AA)
    old = ink_map(image)
    if old is not None:
        h, w = out.shape[:2]
        t = old.tile
        mx0, my0, mx1, my1 = max(0, x0 - 2), max(0, y0 - 2), min(w, x1 + 3), min(h, y1 + 3)
        tiles = old.tiles.copy()
        tiles[my0 // t : (my1 - 1) // t + 1, mx0 // t : (mx1 - 1) // t + 1] = True
        tiles.setflags(write=False)
        b = old.box
        grown = (min(b[0], mx0), min(b[1], my0), max(b[2], mx1), max(b[3], my1)) if b[0] < b[2] else (mx0, my0, mx1, my1)
        _remember_ink(out, InkMap(grown, tiles, t))
    return out


def glance(image: np.ndarray, view_size: int, ink: InkMap | None = None) -> np.ndarray:
    """The whole image letterboxed into a ``view_size`` square: exactly
    ``view_region(image, (0, 0, width, height), view_size)``, computed faster for a canvas whose inked box
    is known and whose side is a multiple of ``view_size``. There OpenCV's INTER_AREA averages each
    ``k x k`` block on its own (``k`` = side / view size, an integer), so the blocks outside the inked box
    are white and only the blocks the box touches need resizing. ``ink``: the image's ink map, when the caller has it."""
    h, w = image.shape[:2]
    ink = ink_map(image) if ink is None else ink
    k = h // view_size
    # k >= 3: at k == 2 OpenCV's vector code rounds ties up and its scalar tail to even, so which blocks a
    # resize call hands to which depends on where the call starts; at k >= 3 every block is scalar
    if ink is None or h != w or h % view_size or k < 3 or image.dtype != np.uint8 or image.shape[2:] != (3,):
        return view_region(image, (0, 0, w, h), view_size)
    box = ink.box
    x0, y0 = max(0, box[0]) // k, max(0, box[1]) // k  # in view pixels: the blocks the box touches
    x1, y1 = min(view_size, -(-min(w, box[2]) // k)), min(view_size, -(-min(h, box[3]) // k))
    out = np.full((view_size, view_size, 3), 255, dtype=np.uint8)
    if x0 < x1 and y0 < y1:
        region = image[y0 * k : y1 * k, x0 * k : x1 * k]
        out[y0:y1, x0:x1] = area_resize(region, x1 - x0, y1 - y0)
    return out
