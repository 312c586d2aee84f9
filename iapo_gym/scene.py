"""Scene: one rendered VQA item with everything the tools, the oracle and the tests need to know."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, SupportsFloat, cast

import numpy as np

Box = tuple[float, float, float, float]
"""A box ``(x0, y0, x1, y1)`` in normalised ``[0, 1]`` coordinates of the original image."""


def as_box(values: Iterable[SupportsFloat]) -> Box:
    """Four numbers (an observation's ``view_box`` array, a JSON list) as a :data:`Box` of Python floats:
    ``tuple(float(v) for v in values)``, its length taken on trust (nothing is checked; see
    :func:`~iapo_gym.toolcall.parse_box` for an argument that must be checked)."""
    return cast(Box, tuple(float(v) for v in values))


@dataclass(frozen=True)
class TextItem:
    """A word rendered into the scene: what a perfect OCR would read, where, and how large."""

    text: str
    box: Box
    height: float
    """Glyph height in pixels of the original image (decides legibility at a given zoom)."""


@dataclass(frozen=True)
class Region:
    """A labelled part of the scene: a bar, a table row/column/cell, a legend entry, an object.

    ``value`` is what the region says (a bar's value, a cell's text, an object's colour) and ``box``
    is the tight box around that reading; ``label`` names the region (the bar's category, a row name).
    """

    kind: str
    box: Box
    label: str = ""
    value: str = ""


Op = Literal["read", "color", "argmax", "argmin", "diff", "sum", "compare", "equals", "open"]


@dataclass(frozen=True)
class Program:
    """How the answer follows from the evidence readings, so an oracle can *derive* it from tool outputs.

    ``op`` is applied to the values read from ``Scene.evidence`` (in order): ``read``/``color`` take the
    first reading, ``argmax``/``argmin`` return the label of the largest/smallest number, ``diff`` is
    first minus second, ``sum`` adds them, ``compare`` answers "yes" when the first is larger than the
    second, ``equals`` answers "true" when the first reading equals ``claim``. ``open`` (a real data set's
    item) says nothing of how: :func:`solve` gives ``None`` and an oracle must search (see the oracle agent).
    """

    op: Op
    claim: str = ""


@dataclass(eq=False)
class Scene:
    """A procedurally generated VQA item.

    ``image`` is the full-resolution canvas; ``evidence`` the regions the answer depends on (in the order
    ``program`` reads them); ``layout`` every labelled region (used by the ``focus`` tool);
    ``texts`` every rendered word (used by the ``scene`` OCR backend); ``key_tokens`` the question words
    that the answer depends on (used by the oracle teacher). ``scorer`` names the scorer of
    :mod:`iapo_gym.scoring` that judges answers (``None``: exact match, or ``relaxed_tolerance``);
    ``focus_inset`` is how many pixels the ``focus`` edits stay inside each layout region (2 for published
    label bands, ReFocus's rule; 0 for the procedural families' tight boxes).
    """

    family: str
    image: np.ndarray
    question: str
    answers: tuple[str, ...]
    evidence: tuple[Region, ...]
    program: Program
    layout: tuple[Region, ...] = ()
    texts: tuple[TextItem, ...] = ()
    key_tokens: tuple[str, ...] = ()
    relaxed_tolerance: float | None = None
    meta: dict[str, object] = field(default_factory=dict)
    scorer: str | None = None
    focus_inset: int = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scene):
            return NotImplemented
        fields = (
            "family",
            "question",
            "answers",
            "evidence",
            "program",
            "layout",
            "texts",
            "key_tokens",
            "relaxed_tolerance",
            "meta",
            "scorer",
            "focus_inset",
        )
        return all(getattr(self, f) == getattr(other, f) for f in fields) and np.array_equal(self.image, other.image)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (typeshed's object.__hash__ is a method)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def to_pixels(self, box: Box) -> tuple[int, int, int, int]:
        """Normalised box -> integer pixel box ``(x0, y0, x1, y1)``, at least one pixel wide and high."""
        h, w = self.image.shape[:2]
        x0 = math.floor(box[0] * w)
        y0 = math.floor(box[1] * h)
        x1 = max(x0 + 1, math.ceil(box[2] * w))
        y1 = max(y0 + 1, math.ceil(box[3] * h))
        return x0, y0, min(x1, w), min(y1, h)

    def to_unit(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """Pixel box -> normalised box, clipped to the image."""
        return unit_box(x0, y0, x1, y1, self.width, self.height)


def unit_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
    """Pixel box of a ``width`` x ``height`` image -> normalised box, clipped to [0, 1].

    Plain Python (the same floats as ``float(np.clip(v, 0, 1))``): scenes call it hundreds of times each.
    """
    a, b, c, d = x0 / width, y0 / height, x1 / width, y1 / height
    # min(max(v, 0.0), 1.0), spelled out (the builtins cost more than the comparisons)
    return (
        float(0.0 if a < 0.0 else 1.0 if a > 1.0 else a),
        float(0.0 if b < 0.0 else 1.0 if b > 1.0 else b),
        float(0.0 if c < 0.0 else 1.0 if c > 1.0 else c),
        float(0.0 if d < 0.0 else 1.0 if d > 1.0 else d),
    )


def box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_intersection(a: Box, b: Box) -> float:
    """Area of the intersection of two normalised boxes."""
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def pad_box(box: Box, margin: float) -> Box:
    """Grow a box by ``margin`` (normalised units) on each side, clipped to [0, 1]."""
    a, b, c, d = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
    return (a if a > 0.0 else 0.0, b if b > 0.0 else 0.0, c if c < 1.0 else 1.0, d if d < 1.0 else 1.0)  # max/min, spelled out


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    for tok in text.replace(",", "").split():
        try:
            return float(tok.rstrip("%"))
        except ValueError:
            continue
    return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def solve(program: Program, readings: list[str | None], labels: list[str]) -> str | None:
    """Apply ``program`` to what was read at each evidence region; ``None`` if a needed reading is missing.

    ``readings[i]`` is the text read at evidence region ``i`` (``None``: unreadable), ``labels[i]`` its label.
    """
    if program.op == "open" or not readings or any(r is None or not r.strip() for r in readings):
        return None
    first = readings[0] or ""  # the same str (none is None or blank, checked above), typed as one
    if program.op in ("read", "color"):
        return first.strip()
    if program.op == "equals":
        return "true" if first.strip().lower() == program.claim.strip().lower() else "false"
    nums = [_number(r) for r in readings]
    if any(n is None for n in nums):
        return None
    values = [float(n) for n in nums if n is not None]
    if program.op == "argmax":
        return labels[int(np.argmax(values))]
    if program.op == "argmin":
        return labels[int(np.argmin(values))]
    if program.op == "diff":
        return _fmt(values[0] - values[1])
    if program.op == "sum":
        return _fmt(sum(values))
    if program.op == "compare":
        return "yes" if values[0] > values[1] else "no"
    raise ValueError(f"unknown program op {program.op!r}")
