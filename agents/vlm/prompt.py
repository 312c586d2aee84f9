"""The chat a VLM agent sees: system prompt with the tool definitions, the glance image and the question,
then one turn per earlier tool call with what the tool returned (its crop and/or text).

The chat is kept as a list of typed :class:`Segment` s rather than one string, so every token of the
encoded prompt knows which attribution block it belongs to (``context``, ``tool_defs``, ``query``,
``tool_outputs``, ``image``) and, for images, which view of the original image it shows. The text follows
Qwen2.5's ChatML conventions (``<|im_start|>role ... <|im_end|>``, tools in ``<tools></tools>``, calls in
``<tool_call></tool_call>``, results in ``<tool_response></tool_response>``), which is what Qwen2.5-VL
checkpoints were trained on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from iapo_gym.tools import BUILTIN_TOOLS, get_tool

FULL_BOX = (0.0, 0.0, 1.0, 1.0)

DEFAULT_SYSTEM = (
    "You answer questions about an image. The image you first see is small; details may be unreadable. "
    "Call a tool to look closer: boxes are [x0, y0, x1, y1] normalised to [0, 1] in coordinates of the "
    "original image. Each tool call costs one unit of budget. When you know the answer, reply "
    "<answer>ANSWER</answer> with a short answer (a number, a word or a label)."
)
"""The default instructions (the ``context`` block, together with the tool-calling boilerplate)."""

TOOLS_INTRO = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)

_SPECIAL = re.compile(r"<\|")


def clean(text: str) -> str:
    """Free text (questions, tool outputs, earlier actions) never spells a special token such as
    ``<|image_pad|>`` (which would break the image count): ``<|`` becomes ``< |``."""
    return _SPECIAL.sub("< |", text)


#: Block names a segment can carry; ``chat`` is template scaffolding (role markers, earlier actions),
#: counted in the ``context`` block's last component.
SEGMENT_KINDS = ("context", "tool_defs", "query", "tool_outputs", "chat", "image")


def tool_definitions(tools: Sequence[str] = BUILTIN_TOOLS) -> list[dict[str, Any]]:
    """The OpenAI/Qwen-style function definitions of the named registered tools (their JSON schemas)."""
    out = []
    for name in tools:
        t = get_tool(name)
        out.append({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": dict(t.parameters)}})
    return out


@dataclass
class Turn:
    """One earlier decision and what came back.

    ``action`` is the agent's text (``None``: not known, e.g. a teacher rebuilding a context from a bare
    observation; then no assistant message is shown). ``text`` is the tool output (or the env's error
    message); ``image`` the crop the tool returned (``None`` if it returned none), showing ``view_box`` of
    the original image.
    """

    action: str | None
    text: str = ""
    image: np.ndarray | None = None
    view_box: tuple[float, float, float, float] = FULL_BOX


@dataclass
class Dialogue:
    """Everything a VLM decision is conditioned on (the agent's state for one episode).

    Args:
        image: the glance (the observation's ``image``: the whole original image letterboxed into a square).
        question: the question.
        turns: earlier decisions and their results, oldest first.
        tools: names of the tools offered (their definitions go into the system prompt).
        system: the instructions text.
        source_hw: ``(height, width)`` of the original image in pixels (for mapping views onto image cells;
            ``None``: assume a square image).
    """

    image: np.ndarray
    question: str
    turns: list[Turn] = field(default_factory=list)
    tools: tuple[str, ...] = BUILTIN_TOOLS
    system: str = DEFAULT_SYSTEM
    source_hw: tuple[int, int] | None = None

    def copy(self) -> Dialogue:
        return replace(self, turns=list(self.turns))

    def images(self) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
        """Every image in the chat, in order, with the box of the original image it shows."""
        out = [(self.image, FULL_BOX)]
        out += [(t.image, t.view_box) for t in self.turns if t.image is not None]
        return out

    def hw(self) -> tuple[int, int]:
        if self.source_hw is not None:
            return (int(self.source_hw[0]), int(self.source_hw[1]))
        return (int(self.image.shape[0]), int(self.image.shape[1]))


@dataclass(frozen=True)
class Segment:
    """A run of the prompt: text of one block, or one image (``image`` set, ``text`` empty)."""

    kind: str
    text: str = ""
    image: np.ndarray | None = None
    view_box: tuple[float, float, float, float] = FULL_BOX


def system_texts(dialogue: Dialogue) -> tuple[str, str]:
    """``(context_text, tool_defs_text)``: the words of the two system-prompt blocks."""
    defs = "\n".join(json.dumps(d, separators=(", ", ": ")) for d in tool_definitions(dialogue.tools))
    return dialogue.system + TOOLS_INTRO + TOOLS_OUTRO, defs


def segments(dialogue: Dialogue, action: str | None = None) -> list[Segment]:
    """The prompt (ending with the assistant header, ready to generate) as typed segments.

    With ``action``, the action text is appended as a last ``action`` segment (teacher forcing); its
    tokens are what log-probabilities and attributions are computed for.
    """
    _, defs = system_texts(dialogue)
    segs = [
        Segment("chat", "<|im_start|>system\n"),
        Segment("context", dialogue.system + TOOLS_INTRO),
        Segment("tool_defs", defs),
        Segment("context", TOOLS_OUTRO),
        Segment("chat", "<|im_end|>\n<|im_start|>user\n"),
        Segment("image", image=dialogue.image, view_box=FULL_BOX),
        Segment("query", dialogue.question),
        Segment("chat", "<|im_end|>\n"),
    ]
    for turn in dialogue.turns:
        if turn.action is not None:
            segs.append(Segment("chat", f"<|im_start|>assistant\n{clean(turn.action)}<|im_end|>\n"))
        segs.append(Segment("chat", "<|im_start|>user\n<tool_response>\n"))
        if turn.image is not None:
            segs.append(Segment("image", image=turn.image, view_box=tuple(turn.view_box)))  # type: ignore[arg-type]
        if turn.text:
            segs.append(Segment("tool_outputs", turn.text))
        segs.append(Segment("chat", "\n</tool_response><|im_end|>\n"))
    segs.append(Segment("chat", "<|im_start|>assistant\n"))
    if action is not None:
        segs.append(Segment("action", action))
    return segs


def _box(value: Any) -> tuple[float, float, float, float]:
    b = np.asarray(value, dtype=np.float64).reshape(-1)
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def source_hw_of(info: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """The original image's ``(height, width)`` from an env info (``info["scene"].image``), if present.

    Only the geometry is read (needed to map letterboxed views onto original-image cells).
    """
    if not info:
        return None
    if "image_hw" in info:
        h, w = info["image_hw"]
        return (int(h), int(w))
    scene = info.get("scene")
    image = getattr(scene, "image", None)
    if image is not None:
        return (int(image.shape[0]), int(image.shape[1]))
    return None


def dialogue_from_observation(
    obs: Mapping[str, Any], info: Mapping[str, Any] | None = None, *,
    tools: Sequence[str] = BUILTIN_TOOLS, system: str = DEFAULT_SYSTEM,
) -> Dialogue:
    """A one-step dialogue from a bare observation (no history): the glance and the question, and when the
    observation carries a tool result (a crop or a tool output), one turn with it (its action unknown)."""
    d = Dialogue(np.asarray(obs["image"]), str(obs["question"]), [], tuple(tools), system, source_hw_of(info))
    box = _box(obs.get("view_box", np.zeros(4)))
    has_crop = box[2] > box[0] and box[3] > box[1] and np.asarray(obs.get("crop", 0)).any()
    text = str(obs.get("tool_output", "") or "")
    if has_crop or text:
        d.turns.append(Turn(None, text, np.asarray(obs["crop"]) if has_crop else None, box))
    return d


class DialogueTracker:
    """Builds an episode's :class:`Dialogue` from the observations an agent is shown.

    ``observe(obs, info)`` returns the dialogue for the current decision: the first observation of an
    episode starts one; each later one adds the result of the previous action (``record(action)``) as a
    turn: its ``tool_output`` text (an error message included) and, when the observation's crop or view
    box changed and the call was not an error, the crop.
    """

    def __init__(self, tools: Sequence[str] = BUILTIN_TOOLS, system: str = DEFAULT_SYSTEM) -> None:
        self.tools, self.system = tuple(tools), system
        self.reset()

    def reset(self) -> None:
        self.dialogue: Dialogue | None = None
        self._pending: str | None = None
        self._last_crop: np.ndarray | None = None
        self._last_box: tuple[float, float, float, float] | None = None
        self._last_budget: int | None = None

    def observe(self, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> Dialogue:
        budget = int(obs.get("budget", 0))
        new_episode = (
            self.dialogue is None or self._pending is None
            or (self._last_budget is not None and budget >= self._last_budget)
            or str(obs["question"]) != self.dialogue.question
        )
        crop = np.asarray(obs.get("crop"))
        box = _box(obs.get("view_box", np.zeros(4)))
        if new_episode:
            self.dialogue = Dialogue(np.asarray(obs["image"]).copy(), str(obs["question"]), [], self.tools,
                                     self.system, source_hw_of(info))
        else:
            assert self.dialogue is not None
            error = bool(info.get("error")) if info else str(obs.get("tool_output", "")).startswith("error:")
            changed = (self._last_crop is None or not np.array_equal(crop, self._last_crop) or box != self._last_box)
            show = (not error) and changed and box[2] > box[0] and box[3] > box[1] and crop.any()
            self.dialogue.turns.append(Turn(self._pending, str(obs.get("tool_output", "") or ""),
                                            crop.copy() if show else None, box))
        self._pending = None
        self._last_crop, self._last_box, self._last_budget = crop.copy(), box, budget
        return self.dialogue

    def record(self, action: str) -> None:
        """The action taken for the dialogue last returned by :meth:`observe`."""
        self._pending = action
