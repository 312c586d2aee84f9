"""Alignment between a teacher's and a student's attribution.

IAPO's penalty is ``KL(teacher || student)`` over the components (or blocks) of one decision: it grows
when the student puts little mass where the teacher puts much. Jensen-Shannon (symmetric, bounded by
ln 2), cosine distance and top-k overlap are the alternatives. The numpy functions validate their inputs
and return floats; the ``*_torch`` ones work on batches (last dimension = components) and are
differentiable in both arguments.

Inputs may be plain vectors or :class:`~iapo_gym.attribution.Attribution` objects (same layout required).
They are renormalised, so raw non-negative scores are accepted too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .layout import Attribution

if TYPE_CHECKING:
    from torch import Tensor

EPS = 1e-6
"""Default floor for KL: the penalty of a teacher component the student gives no mass is bounded by about
``ln(1 / EPS)`` ≈ 13.8 nats instead of being infinite."""


def _pair(teacher: Any, student: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and renormalise the two distributions."""
    if isinstance(teacher, Attribution) and isinstance(student, Attribution) and teacher.layout != student.layout:
        raise ValueError(
            f"teacher and student attributions have different layouts: {teacher.layout.sizes} vs {student.layout.sizes}"
        )
    out = []
    for name, x in (("teacher", teacher), ("student", student)):
        arr = np.asarray(x.values if isinstance(x, Attribution) else x, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D vector of component masses; got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has NaN or infinite entries")
        if np.any(arr < 0):
            raise ValueError(f"{name} has negative entries (min {arr.min():.3g}); attributions are non-negative masses")
        total = arr.sum()
        if not total > 0:
            raise ValueError(f"{name} sums to {total}; it must have some positive mass")
        out.append(arr / total)
    t, s = out
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"teacher has {t.shape[0]} components but student has {s.shape[0]}; they must match")
    return t, s


def _smooth(p: np.ndarray, eps: float) -> np.ndarray:
    # additive smoothing keeps p a distribution (so KL >= 0 by Gibbs) and is one-to-one (KL = 0 iff equal)
    return (p + eps) / (1.0 + eps * p.shape[0])


def kl(teacher: Any, student: Any, eps: float = EPS) -> float:
    """``KL(teacher || student)`` in nats, the IAPO penalty.

    Args:
        teacher: the teacher's masses (non-negative; renormalised).
        student: the student's masses, same length.
        eps: both distributions are smoothed as ``(p + eps) / (1 + n * eps)``, so zeros on either side give
            finite values; ``eps=0`` gives the exact KL (infinite where the student has a zero the teacher
            does not).

    Returns:
        A float >= 0, 0 exactly when the two are equal.
    """
    t, s = _pair(teacher, student)
    if eps < 0:
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    t, s = _smooth(t, eps), _smooth(s, eps)
    nz = t > 0
    with np.errstate(divide="ignore"):
        val = float(np.sum(t[nz] * (np.log(t[nz]) - np.log(s[nz]))))
    return max(0.0, val)  # rounding can leave -1e-17 for equal inputs


def js(teacher: Any, student: Any) -> float:
    """Jensen-Shannon divergence in nats: symmetric, in ``[0, ln 2]``, finite for any zeros (no floor needed:
    the mixture is positive wherever either side is)."""
    t, s = _pair(teacher, student)
    m = 0.5 * (t + s)

    def part(p: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(m[nz]))))

    return float(np.clip(0.5 * part(t) + 0.5 * part(s), 0.0, np.log(2.0)))


def cosine_distance(teacher: Any, student: Any) -> float:
    """``1 - cos(teacher, student)``; in ``[0, 1]`` for non-negative vectors."""
    t, s = _pair(teacher, student)
    cos = float(t @ s / (np.linalg.norm(t) * np.linalg.norm(s)))
    return float(np.clip(1.0 - cos, 0.0, 1.0))


