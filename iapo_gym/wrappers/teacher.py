"""``TeacherAttributionWrapper``: teacher attribution in ``info`` and a dense, attribution-shaped reward term."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..attribution import Attribution, ComponentLayout, cells_of_box, layout_for_observation
from ..objective import DEFAULT_GRID, OUTPUT_LENGTH, QUERY_LENGTH
from ..scene import Box, box_area
from ..teachers import make_teacher
from ..toolcall import ToolCallError, parse_tool_call
from ..trajectory import chosen_regions


SHAPINGS = ("novel", "potential", "raw")


class TeacherAttributionWrapper(gym.Wrapper[dict[str, Any], str, dict[str, Any], str], gym.utils.RecordConstructorArgs):
    """Adds the teacher's attribution of every decision and a dense reward term for looking where it looks.

    ``info["teacher_attribution"]`` (an :class:`~iapo_gym.attribution.Attribution`; ``.blocks()`` pools it):
    after :meth:`step`, the teacher's attribution of *the action just taken*, teacher-forced on it, in the
    layout of the observation that action was chosen on — what an IAPO learner compares its own
    attribution of that decision with (:mod:`iapo_gym.objective`). After :meth:`reset`, the teacher's
    attribution of the first decision before any action (a preview).

    ``info["reward_terms"]["teacher"]``, for a ``zoom``/``ocr`` call (any tool with a ``box``) or a ``focus``
    call, by ``shaping``:

    - ``"novel"`` (default): ``coef * max(0, new - area_penalty * area)``, where ``new`` is the teacher's
      image mass that the region covers and no earlier region of the episode did. It cannot be farmed:
      repeating a call earns nothing, and an episode earns at most ``coef``.
    - ``"potential"``: potential-based (Ng et al. 1999), ``gamma * phi(s') - phi(s)`` with ``phi`` the
      covered-minus-area value of the current view (0 at the start and after the episode ends): leaves the
      optimal policy unchanged, and sums to zero over a whole episode with ``gamma=1``.
    - ``"raw"``: ``coef * (covered - area_penalty * area)`` for every call (farmable; for ablations).

    A region inside a cell counts that cell's whole mass (the mass has no position finer than its cell).
    0 for ``answer`` and for invalid calls.

    Args:
        env: a VisualToolVQA env.
        teacher: a teacher spec (``"oracle"``, ``"model:PATH"``, ``"vlm:PATH"``, ``"module:Class"``).
        grid: image cells per side of the layout (default: the IAPO objective's).
        coef, area_penalty, shaping, gamma: the shaped term (see above).
        query_length, output_length: token slots of the layout (match the student's).
    """

    def __init__(
        self,
        env: gym.Env[dict[str, Any], str],
        teacher: str = "oracle",
        grid: int = DEFAULT_GRID,
        coef: float = 0.1,
        area_penalty: float = 1.0,
        shaping: str = "novel",
        gamma: float = 1.0,
        query_length: int = QUERY_LENGTH,
        output_length: int = OUTPUT_LENGTH,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            teacher=teacher,
            grid=grid,
            coef=coef,
            area_penalty=area_penalty,
            shaping=shaping,
            gamma=gamma,
            query_length=query_length,
            output_length=output_length,
        )
        gym.Wrapper.__init__(self, env)
        if not coef >= 0:
            raise ValueError(f"coef must be >= 0; got {coef!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1]; got {gamma!r}")
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {', '.join(SHAPINGS)}; got {shaping!r}")
        self.teacher = make_teacher(teacher)
        self.grid, self.coef, self.area_penalty = grid, float(coef), float(area_penalty)
        self.shaping, self.gamma = shaping, float(gamma)
        self.query_length, self.output_length = query_length, output_length
        self._last: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._phi = 0.0
        self._covered = np.zeros(grid * grid)

    def layout(self, obs: dict[str, Any]) -> ComponentLayout:
        """The layout of a decision taken at ``obs`` (labelled with its question and tool-output tokens)."""
        return layout_for_observation(obs, self.grid, self.query_length, self.output_length)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last = (obs, dict(info))
        self._phi = 0.0
        self._covered = np.zeros(self.grid * self.grid)
        info["teacher_attribution"] = self.teacher.attribute(obs, info, self.layout(obs))
        info["reward_terms"] = {**info.get("reward_terms", {}), "teacher": 0.0}
        return obs, info

    def region(self, action: str, info: dict[str, Any]) -> list[Box]:
        """The image regions a tool call chose (empty for answers, invalid calls and tools without one), for an
        env that does not give them in ``info["regions"]`` as :class:`~iapo_gym.envs.ToolVQAEnv` does."""
        try:
            return chosen_regions(parse_tool_call(action), info["scene"])
        except ToolCallError:
            return []

    def cover(self, boxes: list[Box]) -> np.ndarray:
        """Per cell, the share of it that ``boxes`` see (a box inside a cell sees all of it)."""
        cell_area = 1.0 / self.grid**2
        if not boxes:
            return np.zeros(self.grid * self.grid)
        return np.clip(sum(cells_of_box(b, self.grid) * max(1.0, cell_area / max(box_area(b), 1e-12)) for b in boxes), 0.0, 1.0)

    def value(self, boxes: list[Box], attribution: Attribution) -> float:
        """Teacher image mass inside ``boxes`` minus ``area_penalty`` times their area, in [-1, 1]."""
        mass = np.asarray(attribution.block("image"), dtype=np.float64)
        if not boxes or mass.sum() <= 0:
            return 0.0
        covered = float((mass * self.cover(boxes)).sum() / mass.sum())
        area = min(1.0, sum(box_area(b) for b in boxes))
        return float(np.clip(covered - self.area_penalty * area, -1.0, 1.0))

    def _shaped(self, boxes: list[Box], attribution: Attribution, done: bool) -> float:
        if self.shaping == "raw":
            return self.coef * self.value(boxes, attribution)
        if self.shaping == "potential":
            phi_next = 0.0 if done else (self.value(boxes, attribution) if boxes else self._phi)
            term = self.coef * (self.gamma * phi_next - self._phi)
            self._phi = phi_next
            return term
        mass = np.asarray(attribution.block("image"), dtype=np.float64)
        if not boxes or mass.sum() <= 0:
            return 0.0
        cover = self.cover(boxes)
        new = float((mass * np.clip(cover - self._covered, 0.0, None)).sum() / mass.sum())
        self._covered = np.maximum(self._covered, cover)
        area = min(1.0, sum(box_area(b) for b in boxes))
        return self.coef * max(0.0, new - self.area_penalty * area)

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        prev_obs, prev_info = self._last
        obs, reward, terminated, truncated, info = self.env.step(action)
        # the teacher's attribution of this very action (parsed once, by the env), in the layout of the
        # observation it was chosen on
        attribution = self.teacher.attribute(prev_obs, {**prev_info, "call": info.get("call")}, self.layout(prev_obs), action)
        term = 0.0
        if self.coef > 0:  # with coef=0 (attribution only) the shaped term is 0: not computed
            boxes = [] if info.get("error") else list(info["regions"]) if "regions" in info else self.region(action, info)
            term = self._shaped(boxes, attribution, terminated or truncated)
        info["reward_terms"] = {**info.get("reward_terms", {}), "teacher": term}
        info["teacher_attribution"] = attribution
        self._last = (obs, dict(info))
        return obs, float(reward) + term, terminated, truncated, info
