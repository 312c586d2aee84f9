"""Chart families: horizontal bars (ReFocus hbar), vertical bars (ReFocus vbar), multi-series line charts
(CharXiv-like). Values are printed as small labels next to the marks, as in the ReFocus chart sets."""

from __future__ import annotations

import numpy as np

from iapo_gym.scene import Program, Region, Scene, pad_box
from iapo_gym.vocab import CATEGORY_LABELS, COLORS, SERIES_LABELS

from .base import ToolVQAEnv
from .render import MEDIUM, SMALL, Canvas, union

BAR_COUNTS = {0: 5, 1: 8, 2: 12}
_EVIDENCE_MARGIN = 0.006


def bar_question(
    rng: np.random.Generator, labels: list[str], values: list[int], evidence: list[Region], noun: str
) -> tuple[str, tuple[str, ...], tuple[Region, ...], Program, tuple[str, ...]]:
    """One of four question kinds about labelled bars: read, difference, sum, comparison."""
    i, j = (int(k) for k in rng.choice(len(labels), size=2, replace=False))
    a, b = labels[i], labels[j]
    kind = int(rng.integers(4))
    if kind == 0:
        return f"What is the value of the {noun} {a}?", (str(values[i]),), (evidence[i],), Program("read"), (a, "value")
    if kind == 1:
        return (
            f"What is the value of {a} minus the value of {b}?", (str(values[i] - values[j]),),
            (evidence[i], evidence[j]), Program("diff"), (a, b, "minus"),
        )
    if kind == 2:
        return (
            f"What is the sum of the values of {a} and {b}?", (str(values[i] + values[j]),),
            (evidence[i], evidence[j]), Program("sum"), (a, b, "sum"),
        )
    yes = "yes" if values[i] > values[j] else "no"
    return f"Is the value of {a} larger than that of {b}?", (yes,), (evidence[i], evidence[j]), Program("compare"), (a, b, "larger")


def _distinct_values(rng: np.random.Generator, n: int) -> list[int]:
    return [int(v) for v in rng.choice(np.arange(5, 100), size=n, replace=False)]


class HBarEnv(ToolVQAEnv):
    """Horizontal bar chart; the question names bars by their category labels.

    ## Description
    5/8/12 bars (difficulty 0/1/2) in a chart placed anywhere on a 1024x1024 canvas, each with its category
    label on the left and its value printed in small type at the bar's end. Questions ask for a value, the
    difference or sum of two, or which of two is larger.
    """

    family = "HBar"

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int) -> Scene:
        n = BAR_COUNTS[difficulty]
        c = Canvas()
        labels = [str(s) for s in rng.choice(CATEGORY_LABELS, size=n, replace=False)]
        values = _distinct_values(rng, n)
        w, h = int(rng.integers(560, 900)), int(rng.integers(36 * n, min(900, 60 * n) + 1))
        x0, y0 = int(rng.integers(20, 1024 - w - 20)), int(rng.integers(70, 1024 - h - 10))
        c.text(f"Chart {int(rng.integers(100, 999))}", x0 + w / 2, y0 - 40, MEDIUM, align="center")
        color = list(COLORS.values())[int(rng.integers(len(COLORS) - 1))]
        left, right = x0 + 60, x0 + w - 50
        step = h / n
        evidence, layout = [], []
        for k, (lab, val) in enumerate(zip(labels, values)):
            cy = y0 + step * (k + 0.5)
            lab_item = c.text(lab, left - 8, cy, SMALL, align="right")
            end = left + (right - left) * val / 100
            bar = c.rect(left, cy - step * 0.3, end, cy + step * 0.3, color)
            val_item = c.text(str(val), end + 6, cy, SMALL)
            evidence.append(Region("bar", pad_box(val_item.box, _EVIDENCE_MARGIN), lab, str(val)))
            layout.append(Region("bar", union(lab_item.box, bar, val_item.box), lab, str(val)))
        c.line((left, y0), (left, y0 + h), (0, 0, 0))
        q, answers, ev, program, keys = bar_question(rng, labels, values, evidence, "bar")
        return Scene("HBar", c.image, q, answers, ev, program, tuple(layout), tuple(c.texts), keys)


class VBarEnv(ToolVQAEnv):
    """Vertical bar chart; grouped bars (two series) at difficulty 2.

    ## Description
    5/8/12 vertical bars with category labels below the axis and small value labels above each bar. At
    difficulty 2 each category has two bars (series named in a legend) and questions name the series.
    """

    family = "VBar"

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int) -> Scene:
        n = BAR_COUNTS[difficulty] if difficulty < 2 else 6
        groups = 2 if difficulty == 2 else 1
        c = Canvas()
        cats = [str(s) for s in rng.choice(CATEGORY_LABELS, size=n, replace=False)]
        series = [str(s) for s in rng.choice(SERIES_LABELS, size=groups, replace=False)]
        palette = list(COLORS.values())
        colors = [palette[int(k)] for k in rng.choice(len(palette) - 1, size=groups, replace=False)]
        values = _distinct_values(rng, n * groups)
        w, h = int(rng.integers(max(420, 70 * n * groups), 960)), int(rng.integers(420, 860))
        x0, y0 = int(rng.integers(20, 1024 - w - 20 + 1)), int(rng.integers(90, 1024 - h - 40 + 1))
        c.text(f"Chart {int(rng.integers(100, 999))}", x0 + w / 2, y0 - 60, MEDIUM, align="center")
        base, top = y0 + h, y0 + 20
        slot = w / n
        labels, evidence, layout = [], [], []
        for k, cat in enumerate(cats):
            cx = x0 + slot * (k + 0.5)
            cat_item = c.text(cat, cx, base + 14, SMALL, align="center")
            bw = slot * 0.7 / groups
            for g in range(groups):
                val = values[k * groups + g]
                bx = cx - slot * 0.35 + g * bw
                ytop = base - (base - top) * val / 100
                bar = c.rect(bx, ytop, bx + bw * 0.9, base, colors[g])
                val_item = c.text(str(val), bx + bw * 0.45, ytop - 10, SMALL, align="center")
                label = cat if groups == 1 else f"{series[g]} {cat}"
                labels.append(label)
                evidence.append(Region("bar", pad_box(val_item.box, _EVIDENCE_MARGIN), label, str(val)))
                layout.append(Region("bar", union(bar, val_item.box, cat_item.box), label, str(val)))
        c.line((x0, base), (x0 + w, base), (0, 0, 0))
        if groups > 1:
            for g, name in enumerate(series):
                lx = x0 + w - 150 + 75 * g
                c.rect(lx, y0 - 25, lx + 12, y0 - 13, colors[g])
                c.text(name, lx + 16, y0 - 19, SMALL)
        q, answers, ev, program, keys = bar_question(rng, labels, values, evidence, "bar")
        return Scene("VBar", c.image, q, answers, ev, program, tuple(layout), tuple(c.texts), keys)
