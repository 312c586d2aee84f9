"""The IAPO objective, defined once: how a teacher's and a student's attribution of the same decision become
an alignment term, and how that term enters policy optimisation.

Every track uses this module: the compact group trainer, the TRL integration for VLMs, and the leaderboard's
alignment column (which reports :meth:`IAPOObjective.compare` for each decision, the very number the
trainer optimises).

Pieces, each a field of :class:`IAPOObjective`:

- **which decisions** are attributed (``decisions``): ``"all"``, ``"tools"`` (looking: zoom/OCR/focus) or
  ``"answers"``.
- **granularity**: ``"blocks"`` (pool to image / query / tool outputs, the paper's), ``"components"`` (the
  flat vector of cells and tokens), or ``"within"`` (each block normalised on its own and compared inside,
  weighted by the teacher's block mass: *where* in the image, *which* words, independent of how many
  pixels or token slots a block has; raw block shares mostly measure input resolution, not reliance).
- **divergence**: ``"kl"`` (KL(teacher || student), the paper's), ``"js"`` or ``"cosine"``.
- **form** (how the term enters the update):

  ``"reward"`` (the paper's, as its digest describes it): episode reward ``outcome - lam * mean over the
  episode's decisions of the divergence``, normalised within the GRPO group.

  ``"credit"``: per-decision credit. Each decision's advantage is the group-normalised outcome minus
  ``lam`` times its *own* divergence (scaled into [0, 1] and capped), centred over the group's decisions
  and not std-scaled, so a group whose outcomes tie gets advantages bounded by ``lam``.

  ``"loss"``: a differentiable alignment loss, ``lam * mean(weight * divergence)``, added to the policy
  loss, with the student's attribution built with ``create_graph=True`` so the gradient moves the
  attribution itself ("right for the right reasons", Ross et al. 2017; attribution priors, Erion et al.
  2021). The advantages are the outcome's alone. ``weighting="success"`` applies it on successful
  rollouts only, ``"advantage"`` weights it by the positive part of the advantage, ``"all"`` everywhere,
  ``"signal"`` on successful rollouts of an update whose advantages are not all 0 (no alignment step where
  the outcome has nothing to teach: there GRPO's only gradient is its entropy bonus; measured, it does not
  keep a weak start learning: ``docs/results.md``).

- **outside** (``form="loss"`` only): the weight of an absolute penalty added to each decision's divergence,
  the student's raw (unnormalised) image attribution in the cells where the teacher puts none
  (:meth:`IAPOObjective.outside_mass`) — Ross et al.'s form, a penalty on the input gradients in the
  regions annotated as irrelevant. The normalised divergence can be met by moving attribution mass
  elsewhere while the decision keeps its sensitivity to a cue (``docs/results.md``, "Why"); this term only
  by making the decision insensitive there. Measured (``docs/results.md``): by gradient x input a decision a
  cue makes confident has a saturated gradient, so the penalty sees less of a cue the more it is followed;
  use ``method="integrated_gradients"``. ``pixel_baseline`` is the student's image baseline: with the
  default black one, black ink (text, marks) is an input of zero and gets no attribution of its own.

The term always compares attributions over *inputs*, never the teacher's actions (that would be behaviour
cloning, which every method already gets from the shared warm start).

:data:`PRESETS` holds named settings: ``"paper"`` (the paper's, as far as its digest describes it) and
``"default"`` (the best measured variant, see ``docs/learning/``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .attribution import PIXEL_BASELINES, Attribution, ComponentLayout, divergence
from .text import OUTPUT_LENGTH, QUERY_LENGTH  # the token slots of the default layout (defined with the tokenizer)
from .validation import check_ints

FORMS = ("reward", "credit", "loss")
GRANULARITIES = ("blocks", "components", "within")
DECISIONS = ("all", "tools", "answers")
WEIGHTINGS = ("all", "success", "advantage", "signal")
SCHEDULES = ("constant", "linear")

DEFAULT_GRID = 4
"""Image cells per side of the layout that teacher and student are compared in (trainer, wrapper and
leaderboard alike)."""


def group_advantages(rewards: Tensor, groups: Tensor, eps: float = 1e-6) -> Tensor:
    """GRPO's advantage: ``(r - mean_group) / std_group`` within each group (rollouts of the same
    question); a group whose rewards all tie gets zeros."""
    if rewards.shape != groups.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and groups {tuple(groups.shape)} must have the same shape")
    out = torch.zeros_like(rewards, dtype=torch.float32)
    for g in torch.unique(groups):
        idx = groups == g
        v = rewards[idx].float()
        std = v.std(unbiased=False) if v.numel() > 1 else torch.zeros(())
        out[idx] = (v - v.mean()) / (std + eps) if std > eps else torch.zeros_like(v)
    return out


@dataclass(frozen=True)
class IAPOObjective:
    """One IAPO alignment objective (see the module docstring for every field's meaning).

    Args:
        form: ``"reward"``, ``"credit"`` or ``"loss"``.
        lam: weight of the alignment term (λ).
        divergence: ``"kl"``, ``"js"`` or ``"cosine"``.
        granularity: ``"blocks"``, ``"components"`` or ``"within"``.
        decisions: which decisions carry the term: ``"all"``, ``"tools"`` or ``"answers"``.
        weighting: for ``form="loss"``: ``"all"``, ``"success"``, ``"advantage"`` or ``"signal"``.
        cap: for ``form="credit"``: divergences are divided by ``cap`` (KL) or by their maximum (JS: ln 2,
            cosine: 1) and clipped to [0, 1].
        method: the student's attribution method (``"gradient_x_input"``, ``"integrated_gradients"``, ...).
        steps: integration steps for integrated gradients.
        grid: image cells per side of the comparison layout.
        schedule: ``"constant"`` or ``"linear"`` (λ rises from 0 after the cold start).
        cold_start: fraction of training run as plain GRPO before the term starts.
        outside: for ``form="loss"``: weight of the absolute penalty on the student's image attribution in
            the cells the teacher gives none (:meth:`outside_mass`); 0 (off) by default.
        pixel_baseline: the student's image baseline, ``"black"`` or ``"white"``
            (:data:`~iapo_gym.attribution.PIXEL_BASELINES`).
    """

    form: str = "loss"
    lam: float = 1.0
    divergence: str = "js"
    granularity: str = "within"
    decisions: str = "all"
    weighting: str = "success"
    cap: float = 2.0
    method: str = "gradient_x_input"
    steps: int = 8
    grid: int = DEFAULT_GRID
    schedule: str = "constant"
    cold_start: float = 0.0
    outside: float = 0.0
    pixel_baseline: str = "black"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("form", FORMS),
            ("granularity", GRANULARITIES),
            ("decisions", DECISIONS),
            ("weighting", WEIGHTINGS),
            ("schedule", SCHEDULES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"IAPO {name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        divergence(self.divergence)  # unknown names fail here, listing the known ones
        if not (isinstance(self.lam, (int, float)) and self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"IAPO lam must be a finite number >= 0; got {self.lam!r}")
        if not (isinstance(self.cap, (int, float)) and self.cap > 0):
            raise ValueError(f"IAPO cap must be > 0; got {self.cap!r}")
        if not (isinstance(self.outside, (int, float)) and self.outside >= 0 and math.isfinite(self.outside)):
            raise ValueError(f"IAPO outside must be a finite number >= 0; got {self.outside!r}")
        if self.outside > 0 and self.form != "loss":
            raise ValueError(f"IAPO outside (an absolute attribution penalty) needs form='loss'; got form={self.form!r}")
        if self.pixel_baseline not in PIXEL_BASELINES:
            raise ValueError(f"IAPO pixel_baseline must be one of {', '.join(PIXEL_BASELINES)}; got {self.pixel_baseline!r}")
        if not 0.0 <= self.cold_start <= 1.0:
            raise ValueError(f"IAPO cold_start must be a fraction of training in [0, 1]; got {self.cold_start!r}")
        check_ints(self, ("steps", "grid"), 1)

    # -- configuration -------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> IAPOObjective:
        """A named preset (:data:`PRESETS`) with some fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown IAPO preset {name!r}; known: {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lam_at(self, progress: float) -> float:
        """λ at a point of training (``progress`` in [0, 1]): 0 during the cold start, then constant or
        rising linearly to ``lam``."""
        if progress < self.cold_start:
            return 0.0
        if self.schedule == "linear":
            return float(self.lam * min(1.0, (progress - self.cold_start) / max(1e-9, 1.0 - self.cold_start)))
        return float(self.lam)

    def layout(self, query_length: int = QUERY_LENGTH, output_length: int = OUTPUT_LENGTH) -> ComponentLayout:
        """The (unlabelled) comparison layout: ``grid`` cells and the given token slots."""
        return ComponentLayout(grid=self.grid, query_length=query_length, output_length=output_length)

    # -- which decisions -----------------------------------------------------------------------------
    def selects(self, tools: Sequence[str]) -> np.ndarray:
        """Bool per decision (by the tool it called): does it carry the alignment term?"""
        tools = list(tools)
        if self.decisions == "all":
            return np.ones(len(tools), dtype=bool)
        is_answer = np.array([t == "answer" for t in tools], dtype=bool)
        return is_answer if self.decisions == "answers" else ~is_answer

    # -- the divergence of one decision ---------------------------------------------------------------
    def compare(
        self, teacher: Tensor | np.ndarray | Attribution, student: Tensor | np.ndarray | Attribution, layout: ComponentLayout
    ) -> Tensor:
        """Per decision, the divergence between teacher and student attributions at ``granularity``.

        Args:
            teacher: ``(n,)`` or ``(B, n)`` non-negative masses in ``layout`` (an Attribution is accepted).
            student: the same shape; raw non-negative scores are fine (each is renormalised). Differentiable
                in ``student`` (and ``teacher``).
            layout: the components' layout (block sizes).

        Returns:
            ``(B,)`` (or a scalar for 1-D inputs): 0 when the two agree.
        """
        t, s, squeeze = _paired(teacher, student, layout)
        fn = divergence(self.divergence, torch=True)
        t, s = t.clamp_min(0), s.clamp_min(0)
        if self.granularity == "components":
            out = fn(t, s)
        else:
            blocks = [(sl.start, sl.stop) for sl in layout.slices().values()]
            tb = torch.stack([t[:, a:b].sum(-1) for a, b in blocks], -1)
            if self.granularity == "blocks":
                sb = torch.stack([s[:, a:b].sum(-1) for a, b in blocks], -1)
                out = fn(tb, sb)
            else:  # within: each block's distribution, weighted by the teacher's block mass
                weight = tb / tb.sum(-1, keepdim=True).clamp_min(1e-12)
                parts = []
                for a, b in blocks:
                    tt, ss = t[:, a:b], s[:, a:b]
                    # a block the student gives no mass at all is as far as possible: uniform is the neutral fill
                    ss = torch.where(ss.sum(-1, keepdim=True) > 0, ss, torch.ones_like(ss))
                    d = fn(tt, ss) if b > a else torch.zeros(t.shape[0])
                    parts.append(torch.where(tt.sum(-1) > 0, d, torch.zeros_like(d)))
                out = (weight * torch.stack(parts, -1)).sum(-1)
        return out[0] if squeeze else out

    def outside_mass(
        self, teacher: Tensor | np.ndarray | Attribution, student: Tensor | np.ndarray | Attribution, layout: ComponentLayout
    ) -> Tensor:
        """Per decision, the student's raw image attribution summed over the image cells where the teacher's
        is zero: how much the decision depends on what the teacher calls irrelevant, in the student's own
        units (not normalised, so it falls only where the decision's sensitivity falls). A decision whose
        teacher map has no image mass says nothing about where to look: 0. The excluded cells are those of
        exactly zero teacher mass, a mask (the oracle's maps, or a user's teacher that masks); a dense model
        teacher's map excludes nothing, and the term is 0 with it.

        Args:
            teacher: ``(n,)`` or ``(B, n)`` non-negative masses in ``layout``.
            student: the same shape, raw non-negative scores (differentiable).
            layout: the components' layout.

        Returns:
            ``(B,)`` (or a scalar for 1-D inputs), >= 0.
        """
        t, s, squeeze = _paired(teacher, student, layout)
        image = layout.slice("image")
        ti, si = t[:, image].clamp_min(0), s[:, image].clamp_min(0)
        excluded = (ti <= 0) & (ti.sum(-1, keepdim=True) > 0)
        out = (si * excluded.to(si.dtype)).sum(-1)
        return out[0] if squeeze else out

    def bounded(self, div: Tensor) -> Tensor:
        """A divergence scaled into [0, 1]: JS by ln 2, cosine as is, KL by ``cap`` (then clipped)."""
        scale = {"js": math.log(2.0), "cosine": 1.0}.get(self.divergence, self.cap)
        return (div / scale).clamp(0.0, 1.0)

    # -- how it enters the update ---------------------------------------------------------------------
    def advantages(
        self, returns: Tensor, groups: Tensor, episode: Tensor, div: Tensor | None, selected: Tensor | None, lam: float
    ) -> Tensor:
        """Per-decision advantages.

        Args:
            returns: ``(E,)`` each episode's env return (outcome + format terms).
            groups: ``(E,)`` group id of each episode (rollouts of one question share one).
            episode: ``(D,)`` the episode of each decision.
            div: ``(D,)`` each decision's divergence (detached), or None (plain GRPO).
            selected: ``(D,)`` bool, the decisions that carry the term (:meth:`selects`).
            lam: λ now (:meth:`lam_at`).

        Returns:
            ``(D,)``: for ``"reward"`` the group-normalised ``return - lam * mean divergence`` of the
            decision's episode; for ``"credit"`` the group-normalised return minus ``lam`` times the
            decision's own bounded divergence, centred over its group's decisions; for ``"loss"`` (and
            without ``div``) the group-normalised return.
        """
        outcome = group_advantages(returns.float(), groups)[episode]
        if div is None or lam == 0 or self.form == "loss":
            return outcome
        sel = torch.ones_like(div, dtype=torch.bool) if selected is None else selected
        d = div.detach().float()
        if self.form == "reward":
            pen = torch.zeros(len(returns))
            for e in range(len(returns)):
                mask = (episode == e) & sel
                pen[e] = d[mask].mean() if mask.any() else 0.0
            return group_advantages(returns.float() - lam * pen, groups)[episode]
        pen = torch.where(sel, self.bounded(d), torch.zeros_like(d))
        dec_groups = groups[episode]
        centred = torch.zeros_like(pen)
        for g in torch.unique(dec_groups):
            idx = (dec_groups == g) & sel
            if idx.any():
                centred[idx] = pen[idx] - pen[idx].mean()
        return outcome - lam * centred

    def loss_weights(self, advantages: Tensor, success: Tensor, selected: Tensor | None) -> Tensor:
        """``(D,)`` per-decision weights of the differentiable alignment loss (``form="loss"``)."""
        if self.weighting == "success":
            w = success.float()
        elif self.weighting == "signal":  # the successes, where the update's outcome says anything at all
            w = success.float() * advantages.detach().ne(0).any().float()
        elif self.weighting == "advantage":
            w = advantages.detach().clamp_min(0)
        else:
            w = torch.ones_like(advantages)
        return w if selected is None else w * selected.float()

    def loss(self, div: Tensor, weights: Tensor, lam: float) -> Tensor:
        """The differentiable alignment loss: ``lam * sum(weights * div) / max(1, number of weighted)``."""
        if lam == 0:
            return div.sum() * 0.0
        return lam * (weights * div).sum() / weights.gt(0).sum().clamp_min(1)


def _paired(
    teacher: Tensor | np.ndarray | Attribution, student: Tensor | np.ndarray | Attribution, layout: ComponentLayout
) -> tuple[Tensor, Tensor, bool]:
    """Teacher and student attributions as ``(B, n)`` tensors of one float dtype, checked against ``layout``,
    and whether they came as single ``(n,)`` vectors."""
    t, s = (_as_tensor(x) for x in (teacher, student))
    squeeze = t.dim() == 1
    t, s = t.reshape(-1, t.shape[-1]), s.reshape(-1, s.shape[-1]).to(t.dtype if t.is_floating_point() else torch.float32)
    t = t.to(s.dtype)
    if t.shape != s.shape or t.shape[-1] != layout.size:
        raise ValueError(
            f"teacher {tuple(t.shape)} and student {tuple(s.shape)} attributions must both have "
            f"{layout.size} components (the layout's)"
        )
    return t, s, squeeze


def _as_tensor(x: Tensor | np.ndarray | Attribution) -> Tensor:
    if isinstance(x, Attribution):
        x = x.values
    if isinstance(x, Tensor):
        return x
    return torch.tensor(np.array(x, dtype=np.float64))


PRESETS: dict[str, IAPOObjective] = {
    # the paper, as its digest describes it: IG of the decision, block-level KL, reward form, group-normalised
    "paper": IAPOObjective(
        form="reward", lam=0.5, divergence="kl", granularity="blocks", decisions="all", method="integrated_gradients", steps=8
    ),
    "default": IAPOObjective(),
}
"""Named objectives. ``"default"`` is what ``iapo`` trains with (the best variant measured by
``benchmarks/learning.py``); ``"paper"`` is one flag away."""
