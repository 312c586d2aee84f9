"""CharXiv-like scientific charts: multi-series line charts with a legend and small value labels."""

from __future__ import annotations

import math

import numpy as np

from iapo_gym.scene import Program, Region, Scene, pad_box
from iapo_gym.vocab import COLORS, SERIES_LABELS

from .base import ToolVQAEnv
from .render import MEDIUM, SMALL, union
from .style import FIXED, Style

SERIES_COUNTS = {0: 2, 1: 3, 2: 4}
POINT_COUNTS = {0: 6, 1: 8, 2: 10}
DEFAULT_BUDGET = 6
"""The env's default tool-call budget: ``argmax`` questions are asked only when reading every series at one
x and answering fits in it."""
_EVIDENCE_MARGIN = 0.006
_LABEL_LIFT = 18  # px from a point's centre up to its value label's centre: the marker stays out of the OCR box
_PATCH = 6  # px of white around a label (its whole OCR box), so no line or marker touches what OCR reads
_LABEL_SEPARATION = 36  # px between two series at one x: their white label patches never overlap or hide a marker
_INSET = 32  # px between the y axis and x=1 (and x=N and the right edge): keeps point labels off tick labels
_LO, _HI = 5, 95  # value range; the axis runs 0..100 so labels never reach the legend or the x ticks
EXTREME_MARGIN = 12
"""At difficulty 0 the asked point (the highest or lowest of its line) is beyond every other point of that
line by at least this many units (>= 53 px on the shortest plot: ~7 pixels of the 128 px glance)."""
EASY_COLORS = tuple(name for name in COLORS if name != "black")
"""Line colours at difficulty 0: never black, which the axes, ticks and title share."""
_EASY_LINE = 4  # px: line thickness at difficulty 0 (2 above): a line is a visible stroke in the glance
_EASY_MARKER = 4  # px: marker half-side at difficulty 0 (3 above); its label patch still ends just above it


def _gapped_values(rng: np.random.Generator, s: int, gap: int) -> np.ndarray:
    """``s`` values in ``[_LO, _HI]``, pairwise at least ``gap`` apart, in random order (always succeeds)."""
    slack = (_HI - _LO) - gap * (s - 1)
    base = np.sort(rng.integers(0, slack + 1, size=s))
    return rng.permutation(base + _LO + gap * np.arange(s))


def series_values(rng: np.random.Generator, s: int, n: int, gap: int) -> np.ndarray:
    """``s`` x ``n`` integer values: random walks (so lines look like trends and may cross), where the
    ``s`` values at every x are at least ``gap`` apart (so their labels never overlap)."""
    out = np.empty((s, n), dtype=np.int64)
    cur = _gapped_values(rng, s, gap).tolist()  # a handful of ints: plain Python beats numpy here
    for k in range(n):
        if k:
            for _ in range(8):  # a few random-walk steps; a fresh gapped draw if they keep colliding
                cand = [v + d for v, d in zip(cur, rng.integers(-20, 21, size=s).tolist())]
                cand = [2 * _HI - v if v > _HI else 2 * _LO - v if v < _LO else v for v in cand]  # bounce
                ordered = sorted(cand)
                if all(b - a >= gap for a, b in zip(ordered, ordered[1:])):
                    break
            else:
                cand = _gapped_values(rng, s, gap).tolist()
            cur = cand
        out[:, k] = cur
    return out


def easy_values(rng: np.random.Generator, s: int, n: int, gap: int, target: int, highest: bool) -> tuple[np.ndarray, int]:
    """Difficulty 0: values as :func:`series_values`, where line ``target`` has one point above (``highest``)
    or below all its others by :data:`EXTREME_MARGIN` or more. Returns ``(values, index of that point)``.

    A drawn walk's extreme is pushed out to the margin (plus 0..8 units, so it is not always exactly 12)
    when it is not that far out already; a draw where that leaves the value range, or comes within ``gap``
    of another line at that x (labels would collide), is drawn again."""
    sign = 1 if highest else -1
    for _ in range(1000):
        values = series_values(rng, s, n, gap)
        extra = int(rng.integers(0, 9))
        row = sign * values[target]  # "lowest" is the highest of the negated line
        k = int(np.argmax(row))
        need = int(np.delete(row, k).max()) + EXTREME_MARGIN
        if row[k] < need:
            v = sign * (need + extra)
            if not _LO <= v <= _HI:
                continue
            values[target, k] = v
            if any(abs(int(values[j, k]) - v) < gap for j in range(s) if j != target):
                continue
        return values, k
    raise RuntimeError("no difficulty-0 line chart values found in 1000 draws")  # never seen


