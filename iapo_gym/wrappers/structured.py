"""A structured (``MultiDiscrete``) action space over tool calls, for array-based RL libraries.

Gymnasium envs of this package take tool-call *strings*; stable-baselines3 and most RL code want arrays.
:class:`StructuredActionWrapper` exposes one categorical component per decision an agent makes — which
tool, where to look (a grid cell and a box size), what to focus on, what to answer — and renders the
chosen components as the JSON tool call the env parses. :meth:`StructuredActionWrapper.encode` maps a
tool call back to the nearest structured action, so oracle or teacher moves become imitation targets.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..answers import normalize_answer
from ..scene import Box
from ..text import tokenize
from ..toolcall import ToolCall, parse_box, parse_tool_call
from ..tools import get_tool
from ..validation import check_int
from ..vocab import (
    ANSWER_VOCAB,
    CATEGORY_LABELS,
    COLUMN_LABELS,
    ROW_LABELS,
    SERIES_LABELS,
    TAGS,
)

DEFAULT_SIZES: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
"""Box sides (normalised); the smallest zooms on one value label, the largest shows the whole image."""

FOCUS_LABELS: tuple[str, ...] = tuple(dict.fromkeys(CATEGORY_LABELS + ROW_LABELS + COLUMN_LABELS + SERIES_LABELS + TAGS))
"""Labels the ``focus`` component can name, spelled as the families render them."""

STRUCTURED_AXES: tuple[str, ...] = ("rows", "columns", "bars", "series")
"""The focus axes of the structured action space: the procedural families' (the ``focus`` tool also takes
``x_values`` and ``y_values``, the label bands of real charts, which this action space does not emit)."""
STRUCTURED_MODES: tuple[str, ...] = ("highlight", "mask")
"""The focus modes of the structured action space (the tool also takes ``draw``)."""
COMPONENTS: tuple[str, ...] = ("tool", "cell", "size", "axis", "label", "mode", "answer")
"""Names of the action components, in the order of the ``MultiDiscrete`` vector."""


def _tool_kind(name: str) -> str:
    """Which component group fills the arguments of tool ``name``: ``box``, ``focus``, ``answer`` or ``none``.

    Decided from the tool's JSON-schema parameters, so custom tools that take a box (or nothing) work too.
    """
    params = get_tool(name).parameters
    props, required = set(params.get("properties", {})), set(params.get("required", []))
    if "box" in props and required <= {"box"}:
        return "box"
    if {"axis", "labels"} <= props and required <= {"axis", "labels", "mode"}:
        return "focus"
    if "text" in props and required <= {"text"}:
        return "answer"
    if not required:
        return "none"
    raise ValueError(
        f"tools: tool {name!r} requires arguments {sorted(required)}, which no structured component fills; "
        "structured actions support tools taking 'box', focus-style 'axis'/'labels'/'mode', 'text', or nothing"
    )


class ActionCodec:
    """Structured tool-call actions <-> tool calls: one categorical component per decision.

    Components (see :data:`COMPONENTS`; sizes in :attr:`component_sizes`):

    ========  =====================================================================================
    tool      index into ``tools`` (e.g. zoom, ocr, focus, answer)
    cell      box centre: cell ``row * grid + col`` of a ``grid`` x ``grid`` grid over the image
    size      box side, index into ``sizes`` sorted ascending (normalised; shifted to stay in [0, 1])
    axis      focus axis: rows, columns, bars, series
    label     focus label, index into ``focus_labels``
    mode      focus mode: highlight, mask
    answer    answer text: index into ``answers`` (normalised answers), or, from ``len(answers)`` on,
              a copy: slot ``k`` answers the ``k``-th token of the last tool output
    ========  =====================================================================================

    Components that the chosen tool does not use are ignored, so a policy can emit all of them at once.
    Shared by :class:`StructuredActionWrapper` (for array-based RL libraries) and the compact agent.

    ``copy_slots`` (default 0: a closed answer vocabulary) opens answers that are not in ``answers``: a value
    read off a real chart ("34.5", "Germany") is answered by pointing at it in the tool output
    (:func:`~iapo_gym.text.tokenize`'s tokens), so :meth:`decode` and :meth:`encode` then take that text.
    """

    def __init__(
        self,
        tools: Sequence[str],
        grid: int = 16,
        sizes: Sequence[float] = DEFAULT_SIZES,
        focus_labels: Sequence[str] = FOCUS_LABELS,
        answers: Sequence[str] = ANSWER_VOCAB,
        copy_slots: int = 0,
    ) -> None:
        grid = check_int("grid", grid, 1, hint=" (cells per side of the box-centre grid)")
        self.copy_slots = check_int("copy_slots", copy_slots, 0, hint=" (tool-output tokens an answer may copy)")
        sizes = tuple(sizes)
        if not sizes or any(isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0.0 < float(s) <= 1.0 for s in sizes):
            raise ValueError(f"sizes must be a non-empty sequence of box sides in (0, 1]; got {sizes!r}")
        if not focus_labels or not all(isinstance(x, str) and x for x in focus_labels):
            raise ValueError(f"focus_labels must be a non-empty sequence of non-empty strings; got {focus_labels!r}")
        if not answers or not all(isinstance(x, str) and x for x in answers):
            raise ValueError("answers must be a non-empty sequence of non-empty strings")
        self.tools: tuple[str, ...] = tuple(tools)
        if not self.tools:
            raise ValueError("tools must name at least one tool")
        self.tool_kinds: tuple[str, ...] = tuple(_tool_kind(t) for t in self.tools)

        self.grid = int(grid)
        self.sizes: tuple[float, ...] = tuple(sorted(float(s) for s in sizes))  # ascending: encode picks the smallest
        self.axes: tuple[str, ...] = STRUCTURED_AXES
        self.modes: tuple[str, ...] = STRUCTURED_MODES
        self.focus_labels: tuple[str, ...] = tuple(focus_labels)
        self.answers: tuple[str, ...] = tuple(answers)
        self.components: tuple[str, ...] = COMPONENTS
        self.component_sizes: tuple[int, ...] = (
            len(self.tools),
            self.grid * self.grid,
            len(self.sizes),
            len(self.axes),
            len(self.focus_labels),
            len(self.modes),
            len(self.answers) + self.copy_slots,
        )
        self.space = spaces.MultiDiscrete(np.array(self.component_sizes, dtype=np.int64))

        # lookups for encode(): first index wins when two entries normalise alike
        self._label_index: dict[str, int] = {}
        for i, lab in enumerate(self.focus_labels):
            self._label_index.setdefault(lab.lower(), i)
        self._answer_index: dict[str, int] = {}
        for i, ans in enumerate(self.answers):
            self._answer_index.setdefault(normalize_answer(ans), i)
        # every (cell, size) box and cell centre, precomputed once: encode() searches them
        cells = range(self.grid * self.grid)
        self._boxes = np.array([[self.box(c, s) for s in range(len(self.sizes))] for c in cells], dtype=np.float64)
        self._centres = np.array(
            [((c % self.grid + 0.5) / self.grid, (c // self.grid + 0.5) / self.grid) for c in cells], dtype=np.float64
        )

    # -- components -> tool call --------------------------------------------------------------------
    def box(self, cell: int, size: int) -> Box:
        """The square box of side ``sizes[size]`` centred on grid cell ``cell``, shifted inside [0, 1]."""
        row, col = divmod(int(cell), self.grid)
        side = self.sizes[int(size)]
        out = []
        for centre in ((col + 0.5) / self.grid, (row + 0.5) / self.grid):
            lo = min(max(centre - side / 2, 0.0), 1.0 - side)
            out.append((round(lo, 6), round(min(lo + side, 1.0), 6)))  # rounded: short, exact JSON
        (x0, x1), (y0, y1) = out
        return (x0, y0, x1, y1)

    def decode(self, action: Any, tool_output: str | None = None) -> ToolCall:
        """The :class:`ToolCall` that a structured action stands for. A copied answer takes its text from
        ``tool_output`` (the observation's last tool output; a slot past its last token answers ``""``)."""
        a = np.asarray(action)
        if a.shape != (len(COMPONENTS),) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"action must be {len(COMPONENTS)} integers ({', '.join(COMPONENTS)}); got {np.asarray(action)!r}")
        for name, value, n in zip(COMPONENTS, a, self.component_sizes):
            if not 0 <= value < n:
                raise ValueError(f"action component {name!r} must be in [0, {n}); got {int(value)}")
        tool, cell, size, axis, label, mode, answer = (int(v) for v in a)
        name, kind = self.tools[tool], self.tool_kinds[tool]
        if kind == "box":
            return ToolCall(name, {"box": list(self.box(cell, size))})
        if kind == "focus":
            args: dict[str, Any] = {"axis": self.axes[axis], "labels": [self.focus_labels[label]]}
            if "mode" in get_tool(name).parameters.get("properties", {}):
                args["mode"] = self.modes[mode]
            return ToolCall(name, args)
        if kind == "answer":
            if answer < len(self.answers):
                return ToolCall(name, {"text": self.answers[answer]})
            if tool_output is None:
                raise ValueError(f"action answers by copying tool-output token {answer - len(self.answers)}: pass tool_output")
            tokens = tokenize(tool_output)
            k = answer - len(self.answers)
            return ToolCall(name, {"text": tokens[k] if k < len(tokens) else ""})
        return ToolCall(name, {})

    # -- tool call -> components --------------------------------------------------------------------
    def encode(self, call: str | ToolCall, tool_output: str | None = None, prefer_copy: bool = False) -> np.ndarray:
        """The nearest structured action to a tool call (a string in any accepted form, or a :class:`ToolCall`).

        Boxes: the smallest size whose box, centred on some cell, covers the whole box; among those cells
        the one whose centre is nearest the box's centre (if no size covers it, the largest size at the
        nearest cell). Focus: the axis, the mode and the *first* label (one label per action). Answers: the
        index of the normalised text in ``answers``; with copy slots and a ``tool_output``, an answer outside
        them (or any answer, ``prefer_copy``) that is a token of the tool output becomes the copy of its first
        occurrence; an answer neither can produce raises ``ValueError``. Components the tool does not use are 0.
        """
        if isinstance(call, str):
            call = parse_tool_call(call)
        if not isinstance(call, ToolCall):
            raise ValueError(f"call must be a tool-call string or a ToolCall; got {type(call).__name__}")
        if call.name not in self.tools:
            raise ValueError(f"call: unknown tool {call.name!r}; this wrapper's tools: {', '.join(self.tools)}")
        out = np.zeros(len(COMPONENTS), dtype=np.int64)
        tool = self.tools.index(call.name)
        out[0] = tool
        kind = self.tool_kinds[tool]
        if kind == "box":
            out[1], out[2] = self._encode_box(parse_box(call.args.get("box")))
        elif kind == "focus":
            axis, labels, mode = call.args.get("axis"), call.args.get("labels"), call.args.get("mode", "highlight")
            if axis not in self.axes:
                raise ValueError(f"call: focus axis must be one of {', '.join(self.axes)}; got {axis!r}")
            if mode not in self.modes:
                raise ValueError(f"call: focus mode must be one of {', '.join(self.modes)}; got {mode!r}")
            if isinstance(labels, str):
                labels = [labels]
            if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
                raise ValueError(f"call: focus labels must be a non-empty list of strings; got {labels!r}")
            if labels[0].lower() not in self._label_index:
                raise ValueError(f"call: focus label {labels[0]!r} is not in focus_labels ({len(self.focus_labels)} labels)")
            out[3], out[4], out[5] = self.axes.index(axis), self._label_index[labels[0].lower()], self.modes.index(mode)
        elif kind == "answer":
            text = call.args.get("text")
            key = normalize_answer(str(text))
            valid = not isinstance(text, bool) and isinstance(text, (str, int, float))
            copy = self._copy_slot(str(text), tool_output) if valid else None
            if valid and copy is not None and (prefer_copy or key not in self._answer_index):
                out[6] = len(self.answers) + copy
            elif valid and key in self._answer_index:
                out[6] = self._answer_index[key]
            else:
                where = f" nor a token of the tool output's first {self.copy_slots}" if self.copy_slots else ""
                raise ValueError(
                    f"call: answer {text!r} (normalised {key!r}) is not in the answer vocabulary "
                    f"({len(self.answers)} answers){where}; the answer head cannot produce it"
                )
        return out

    def _copy_slot(self, text: str, tool_output: str | None) -> int | None:
        """The first copy slot whose tool-output token is ``text`` (one token, compared as tokens), if any."""
        if not self.copy_slots or tool_output is None:
            return None
        want = tokenize(text)
        if len(want) != 1:
            return None
        tokens = tokenize(tool_output)[: self.copy_slots]
        return tokens.index(want[0]) if want[0] in tokens else None

    def covering_cells(self, target: Box) -> tuple[np.ndarray, int]:
        """Every grid cell whose box covers ``target`` at the smallest size at which one does, and that size
        index; a target no box covers gives ``([nearest cell], largest size)``. Cells sorted by distance of
        their centre from the target's centre (the first is what :meth:`encode` picks)."""
        t = np.asarray(target, dtype=np.float64)
        eps = 1e-9
        covers = (
            (self._boxes[..., 0] <= t[0] + eps)
            & (self._boxes[..., 1] <= t[1] + eps)
            & (self._boxes[..., 2] >= t[2] - eps)
            & (self._boxes[..., 3] >= t[3] - eps)
        )  # (cells, sizes)
        centre = np.array([(t[0] + t[2]) / 2, (t[1] + t[3]) / 2])
        dist = ((self._centres - centre) ** 2).sum(axis=1)
        for s in range(len(self.sizes)):
            cells = np.flatnonzero(covers[:, s])
            if len(cells):
                return cells[np.argsort(dist[cells], kind="stable")], s
        return np.array([int(np.argmin(dist))]), len(self.sizes) - 1

    def _encode_box(self, target: Box) -> tuple[int, int]:
        cells, size = self.covering_cells(target)
        return int(cells[0]), size

    def describe(self) -> Mapping[str, int]:
        """Component name -> number of choices (what a trainer builds one categorical head per)."""
        return dict(zip(self.components, self.component_sizes))


class StructuredActionWrapper(gym.ActionWrapper[dict[str, Any], np.ndarray, str], gym.utils.RecordConstructorArgs):
    """Replace the tool-call string action with a ``MultiDiscrete`` vector of components (an
    :class:`ActionCodec` over the env's tools; see it for the components)."""

    def __init__(
        self,
        env: gym.Env[Any, Any],
        grid: int = 16,
        sizes: Sequence[float] = DEFAULT_SIZES,
        focus_labels: Sequence[str] = FOCUS_LABELS,
        answers: Sequence[str] = ANSWER_VOCAB,
        tools: Sequence[str] | None = None,
    ) -> None:
        # recorded so that env.spec (and check_env, which rebuilds the env from it) can recreate the stack
        gym.utils.RecordConstructorArgs.__init__(
            self, grid=grid, sizes=sizes, focus_labels=focus_labels, answers=answers, tools=tools
        )
        gym.ActionWrapper.__init__(self, env)
        if tools is None:
            tools = getattr(env.unwrapped, "tools", None)
            if tools is None:
                raise ValueError("tools: the wrapped env has no 'tools' attribute; pass tools=[...] explicitly")
        self.codec = ActionCodec(tools, grid, sizes, focus_labels, answers)
        c = self.codec
        self.tools, self.tool_kinds, self.grid, self.sizes = c.tools, c.tool_kinds, c.grid, c.sizes
        self.axes, self.modes, self.focus_labels, self.answers = c.axes, c.modes, c.focus_labels, c.answers
        self.components, self.component_sizes = c.components, c.component_sizes
        self.action_space = c.space

    def box(self, cell: int, size: int) -> Box:
        return self.codec.box(cell, size)

    def decode(self, action: Any) -> ToolCall:
        return self.codec.decode(action)

    def encode(self, call: str | ToolCall) -> np.ndarray:
        return self.codec.encode(call)

    def describe(self) -> Mapping[str, int]:
        return self.codec.describe()

    def action(self, action: Any) -> str:
        """Render a structured action as the JSON tool-call string the env parses."""
        return self.codec.decode(action).to_json()
