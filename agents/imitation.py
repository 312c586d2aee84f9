"""Behaviour cloning from the oracle: the supervised warm start of a student (the "cold start" before RL, as
VLM tool-use pipelines start from an SFT model) and the training of the ``model`` teacher."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .compact import Batch, CompactPolicy, observations_to_batch, used_components
from .oracle import OracleAgent


def oracle_dataset(policy: CompactPolicy, env_id: str, episodes: int, env_kwargs: dict[str, Any] | None = None,
                   seed: int = 0) -> tuple[Batch, torch.Tensor]:
    """Observations and the oracle's moves as structured actions, from ``episodes`` train-split episodes."""
    if episodes < 1:
        raise ValueError(f"episodes must be a positive int; got {episodes!r}")
    env = gym.make(env_id, **{"view_size": policy.config.view_size, **(env_kwargs or {})})
    oracle = OracleAgent()
    observations, actions = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        oracle.reset()
        done = False
        while not done:
            call = oracle.act(obs, info)
            try:
                encoded = policy.codec.encode(call)
            except ValueError:  # an answer outside the vocabulary: nothing to imitate in this episode
                break
            observations.append(obs)
            actions.append(encoded)
            obs, _, terminated, truncated, info = env.step(policy.codec.decode(encoded).to_json())
            done = terminated or truncated
    return observations_to_batch(observations, policy.config), torch.from_numpy(np.stack(actions))


def behaviour_cloning(policy: CompactPolicy, data: tuple[Batch, torch.Tensor], epochs: int = 10, lr: float = 1e-3,
                      minibatch: int = 64, seed: int = 0) -> list[float]:
    """Cross-entropy on the components each oracle move uses; returns the mean loss per epoch."""
    batch, actions = data
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(actions), generator=gen), []
        for start in range(0, len(actions), minibatch):
            idx = order[start : start + minibatch]
            logits = policy.logits(batch.index(idx))
            acts = actions[idx]
            used = used_components(policy.codec, acts[:, 0])
            loss = sum(
                (F.cross_entropy(logits[name], acts[:, i], reduction="none") * used[:, i]).sum()
                for i, name in enumerate(policy.codec.components)
            ) / len(idx)
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            total.append(float(loss.detach()))  # type: ignore[union-attr]
        losses.append(float(np.mean(total)))
    return losses
