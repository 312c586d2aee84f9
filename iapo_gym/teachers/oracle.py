"""The oracle teacher: attribution from the scene's privileged evidence (an upper bound, not a model)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..attribution import Attribution, ComponentLayout, cells_of_box
from ..scene import Scene
from ..text import tokenize
from ..toolcall import ToolCallError, parse_tool_call

LOOK = {"image": 0.6, "query": 0.4, "tool_outputs": 0.0}
"""Block weights while the evidence has not been read yet: look at the evidence and the words naming it."""
READ = {"image": 0.2, "query": 0.3, "tool_outputs": 0.5}
"""Block weights once the last tool output holds an evidence reading: answer from it."""
LOOK_AT = ("evidence", "locators")
"""Where the looking phase's image mass goes: the evidence boxes, or the scene's locators (see the class)."""


class OracleTeacher:
    """Image mass on the cells of the evidence boxes, query mass on the question's key tokens, tool-output
    mass on the tokens that are evidence readings; blocks weighted by the decision's phase (:data:`LOOK`
    before the evidence is read, :data:`READ` after). Blocks with nothing to point at pass their weight on
    to the others.

    Teacher-forced on the student's ``action``: an *answer* given before any evidence was read gets the
    :data:`READ` weights with the tool-output mass spread over the tool-output slots, which the student can
    only fill by reading first; so an ungrounded answer diverges from the teacher (without this, answering at
    once would be the cheapest way to agree with a teacher that looks at the image and the question, and the
    attribution penalty would drive tool use to zero).

    ``look_at="locators"`` (the spec ``"oracle:locators"``) puts the image mass of the looking phase on what
    a reader looks at to *find* the evidence, where the scene names it (``scene.meta["locators"]``: the
    coloured bar, every bar for "the longest", the category labels the question names), instead of on the
    evidence itself; a scene without locators keeps the evidence. A cue drawn beside the evidence (a
    shortcut marker next to the printed value) then lies outside the teacher's map instead of inside it."""

    def __init__(
        self, look: dict[str, float] | None = None, read: dict[str, float] | None = None, look_at: str = "evidence"
    ) -> None:
        if look_at not in LOOK_AT:
            raise ValueError(f"OracleTeacher look_at must be one of {', '.join(LOOK_AT)}; got {look_at!r}")
        self.look, self.read, self.look_at = dict(look or LOOK), dict(read or READ), look_at

    def parts(self, scene: Scene, layout: ComponentLayout) -> dict[str, np.ndarray]:
        """Per-block raw masses before phase weighting (each block sums to 1, or is all zero)."""
        image = np.zeros(layout.grid * layout.grid)
        for region in scene.evidence:
            image += cells_of_box(region.box, layout.grid)
        keys = {t for k in scene.key_tokens for t in tokenize(k)}
        values = {t for r in scene.evidence for t in tokenize(r.value)}
        query = np.array(
            [t in keys for t in layout.query_tokens] + [False] * (layout.query_length - len(layout.query_tokens)), float
        )
        output = np.array(
            [t in values for t in layout.output_tokens] + [False] * (layout.output_length - len(layout.output_tokens)), float
        )
        return {
            name: v / v.sum() if v.sum() > 0 else v for name, v in (("image", image), ("query", query), ("tool_outputs", output))
        }

    def attribute(
        self, observation: dict[str, Any], info: dict[str, Any], layout: ComponentLayout, action: str | None = None
    ) -> Attribution:
        parts = self.parts(info["scene"], layout)
        read = bool(parts["tool_outputs"].any())
        if not read and action is not None and _is_answer(action, info) and layout.output_length:
            parts["tool_outputs"] = np.full(layout.output_length, 1.0 / layout.output_length)
            read = True
        locators = info["scene"].meta.get("locators")
        if not read and self.look_at == "locators" and locators:
            image = np.sum([cells_of_box(box, layout.grid) for box in locators], axis=0)
            parts["image"] = image / image.sum() if image.sum() > 0 else parts["image"]
        weights = self.read if read else self.look
        scored = {name: weights.get(name, 0.0) * v for name, v in parts.items()}
        if not any(v.any() for v in scored.values()):  # no evidence at all (a data set without boxes)
            return Attribution.from_parts(layout, parts, allow_uniform=True)
        return Attribution.from_parts(layout, scored)


def _is_answer(action: str, info: dict[str, Any]) -> bool:
    """Whether ``action`` answers: from ``info["call"]`` when the env parsed it already, else parsed here."""
    if "call" in info:
        return info["call"] is not None and info["call"].name == "answer"
    try:
        return parse_tool_call(action).name == "answer"
    except ToolCallError:
        return False
