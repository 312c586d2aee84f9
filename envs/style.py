"""Rendering styles of the procedural chart and table families: ``style="fixed"`` (one look, the default)
or ``style="random"`` (a look drawn per scene), so that the training distribution covers real charts better.

Real charts and tables (matplotlib, spreadsheets, papers) differ from ours in ways that have nothing to do
with the question: the font and its size, the colours, where a bar's value is printed, gridlines, the
canvas's aspect ratio, how thick the bars are. :func:`draw_style` draws all of these for one scene, from
the scene id alone (its own generator, as :mod:`envs.shortcuts` draws its marker), so the scene's own
random stream (labels, values, question) is the one drawn in the fixed style; only the geometry's clamps
to a smaller canvas and the font's text widths may change later draws, rarely.

A family takes the style as the optional third argument of ``generate(rng, difficulty, style)`` and reads
its fields; :data:`FIXED` reproduces the families' original scenes bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .render import Canvas

RGB = tuple[int, int, int]

STYLES = ("fixed", "random")
"""The values of the envs' ``style`` keyword."""
PLACEMENTS = ("end", "inside", "above")
"""Where a bar's value is printed: past the bar's end (right of a horizontal bar, over a vertical one),
inside the bar next to its end, or above a horizontal bar's end (for a vertical bar: the same as "end")."""

FONTS: tuple[tuple[int, float], ...] = (
    (cv2.FONT_HERSHEY_SIMPLEX, 1.0),
    (cv2.FONT_HERSHEY_DUPLEX, 1.0),
    (cv2.FONT_HERSHEY_COMPLEX, 1.0),
    (cv2.FONT_HERSHEY_TRIPLEX, 1.0),
    (cv2.FONT_HERSHEY_PLAIN, 1.8),
    (cv2.FONT_HERSHEY_COMPLEX_SMALL, 1.2),
)
"""OpenCV's Hershey faces (the script faces left out: no chart uses them) and the factor on the text scale
that gives each the glyph height of the default face (PLAIN and COMPLEX_SMALL are drawn smaller)."""
SCALE_JITTER = (0.9, 1.25)
"""Range of the glyph size relative to the fixed style's (:attr:`Style.size`)."""
CANVASES: tuple[tuple[int, int], ...] = ((1024, 1024), (1024, 768), (768, 1024))
"""``(width, height)`` of the canvas: square, landscape 4:3 and portrait 3:4; the longer side stays 1,024
pixels, so a glance (letterboxed into the view square) sees the text at the same scale."""
BAR_FILL = (0.55, 1.1)
"""Range of the factor on bar thickness (1.0: the fixed style's 60 % of a row, 63 % of a slot)."""
PALETTE: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (139, 176, 125),
    (42, 157, 143),
    (78, 121, 167),
    (242, 142, 43),
)
"""Bar colours at difficulty >= 1 (matplotlib's tab10 and a few muted ones, as real charts use)."""
BACKGROUNDS: tuple[RGB, ...] = ((250, 250, 250), (248, 246, 240), (242, 245, 250), (245, 245, 245), (250, 248, 235))
"""Off-white tints (saturation <= 15), drawn for half of the random styles; white for the other half."""
INKS: tuple[RGB, ...] = ((0, 0, 0), (35, 35, 35), (55, 55, 60), (20, 30, 70))
"""Colours of text and axes: black, dark greys, navy."""
HEADER_FILLS: tuple[RGB, ...] = ((225, 228, 235), (235, 235, 235), (222, 235, 247), (255, 255, 255), (240, 236, 226))
"""Table header backgrounds (the first is the fixed style's)."""
GRID_GREYS = (150, 170, 200)
"""Grey levels of table rules and chart gridlines."""
_SALT = 0x57E
"""Mixed into the scene id for the style's own generator (the scene's stream stays untouched)."""


