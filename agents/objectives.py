"""The group-relative policy-gradient pieces shared by every trainer (compact and VLM): group-normalised
advantages, the clipped surrogate, and the KL estimator to a reference policy (GRPO, DeepSeekMath 2024)."""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(r - mean_group) / (std_group + eps)`` per element; groups are rollouts of the same question.

    A group whose rewards are all equal gets zero advantage (nothing to prefer within it).
    """
    if rewards.shape != groups.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and groups {tuple(groups.shape)} must have the same shape")
    rewards = rewards.float()
    out = torch.zeros_like(rewards)
    for g in torch.unique(groups):
        idx = groups == g
        r = rewards[idx]
        std = r.std(unbiased=False) if r.numel() > 1 else torch.zeros((), dtype=r.dtype)
        out[idx] = (r - r.mean()) / (std + eps) if std > eps else torch.zeros_like(r)
    return out


def clipped_surrogate(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped objective, negated as a loss and averaged: ``-min(ratio*A, clip(ratio)*A)``."""
    ratio = torch.exp(logp - logp_old)
    return -torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages).mean()


def kl_to_reference(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """The unbiased, non-negative k3 estimator of KL(policy || reference) from sampled log-probs."""
    d = logp_ref - logp
    return (torch.exp(d) - d - 1).mean()
