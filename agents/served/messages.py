"""The pieces of an OpenAI-style chat for the served agent: images as PNG data URLs, the tools as function
specs (the same tool texts as the ``vlm:`` agent), the system prompt for servers without function calling,
the assistant message trimmed to what the API takes back, and the env action it stands for.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from iapo_gym.tools import get_tool

from ..vlm.prompt import clean, tool_definitions

log = logging.getLogger("iapo_gym.served")

TEXT_FORMS = (
    '<tool_call>{"name": NAME, "arguments": {...}}</tool_call>',
    '{"tool": NAME, "args": {...}}',
    "<answer>ANSWER</answer>",
)
"""The text forms of an action the envs accept (:func:`iapo_gym.toolcall.parse_tool_call`)."""


def png_data_url(image: np.ndarray) -> str:
    """``image`` (uint8, ``HxWx3`` RGB) as a ``data:image/png;base64,...`` URL.

    Raises:
        ValueError: not a uint8 ``HxWx3`` array.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image must be a uint8 HxWx3 RGB array; got dtype {arr.dtype}, shape {arr.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"image of shape {arr.shape} could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def image_part(image: np.ndarray) -> dict[str, Any]:
    """An ``image_url`` content part holding ``image`` as a PNG data URL."""
    return {"type": "image_url", "image_url": {"url": png_data_url(image)}}


def function_specs(tools: Sequence[str], parameters: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The tools as OpenAI-style function specs (``{"type": "function", "function": {...}}``).

    The same definitions the ``vlm:`` agent renders (:func:`iapo_gym.agents.vlm.prompt.tool_definitions`,
    needs ``transformers``); without ``transformers``, the registered descriptions and JSON schemas as they
    are. ``parameters`` gives some tools an item's own schema (``info["tools"]`` of ``RealVQA-v0``).
    """
    try:
        return tool_definitions(tuple(tools), parameters)
    except ImportError as exc:
        log.warning("tool definitions from the tool registry as they are (%s; the vlm: agent's need transformers)", exc)
    given = parameters or {}
    out = []
    for name in tools:
        tool = get_tool(name)
        out.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": " ".join(tool.description.split()),
                    "parameters": dict(given.get(name, tool.parameters)),
                },
            }
        )
    return out


def text_system(system: str, functions: Sequence[Mapping[str, Any]]) -> str:
    """The system prompt for a server without function calling: the instructions, then the tools' JSON
    schemas and the accepted text forms of an action."""
    lines = [system, "", "# Tools", "", "You may call one of these tools (JSON schemas):", "<tools>"]
    lines += [json.dumps(f.get("function", f), ensure_ascii=False) for f in functions]
    lines += ["</tools>", "", "Reply with exactly one action, in one of these forms:"]
    lines += [f"- {form}" for form in TEXT_FORMS]
    return "\n".join(lines)


def first_message(system: str, image: np.ndarray, question: str) -> list[dict[str, Any]]:
    """The start of an episode's chat: the system message, then the glance and the question."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": [image_part(image), {"type": "text", "text": clean(question)}]},
    ]


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def assistant_message(message: Mapping[str, Any], turn: int) -> dict[str, Any]:
    """The assistant message to send back in later requests: the server's ``content`` and ``tool_calls``
    (each with an ``id``: ``call_<turn>_<i>`` where the server gave none; ``arguments`` as a JSON string, as
    the API takes it), without the fields only a response carries (``reasoning_content``, ``refusal``...).

    Its text never spells a special token (``<|image_pad|>`` written back would make the server count one
    image more than it is given): ``<|`` becomes ``< |``, as in the ``vlm:`` agent's chat
    (:func:`~iapo_gym.agents.vlm.prompt.clean`). The env still gets the text as the model wrote it."""
    content = message.get("content")
    out: dict[str, Any] = {"role": "assistant", "content": None if content is None else clean(content_text(content))}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        norm = []
        for i, call in enumerate(calls):
            call = call if isinstance(call, dict) else {}
            fn = call.get("function")
            fn = fn if isinstance(fn, dict) else {}
            args = fn.get("arguments")
            if args is None:
                args = "{}"
            elif not isinstance(args, str):  # a server that returns the arguments as an object
                args = json.dumps(args, ensure_ascii=False)
            norm.append(
                {
                    "id": str(call.get("id") or f"call_{turn}_{i}"),
                    "type": "function",
                    "function": {"name": clean(str(fn.get("name") or "")), "arguments": clean(args)},
                }
            )
        out["tool_calls"] = norm
    elif out["content"] is None:
        out["content"] = ""
    return out


def action_of(message: Mapping[str, Any]) -> str:
    """The env action an assistant message (the server's, or from :func:`assistant_message`) stands for.

    Its first tool call becomes ``{"tool": NAME, "args": ARGUMENTS}`` (JSON); arguments that are not a JSON
    object are passed on as ``<tool_call>{"name": NAME, "arguments": RAW}</tool_call>``, so the env answers
    with an error that says what is wrong. A reply without tool calls is its text, as is (the env parses
    ``<answer>..</answer>``, ``<tool_call>..</tool_call>`` and JSON; anything else is an invalid call).
    """
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not calls:
        return content_text(message.get("content"))
    call = calls[0] if isinstance(calls[0], dict) else {}
    fn = call.get("function")
    fn = fn if isinstance(fn, dict) else {}
    name = str(fn.get("name") or "")
    raw = fn.get("arguments")
    if raw is None or isinstance(raw, dict):
        args: Any = raw or {}
    else:
        raw = str(raw).strip()
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            args = None
    if isinstance(args, dict):
        return json.dumps({"tool": name, "args": args}, ensure_ascii=False)
    return f'<tool_call>{{"name": {json.dumps(name)}, "arguments": {raw}}}</tool_call>'


__all__ = [
    "TEXT_FORMS",
    "action_of",
    "assistant_message",
    "content_text",
    "first_message",
    "function_specs",
    "image_part",
    "png_data_url",
    "text_system",
]
