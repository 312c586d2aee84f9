"""The tool protocol, the context a tool runs in, and the tool registry."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from ..scene import Box, Scene
from ..toolcall import ToolCallError
from .resample import area_resize
from .schema import compile_check


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
    if nh < region.shape[0]:  # a shrink: INTER_AREA (same pixels as cv2, from the compiled kernel where built)
        resized = area_resize(region, nw, nh)
    else:
        resized = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if resized.shape == (view_size, view_size, 3) and resized.dtype == np.uint8:  # fills the view: no padding
        return resized
    out = np.zeros((view_size, view_size, 3), dtype=np.uint8)
    out[oy : oy + nh, ox : ox + nw] = resized
    return out


BLANK_VIEW_MAX = 1000
"""Largest view size for which :func:`blank_view` stands in for a resize (see there)."""


def blank_view(height: int, width: int, view_size: int) -> np.ndarray:
    """What :func:`view_region` returns for a ``height`` x ``width`` region that is all white (255), without
    resizing: white where the region lands, zero padding around it.

    OpenCV keeps a constant region constant here: INTER_LINEAR's fixed-point weights sum to exactly one,
    and INTER_AREA's to one within float32 rounding, since at an output size of at most 1000 pixels no
    area weight is dropped (OpenCV drops cell fractions under 1e-3; the fractions here are multiples of
    1/size). Checked against the resize for every region up to 300 x 300 at the default view (128) and at
    random sizes up to 1024 x 1024 for views 16 to 512; tests/test_render.py repeats a sample."""
    oy, ox, nh, nw = letterbox(height, width, view_size)
    out = np.zeros((view_size, view_size, 3), dtype=np.uint8)
    out[oy : oy + nh, ox : ox + nw] = 255
    return out


@dataclass(frozen=True)
class InkMap:
    """Where drawing may have changed a white (255) image: ``box`` (pixels ``x0, y0, x1, y1``, half-open)
    holds every such pixel, and ``tiles[i, j]`` is false only where the ``tile`` x ``tile`` square in tile
    row ``i``, column ``j`` is white throughout."""

    box: tuple[int, int, int, int]
    tiles: np.ndarray
    tile: int

    def blank(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        """Whether the pixels ``[x0, x1) x [y0, y1)`` (a non-empty box inside the image) are all white."""
        b = self.box
        if x1 <= b[0] or x0 >= b[2] or y1 <= b[1] or y0 >= b[3]:
            return True
        t = self.tile
        return not self.tiles[y0 // t : (y1 - 1) // t + 1, x0 // t : (x1 - 1) // t + 1].any()


@dataclass
class ToolContext:
    """The state a tool may read or change in one episode: the scene, the working image (``focus`` edits
    it; later zooms see the edit), the view size of returned images, the OCR backend, and ``extras`` for
    per-episode memos (``edits`` counts the edits, so a memo of what the image shows can tell them apart).
    ``ink``, when known, says where the scene's image is white (:class:`InkMap`): a view of the unedited
    image that shows only white needs no resize (:func:`blank_view`)."""

    scene: Scene
    image: np.ndarray
    view_size: int
    ocr: Any
    extras: dict[str, Any] = field(default_factory=dict)
    edits: int = 0
    ink: InkMap | None = None

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
        x0, y0, x1, y1 = pixel_box = self.pixel_box(box)
        ink = self.ink
        if ink is not None and self.image is self.scene.image and self.view_size <= BLANK_VIEW_MAX and ink.blank(*pixel_box):
            return blank_view(y1 - y0, x1 - x0, self.view_size)
        return view_region(self.image, pixel_box, self.view_size)


@runtime_checkable
class Tool(Protocol):
    """A tool an agent can call by name. ``parameters`` is a JSON schema of its arguments (shown to VLMs)."""

    # read-only here: a frozen dataclass's fields, plain attributes and properties all fit
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...

    def __call__(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult: ...


def check_args(tool: Tool, args: Mapping[str, Any]) -> None:
    """Validate ``args`` against the tool's own JSON schema (``tool.parameters``); raise :class:`ToolCallError`
    naming the tool, the argument and what would be right (``"zoom box must be an array of 4 numbers in
    [0, 1]; got ['a', 'b']"``). Unknown and missing arguments are named first. This runs on every step: the
    schema is compiled once per tool, to a plain-Python check where it can be (:mod:`.schema`), else to a
    ``jsonschema`` validator; error messages always come from ``jsonschema``."""
    props = dict(tool.parameters.get("properties", {}))
    unknown = [k for k in args if k not in props]
    if unknown:
        raise ToolCallError(f"{tool.name} got unexpected argument {unknown[0]!r}; expected: {', '.join(props) or 'none'}")
    missing = [k for k in tool.parameters.get("required", []) if k not in args]
    if missing:
        raise ToolCallError(f"{tool.name} is missing argument {missing[0]!r}; expected: {', '.join(props)}")
    validator, fast = _checkers(tool)
    valid = fast(args) if fast is not None else None
    if valid:
        return
    if valid is None:  # a schema or a value outside the compiled subset: jsonschema decides
        key = _frozen(args)
        if key is not None and (id(tool), key) in _VALID:  # seen valid before: a policy repeats its calls
            return
        if validator.is_valid(args):
            if key is not None:
                _remember_valid((id(tool), key))
            return
    wrong: dict[str, str] = {}
    for error in validator.iter_errors(args):
        path = list(error.absolute_path)
        arg = str(path[0]) if path else ""
        if arg not in wrong:
            right = describe_schema(props[arg]) if arg in props else error.message
            # an error inside the argument (one item of a box) also says which part and why
            where = f" (item {'/'.join(map(str, path[1:]))}: {_reason(error)})" if len(path) > 1 else ""
            wrong[arg] = (
                f"{tool.name} {arg} must be {right}; got {_shown(args.get(arg))}{where}" if arg else f"{tool.name}: {right}"
            )
    order = list(props)
    raise ToolCallError(". ".join(wrong[a] for a in sorted(wrong, key=lambda a: order.index(a) if a in order else -1)))


_VALIDATORS: dict[int, tuple[Tool, Draft202012Validator, Callable[[Any], bool | None] | None]] = {}
"""id(tool) -> (the tool, kept alive so the id stays its own; its compiled validator; its fast check)."""


def _checkers(tool: Tool) -> tuple[Draft202012Validator, Callable[[Any], bool | None] | None]:
    """The tool's compiled schema validator and its plain-Python check (:func:`~.schema.compile_check`;
    ``None`` for a schema outside that subset), built once (the schema itself is checked then)."""
    cached = _VALIDATORS.get(id(tool))
    if cached is None or cached[0] is not tool:
        schema = dict(tool.parameters)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"tool {tool.name!r}: parameters is not a valid JSON schema: {exc.message}") from None
        cached = _VALIDATORS[id(tool)] = (tool, Draft202012Validator(schema), compile_check(schema))
    return cached[1], cached[2]


def _validator(tool: Tool) -> Draft202012Validator:
    """The tool's compiled schema validator, built once (the schema itself is checked then)."""
    return _checkers(tool)[0]


