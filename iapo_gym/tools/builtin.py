"""The built-in tools: ``zoom``, ``ocr``, ``focus`` (ReFocus-style chart/table editing) and ``answer``.

Their arguments arrive checked against each tool's JSON schema (:func:`~iapo_gym.tools.base.check_args`, in
the env's ``step``); what a schema cannot say (a box's ``x0 < x1``, a label the image has) is checked here.
"""

from __future__ import annotations

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


FOCUS_AXES = {"rows": "row", "columns": "column", "bars": "bar", "series": "series"}
FOCUS_MODES = ("highlight", "mask")
_HIGHLIGHT = np.array([255, 230, 0], dtype=np.float32)


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
    "Highlight, or keep only (mask the rest), the rows, columns or bars with the given labels.",
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
    axis, labels, mode = args["axis"], args["labels"], args.get("mode", "highlight")  # checked against the schema
    chosen, others = _focus_regions(ctx, axis, labels)
    image = ctx.editable_image()
    for region in chosen if mode == "highlight" else others:
        x0, y0, x1, y1 = ctx.pixel_box(region.box)
        if mode == "highlight":
            patch = image[y0:y1, x0:x1].astype(np.float32)
            image[y0:y1, x0:x1] = (0.65 * patch + 0.35 * _HIGHLIGHT).astype(np.uint8)
        else:
            image[y0:y1, x0:x1] = 255
    verb = "highlighted" if mode == "highlight" else "kept (others masked)"
    return ToolResult(
        text=f"{verb} {axis}: {', '.join(r.label for r in chosen)}", crop=ctx.view((0.0, 0.0, 1.0, 1.0)),
        view_box=(0.0, 0.0, 1.0, 1.0),
    )


@tool(
    "answer",
    "Give the final answer and end the episode.",
    {"type": "object", "properties": {"text": {"type": ["string", "number"]}}, "required": ["text"]},
)
def answer(args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
    return ToolResult(text="", answer=str(args["text"]))