@dataclass(frozen=True)
class Style:
    """How a chart or table scene is drawn; every field's default is the fixed style's."""

    width: int = 1024
    """Canvas width in pixels."""
    height: int = 1024
    """Canvas height in pixels."""
    font: int = cv2.FONT_HERSHEY_SIMPLEX
    """OpenCV font face of every word."""
    scale: float = 1.0
    """Factor on every text scale (the face's factor in :data:`FONTS` times :attr:`size`)."""
    size: float = 1.0
    """Glyph height relative to the fixed style's: the factor on the offsets of words from the marks they label."""
    background: RGB = (255, 255, 255)
    ink: RGB = (0, 0, 0)
    """Colour of words, axes and table borders."""
    palette: tuple[RGB, ...] = ()
    """Bar colours at difficulty >= 1, one per series; empty: the family's own draw from the named colours."""
    value_label: str = "end"
    """Where a bar's value is printed: one of :data:`PLACEMENTS`."""
    gridlines: bool = False
    """Charts: value gridlines behind the bars, with tick labels on the value axis."""
    bar_fill: float = 1.0
    """Factor on bar thickness."""
    column_rules: bool = True
    """Tables: vertical rules between columns (the horizontal rules are always drawn)."""
    cell_align: str = "center"
    """Tables: ``"center"`` or ``"right"`` (as spreadsheets align numbers)."""
    header_fill: RGB = HEADER_FILLS[0]
    grid: RGB = (170, 170, 170)
    """Colour of table rules and chart gridlines."""

    @property
    def fixed(self) -> bool:
        """Whether this is the fixed style (the families' original drawing)."""
        return self == FIXED

    def canvas(self) -> Canvas:
        """A blank canvas of this style's size, background, font and ink."""
        return Canvas(self.width, self.height, self.background, font=self.font, text_color=self.ink)

    def text(self, base: float) -> float:
        """The text scale for a family's ``base`` scale (:data:`~envs.render.SMALL`, ``MEDIUM``)."""
        return base * self.scale

    def contrast(self, fill: RGB) -> RGB:
        """A text colour legible on ``fill``: white on a dark fill, the ink on a light one."""
        luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
        return (255, 255, 255) if luminance < 150 else self.ink


FIXED = Style()
"""The families' original look: 1024x1024 white canvas, Hershey simplex, values past the bar ends."""


def check_style(style: object) -> str:
    """Validate an env's ``style`` keyword."""
    if not isinstance(style, str) or style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(repr(s) for s in STYLES)}; got {style!r}")
    return style


def draw_style(scene_id: int) -> Style:
    """The random style of the scene with this id (from its own generator: a pure function of the id)."""
    rng = np.random.default_rng([int(scene_id), _SALT])
    font, factor = FONTS[int(rng.integers(len(FONTS)))]
    size = round(float(rng.uniform(*SCALE_JITTER)), 3)
    width, height = CANVASES[int(rng.integers(len(CANVASES)))]
    picks = rng.choice(len(PALETTE), size=2, replace=False)
    grey = GRID_GREYS[int(rng.integers(len(GRID_GREYS)))]
    return Style(
        width=width,
        height=height,
        font=font,
        scale=factor * size,
        size=size,
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))] if rng.random() < 0.5 else (255, 255, 255),
        ink=INKS[int(rng.integers(len(INKS)))],
        palette=tuple(PALETTE[int(k)] for k in picks),
        value_label=PLACEMENTS[int(rng.integers(len(PLACEMENTS)))],
        gridlines=bool(rng.random() < 0.5),
        bar_fill=round(float(rng.uniform(*BAR_FILL)), 3),
        column_rules=bool(rng.random() < 0.5),
        cell_align="right" if rng.random() < 0.5 else "center",
        header_fill=HEADER_FILLS[int(rng.integers(len(HEADER_FILLS)))],
        grid=(grey, grey, grey),
    )


__all__ = ["FIXED", "PLACEMENTS", "STYLES", "Style", "check_style", "draw_style"]
