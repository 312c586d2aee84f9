"""Chart families: horizontal bars (ReFocus hbar), vertical bars (ReFocus vbar), multi-series line charts
(CharXiv-like). Values are printed as small labels next to the marks, as in the ReFocus chart sets."""

from __future__ import annotations

import numpy as np

from iapo_gym.scene import Box, Program, Region, Scene, pad_box
from iapo_gym.vocab import CATEGORY_LABELS, COLORS, SERIES_LABELS

from .base import ToolVQAEnv
from .render import MEDIUM, SMALL, Canvas, union
from .shortcuts import marker_box
from .style import FIXED, Style

BAR_COUNTS = {0: 5, 1: 8, 2: 12}
_EVIDENCE_MARGIN = 0.006
NEUTRAL = (160, 160, 160)
"""Bar colour at difficulty 0 for every bar but the marked one (grey: no hue to confuse with the mark)."""
EASY_MIN_VALUE = 15
"""Smallest value at difficulty 0: the shortest bar is still several glance pixels long."""
LONGEST_MARGIN = 10
"""At difficulty 0 the longest (tallest) bar exceeds every other by at least this many units."""


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
            f"What is the value of {a} minus the value of {b}?",
            (str(values[i] - values[j]),),
            (evidence[i], evidence[j]),
            Program("diff"),
            (a, b, "minus"),
        )
    if kind == 2:
        return (
            f"What is the sum of the values of {a} and {b}?",
            (str(values[i] + values[j]),),
            (evidence[i], evidence[j]),
            Program("sum"),
            (a, b, "sum"),
        )
    yes = "yes" if values[i] > values[j] else "no"
    return (
        f"Is the value of {a} larger than that of {b}?",
        (yes,),
        (evidence[i], evidence[j]),
        Program("compare"),
        (a, b, "larger"),
    )


def _distinct_values(rng: np.random.Generator, n: int) -> list[int]:
    return [int(v) for v in rng.choice(np.arange(5, 100), size=n, replace=False)]


def _easy_bars(rng: np.random.Generator, n: int) -> tuple[str, int, list[int]]:
    """Difficulty 0: ``(cue, target, values)``. ``cue`` is ``"colour"`` (the target bar alone is coloured)
    or ``"extreme"`` (all bars grey; the target is the longest by :data:`LONGEST_MARGIN` or more), half
    the time each; ``target`` is the target bar's index."""
    target = int(rng.integers(n))
    if rng.random() < 0.5:
        top = int(rng.integers(EASY_MIN_VALUE + LONGEST_MARGIN + 30, 100))
        others = rng.choice(np.arange(EASY_MIN_VALUE, top - LONGEST_MARGIN + 1), size=n - 1, replace=False)
        values = [int(v) for v in others]
        values.insert(target, top)
        return "extreme", target, values
    values = [int(v) for v in rng.choice(np.arange(EASY_MIN_VALUE, 100), size=n, replace=False)]
    return "colour", target, values


def easy_bar_question(
    cue: str, target: int, values: list[int], evidence: list[Region], colour: str, extreme: str
) -> tuple[str, tuple[str, ...], tuple[Region, ...], Program, tuple[str, ...]]:
    """The difficulty-0 question: the value of the bar picked out at a glance, by its ``colour`` name or as
    the ``extreme`` one ("longest", "tallest"). Returns the same tuple as :func:`bar_question`."""
    word = colour if cue == "colour" else extreme
    return (
        f"What is the value of the {word} bar?",
        (str(values[target]),),
        (evidence[target],),
        Program("read"),
        (word, "value"),
    )


def bar_locators(
    easy: bool, cue: str, target: int, bars: list[Box], names: list[Box], evidence: list[Region], asked: tuple[Region, ...]
) -> tuple[Box, ...]:
    """What a reader looks at to find the asked bars (``scene.meta["locators"]``, normalised boxes): at
    difficulty 0 the coloured bar, or every bar for the longest/tallest one (their lengths are compared);
    otherwise the category labels the question names (``names[k]``: bar ``k``'s label box)."""
    if easy:
        return (bars[target],) if cue == "colour" else tuple(bars)
    return tuple(names[evidence.index(region)] for region in asked)


