"""The group-relative policy-gradient pieces shared by every trainer (compact and VLM): group-normalised
advantages, the clipped surrogate, and the KL estimator to a reference policy (GRPO, DeepSeekMath 2024)."""

from __future__ import annotations

import torch

from iapo_gym.objective import group_advantages

__all__ = ["clipped_surrogate", "group_advantages", "kl_to_reference"]


def clipped_surrogate(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped objective, negated as a loss and averaged: ``-min(ratio*A, clip(ratio)*A)``."""
    ratio = torch.exp(logp - logp_old)
    return -torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages).mean()


def kl_to_reference(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """The unbiased, non-negative k3 estimator of KL(policy || reference) from sampled log-probs."""
    d = logp_ref - logp
    return (torch.exp(d) - d - 1).mean()
