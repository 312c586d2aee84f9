"""Episode trajectories: what an agent sent at each step, what it got back, and (when it can attribute its
decisions) where it looked beside where its teacher looked.

:class:`TrajectoryRecorder` wraps an env and records a :class:`Trajectory` as the episode is played, by
any loop (the benchmark runner's, :func:`record_episode`'s). A trajectory is plain data (JSON-safe via
:meth:`Trajectory.to_dict`), so the results store keeps it and the episode can be drawn later without the
agent: :func:`replay` re-plays the stored actions in a fresh env to get the scene and the crops back
(scenes are a pure function of their id; tools of the call and the scene).

Attribution per decision is kept at image-cell granularity plus the block split (image / question / tool
output), for the agent (through its one ``attribute(observation, info, action) -> Attribution`` method)
and for the teacher (``info["teacher_attribution"]`` of a :class:`~iapo_gym.wrappers.TeacherAttributionWrapper`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from .attribution import Attribution
from .attribution.metrics import divergence as metric
from .diagnostics import evidence_hit, evidence_read
from .scene import Box, Scene, as_box
from .toolcall import ToolCall, ToolCallError, parse_box, parse_tool_call
from .tools.builtin import FOCUS_AXES

MAX_OUTPUT_CHARS = 512
"""Tool outputs are cut to this many characters in a trajectory (the built-in envs' own limit)."""
ROUND = 5
"""Decimals kept of attribution masses (enough to draw and compare; keeps the store small)."""

Attributor = Callable[[dict[str, Any], dict[str, Any], str], Attribution]
"""``attribute(observation, info, action) -> Attribution``: the agent's attribution of one decision."""


def cut(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking a cut."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chosen_regions(call: ToolCall | None, scene: Scene) -> list[Box]:
    """The image regions a parsed call chose: its ``box`` argument, or the layout regions a ``focus`` names.

    Empty for ``answer``, for calls without a region and for arguments that do not validate.
    """
    if call is None:
        return []
    try:
        if "box" in call.args:
            return [parse_box(call.args["box"])]
        if call.name == "focus" and call.args.get("axis") in FOCUS_AXES:
            kind = FOCUS_AXES[call.args["axis"]]
            labels = call.args.get("labels", [])
            wanted = {str(x).lower() for x in ([labels] if isinstance(labels, str) else labels)}
            return [r.box for r in scene.layout if r.kind == kind and r.label.lower() in wanted]
    except (ToolCallError, TypeError):
        pass
    return []


ALIGNMENT_OVER = ("blocks", "image")
"""What :meth:`Trajectory.alignment` compares: the block masses, or the image cells."""


@dataclass(frozen=True)
class DecisionAttribution:
    """One decision's attribution as kept in a trajectory: the image cells and the block masses.

    ``image`` holds ``grid * grid`` masses, row-major over the original image; they sum to
    ``blocks["image"]`` (the whole attribution sums to 1 over ``blocks``).
    """

    grid: int
    image: tuple[float, ...]
    blocks: dict[str, float] = field(hash=False)

    @classmethod
    def of(cls, attribution: Attribution) -> DecisionAttribution:
        grid = int(attribution.layout.grid)
        image = tuple(round(float(v), ROUND) for v in attribution.block("image"))
        return cls(grid, image, {k: round(float(v), ROUND) for k, v in attribution.blocks().items()})

    def cells(self) -> np.ndarray:
        """The image masses as a ``(grid, grid)`` array (row ``r`` from the top)."""
        return np.asarray(self.image, dtype=np.float64).reshape(self.grid, self.grid)

    def to_dict(self) -> dict[str, Any]:
        return {"grid": self.grid, "image": list(self.image), "blocks": dict(self.blocks)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionAttribution:
        grid, image = int(data["grid"]), tuple(float(v) for v in data["image"])
        if len(image) != grid * grid:
            raise ValueError(f"attribution has {len(image)} image cells; a {grid}x{grid} grid needs {grid * grid}")
        return cls(grid, image, {str(k): float(v) for k, v in data["blocks"].items()})


@dataclass(frozen=True)
class Step:
    """One step: the action string, how it parsed, what it chose and returned, its reward terms."""

    action: str
    tool: str | None
    """The tool the action named (also for an invalid call to it); ``None`` when it did not parse."""
    args: dict[str, Any] = field(hash=False)
    boxes: tuple[Box, ...]
    """The image regions the call chose (a zoom/ocr box, the rows/bars a focus names); empty otherwise."""
    output: str
    """The tool's text output (or the error message), cut to :data:`MAX_OUTPUT_CHARS`."""
    error: str | None
    reward_terms: dict[str, float] = field(hash=False)
    view_box: Box | None = None
    """The box of the crop this step returned, when it returned one (``None``: no new crop)."""
    agent_attribution: DecisionAttribution | None = None
    teacher_attribution: DecisionAttribution | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "tool": self.tool,
            "args": self.args,
            "boxes": [list(b) for b in self.boxes],
            "output": self.output,
            "error": self.error,
            "reward_terms": self.reward_terms,
            "view_box": None if self.view_box is None else list(self.view_box),
            "agent_attribution": None if self.agent_attribution is None else self.agent_attribution.to_dict(),
            "teacher_attribution": None if self.teacher_attribution is None else self.teacher_attribution.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        def box(b: Any) -> Box:
            return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

        def attr(a: Any) -> DecisionAttribution | None:
            return None if a is None else DecisionAttribution.from_dict(a)

        return cls(
            str(d["action"]),
            d.get("tool"),
            dict(d.get("args") or {}),
            tuple(box(b) for b in d.get("boxes", [])),
            str(d.get("output", "")),
            d.get("error"),
            {str(k): float(v) for k, v in (d.get("reward_terms") or {}).items()},
            None if d.get("view_box") is None else box(d["view_box"]),
            attr(d.get("agent_attribution")),
            attr(d.get("teacher_attribution")),
        )


@dataclass(frozen=True)
class Trajectory:
    """One episode as played: the question, every step, the final answer and how it was scored."""

    family: str
    scene_id: int
    question: str
    answers: tuple[str, ...]
    steps: tuple[Step, ...]
    answer: str | None
    """The final answer the agent gave (the scored one); ``None`` when the budget ran out first."""
    correct: bool
    evidence_hit: bool | None = None
    evidence_read: bool | None = None

    @property
    def has_attribution(self) -> bool:
        return any(s.agent_attribution is not None or s.teacher_attribution is not None for s in self.steps)

    def alignment(self, divergence: str = "kl", over: str = "blocks") -> float | None:
        """The mean divergence between the teacher's and the agent's attribution of each decision that has
        both (lower is closer), over the attribution ``blocks`` or the ``image`` cells; ``None`` when no
        decision has both. One measure for every agent: what the leaderboard's alignment column shows."""
        if over not in ALIGNMENT_OVER:
            raise ValueError(f"alignment over must be one of {', '.join(ALIGNMENT_OVER)}; got {over!r}")
        fn = metric(divergence)
        values = []
        for step in self.steps:
            t, a = step.teacher_attribution, step.agent_attribution
            if t is None or a is None:
                continue
            if over == "blocks":
                names = sorted(set(t.blocks) | set(a.blocks))
                values.append(fn([t.blocks.get(n, 0.0) for n in names], [a.blocks.get(n, 0.0) for n in names]))
            elif t.grid == a.grid and sum(t.image) > 0 and sum(a.image) > 0:
                values.append(fn(list(t.image), list(a.image)))
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "scene_id": self.scene_id,
            "question": self.question,
            "answers": list(self.answers),
            "steps": [s.to_dict() for s in self.steps],
            "answer": self.answer,
            "correct": self.correct,
            "evidence_hit": self.evidence_hit,
            "evidence_read": self.evidence_read,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trajectory:
        return cls(
            str(d["family"]),
            int(d["scene_id"]),
            str(d["question"]),
            tuple(str(a) for a in d["answers"]),
            tuple(Step.from_dict(s) for s in d["steps"]),
            d.get("answer"),
            bool(d["correct"]),
            d.get("evidence_hit"),
            d.get("evidence_read"),
        )


def _parse(action: str) -> ToolCall | None:
    try:
        return parse_tool_call(action)
    except ToolCallError:
        return None


class TrajectoryRecorder(gym.Wrapper[dict[str, Any], str, dict[str, Any], str]):
    """Records each episode played through it; :attr:`trajectory` is the last one, :attr:`crops` its images.

    Args:
        env: a VisualToolVQA env (possibly wrapped, e.g. by the teacher wrapper: its
            ``info["teacher_attribution"]`` after each step, its attribution of the action just taken, is
            recorded for that decision).
        attribute: the agent's ``attribute(observation, info, action) -> Attribution``, called once per
            decision before the action is stepped; ``None`` records no agent attribution.
        keep_crops: keep the crop image of each step that returned one (for drawing; off in benchmarks).
    """

    def __init__(self, env: gym.Env[dict[str, Any], str], attribute: Attributor | None = None, keep_crops: bool = False) -> None:
        super().__init__(env)
        self.attribute = attribute
        self.keep_crops = keep_crops
        self._steps: list[Step] = []
        self.crops: list[np.ndarray | None] = []
        self.scene: Scene | None = None
        self._obs: dict[str, Any] = {}
        self._info: dict[str, Any] = {}
        self._final: tuple[str | None, bool] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs, self._info = obs, info
        self.scene, self.scene_id = info["scene"], int(info["scene_id"])
        self._steps, self.crops, self._final = [], [], None
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        mine = self.attribute(self._obs, self._info, action) if self.attribute is not None else None
        before_crop, before_box = self._obs.get("crop"), self._obs.get("view_box")
        obs, reward, terminated, truncated, info = self.env.step(action)
        teacher = info.get("teacher_attribution")  # the teacher wrapper's attribution of this very action
        call = info["call"] if "call" in info else _parse(action)  # the env's parse, when it gives it
        error = info.get("error")
        new_crop = not error and (
            (call is not None and call.name in ("zoom", "ocr", "focus"))
            or before_box is None
            or not np.array_equal(obs["view_box"], before_box)
            or before_crop is None
            or not np.array_equal(obs["crop"], before_crop)
        )
        view_box = as_box(obs["view_box"]) if new_crop and np.any(obs["view_box"]) else None
        self._steps.append(
            Step(
                action=str(action),
                tool=info.get("tool"),
                args=dict(call.args) if call is not None else {},
                boxes=tuple(info["regions"])
                if "regions" in info
                else tuple(chosen_regions(call, self.scene))
                if not error and call is not None and call.name != "answer"
                else (),
                output=cut(obs["tool_output"]),
                error=error,
                reward_terms={str(k): float(v) for k, v in info.get("reward_terms", {}).items()},
                view_box=view_box,
                agent_attribution=DecisionAttribution.of(mine) if mine is not None else None,
                teacher_attribution=DecisionAttribution.of(teacher) if isinstance(teacher, Attribution) else None,
            )
        )
        if self.keep_crops:
            self.crops.append(obs["crop"].copy() if view_box is not None else None)
        if terminated and not error and call is not None and call.name == "answer":
            self._final = (str(call.args.get("text", "")), bool(info.get("correct", False)))
        elif terminated or truncated:
            self._final = (None, bool(info.get("correct", False)))
        self._obs, self._info = obs, info
        return obs, reward, terminated, truncated, info

    @property
    def trajectory(self) -> Trajectory:
        """The episode recorded since the last reset (finished or not), with its evidence diagnostics."""
        if self.scene is None:
            raise RuntimeError("no episode recorded yet: call reset() and step()")
        answer, correct = self._final or (None, False)
        draft = Trajectory(
            self.scene.family, self.scene_id, self.scene.question, tuple(self.scene.answers), tuple(self._steps), answer, correct
        )
        tol = getattr(self.env.unwrapped, "relaxed_tolerance", None)
        return replace(draft, evidence_hit=evidence_hit(self.scene, draft), evidence_read=evidence_read(self.scene, draft, tol))


@dataclass
class Recording:
    """A recorded episode with what is needed to draw it: the scene and each step's crop (or ``None``)."""

    trajectory: Trajectory
    scene: Scene
    crops: list[np.ndarray | None]


def _play(
    recorder: TrajectoryRecorder,
    act: Callable[[dict[str, Any], dict[str, Any]], str],
    seed: int | None,
    options: dict[str, Any] | None,
    max_steps: int = 1000,
) -> Recording:
    obs, info = recorder.reset(seed=seed, options=options)
    for _ in range(max_steps):
        obs, _, terminated, truncated, info = recorder.step(act(obs, info))
        if terminated or truncated:
            break
    assert recorder.scene is not None
    return Recording(recorder.trajectory, recorder.scene, list(recorder.crops))


def record_episode(
    env: gym.Env[dict[str, Any], str],
    agent: Any,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    *,
    attribution: bool = True,
) -> Recording:
    """Play one episode of ``agent`` (anything with ``act(observation, info)`` and ``reset()``) and record it.

    With ``attribution`` and an agent that has ``attribute(observation, info, action)``, each decision's
    attribution is recorded too (beside the teacher's, when ``env`` is wrapped by the teacher wrapper).
    """
    for name in ("act", "reset"):
        if not callable(getattr(agent, name, None)):
            raise TypeError(f"agent {type(agent).__name__} needs act(observation, info) -> str and reset(); it has no {name}()")
    attribute = getattr(agent, "attribute", None) if attribution else None
    recorder = TrajectoryRecorder(env, attribute=attribute if callable(attribute) else None, keep_crops=True)
    agent.reset()
    return _play(recorder, agent.act, seed, options)


class ReplayMismatch(ValueError):
    """A stored trajectory that does not replay to the same tool outputs (the env changed since it ran)."""


def replay(env: gym.Env[dict[str, Any], str], trajectory: Trajectory) -> Recording:
    """Re-play a stored trajectory's actions in ``env`` (no agent) to get its scene and crops back.

    The returned recording holds the *stored* trajectory (its attributions and diagnostics as recorded).
    Raises :class:`ReplayMismatch` when the env gives other tool outputs than the stored ones, e.g. when
    the env's version or settings differ from the run's: crops drawn then would not be what the agent saw.
    """
    recorder = TrajectoryRecorder(env, keep_crops=True)
    again = _play(
        recorder,
        scripted([s.action for s in trajectory.steps]),
        trajectory.scene_id,
        {"scene_id": trajectory.scene_id},
        max_steps=len(trajectory.steps),
    )
    got, want = again.trajectory, trajectory
    if got.family != want.family or got.question != want.question:
        raise ReplayMismatch(
            f"scene {want.scene_id} of this env is not the stored one: question {got.question!r} here, "
            f"{want.question!r} stored; replay it with the env settings of the run"
        )
    for k, (a, b) in enumerate(zip(got.steps, want.steps)):
        if a.output != b.output or a.boxes != b.boxes:
            raise ReplayMismatch(
                f"step {k + 1} of scene {want.scene_id} replays to {a.output!r}, stored {b.output!r}; "
                f"the env changed since the run, so its crops cannot be redrawn"
            )
    return Recording(trajectory, again.scene, again.crops)


def scripted(actions: Sequence[str]) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    """An ``act`` function that plays ``actions`` in order (for tests and replays)."""
    it = iter(actions)
    return lambda obs, info: next(it)


__all__ = [
    "MAX_OUTPUT_CHARS",
    "Attributor",
    "DecisionAttribution",
    "Recording",
    "ReplayMismatch",
    "Step",
    "Trajectory",
    "TrajectoryRecorder",
    "chosen_regions",
    "cut",
    "record_episode",
    "replay",
    "scripted",
]
