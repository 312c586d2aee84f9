"""The chat a VLM agent sees: a system message with the instructions, the glance image and the question,
then one assistant turn per earlier tool call and a tool message with what the tool returned (its crop
and/or text).

The chat is rendered by the model family's own chat template with the tools
(:mod:`iapo_gym.agents.vlm.chat`): the same text TRL renders in training, so a checkpoint is benchmarked with
the chat it was trained on. :class:`Dialogue` keeps the parts apart (glance, question, turns), so every
token of the encoded prompt can be told which attribution block it belongs to (``context``, ``tool_defs``,
``query``, ``tool_outputs``, ``image``; see :meth:`iapo_gym.agents.vlm.model.VLM.encode`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from iapo_gym.tools import BUILTIN_TOOLS

FULL_BOX = (0.0, 0.0, 1.0, 1.0)

DEFAULT_SYSTEM = (
    "You answer questions about an image. The image you first see is small; details may be unreadable. "
    "Call a tool to look closer: boxes are [x0, y0, x1, y1] normalised to [0, 1] in coordinates of the "
    "original image. Each tool call costs one unit of budget. When you know the answer, reply "
    "<answer>ANSWER</answer> with a short answer (a number, a word or a label)."
)
"""The default instructions (the ``context`` block, together with the tool-calling boilerplate)."""

_SPECIAL = re.compile(r"<\|")


def clean(text: str) -> str:
    """Free text (questions, tool outputs, earlier actions) never spells a special token such as
    ``<|image_pad|>`` (which would break the image count): ``<|`` becomes ``< |``."""
    return _SPECIAL.sub("< |", text)


def tool_definitions(
    tools: Sequence[str] = BUILTIN_TOOLS, parameters: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The chat tool definitions of the named registered tools (as TRL renders an environment's tool methods:
    :func:`~iapo_gym.agents.vlm.chat.tool_schemas`), with an item's own schemas where ``parameters`` has them."""
    from .chat import tool_schemas

    return tool_schemas(tools, parameters)


@dataclass
class Turn:
    """One earlier decision and what came back.

    ``action`` is the agent's text (``None``: not known, e.g. a teacher rebuilding a context from a bare
    observation; then no assistant message is shown). ``text`` is the tool output (or the env's error
    message); ``image`` the crop the tool returned (``None`` if it returned none), showing ``view_box`` of
    the original image; ``tool`` the name of the tool called (``None``: not a valid call).
    """

    action: str | None
    text: str = ""
    image: np.ndarray | None = None
    view_box: tuple[float, float, float, float] = FULL_BOX
    tool: str | None = None


@dataclass
class Dialogue:
    """Everything a VLM decision is conditioned on (the agent's state for one episode).

    Args:
        image: the glance (the observation's ``image``: the whole original image letterboxed into a square).
        question: the question.
        turns: earlier decisions and their results, oldest first.
        tools: names of the tools offered (their definitions go into the chat template's tool list).
        system: the instructions text (the system message).
        source_hw: ``(height, width)`` of the original image in pixels (for mapping views onto image cells;
            ``None``: assume a square image).
        tool_specs: the item's own JSON schemas of some tools (``info["tools"]`` of an env that narrows them
            per item, e.g. ``RealVQA-v0`` listing a chart's labels), shown instead of the registered ones.
    """

    image: np.ndarray
    question: str
    turns: list[Turn] = field(default_factory=list)
    tools: tuple[str, ...] = BUILTIN_TOOLS
    system: str = DEFAULT_SYSTEM
    source_hw: tuple[int, int] | None = None
    tool_specs: Mapping[str, Mapping[str, Any]] | None = None

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


def chat_messages(dialogue: Dialogue, images: str = "placeholder") -> list[dict[str, Any]]:
    """The dialogue as chat messages for the model's own template (``apply_chat_template(..., tools=...)``).

    System: the instructions. User: the glance and the question. Per earlier turn: the agent's raw text as
    the assistant message (what it generated, so the chat re-renders its own tokens), then a ``tool`` message
    with the crop (when the call returned one) and the tool's text or the env's error message. This is the
    shape TRL builds in training from an environment's tool results, so both render the same.

    ``images="placeholder"`` puts ``{"type": "image"}`` entries (the images come from
    :meth:`Dialogue.images`); ``"pil"`` puts ``{"type": "image", "image": PIL.Image}``.
    """

    def image(arr: np.ndarray) -> dict[str, Any]:
        if images == "pil":
            from PIL import Image

            return {"type": "image", "image": Image.fromarray(np.ascontiguousarray(arr))}
        return {"type": "image"}

    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": clean(dialogue.system)}]},
        {"role": "user", "content": [image(dialogue.image), {"type": "text", "text": clean(dialogue.question)}]},
    ]
    for turn in dialogue.turns:
        if turn.action is not None:
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": clean(turn.action)}]})
        content: list[dict[str, Any]] = []
        if turn.image is not None:
            content.append(image(turn.image))
        content.append({"type": "text", "text": clean(turn.text)})
        msgs.append({"role": "tool", "name": turn.tool or "tool", "content": content})
    return msgs


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
    obs: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
    *,
    tools: Sequence[str] = BUILTIN_TOOLS,
    system: str = DEFAULT_SYSTEM,
) -> Dialogue:
    """A one-step dialogue from a bare observation (no history): the glance and the question, and when the
    observation carries a tool result (a crop or a tool output), one turn with it (its action unknown)."""
    offered = info.get("tools") if info else None
    specs = {k: dict(v) for k, v in offered.items()} if isinstance(offered, Mapping) else None
    d = Dialogue(
        np.asarray(obs["image"]),
        str(obs["question"]),
        [],
        tuple(specs) if specs else tuple(tools),
        system,
        source_hw_of(info),
        specs,
    )
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
            self.dialogue is None
            or self._pending is None
            or (self._last_budget is not None and budget >= self._last_budget)
            or str(obs["question"]) != self.dialogue.question
        )
        crop = np.asarray(obs.get("crop"))
        box = _box(obs.get("view_box", np.zeros(4)))
        if new_episode:
            tools, specs = self.tools, None
            offered = info.get("tools") if info else None
            if isinstance(offered, Mapping):  # the env offers this item's own tools (and schemas)
                tools, specs = tuple(offered), {k: dict(v) for k, v in offered.items()}
            self.dialogue = Dialogue(
                np.asarray(obs["image"]).copy(), str(obs["question"]), [], tools, self.system, source_hw_of(info), specs
            )
        else:
            assert self.dialogue is not None
            error = bool(info.get("error")) if info else str(obs.get("tool_output", "")).startswith("error:")
            changed = self._last_crop is None or not np.array_equal(crop, self._last_crop) or box != self._last_box
            show = (not error) and changed and box[2] > box[0] and box[3] > box[1] and crop.any()
            self.dialogue.turns.append(
                Turn(
                    self._pending,
                    str(obs.get("tool_output", "") or ""),
                    crop.copy() if show else None,
                    box,
                    None if error or not info else info.get("tool"),
                )
            )
        self._pending = None
        self._last_crop, self._last_box, self._last_budget = crop.copy(), box, budget
        return self.dialogue

    def record(self, action: str) -> None:
        """The action taken for the dialogue last returned by :meth:`observe`."""
        self._pending = action
