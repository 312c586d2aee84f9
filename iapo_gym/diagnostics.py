"""Per-episode evidence diagnostics: did the agent *look at* the evidence, and did a tool *read* the answer?

Both are computed here, once, from a :class:`~iapo_gym.scene.Scene` and an episode's trajectory (anything
whose ``steps`` have ``boxes`` — the image regions a call chose — and ``output`` — the tool's text), so
the benchmark store, the leaderboard and the learning benchmark report the same numbers.

- **hit**: some zoom/ocr/focus region of a valid call covers at least :data:`HIT_COVER` (half) of the area
  of some evidence box. ``None`` when the scene has no evidence boxes (nothing to hit).
- **read**: some tool output contains an accepted answer, matched the way the env scores answers
  (:func:`iapo_gym.answers.is_correct`: normalised exact match, or the relaxed numeric tolerance) on a
  window of the output's words. ``None`` when no accepted answer is printed anywhere in the scene (a
  computed answer — a difference, a sum, a true/false verdict — cannot be read off the image). On a real
  data set's item (a named scorer, no word list: where the answer is printed is unknown) the windows are
  matched by the set's scorer and every item counts, so the rate is a lower bound of the printed case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .answers import is_correct
from .scene import Box, Scene, box_area, box_intersection
from .scoring import scorer_accepts

HIT_COVER = 0.5
"""The share of an evidence box's area that one chosen region must cover to count as a hit."""


class StepLike(Protocol):
    """What the diagnostics read of one step (:class:`iapo_gym.trajectory.Step` has it)."""

    @property
    def boxes(self) -> Sequence[Box]: ...

    @property
    def output(self) -> str: ...


class TrajectoryLike(Protocol):
    @property
    def steps(self) -> Sequence[StepLike]: ...


def covers(region: Box, evidence: Box, share: float = HIT_COVER) -> bool:
    """True when ``region`` covers at least ``share`` of the area of ``evidence`` (normalised boxes)."""
    area = box_area(evidence)
    return area > 0 and box_intersection(region, evidence) >= share * area - 1e-12  # exactly half counts


def evidence_hit(scene: Scene, trajectory: TrajectoryLike) -> bool | None:
    """Whether a region the agent chose covers half of an evidence box (``None``: the scene has none)."""
    boxes = [r.box for r in scene.evidence if box_area(r.box) > 0]
    if not boxes:
        return None
    return any(covers(region, ev) for step in trajectory.steps for region in step.boxes for ev in boxes)


def _windows(words: Sequence[str], sizes: Iterable[int]) -> Iterable[str]:
    for n in sizes:
        for i in range(len(words) - n + 1):
            yield " ".join(words[i : i + n])


def text_contains_answer(text: str, answers: Sequence[str], relaxed_tolerance: float | None = None) -> bool:
    """True when a run of consecutive words of ``text`` matches an accepted answer as the env scores it."""
    words = str(text).split()
    sizes = sorted({max(1, len(str(a).split())) for a in answers})
    return any(is_correct(w, answers, relaxed_tolerance) for w in _windows(words, sizes))


def evidence_read(scene: Scene, trajectory: TrajectoryLike, relaxed_tolerance: float | None = None) -> bool | None:
    """Whether a tool output contains an accepted answer (``None``: the answer is printed nowhere in the scene).

    ``relaxed_tolerance`` is the env's override of the scene's own tolerance, as the env scores answers.
    """
    if scene.scorer is not None and not scene.texts:
        if not scene.answers:
            return None
        sizes = sorted({max(1, len(str(a).split())) for a in scene.answers})
        return any(
            scorer_accepts(scene.scorer, w, scene.answers, scene.meta.get("context"))
            for step in trajectory.steps
            for w in _windows(str(step.output).split(), sizes)
        )
    tol = relaxed_tolerance if relaxed_tolerance is not None else scene.relaxed_tolerance
    printed = " ".join(t.text for t in scene.texts)
    if not scene.answers or not text_contains_answer(printed, scene.answers, tol):
        return None
    return any(text_contains_answer(step.output, scene.answers, tol) for step in trajectory.steps)


def rate(values: Iterable[bool | None]) -> float | None:
    """The share of ``True`` among the values that are not ``None`` (``None`` when all are)."""
    known = [bool(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


__all__ = ["HIT_COVER", "covers", "evidence_hit", "evidence_read", "rate", "text_contains_answer"]