class HBarEnv(ToolVQAEnv):
    """Horizontal bar chart; the question names bars by their category labels (by colour or length at
    difficulty 0).

    ## Description
    5/8/12 bars (difficulty 0/1/2) in a chart placed anywhere on a 1024x1024 canvas, each with its category
    label on the left and its value printed in small type at the bar's end.

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its value still needs the
      tools): thick bars, all grey but one in a strong colour, and "What is the value of the red bar?"; or,
      half the time, all bars grey and "What is the value of the longest bar?", the longest exceeding every
      other by 10 or more. Values are 15..99.
    - Difficulties 1 and 2: bars in one colour, named by their (illegible at a glance) category labels;
      questions ask for a value, the difference or sum of two, or which of two is larger.

    ``scene.meta["locators"]``: what a reader looks at to find the asked bar (:func:`bar_locators`).
    At difficulty 0 ``scene.meta`` holds ``cue`` (``"colour"`` or ``"extreme"``), ``target_box`` (the
    target bar's rectangle) and ``bar_boxes`` (every bar's rectangle), normalised.

    ## Style
    ``style="random"`` (:mod:`envs.style`) draws each scene's look from its id: a 1024x1024, 1024x768 or
    768x1024 canvas (white or off-white), a Hershey font face at a jittered size, dark text, a bar colour
    from a palette of muted ones (at difficulty 0 the cue colours stay the named ones), bar thickness, the
    value printed past the bar's end, inside it (white on a dark bar) or above its end, and gridlines with
    tick labels under the plot. Question, labels and values are those of the fixed style.
    """

    family = "HBar"
    offers_shortcut = True
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        n = BAR_COUNTS[difficulty]
        c = style.canvas()
        small, size = style.text(SMALL), style.size
        labels = [str(s) for s in rng.choice(CATEGORY_LABELS, size=n, replace=False)]
        easy = difficulty == 0
        if easy:
            cue, target, values = _easy_bars(rng, n)
        else:
            cue, target, values = "", -1, _distinct_values(rng, n)
        h_px = (60 * n, 90 * n) if easy else (36 * n, min(900, 60 * n))  # easy: bars >= 36 px thick
        w, h = int(rng.integers(560, 900)), int(rng.integers(h_px[0], h_px[1] + 1))
        x0, y0 = int(rng.integers(20, 1024 - w - 20)), int(rng.integers(70, 1024 - h - 10))
        below = 38 * size if style.gridlines else 10  # room for the tick labels under the value axis
        w, h = min(w, c.width - 40), min(h, int(c.height - 70 - below))  # no-ops on the fixed 1024 canvas
        x0, y0 = min(x0, c.width - w - 20), min(y0, int(c.height - h - below))
        c.text(f"Chart {int(rng.integers(100, 999))}", x0 + w / 2, y0 - 40, style.text(MEDIUM), align="center")
        color_index = int(rng.integers(len(COLORS) - 1))  # never black
        color = style.palette[0] if style.palette and not easy else list(COLORS.values())[color_index]
        left, right = x0 + 60, x0 + w - 50 * size  # room for the value and the marker after it
        step = h / n
        if style.gridlines:
            _value_grid(c, style, [(left + (right - left) * t / 100, t) for t in range(0, 101, 20)], (y0, y0 + h), "x")
        th = c.text_size("99", small)[1]
        half = step * 0.3 * style.bar_fill
        if style.value_label == "above":  # the value sits in the gap above its bar: thinner bars where needed
            half = min(half, (step - th - 8 * size) / 2)
        evidence, layout, bars, slots, label_slots, names = [], [], [], [], [], []
        for k, (lab, val) in enumerate(zip(labels, values)):
            cy = y0 + step * (k + 0.5)
            lab_item = c.text(lab, left - 8, cy, small, align="right")
            names.append(lab_item.box)
            end = left + (right - left) * val / 100
            fill = color if not easy or (cue == "colour" and k == target) else NEUTRAL
            bar = c.rect(left, cy - half, end, cy + half, fill)
            bars.append(bar)
            tw = c.text_size(str(val), small)[0]
            place = style.value_label
            if place == "inside" and end - left < tw + 12 * size:
                place = "end"  # too short to hold its value
            if place == "inside":
                val_item = c.text(str(val), end - 6 * size, cy, small, style.contrast(fill), align="right")
            elif place == "above":
                val_item = c.text(str(val), end, cy - half - 3 * size - th / 2, small, align="right")
            else:
                val_item = c.text(str(val), end + 6 * size, cy, small)
            vy = cy if place != "above" else cy - half - 3 * size - th / 2
            # the marker goes after the value (past the bar's end for an inside value)
            slot_x = max(val_item.box[2] * c.width, end) + 22 * size
            slot_h = min(14.0, step * 0.3) if place != "above" else min(8.0, th / 2 + 2)
            slots.append(marker_box(slot_x, vy, 12, slot_h, "left"))
            # the far place: left of the category label, pointing at it (across the plot from the value)
            label_slots.append(
                marker_box(max(14.0, lab_item.box[0] * c.width - 16 * size), cy, 10, min(14.0, step * 0.3), "right")
            )
            evidence.append(Region("bar", pad_box(val_item.box, _EVIDENCE_MARGIN), lab, str(val)))
            layout.append(Region("bar", union(lab_item.box, bar, val_item.box), lab, str(val)))
        c.line((left, y0), (left, y0 + h), style.ink)
        if easy:
            q, answers, ev, program, keys = easy_bar_question(cue, target, values, evidence, list(COLORS)[color_index], "longest")
            meta: dict[str, object] = {"cue": cue, "target_box": bars[target], "bar_boxes": tuple(bars)}
        else:
            q, answers, ev, program, keys = bar_question(rng, labels, values, evidence, "bar")
            meta = {}
        meta.update(marker_slots=tuple(slots), marker_label_slots=tuple(label_slots), marker_target=evidence.index(ev[0]))
        meta["locators"] = bar_locators(easy, cue, target, bars, names, evidence, ev)
        return Scene("HBar", c.final_image(), q, answers, ev, program, tuple(layout), tuple(c.texts), keys, meta=meta)


