"""The tool protocol, the context a tool runs in, and the tool registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..scene import Box, Scene
from ..toolcall import ToolCallError


def letterbox(height: int, width: int, view_size: int) -> tuple[int, int, int, int]:
    """Where a ``height`` x ``width`` region lands in a ``view_size`` square view: ``(top, left, h, w)``.

    The region is scaled to fit (aspect kept) and centred; the rest of the view is zero padding. Shared by
    :meth:`ToolContext.view` and by the attribution code that maps view pixels back to the image.
    """
    s = view_size / max(height, width)
    h = max(1, min(view_size, round(height * s)))
    w = max(1, min(view_size, round(width * s)))
    return (view_size - h) // 2, (view_size - w) // 2, h, w


@dataclass
class ToolResult:
    """What a tool returns: text for ``tool_output``, an optional image for ``crop`` (with the box it shows,
    in original-image coordinates), and for the ``answer`` tool the final answer."""

    text: str = ""
    crop: np.ndarray | None = None
    view_box: Box | None = None
    answer: str | None = None


def view_region(image: np.ndarray, pixel_box: tuple[int, int, int, int], view_size: int) -> np.ndarray:
    """The pixels ``pixel_box`` of ``image``, letterboxed into a ``view_size`` square (zero padding): what
    :meth:`ToolContext.view` returns, and the glance of a whole scene."""
    x0, y0, x1, y1 = pixel_box
    region = image[y0:y1, x0:x1]
    oy, ox, nh, nw = letterbox(region.shape[0], region.shape[1], view_size)
    interp = cv2.INTER_AREA if nh < region.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(region, (nw, nh), interpolation=interp)
    out = np.zeros((view_size, view_size, 3), dtype=np.uint8)
    out[oy : oy + nh, ox : ox + nw] = resized
    return out


@dataclass
class ToolContext:
    """The state a tool may read or change in one episode: the scene, the working image (``focus`` edits
    it; later zooms see the edit), the view size of returned images, the OCR backend, and ``extras`` for
    per-episode memos (``edits`` counts the edits, so a memo of what the image shows can tell them apart)."""

    scene: Scene
    image: np.ndarray
    view_size: int
    ocr: Any
    extras: dict[str, Any] = field(default_factory=dict)
    edits: int = 0

    def editable_image(self) -> np.ndarray:
        """The working image, to edit in place: copied from the scene on the first edit (resets stay cheap;
        the scene's own image is read-only, and shared with other episodes of the same scene)."""
        if self.image is self.scene.image:
            self.image = self.image.copy()
        self.edits += 1
        return self.image

    def pixel_box(self, box: Box) -> tuple[int, int, int, int]:
        return self.scene.to_pixels(box)

    def scale(self, box: Box) -> float:
        """View pixels per original pixel when ``box`` is shown at the view size (capped at 1: zooming past
        the original resolution adds no detail)."""
        x0, y0, x1, y1 = self.pixel_box(box)
        return min(1.0, self.view_size / max(x1 - x0, y1 - y0))

    def view(self, box: Box) -> np.ndarray:
        """The region ``box`` of the working image, letterboxed into a ``view_size`` square (zero padding)."""
        return view_region(self.image, self.pixel_box(box), self.view_size)


@runtime_checkable
class Tool(Protocol):
    """A tool an agent can call by name. ``parameters`` is a JSON schema of its arguments (shown to VLMs)."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def __call__(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult: ...


def check_args(tool: Tool, args: Mapping[str, Any]) -> None:
    """Reject unknown or missing arguments with a message naming them and the expected ones."""
    props = dict(tool.parameters.get("properties", {}))
    required = list(tool.parameters.get("required", []))
    unknown = [k for k in args if k not in props]
    if unknown:
        raise ToolCallError(
            f"{tool.name} got unexpected argument {unknown[0]!r}; expected: {', '.join(props) or 'none'}"
        )
    missing = [k for k in required if k not in args]
    if missing:
        raise ToolCallError(f"{tool.name} is missing argument {missing[0]!r}; expected: {', '.join(props)}")


_REGISTRY: dict[str, Tool] = {}


def register_tool(tool: Tool, *, overwrite: bool = False) -> Tool:
    """Make ``tool`` callable by its name in every env created afterwards with it in ``tools=``."""
    if not isinstance(tool, Tool):
        raise TypeError(f"{tool!r} is not a Tool: it needs name, description, parameters and __call__(args, ctx)")
    if tool.name in _REGISTRY and not overwrite:
        raise ValueError(f"a tool named {tool.name!r} is registered already; pass overwrite=True to replace it")
    _REGISTRY[tool.name] = tool
    return tool


def get_tool(name: str) -> Tool:
    """The registered tool called ``name``; the error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ToolCallError(f"unknown tool {name!r}; known: {', '.join(_REGISTRY)}") from None


def tool_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def tool(name: str, description: str, parameters: Mapping[str, Any]) -> Callable[[Callable[..., ToolResult]], Tool]:
    """Decorator that turns ``fn(args, ctx) -> ToolResult`` into a registered tool."""

    def wrap(fn: Callable[..., ToolResult]) -> Tool:
        return register_tool(FunctionTool(name, description, dict(parameters), fn))

    return wrap


@dataclass(frozen=True)
class FunctionTool:
    """A tool made from a plain function (see :func:`tool`)."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[[Mapping[str, Any], ToolContext], ToolResult]

    def __call__(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        return self.fn(args, ctx)
