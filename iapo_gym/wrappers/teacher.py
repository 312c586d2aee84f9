"""``TeacherAttributionWrapper``: teacher attribution in ``info`` and a dense, attribution-shaped reward term."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..attribution import Attribution, cells_of_box, layout_for_observation
from ..scene import Box, box_area
from ..teachers import make_teacher
from ..toolcall import ToolCallError, parse_box, parse_tool_call
from ..tools.builtin import FOCUS_AXES


class TeacherAttributionWrapper(gym.Wrapper[dict[str, Any], str, dict[str, Any], str], gym.utils.RecordConstructorArgs):
    """Adds the teacher's attribution of every decision and a dense reward term for looking where it looks.

    ``info["teacher_attribution"]`` (an :class:`~iapo_gym.attribution.Attribution`; ``.blocks()`` pools it)
    is the teacher's attribution for the decision to be taken at the returned observation.

    ``info["reward_terms"]["teacher"]``: for a ``zoom``/``ocr`` call (any tool with a ``box``) or a ``focus``
    call, ``coef * (covered - area_penalty * area)``: the share of the teacher's image mass inside the chosen
    region (a region inside a cell counts that cell's whole mass), minus its area (so showing the whole
    image earns nothing). In [-coef, coef]; 0 for ``answer``
    and for invalid calls. With ``potential=True`` the term is potential-based instead (Ng et al. 1999):
    ``gamma * phi(s') - phi(s)`` with ``phi`` = that value for the current view (0 at the start and after
    the episode ends), which leaves the optimal policy unchanged.

    Args:
        env: a VisualToolVQA env.
        teacher: a teacher spec (``"oracle"``, ``"model:PATH"``, ``"vlm:PATH"``, ``"module:Class"``).
        grid: image cells per side of the layout.
        coef, area_penalty, potential, gamma: the shaped term (see above).
        query_length, output_length: token slots of the layout (match the student's).
    """

    def __init__(
        self,
        env: gym.Env[dict[str, Any], str],
        teacher: str = "oracle",
        grid: int = 16,
        coef: float = 0.1,
        area_penalty: float = 1.0,
        potential: bool = False,
        gamma: float = 1.0,
        query_length: int = 32,
        output_length: int = 48,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, teacher=teacher, grid=grid, coef=coef, area_penalty=area_penalty, potential=potential,
            gamma=gamma, query_length=query_length, output_length=output_length,
        )
        gym.Wrapper.__init__(self, env)
        if not coef >= 0:
            raise ValueError(f"coef must be >= 0; got {coef!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1]; got {gamma!r}")
        self.teacher = make_teacher(teacher)
        self.grid, self.coef, self.area_penalty = grid, float(coef), float(area_penalty)
        self.potential, self.gamma = bool(potential), float(gamma)
        self.query_length, self.output_length = query_length, output_length
        self._attribution: Attribution | None = None
        self._phi = 0.0

    def _attribute(self, obs: dict[str, Any], info: dict[str, Any]) -> Attribution:
        layout = layout_for_observation(obs, self.grid, self.query_length, self.output_length)
        return self.teacher.attribute(obs, info, layout)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._attribution = self._attribute(obs, info)
        self._phi = 0.0
        info["teacher_attribution"] = self._attribution
        info["reward_terms"] = {**info.get("reward_terms", {}), "teacher": 0.0}
        return obs, info

    def region(self, action: str, info: dict[str, Any]) -> list[Box]:
        """The image regions a tool call chose (empty for answers, invalid calls and tools without one)."""
        try:
            call = parse_tool_call(action)
            if "box" in call.args:
                return [parse_box(call.args["box"])]
            if call.name == "focus" and call.args.get("axis") in FOCUS_AXES:
                kind, labels = FOCUS_AXES[call.args["axis"]], {str(x).lower() for x in call.args.get("labels", [])}
                return [r.box for r in info["scene"].layout if r.kind == kind and r.label.lower() in labels]
        except (ToolCallError, TypeError, AttributeError):
            pass
        return []

    def value(self, boxes: list[Box], attribution: Attribution) -> float:
        """Teacher image mass inside ``boxes`` minus ``area_penalty`` times their area, in [-1, 1]."""
        mass = np.asarray(attribution.block("image"), dtype=np.float64)
        if not boxes or mass.sum() <= 0:
            return 0.0
        # a box inside a cell sees all of that cell's mass (the mass has no position finer than its cell)
        cell_area = 1.0 / self.grid**2
        cover = np.clip(sum(cells_of_box(b, self.grid) * max(1.0, cell_area / max(box_area(b), 1e-12)) for b in boxes), 0.0, 1.0)
        covered = float((mass * cover).sum() / mass.sum())
        area = min(1.0, sum(box_area(b) for b in boxes))
        return float(np.clip(covered - self.area_penalty * area, -1.0, 1.0))

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._attribution is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        value = 0.0 if info.get("error") else self.value(self.region(action, info), self._attribution)
        if self.potential:
            phi_next = 0.0 if terminated or truncated else (value if self.region(action, info) else self._phi)
            term = self.coef * (self.gamma * phi_next - self._phi)
            self._phi = phi_next
        else:
            term = self.coef * value
        info["reward_terms"] = {**info.get("reward_terms", {}), "teacher": term}
        self._attribution = self._attribute(obs, info)
        info["teacher_attribution"] = self._attribution
        return obs, float(reward) + term, terminated, truncated, info