class VBarEnv(ToolVQAEnv):
    """Vertical bar chart; grouped bars (two series) at difficulty 2.

    ## Description
    Vertical bars with category labels below the axis and small value labels above each bar.

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its value still needs the
      tools): 5 bars, all grey but one in a strong colour, and "What is the value of the blue bar?"; or,
      half the time, all grey and "What is the value of the tallest bar?", the tallest exceeding every
      other by 10 or more. Values are 15..99.
    - Difficulty 1: 8 bars in one colour, named by their (illegible at a glance) category labels; questions
      ask for a value, the difference or sum of two, or which of two is larger.
    - Difficulty 2: 6 categories of two bars each (series named in a legend); questions name the series
      and the category ("Alpha Jul").

    ``scene.meta["locators"]``: what a reader looks at to find the asked bar (:func:`bar_locators`).
    At difficulty 0 ``scene.meta`` holds ``cue`` (``"colour"`` or ``"extreme"``), ``target_box`` (the
    target bar's rectangle) and ``bar_boxes`` (every bar's rectangle), normalised.

    ## Style
    As :class:`HBarEnv`: canvas size, background, font, text colour, bar colours (one per series), bar
    width, gridlines with tick labels left of the plot; the value is printed over the bar (``"end"`` and
    ``"above"``) or inside it under its top (``"inside"``; over it when the bar is too short).
    """

    family = "VBar"
    offers_shortcut = True
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        n = BAR_COUNTS[difficulty] if difficulty < 2 else 6
        groups = 2 if difficulty == 2 else 1
        c = style.canvas()
        small, size = style.text(SMALL), style.size
        cats = [str(s) for s in rng.choice(CATEGORY_LABELS, size=n, replace=False)]
        series = [str(s) for s in rng.choice(SERIES_LABELS, size=groups, replace=False)]
        palette = list(COLORS.values())
        picks = [int(k) for k in rng.choice(len(palette) - 1, size=groups, replace=False)]  # never black
        easy = difficulty == 0
        colors = list(style.palette[:groups]) if style.palette and not easy else [palette[k] for k in picks]
        if easy:
            cue, target, values = _easy_bars(rng, n)
        else:
            cue, target, values = "", -1, _distinct_values(rng, n * groups)
        w, h = int(rng.integers(max(420, 70 * n * groups), 960)), int(rng.integers(420, 860))
        x0, y0 = int(rng.integers(20, 1024 - w - 20 + 1)), int(rng.integers(90, 1024 - h - 40 + 1))
        if style.gridlines:  # room for the tick labels left of the value axis
            x0 = max(x0, int(48 * size))
        below = 40 * size  # room for the category labels
        w, h = min(w, c.width - x0 - 20), min(h, int(c.height - 90 - below))  # no-ops on the fixed 1024 canvas
        x0, y0 = min(x0, c.width - w - 20), min(y0, int(c.height - h - below))
        c.text(f"Chart {int(rng.integers(100, 999))}", x0 + w / 2, y0 - 60, style.text(MEDIUM), align="center")
        base, top = y0 + h, y0 + 20
        slot = w / n
        if style.gridlines:
            _value_grid(c, style, [(base - (base - top) * t / 100, t) for t in range(0, 101, 20)], (x0, x0 + w), "y")
        th = c.text_size("99", small)[1]
        labels, evidence, layout, bars, slots, label_slots, names = [], [], [], [], [], [], []
        for k, cat in enumerate(cats):
            cx = x0 + slot * (k + 0.5)
            cat_item = c.text(cat, cx, base + 14 * size, small, align="center")
            bw = slot * 0.7 / groups
            for g in range(groups):
                val = values[k * groups + g]
                bx = cx - slot * 0.35 + g * bw
                ytop = base - (base - top) * val / 100
                fill = colors[g] if not easy or (cue == "colour" and k == target) else NEUTRAL
                inset = bw * 0.45 * (1 - style.bar_fill)  # the bar stays centred under its value
                bar = c.rect(bx + inset, ytop, bx + inset + bw * 0.9 * style.bar_fill, base, fill)
                bars.append(bar)
                inside = style.value_label == "inside" and base - ytop >= th + 12 * size
                if inside:  # inside the bar, under its top; the marker goes above the bar
                    slots.append(marker_box(bx + bw * 0.45, ytop - 14 * size, min(12.0, bw * 0.4), 8, "down"))
                    val_item = c.text(
                        str(val), bx + bw * 0.45, ytop + 6 * size + th / 2, small, style.contrast(fill), align="center"
                    )
                else:  # above the bar, the marker above the value
                    slots.append(marker_box(bx + bw * 0.45, ytop - 33 * size, min(12.0, bw * 0.4), 8, "down"))
                    val_item = c.text(str(val), bx + bw * 0.45, ytop - 10 * size, small, align="center")
                # the far place: under the category label, pointing up at it (below the axis, away from the value)
                below_label = cat_item.box[3] * c.height + 14 * size
                if below_label + 10 <= c.height:
                    label_slots.append(marker_box(bx + bw * 0.45, below_label, min(12.0, bw * 0.4), 8, "up"))
                else:  # no room under the label (a short random-style canvas): left of it, pointing right (grouped
                    # bars of one category then share the slot)
                    label_mid = (cat_item.box[1] + cat_item.box[3]) / 2 * c.height
                    label_slots.append(marker_box(cat_item.box[0] * c.width - 10, label_mid, 7, 7, "right"))
                names.append(cat_item.box)
                label = cat if groups == 1 else f"{series[g]} {cat}"
                labels.append(label)
                evidence.append(Region("bar", pad_box(val_item.box, _EVIDENCE_MARGIN), label, str(val)))
                layout.append(Region("bar", union(bar, val_item.box, cat_item.box), label, str(val)))
        c.line((x0, base), (x0 + w, base), style.ink)
        if groups > 1:
            for g, name in enumerate(series):
                lx = x0 + w - 150 + 75 * g
                c.rect(lx, y0 - 25, lx + 12, y0 - 13, colors[g])
                c.text(name, lx + 16, y0 - 19, small)
        if easy:
            q, answers, ev, program, keys = easy_bar_question(cue, target, values, evidence, list(COLORS)[picks[0]], "tallest")
            meta: dict[str, object] = {"cue": cue, "target_box": bars[target], "bar_boxes": tuple(bars)}
        else:
            q, answers, ev, program, keys = bar_question(rng, labels, values, evidence, "bar")
            meta = {}
        meta.update(marker_slots=tuple(slots), marker_label_slots=tuple(label_slots), marker_target=evidence.index(ev[0]))
        meta["locators"] = bar_locators(easy, cue, target, bars, names, evidence, ev)
        return Scene("VBar", c.final_image(), q, answers, ev, program, tuple(layout), tuple(c.texts), keys, meta=meta)


def _value_grid(c: Canvas, style: Style, ticks: list[tuple[float, int]], span: tuple[float, float], axis: str) -> None:
    """Gridlines across the plot at the value ticks ``(pixel position, value)``, spanning ``span`` along the
    other axis, with the values as tick labels: under the plot for a horizontal value axis (``axis="x"``),
    left of it for a vertical one (``"y"``). Drawn before the bars, which cover them."""
    small = style.text(SMALL)
    for pos, value in ticks:
        if axis == "x":
            c.line((pos, span[0]), (pos, span[1]), style.grid)
            c.text(str(value), pos, span[1] + 14 * style.size, small, align="center")
        else:
            c.line((span[0], pos), (span[1], pos), style.grid)
            c.text(str(value), span[0] - 8 * style.size, pos, small, align="right")