def _question(
    rng: np.random.Generator, names: list[str], values: np.ndarray, evidence: list[list[Region]]
) -> tuple[str, tuple[str, ...], tuple[Region, ...], Program, tuple[str, ...]]:
    """One of four question kinds about the series at one x: read, difference, compare, argmax."""
    s, n = values.shape
    k = int(rng.integers(n))
    x = str(k + 1)
    i, j = (int(v) for v in rng.choice(s, size=2, replace=False))
    a, b = names[i], names[j]
    kind = int(rng.integers(4))
    if kind == 3 and s + 1 > DEFAULT_BUDGET:  # too many reads for the budget: ask a plain read instead
        kind = 0
    if kind == 0:
        return (
            f"What is the value of {a} at x = {x}?",
            (str(values[i, k]),),
            (evidence[i][k],),
            Program("read"),
            (a, x, "value"),
        )
    if kind == 1:
        return (
            f"What is the value of {a} minus the value of {b} at x = {x}?",
            (str(values[i, k] - values[j, k]),),
            (evidence[i][k], evidence[j][k]),
            Program("diff"),
            (a, b, x, "minus"),
        )
    if kind == 2:
        yes = "yes" if values[i, k] > values[j, k] else "no"
        return (
            f"Is {a} larger than {b} at x = {x}?",
            (yes,),
            (evidence[i][k], evidence[j][k]),
            Program("compare"),
            (a, b, x, "larger"),
        )
    best = names[int(np.argmax(values[:, k]))]
    return (
        f"Which series has the highest value at x = {x}?",
        (best,),
        tuple(evidence[m][k] for m in range(s)),
        Program("argmax"),
        (x, "highest"),
    )


