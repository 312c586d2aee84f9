"""Drawing helpers for the procedural families: a white canvas that records every word it renders."""

from __future__ import annotations

import functools
from typing import Literal

import cv2
import numpy as np

from iapo_gym.scene import Box, TextItem, unit_box

FONT = cv2.FONT_HERSHEY_SIMPLEX
SMALL = 0.42  # ~9 px glyphs: illegible in the glance, legible in a zoom of <= ~1/6 of the canvas
MEDIUM = 0.55


@functools.lru_cache(maxsize=4096)  # labels and numbers recur across scenes
def text_size(text: str, scale: float, thickness: int = 1) -> tuple[tuple[int, int], int]:
    """``cv2.getTextSize`` of ``text`` in :data:`FONT`: ``((width, height), baseline)`` in pixels."""
    return cv2.getTextSize(text, FONT, scale, thickness)


class Canvas:
    """An RGB canvas; :meth:`text` draws a word and records it as a :class:`TextItem`."""

    def __init__(self, width: int = 1024, height: int = 1024, background: int = 255) -> None:
        self.image = np.full((height, width, 3), background, dtype=np.uint8)
        self.texts: list[TextItem] = []

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
        color: tuple[int, int, int] = (0, 0, 0),
        align: Literal["left", "center", "right"] = "left",
        thickness: int = 1,
    ) -> TextItem:
        """Draw ``text`` with its vertical centre at ``y``; ``align`` says where ``x`` is. Returns the item."""
        (tw, th), base = text_size(text, scale, thickness)
        if align == "center":
            x -= tw / 2
        elif align == "right":
            x -= tw
        ox, oy = int(round(x)), int(round(y + th / 2))
        cv2.putText(self.image, text, (ox, oy), FONT, scale, color, thickness, cv2.LINE_AA)
        item = TextItem(text, self.unit(ox, oy - th, ox + tw, oy + base), float(th))
        self.texts.append(item)
        return item

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: tuple[int, int, int], filled: bool = True) -> Box:
        cv2.rectangle(
            self.image, (int(x0), int(y0)), (int(x1), int(y1)), color, -1 if filled else 1
        )
        return self.unit(x0, y0, x1, y1)

    def line(self, p0: tuple[float, float], p1: tuple[float, float], color: tuple[int, int, int], thickness: int = 1) -> None:
        cv2.line(self.image, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color, thickness, cv2.LINE_AA)


def union(*boxes: Box) -> Box:
    """Smallest box containing all ``boxes``."""
    return (
        min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)
    )