_VALID: OrderedDict[tuple[int, Hashable], None] = OrderedDict()
"""Recently validated (id(tool), frozen args): a JSON schema check costs tens of microseconds, a lookup
well under one, and policies repeat calls (the compact policy's boxes lie on a grid)."""
VALID_CACHE_SIZE = 4096


def _remember_valid(key: tuple[int, Hashable]) -> None:
    _VALID[key] = None
    if len(_VALID) > VALID_CACHE_SIZE:
        _VALID.popitem(last=False)


def _frozen(value: Any, depth: int = 0) -> Hashable | None:
    """A hashable copy of JSON-like ``value`` that tells types apart (``1``, ``1.0`` and ``True`` differ);
    ``None`` when it is not plain JSON or nests too deep to be worth caching."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return (kind, value)
    if depth > 4 or kind not in (dict, list):
        return None
    items = value.items() if kind is dict else enumerate(value)
    frozen = tuple((k, _frozen(v, depth + 1)) for k, v in items)
    if any(f is None for _, f in frozen):
        return None
    return (kind, frozen)


def _reason(error: ValidationError) -> str:
    """Why one part of an argument failed, in the words of the messages above (``1.5 is outside [0, 1]``)."""
    value, schema = _shown(error.instance), error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator in ("minimum", "maximum") and "minimum" in schema and "maximum" in schema:
        return f"{value} is outside [{schema['minimum']}, {schema['maximum']}]"
    if error.validator in ("type", "enum"):
        return f"{value} is not {describe_schema(schema)}"
    return _cut(error.message, 80)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short."""
    return _cut(repr(value), 60)


_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def describe_schema(schema: Mapping[str, Any], plural: bool = False) -> str:
    """A JSON schema in words, for error messages: ``{"enum": ["a", "b"]}`` -> ``"one of a, b"``; an array of
    4 numbers in [0, 1] -> ``"an array of 4 numbers in [0, 1]"``. ``plural`` for the items of an array."""
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return " or ".join(describe_schema({**schema, "type": k}, plural) for k in kinds)
    if kinds == "array":
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        count = f"{lo} " if lo is not None and lo == hi else ""
        head = "a non-empty array" if not count and lo == 1 else "an array"
        items = schema.get("items")
        return f"{head} of {count}{describe_schema(items, plural=True)}" if isinstance(items, Mapping) else head
    word = _TYPE_WORDS.get(str(kinds), "a value")
    if plural:
        word = {"true or false": "booleans"}.get(word, word.split(" ", 1)[-1] + "s")
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None and hi is not None:
        return f"{word} in [{lo}, {hi}]"
    if lo is not None:
        return f"{word} >= {lo}"
    if hi is not None:
        return f"{word} <= {hi}"
    return word


_REGISTRY: dict[str, Tool] = {}


def register_tool(tool: Tool, *, overwrite: bool = False) -> Tool:
    """Make ``tool`` callable by its name in every env created afterwards with it in ``tools=``."""
    if not isinstance(tool, Tool):
        raise TypeError(f"{tool!r} is not a Tool: it needs name, description, parameters and __call__(args, ctx)")
    if tool.name in _REGISTRY and not overwrite:
        raise ValueError(f"a tool named {tool.name!r} is registered already; pass overwrite=True to replace it")
    _validator(tool)  # a schema that is not valid JSON schema fails here, not on the first call
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
