"""Components an attribution is spread over, the attribution itself, and the image geometry that maps a
model's per-pixel attribution back onto cells of the original image.

Teachers, students, the wrapper and the benchmarks all describe attributions in one
:class:`ComponentLayout`, so two attributions of the same decision can be compared element by element
(cells and tokens) or after pooling to blocks.

Blocks, in this fixed order:

- ``image``: a ``grid`` x ``grid`` grid of cells in *original-image* coordinates, row-major (cell
  ``r * grid + c`` is row ``r`` from the top, column ``c`` from the left). Cells in original coordinates,
  not view pixels, so an attribution over a zoomed crop and one over the whole-image glance land in the
  same place.
- ``query``: question tokens, a fixed number of slots (``query_length``); slots past the question's
  length are padding and normally get no mass.
- ``tool_outputs``: tokens of the last tool output, fixed slots (``output_length``).
- ``context`` and ``tool_defs`` (optional, text agents): system-prompt and tool-description tokens, as
  many as there are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..scene import Box
from ..text import OUTPUT_LENGTH, QUERY_LENGTH, tokenize
from ..tools.base import letterbox
from ..validation import check_int

BLOCK_ORDER: tuple[str, ...] = ("image", "query", "tool_outputs", "context", "tool_defs")
"""Every block a layout may have, in the order they sit in the flat component vector."""

REQUIRED_BLOCKS: tuple[str, ...] = ("image", "query", "tool_outputs")
OPTIONAL_BLOCKS: tuple[str, ...] = ("context", "tool_defs")


@dataclass(frozen=True)
class ComponentLayout:
    """The components of one decision's input, grouped in blocks, and where each sits in a flat vector.

    Two layouts are equal (and their attributions comparable) when their blocks and sizes are equal; the
    token labels are carried for display and for teachers that match words, and do not take part.

    Args:
        grid: cells per side of the image grid (``image`` has ``grid * grid`` components).
        query_length: slots of the ``query`` block.
        output_length: slots of the ``tool_outputs`` block.
        context_length: components of the optional ``context`` block (0: absent).
        tool_defs_length: components of the optional ``tool_defs`` block (0: absent).
        query_tokens: the question's tokens (at most ``query_length``), labels only.
        output_tokens: the tool output's tokens (at most ``output_length``), labels only.
        context_tokens: labels of the ``context`` components (empty, or exactly ``context_length``).
        tool_defs_tokens: labels of the ``tool_defs`` components (empty, or exactly ``tool_defs_length``).
    """

    grid: int = 4
    query_length: int = QUERY_LENGTH
    output_length: int = OUTPUT_LENGTH
    context_length: int = 0
    tool_defs_length: int = 0
    query_tokens: tuple[str, ...] = field(default=(), compare=False)
    output_tokens: tuple[str, ...] = field(default=(), compare=False)
    context_tokens: tuple[str, ...] = field(default=(), compare=False)
    tool_defs_tokens: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", check_int("grid", self.grid, 1, hint=" (cells per side)"))
        for name in ("query_length", "output_length", "context_length", "tool_defs_length"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 0))
        for name, limit in (("query_tokens", self.query_length), ("output_tokens", self.output_length)):
            toks = tuple(str(t) for t in getattr(self, name))
            object.__setattr__(self, name, toks)
            if len(toks) > limit:
                raise ValueError(f"{name} has {len(toks)} tokens, more than the {limit} slots of its block")
        for name, size in (("context_tokens", self.context_length), ("tool_defs_tokens", self.tool_defs_length)):
            toks = tuple(str(t) for t in getattr(self, name))
            object.__setattr__(self, name, toks)
            if toks and len(toks) != size:
                raise ValueError(f"{name} has {len(toks)} labels but its block has {size} components")

    # -- structure -----------------------------------------------------------------------------------
    @property
    def sizes(self) -> dict[str, int]:
        """Block name -> number of components, in :data:`BLOCK_ORDER` (absent optional blocks left out)."""
        out = {"image": self.grid * self.grid, "query": self.query_length, "tool_outputs": self.output_length}
        if self.context_length:
            out["context"] = self.context_length
        if self.tool_defs_length:
            out["tool_defs"] = self.tool_defs_length
        return out

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    @property
    def size(self) -> int:
        """Length of the flat component vector."""
        return sum(self.sizes.values())

    def __len__(self) -> int:
        return self.size

    def slices(self) -> dict[str, slice]:
        """Block name -> its slice of the flat component vector."""
        out, start = {}, 0
        for name, n in self.sizes.items():
            out[name] = slice(start, start + n)
            start += n
        return out

    def slice(self, name: str) -> slice:
        """The slice of block ``name``; unknown names raise ``KeyError`` listing this layout's blocks."""
        try:
            return self.slices()[name]
        except KeyError:
            raise KeyError(f"no block {name!r} in this layout; blocks: {', '.join(self.block_names)}") from None

    def labels(self) -> list[str]:
        """A readable label per component: ``image[r1c2]``, ``query[3]:bar``, ``query[30]`` (padding)..."""
        g = self.grid
        out = [f"image[r{i // g}c{i % g}]" for i in range(g * g)]
        toks = {
            "query": self.query_tokens,
            "tool_outputs": self.output_tokens,
            "context": self.context_tokens,
            "tool_defs": self.tool_defs_tokens,
        }
        for name, n in list(self.sizes.items())[1:]:
            out += [f"{name}[{i}]" + (f":{toks[name][i]}" if i < len(toks[name]) else "") for i in range(n)]
        return out

    # -- vectors ---------------------------------------------------------------------------------------
    def check(self, values: ArrayLike, what: str = "values") -> np.ndarray:
        """``values`` as a float64 vector of this layout's length (``ValueError`` naming both lengths)."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.shape[0] != self.size:
            raise ValueError(
                f"{what} must be a vector of {self.size} components for this layout "
                f"({', '.join(f'{k}={v}' for k, v in self.sizes.items())}); got shape {arr.shape}"
            )
        return arr

    def pool(self, values: ArrayLike) -> np.ndarray:
        """Sum a component vector within each block: a vector with one entry per block, in block order.

        Args:
            values: a vector of :attr:`size` components.

        Returns:
            float64 array of length ``len(block_names)``.
        """
        arr = self.check(values)
        return np.array([arr[s].sum() for s in self.slices().values()], dtype=np.float64)

    def assemble(self, parts: Mapping[str, ArrayLike]) -> np.ndarray:
        """A flat component vector from per-block parts; blocks not given are zeros.

        Args:
            parts: block name -> vector of that block's size. The ``image`` part may also be a
                ``(grid, grid)`` array (row-major).

        Returns:
            float64 vector of :attr:`size` components.
        """
        out = np.zeros(self.size, dtype=np.float64)
        slices = self.slices()
        for name, part in parts.items():
            if name not in slices:
                known = ", ".join(self.block_names)
                raise ValueError(f"unknown block {name!r} for this layout; blocks: {known}")
            arr = np.asarray(part, dtype=np.float64).reshape(-1)
            n = slices[name].stop - slices[name].start
            if arr.shape[0] != n:
                raise ValueError(f"block {name!r} has {n} components; the part given has {arr.shape[0]}")
            out[slices[name]] = arr
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (sizes and token labels)."""
        return {
            "grid": int(self.grid),
            "query_length": int(self.query_length),
            "output_length": int(self.output_length),
            "context_length": int(self.context_length),
            "tool_defs_length": int(self.tool_defs_length),
            "query_tokens": list(self.query_tokens),
            "output_tokens": list(self.output_tokens),
            "context_tokens": list(self.context_tokens),
            "tool_defs_tokens": list(self.tool_defs_tokens),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComponentLayout:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


def _tokens(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """A string is tokenized with :func:`iapo_gym.text.tokenize`; a sequence is taken as tokens already."""
    if text is None:
        return ()
    if isinstance(text, str):
        return tuple(tokenize(text))
    return tuple(str(t) for t in text)


def layout_for_observation(
    obs: Mapping[str, Any],
    grid: int = 4,
    query_length: int = QUERY_LENGTH,
    output_length: int = OUTPUT_LENGTH,
    *,
    context: str | Sequence[str] | None = None,
    tool_defs: str | Sequence[str] | None = None,
) -> ComponentLayout:
    """The component layout of one env observation.

    Args:
        obs: an observation of a ``VisualToolVQA`` env (``question`` and ``tool_output`` are read).
        grid: cells per side of the image grid.
        query_length: slots of the ``query`` block (question tokens past it are dropped).
        output_length: slots of the ``tool_outputs`` block (tool-output tokens past it are dropped).
        context: for text agents, the system prompt: a string (tokenized with
            :func:`iapo_gym.text.tokenize`) or its tokens from the agent's own tokenizer; the ``context``
            block gets one component per token.
        tool_defs: for text agents, the tool descriptions, the same way.

    Returns:
        A :class:`ComponentLayout` labelled with the observation's tokens.
    """
    ctx, defs = _tokens(context), _tokens(tool_defs)
    return ComponentLayout(
        grid=grid,
        query_length=query_length,
        output_length=output_length,
        context_length=len(ctx),
        tool_defs_length=len(defs),
        query_tokens=_tokens(str(obs.get("question", "")))[:query_length],
        output_tokens=_tokens(str(obs.get("tool_output", "")))[:output_length],
        context_tokens=ctx,
        tool_defs_tokens=defs,
    )


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare .values with numpy
class Attribution:
    """A non-negative distribution over a layout's components (sums to 1).

    ``Attribution(layout, scores)`` takes raw scores (signed gradients, ablation deltas...): it takes their
    absolute value and normalises them. Signs are dropped because the penalty compares *where* the model
    looks, and a component that pushes the decision down is attended to as much as one that pushes it up.

    Args:
        layout: the components.
        values: raw scores, one per component.
        allow_uniform: when every score is zero, return the uniform distribution instead of raising
            (for a model with no signal yet, e.g. at initialisation).

    Raises:
        ValueError: wrong length, NaN or infinite scores, or all zeros without ``allow_uniform``.
    """

    layout: ComponentLayout
    values: np.ndarray
    allow_uniform: InitVar[bool] = False

    def __post_init__(self, allow_uniform: bool) -> None:
        arr = np.abs(self.layout.check(self.values, "attribution scores"))
        if not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(f"attribution scores must be finite; component {bad} ({self.layout.labels()[bad]}) is {arr[bad]}")
        total = float(arr.sum())
        if not total > 0.0 or not math.isfinite(total):
            if not allow_uniform:
                raise ValueError(
                    f"attribution scores sum to {total}; an all-zero attribution has no distribution "
                    "(pass allow_uniform=True to get the uniform one)"
                )
            arr = np.full(arr.shape, 1.0 / arr.shape[0])
        else:
            arr = arr / total
        arr.setflags(write=False)
        object.__setattr__(self, "values", arr)

    @classmethod
    def from_scores(cls, layout: ComponentLayout, scores: ArrayLike, *, allow_uniform: bool = False) -> Attribution:
        """Same as the constructor (raw scores: absolute value, then normalised)."""
        return cls(layout, np.asarray(scores, dtype=np.float64), allow_uniform)

    @classmethod
    def from_parts(cls, layout: ComponentLayout, parts: Mapping[str, ArrayLike], *, allow_uniform: bool = False) -> Attribution:
        """From per-block raw scores (see :meth:`ComponentLayout.assemble`); blocks not given get zero."""
        return cls(layout, layout.assemble(parts), allow_uniform)

    def __len__(self) -> int:
        return self.layout.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attribution):
            return NotImplemented
        return self.layout == other.layout and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]  # unhashable (compared by value); typeshed's object.__hash__ is a method

    def blocks(self) -> dict[str, float]:
        """Block name -> its total mass (the values sum to 1)."""
        return {name: float(v) for name, v in zip(self.layout.block_names, self.layout.pool(self.values))}

    def block(self, name: str) -> np.ndarray:
        """The components of block ``name`` (a read-only view; ``image`` is row-major, reshape to (G, G))."""
        return self.values[self.layout.slice(name)]

    def vector(self, granularity: str = "components") -> np.ndarray:
        """The distribution at ``"components"`` (cells and tokens) or ``"blocks"`` granularity."""
        if granularity == "components":
            return self.values
        if granularity == "blocks":
            return self.layout.pool(self.values)
        raise ValueError(f"granularity must be 'components' or 'blocks'; got {granularity!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the layout, the component values and the block masses."""
        return {"layout": self.layout.to_dict(), "values": [float(v) for v in self.values], "blocks": self.blocks()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attribution:
        return cls(ComponentLayout.from_dict(data["layout"]), np.asarray(data["values"], dtype=np.float64))


# -- geometry ------------------------------------------------------------------------------------------
def _check_box(box: Sequence[float], what: str) -> tuple[float, float, float, float]:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape[0] != 4 or not np.all(np.isfinite(b)):
        raise ValueError(f"{what} must be 4 finite numbers (x0, y0, x1, y1) in [0, 1]; got {box!r}")
    b = np.clip(b, 0.0, 1.0)
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def _overlap_matrix(starts: np.ndarray, stops: np.ndarray, grid: int) -> np.ndarray:
    """``(n, grid)``: the length of each interval ``[starts[i], stops[i]]`` inside each of ``grid`` equal
    cells of [0, 1], in units of cell width."""
    edges = np.arange(grid + 1, dtype=np.float64) / grid
    lo = np.maximum(starts[:, None], edges[None, :-1])
    hi = np.minimum(stops[:, None], edges[None, 1:])
    return np.clip(hi - lo, 0.0, None) * grid


def cells_of_box(box: Box | Sequence[float], grid: int) -> np.ndarray:
    """The fraction of each grid cell that a normalised box covers.

    Args:
        box: ``(x0, y0, x1, y1)`` in normalised original-image coordinates (clipped to [0, 1]).
        grid: cells per side.

    Returns:
        float64 vector of ``grid * grid`` values in [0, 1], row-major (a box covering the whole image gives
        all ones; a degenerate box all zeros).
    """
    x0, y0, x1, y1 = _check_box(box, "box")
    rows = _overlap_matrix(np.array([y0]), np.array([max(y0, y1)]), grid)[0]
    cols = _overlap_matrix(np.array([x0]), np.array([max(x0, x1)]), grid)[0]
    return np.outer(rows, cols).reshape(-1)


def _to_pixels(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Normalised box -> pixel box, rounded exactly as :meth:`iapo_gym.scene.Scene.to_pixels` (which the
    tools use to cut the crop), so the geometry matches the crop the model saw."""
    x0 = int(np.floor(box[0] * width))
    y0 = int(np.floor(box[1] * height))
    x1 = max(x0 + 1, int(np.ceil(box[2] * width)))
    y1 = max(y0 + 1, int(np.ceil(box[3] * height)))
    return x0, y0, min(x1, width), min(y1, height)


def pixels_to_cells(
    attr_map: ArrayLike,
    view_box: Box | Sequence[float],
    grid: int,
    source_hw: tuple[int, int],
    *,
    absolute: bool = True,
) -> np.ndarray:
    """Map a per-pixel attribution over a letterboxed view back onto original-image grid cells.

    A view is the region ``view_box`` of the original image scaled into a ``V`` x ``V`` square with zero
    padding (:func:`iapo_gym.tools.letterbox`, as :meth:`~iapo_gym.tools.ToolContext.view` draws it). Each
    view pixel inside the content covers a rectangle of the original image; its attribution is split over
    the cells that rectangle overlaps, by area. Padding pixels show nothing of the image and are ignored.
    The glance image is the view of the full box ``(0, 0, 1, 1)``.

    Args:
        attr_map: ``(V, V)`` per-pixel attribution of the view (reduce channels first, e.g. with
            :func:`~iapo_gym.attribution.reduce_to_components`).
        view_box: the view's box in normalised original-image coordinates (the observation's ``view_box``;
            a zero-area box, as before any crop, shows no image: all cells get zero).
        grid: cells per side.
        source_hw: ``(height, width)`` of the original image in pixels.
        absolute: sum pixel magnitudes (default), so neighbouring pixels of opposite sign do not cancel.

    Returns:
        float64 vector of ``grid * grid`` cell scores, row-major; it sums to the (absolute) attribution
        inside the view's content.
    """
    amap = np.asarray(attr_map, dtype=np.float64)
    if amap.ndim != 2 or amap.shape[0] != amap.shape[1]:
        raise ValueError(f"attr_map must be a square (V, V) per-pixel map; got shape {amap.shape} (sum channels first)")
    if not np.all(np.isfinite(amap)):
        raise ValueError("attr_map has NaN or infinite values")
    rows, cols = view_cell_weights(view_box, grid, source_hw, amap.shape[0])
    if absolute:
        amap = np.abs(amap)
    return (rows.T @ amap @ cols).reshape(-1)


def view_cell_weights(
    view_box: Box | Sequence[float], grid: int, source_hw: Sequence[int], view: int
) -> tuple[np.ndarray, np.ndarray]:
    """The linear map from a letterboxed view's pixels to original-image cells, as two ``(view, grid)``
    matrices: cell scores are ``rows.T @ pixel_map @ cols`` (row-major ``(grid, grid)``).

    Row ``i`` of ``rows`` splits view row ``i`` over the grid's cell rows by area (zeros for padding rows
    and for a zero-area ``view_box``); ``cols`` the same for columns. :func:`pixels_to_cells` applies it to
    one map; trainers apply it to batches of differentiable attribution maps.
    """
    height, width = (int(v) for v in source_hw)
    if height < 1 or width < 1:
        raise ValueError(f"source_hw must be the original image's (height, width) in pixels; got {source_hw!r}")
    rows, cols = np.zeros((view, grid)), np.zeros((view, grid))
    box = _check_box(view_box, "view_box")
    if box[2] <= box[0] or box[3] <= box[1]:
        return rows, cols
    px0, py0, px1, py1 = _to_pixels(box, height, width)
    top, left, nh, nw = letterbox(py1 - py0, px1 - px0, view)
    # content row i shows original rows [py0 + i*h/nh, py0 + (i+1)*h/nh): the rectangles tile the region
    ys = (py0 + np.arange(nh + 1) * (py1 - py0) / nh) / height
    xs = (px0 + np.arange(nw + 1) * (px1 - px0) / nw) / width
    # each row/column's share of each cell row/column, normalised so a pixel's mass is fully distributed
    ry = _overlap_matrix(ys[:-1], ys[1:], grid)
    cx = _overlap_matrix(xs[:-1], xs[1:], grid)
    rows[top : top + nh] = ry / np.maximum(ry.sum(axis=1, keepdims=True), 1e-300)
    cols[left : left + nw] = cx / np.maximum(cx.sum(axis=1, keepdims=True), 1e-300)
    return rows, cols
