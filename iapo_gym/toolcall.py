"""Tool-call actions: the plain JSON form and the chat forms that VLMs emit.

Accepted forms (whitespace and surrounding text such as ``<think>...</think>`` are allowed):

- ``{"tool": "zoom", "args": {"box": [0.1, 0.2, 0.3, 0.4]}}``
- ``<tool_call>{"name": "zoom", "arguments": {"box": [...]}}</tool_call>``
- ``<answer>42</answer>``

The first call in the text is taken. Every failure is a :class:`ToolCallError` whose message says what was
wrong and what would be right, so it can be shown to an agent as a tool output.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .scene import Box

_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FORMS = (
    'a tool call: JSON {"tool": NAME, "args": {...}}, '
    '<tool_call>{"name": NAME, "arguments": {...}}</tool_call>, or <answer>TEXT</answer>'
)


class ToolCallError(ValueError):
    """A tool call that cannot be parsed or whose arguments are wrong."""


@dataclass(frozen=True)
class ToolCall:
    """A parsed tool call: the tool's name and its keyword arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The plain JSON form, e.g. ``{"tool": "zoom", "args": {"box": [...]}}``."""
        return json.dumps({"tool": self.name, "args": self.args})

    def to_chat(self) -> str:
        """The chat form that VLMs write: ``<answer>..</answer>`` or ``<tool_call>..</tool_call>``."""
        if self.name == "answer":
            return f"<answer>{self.args.get('text', '')}</answer>"
        return "<tool_call>" + json.dumps({"name": self.name, "arguments": self.args}) + "</tool_call>"


def _snippet(text: str, limit: int = 60) -> str:
    text = text.strip().replace("\n", " ")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _from_json(payload: str, name_keys: tuple[str, str], args_keys: tuple[str, str]) -> ToolCall:
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"malformed JSON in tool call ({exc.msg} at char {exc.pos}): {_snippet(payload)}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; arrays nested too deep
        raise ToolCallError(
            f"tool call JSON cannot be read ({type(exc).__name__}: {str(exc)[:80]}): {_snippet(payload)}"
        ) from None
    if not isinstance(obj, dict):
        raise ToolCallError(f"tool call JSON must be an object, got {type(obj).__name__}: {_snippet(payload)}")
    name = next((obj[k] for k in name_keys if k in obj), None)
    if not isinstance(name, str) or not name.strip():
        raise ToolCallError(f'tool call needs a string "{name_keys[0]}" naming the tool; got {_snippet(payload)}')
    args: object = next((obj[k] for k in args_keys if k in obj), {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolCallError(f'"{args_keys[0]}" of tool {name!r} must be an object, got {type(args).__name__}')
    return ToolCall(name.strip(), dict(args))


def parse_tool_call(text: str) -> ToolCall:
    """Parse an action string into a :class:`ToolCall`; raise :class:`ToolCallError` with a precise message."""
    if not isinstance(text, str):
        raise ToolCallError(f"action must be a string tool call, got {type(text).__name__}")
    tool = _TOOL_CALL.search(text)
    answer = _ANSWER.search(text)
    if tool and (not answer or tool.start() < answer.start()):
        return _from_json(tool.group(1).strip(), ("name", "tool"), ("arguments", "args"))
    if answer:
        return ToolCall("answer", {"text": answer.group(1).strip()})
    if "<tool_call>" in text:
        raise ToolCallError("unclosed <tool_call>: expected <tool_call>{...}</tool_call>")
    if "<answer>" in text:
        raise ToolCallError("unclosed <answer>: expected <answer>TEXT</answer>")
    stripped = text.strip()
    if stripped.startswith("{"):
        return _from_json(stripped, ("tool", "name"), ("args", "arguments"))
    if not stripped:
        raise ToolCallError(f"empty action; expected {_FORMS}")
    raise ToolCallError(f"expected {_FORMS}; got {_snippet(stripped)}")


def parse_box(value: Any, name: str = "box") -> Box:
    """Validate a normalised box argument ``[x0, y0, x1, y1]`` with ``0 <= x0 < x1 <= 1`` (same for y)."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ToolCallError(f"{name} must be a list of 4 numbers [x0, y0, x1, y1] in [0, 1]; got {_snippet(repr(value))}")
    coords: list[float] = []
    for v in value:
        try:
            finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ToolCallError(f"{name} must hold 4 finite numbers in [0, 1]; got {_snippet(repr(value))}")
        coords.append(float(v))
    x0, y0, x1, y1 = coords
    if min(coords) < 0.0 or max(coords) > 1.0:
        raise ToolCallError(f"{name} {coords} is outside [0, 1]: coordinates are normalised to the original image")
    if not (x0 < x1 and y0 < y1):
        raise ToolCallError(f"{name} {coords} is empty: need x0 < x1 and y0 < y1")
    return (x0, y0, x1, y1)