class SciChartEnv(ToolVQAEnv):
    """Multi-series line chart, as in CharXiv; questions name a series (via the legend) and an x position
    (at difficulty 0: a line by its colour, and its highest or lowest point).

    ## Description
    2/3/4 series (difficulty 0/1/2) over 6/8/10 x positions labelled 1..N, drawn as coloured lines with
    markers in a chart placed anywhere on a 1024x1024 canvas, with y ticks 0..100. Every point carries its
    value in small type in a white box just above it; the values of different series at one x are kept far
    enough apart that their labels never overlap. The labels are illegible in the glance: reading one needs
    ``ocr`` (or ``zoom``) on the point.

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its value still needs the
      tools): two lines in distinct colours (never black), drawn thicker, with no legend; "What is the
      highest value of the red line?" (or "lowest", half the time). That point is above (below) every
      other point of its line by 12 units or more, so it is the top (bottom) of that colour in the glance.
      The series are named by their colours (``scene.meta["series"]`` is the colour names).
    - Difficulties 1 and 2: a legend (colour swatch + series name) above the plot; questions name a series
      and an x position: a series' value at x, the difference of two series at x, whether one is larger
      than another at x (yes/no), or which series is highest at x; the point is found through the legend
      colour and the x ticks.

    ``scene.meta`` holds ``values``, ``series`` and ``colors``; at difficulty 0 also ``cue`` (``"highest"``
    or ``"lowest"``), ``target`` (``[series index, point index]``) and ``target_point`` (the asked point's
    marker centre, normalised ``(x, y)``).

    ## Style
    ``style="random"`` (:mod:`envs.style`) draws each scene's look from its id: a 1024x1024, 1024x768 or
    768x1024 canvas (white or off-white), a Hershey font face at a jittered size, dark text and axes. The
    line colours stay the named ones (difficulty 0 asks about them). Labels, values and question are those
    of the fixed style, except where a landscape canvas caps the plot's height, which changes the values.
    """

    family = "SciChart"
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        s, n = SERIES_COUNTS[difficulty], POINT_COUNTS[difficulty]
        c = style.canvas()
        small, size = style.text(SMALL), style.size
        easy = difficulty == 0
        if easy:  # the lines are named by their colours: no legend to read
            color_names = [str(v) for v in rng.choice(EASY_COLORS, size=s, replace=False)]
            names = list(color_names)
            target, highest = int(rng.integers(s)), bool(rng.integers(2))
        else:
            names = [str(v) for v in rng.choice(SERIES_LABELS, size=s, replace=False)]
            color_names = [str(v) for v in rng.choice(list(COLORS), size=s, replace=False)]
        colors = [COLORS[name] for name in color_names]
        # plot area: x0,y0 top-left; room left for y ticks, above for title + legend, below for x ticks
        w = int(rng.integers(max(560, 62 * n), 900))
        h = int(rng.integers(440, 760))
        x0 = int(rng.integers(60, 1024 - w - 20 + 1))
        y0 = int(rng.integers(100, 1024 - h - 50 + 1))
        below = 50 * size  # room for the x tick labels and the axis name
        w, h = min(w, c.width - x0 - 20), min(h, int(c.height - 100 - below))  # no-ops on the fixed 1024 canvas
        x0, y0 = min(x0, c.width - w - 20), min(y0, int(c.height - h - below))
        base = y0 + h
        gap = math.ceil(_LABEL_SEPARATION * 100 / h)  # value units between series at one x
        if easy:
            values, peak = easy_values(rng, s, n, gap, target, highest)
        else:
            values = series_values(rng, s, n, gap)
        thick, half = (_EASY_LINE, _EASY_MARKER) if easy else (2, 3)

        def px(k: int) -> float:
            return x0 + _INSET + (w - 2 * _INSET) * k / (n - 1)

        def py(v: float) -> float:
            return base - h * v / 100

        c.text(
            f"Figure {int(rng.integers(1, 12))}: measurement {int(rng.integers(100, 999))}",
            x0 + w / 2,
            y0 - 70,
            style.text(MEDIUM),
            align="center",
        )
        # axes, grid and ticks
        for t in range(0, 101, 20):
            y = py(t)
            if t:
                c.line((x0, y), (x0 + w, y), (225, 225, 225))
            c.line((x0 - 4, y), (x0, y), style.ink)
            c.text(str(t), x0 - 8 * size, y, small, align="right")
        c.line((x0, y0), (x0, base), style.ink)
        c.line((x0, base), (x0 + w, base), style.ink)
        for k in range(n):
            c.line((px(k), base), (px(k), base + 4), style.ink)
            c.text(str(k + 1), px(k), base + 16 * size, small, align="center")
        c.text("x", x0 + w / 2, base + 38 * size, small, align="center")

        def text_width(text: str) -> float:
            """A label's width: 8 px a character in the fixed style (as it always was), measured in others."""
            return 8 * len(text) if style.fixed else c.text_size(text, small)[0]

        th = c.text_size("99", small)[1]
        above, below_label = (6, 7) if style.fixed else (th / 2 + 1, th / 2 + 2)  # a label's half-heights
        # legend: one row above the plot, right-aligned (none at difficulty 0: no colour off the lines)
        layout: list[Region] = []
        entry_w = [24 + text_width(name) + 22 for name in names]
        lx = x0 + w - sum(entry_w)
        ly: float = y0 - 32
        legend = [] if easy else list(zip(names, color_names, colors, entry_w))
        for name, cname, col, ew in legend:
            c.line((lx, ly), (lx + 20, ly), col, 2)
            swatch = c.unit(lx, ly - 4, lx + 20, ly + 4)
            item = c.text(name, lx + 26, ly, small)
            layout.append(Region("legend", union(swatch, item.box), name, cname))
            lx += ew
        # series: lines first, then markers, then labels on a white patch (a line may pass behind a label)
        for m in range(s):
            pts = [(px(k), py(float(values[m, k]))) for k in range(n)]
            for p0, p1 in zip(pts, pts[1:]):
                c.line(p0, p1, colors[m], thick)
        for m in range(s):
            for k in range(n):
                x, y = px(k), py(float(values[m, k]))
                c.rect(x - half, y - half, x + half, y + half, colors[m])
        evidence: list[list[Region]] = []
        for m, name in enumerate(names):
            row: list[Region] = []
            boxes = []
            for k in range(n):
                x, y = px(k), py(float(values[m, k]))
                label = str(values[m, k])
                tw = text_width(label)
                ly = y - _LABEL_LIFT * size
                patch = (x - tw / 2 - _PATCH, ly - above - _PATCH, x + tw / 2 + _PATCH, ly + below_label + _PATCH)
                c.rect(*patch, style.background)
                item = c.text(label, x, ly, small, align="center")
                row.append(Region("point", pad_box(item.box, _EVIDENCE_MARGIN), name, label))
                boxes.append(union(item.box, c.unit(x - half, y - half, x + half, y + half)))
            evidence.append(row)
            layout.append(Region("series", union(*boxes), name, ""))
        meta: dict[str, object] = {"values": values.tolist(), "series": names, "colors": color_names}
        answers: tuple[str, ...]
        ev: tuple[Region, ...]
        keys: tuple[str, ...]
        if easy:
            word = "highest" if highest else "lowest"
            q = f"What is the {word} value of the {names[target]} line?"
            answers, ev = (str(values[target, peak]),), (evidence[target][peak],)
            program, keys = Program("read"), (names[target], word, "value")
            marker = (px(peak) / c.width, py(float(values[target, peak])) / c.height)
            meta.update(cue=word, target=[target, peak], target_point=marker)
        else:
            q, answers, ev, program, keys = _question(rng, names, values, evidence)
        return Scene("SciChart", c.final_image(), q, answers, ev, program, tuple(layout), tuple(c.texts), keys, meta=meta)