def topk_overlap(teacher: Any, student: Any, k: int) -> float:
    """The fraction of the teacher's ``k`` largest components that are among the student's ``k`` largest.

    Ties are broken by position (stable), so the result is deterministic.

    Returns:
        A float in ``[0, 1]`` (1: the same top-k sets).
    """
    t, s = _pair(teacher, student)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= t.shape[0]:
        raise ValueError(f"k must be an int in [1, {t.shape[0]}] (the number of components); got {k!r}")
    top_t = set(np.argsort(-t, kind="stable")[:k].tolist())
    top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
    return len(top_t & top_s) / k


# -- torch (batched, differentiable) ---------------------------------------------------------------------
def _torch_pair(teacher: Tensor, student: Tensor) -> tuple[Tensor, Tensor]:
    if teacher.shape[-1] != student.shape[-1]:
        raise ValueError(f"teacher has {teacher.shape[-1]} components but student has {student.shape[-1]}; they must match")
    # no validation here (it would sync a GPU every call): negatives are clipped, and an all-zero row stays
    # zero (KL's smoothing then treats it as uniform)
    import torch

    def normalise(x: Tensor) -> Tensor:
        total = x.sum(-1, keepdim=True)
        # divide by the true total, however small (subnormal totals included), as the NumPy version does
        return x / torch.where(total > 0, total, torch.ones_like(total))

    return normalise(teacher.clamp_min(0)), normalise(student.clamp_min(0))


def kl_torch(teacher: Tensor, student: Tensor, eps: float = EPS) -> Tensor:
    """:func:`kl` over the last dimension of two tensors (broadcast batch dimensions); returns ``(...)``."""
    import torch

    t, s = _torch_pair(teacher, student)
    n = t.shape[-1]
    t, s = (t + eps) / (1 + eps * n), (s + eps) / (1 + eps * n)
    pos = t > 0  # only reachable as False with eps=0; the where keeps log(0) out of values and gradients
    safe_t = torch.where(pos, t, torch.ones_like(t))
    safe_s = torch.where(pos, s, torch.ones_like(s))
    terms = torch.where(pos, t * (safe_t.log() - safe_s.log()), torch.zeros_like(t))
    return terms.sum(-1).clamp_min(0)


def js_torch(teacher: Tensor, student: Tensor) -> Tensor:
    """:func:`js` over the last dimension."""
    import torch

    t, s = _torch_pair(teacher, student)
    m = 0.5 * (t + s)

    def part(p: Tensor) -> Tensor:
        # where p == 0 the term is 0; the where keeps log(0) out of the gradient
        safe = torch.where(p > 0, p, torch.ones_like(p))
        safe_m = torch.where(p > 0, m, torch.ones_like(m))
        return torch.where(p > 0, p * (safe.log() - safe_m.log()), torch.zeros_like(p)).sum(-1)

    return (0.5 * part(t) + 0.5 * part(s)).clamp(0.0, float(np.log(2.0)))


def cosine_distance_torch(teacher: Tensor, student: Tensor) -> Tensor:
    """:func:`cosine_distance` over the last dimension."""
    import torch

    t, s = _torch_pair(teacher, student)
    return (1 - torch.nn.functional.cosine_similarity(t, s, dim=-1, eps=1e-12)).clamp(0.0, 1.0)


DIVERGENCES: dict[str, Callable[..., float]] = {"kl": kl, "js": js, "cosine": cosine_distance}
"""Divergence name -> numpy function ``(teacher, student) -> float`` (0 when aligned)."""

TORCH_DIVERGENCES: dict[str, Callable[..., Any]] = {"kl": kl_torch, "js": js_torch, "cosine": cosine_distance_torch}


def divergence(name: str, *, torch: bool = False) -> Callable[..., Any]:
    """The divergence called ``name`` (``kl``, ``js`` or ``cosine``; ``cosine_distance`` is accepted too).

    Args:
        name: the divergence's name.
        torch: return the batched torch version instead of the numpy one.

    Returns:
        ``fn(teacher, student)``: 0 when the attributions agree, larger the more they differ.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    table = TORCH_DIVERGENCES if torch else DIVERGENCES
    key = "cosine" if name == "cosine_distance" else name
    if not isinstance(key, str) or key not in table:
        raise ValueError(f"unknown divergence {name!r}; known: {', '.join(table)}")
    return table[key]
