"""The built-in tools: ``zoom``, ``ocr``, ``focus`` (ReFocus-style chart/table editing) and ``answer``.

Their arguments arrive checked against each tool's JSON schema (:func:`~iapo_gym.tools.base.check_args`, in
the env's ``step``); what a schema cannot say (a box's ``x0 < x1``, a label the image has) is checked here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..scene import Region
from ..toolcall import ToolCallError, parse_box
from .base import ToolContext, ToolResult, tool

_BOX_SCHEMA = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "maximum": 1},
    "minItems": 4,
    "maxItems": 4,
    "description": "[x0, y0, x1, y1], normalised to the original image",
}


@tool(
    "zoom",
    "Show a region of the original image at full view size.",
    {"type": "object", "properties": {"box": _BOX_SCHEMA}, "required": ["box"]},
)
def zoom(args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
    box = parse_box(args["box"])
    return ToolResult(text="", crop=ctx.view(box), view_box=box)


@tool(
    "ocr",
    "Read the text inside a region of the original image.",
    {"type": "object", "properties": {"box": _BOX_SCHEMA}, "required": ["box"]},
)
def ocr(args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
    box = parse_box(args["box"])
    text = ctx.ocr.read(ctx, box)
    return ToolResult(text=text or "(no legible text)", crop=ctx.view(box), view_box=box)


FOCUS_AXES = {"rows": "row", "columns": "column", "bars": "bar", "series": "series", "x_values": "x_value", "y_values": "y_value"}
"""Focus axis -> the kind of :class:`~iapo_gym.scene.Region` it names (``x_values``/``y_values``: the label
bands of a real chart's axes, as ReFocus names them)."""
FOCUS_MODES = ("highlight", "mask", "draw")
HEADER = "header"
"""A region whose ``value`` is this (a real table's header row) is never masked, as in ReFocus."""
RED = (255, 0, 0)
HIGHLIGHT_ALPHA = 50
"""ReFocus's highlight: translucent red ``(255, 0, 0, 50)`` alpha-composited over the band."""
DRAW_WIDTH = 5
"""ReFocus's draw: a red outline 5 px wide, inside the band."""


@functools.lru_cache(maxsize=1)
def _composite_table() -> np.ndarray:
    """``table[c, v]``: channel value ``v`` under ReFocus's highlight for a red channel (``c = 0``) or a
    green/blue one (``c = 1``), as Pillow's ``alpha_composite`` rounds it (computed once with Pillow)."""
    from PIL import Image

    ramp = np.zeros((1, 256, 4), np.uint8)
    ramp[0, :, :3], ramp[0, :, 3] = np.arange(256)[:, None], 255
    over = np.zeros((1, 256, 4), np.uint8)
    over[0, :] = (*RED, HIGHLIGHT_ALPHA)
    out = np.asarray(Image.alpha_composite(Image.fromarray(ramp, "RGBA"), Image.fromarray(over, "RGBA")))
    return np.stack([out[0, :, 0], out[0, :, 1]])


def focus_pixels(ctx: ToolContext, region: Region) -> tuple[int, int, int, int]:
    """The inclusive pixel box ``(x1, y1, x2, y2)`` a focus edit covers. With the scene's ``focus_inset``
    (2 for published label bands) this is ReFocus's rule, ``int(x1 * W + 2) .. int(x2 * W - 2)``; with 0, the
    region's own pixels (:meth:`~iapo_gym.scene.Scene.to_pixels`, made inclusive)."""
    inset = ctx.scene.focus_inset
    if inset:
        h, w = ctx.image.shape[:2]
        b = region.box
        return int(b[0] * w + inset), int(b[1] * h + inset), int(b[2] * w - inset), int(b[3] * h - inset)
    x0, y0, x1, y1 = ctx.pixel_box(region.box)
    return x0, y0, x1 - 1, y1 - 1


def edit(image: np.ndarray, box: tuple[int, int, int, int], mode: str) -> None:
    """Apply one ReFocus edit to ``image`` in place over the inclusive pixel ``box``: ``mask`` paints it
    white, ``draw`` outlines it in red (5 px, inside), ``highlight`` composites translucent red over it."""
    x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), box[2] + 1, box[3] + 1
    if x2 <= x1 or y2 <= y1:
        return
    patch = image[y1:y2, x1:x2]
    if mode == "mask":
        patch[:] = 255
    elif mode == "draw":
        d = DRAW_WIDTH
        for part in (patch[:d], patch[-d:], patch[:, :d], patch[:, -d:]):
            part[:] = RED
    else:
        table = _composite_table()
        patch[..., 0] = table[0][patch[..., 0]]
        patch[..., 1:] = table[1][patch[..., 1:]]


def _focus_regions(ctx: ToolContext, axis: str, labels: list[str]) -> tuple[list[Region], list[Region]]:
    kind = FOCUS_AXES[axis]
    regions = [r for r in ctx.scene.layout if r.kind == kind]
    if not regions:
        have = sorted({a for a, k in FOCUS_AXES.items() if any(r.kind == k for r in ctx.scene.layout)})
        raise ToolCallError(f"this image has no {axis}; focus axes here: {', '.join(have) or 'none'}")
    by_label = {r.label.lower(): r for r in regions}
    unknown = [lab for lab in labels if lab.lower() not in by_label]
    if unknown:
        raise ToolCallError(f"unknown {kind} label {unknown[0]!r}; known: {', '.join(r.label for r in regions)}")
    wanted = {lab.lower() for lab in labels}
    chosen = [r for r in regions if r.label.lower() in wanted]
    others = [r for r in regions if r.label.lower() not in wanted]
    return chosen, others


@tool(
    "focus",
    "Edit the image to focus on the rows, columns, bars, series or axis values with the given labels: "
    "highlight them, draw a box around them, or mask (blank out) the others.",
    {
        "type": "object",
        "properties": {
            "axis": {"type": "string", "enum": list(FOCUS_AXES)},
            "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "mode": {"type": "string", "enum": list(FOCUS_MODES), "default": "highlight"},
        },
        "required": ["axis", "labels"],
    },
)
def focus(args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
    """ReFocus's twelve ``focus_on_<axis>_with_<mode>`` edits as one tool. ``mask`` blanks every other
    region of the axis (a table's header row excepted) and, as in ReFocus, leaves the image as it is when
    that would blank them all; ``draw`` and ``highlight`` mark the chosen ones."""
    axis, labels, mode = args["axis"], args["labels"], args.get("mode", "highlight")  # checked against the schema
    chosen, others = _focus_regions(ctx, axis, labels)
    targets = chosen if mode != "mask" else [r for r in others if r.value != HEADER]
    if mode == "mask" and not any(r.value != HEADER for r in chosen):
        targets = []  # ReFocus: masking every (non-header) region must be a mistake; the image stays
    if targets:
        image = ctx.editable_image()
        for region in targets:
            edit(image, focus_pixels(ctx, region), mode)
    verb = {"highlight": "highlighted", "draw": "outlined", "mask": "kept (others masked)"}[mode]
    return ToolResult(
        text=f"{verb} {axis}: {', '.join(r.label for r in chosen)}",
        crop=ctx.view((0.0, 0.0, 1.0, 1.0)),
        view_box=(0.0, 0.0, 1.0, 1.0),
    )


@tool(
    "answer",
    "Give the final answer and end the episode.",
    {"type": "object", "properties": {"text": {"type": ["string", "number"]}}, "required": ["text"]},
)
def answer(args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
    return ToolResult(text="", answer=str(args["text"]))
