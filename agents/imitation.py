"""Behaviour cloning from the oracle: the supervised warm start of a student (the "cold start" before RL, as
VLM tool-use pipelines start from an SFT model) and the training of the ``model`` teacher."""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from iapo_gym.toolcall import ToolCall, parse_box, parse_tool_call
from iapo_gym.validation import check_int

from .compact import ObservationBatch, CompactPolicy, observations_to_batch, used_components
from .oracle import OracleAgent


def oracle_dataset(
    policy: CompactPolicy, env_id: str, episodes: int, env_kwargs: dict[str, Any] | None = None, seed: int = 0
) -> tuple[ObservationBatch, torch.Tensor, torch.Tensor]:
    """Observations, the oracle's moves as structured actions, and for each move the box centres that would
    do as well (``(N, cells)`` bool: every cell whose box covers the oracle's box at the same size; only
    the action's own cell for moves without a box), from ``episodes`` train-split episodes."""
    check_int("episodes", episodes)
    env = gym.make(env_id, **{"view_size": policy.config.view_size, **(env_kwargs or {})})
    oracle = OracleAgent()
    observations, actions, cells = [], [], []
    n_cells = policy.codec.grid**2
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        oracle.reset()
        done = False
        while not done:
            parsed = parse_tool_call(oracle.act(obs, info))
            if parsed.name == "answer":
                # the oracle derives its answer from what it read, and it read through the codec's coarser
                # boxes; imitate the answer its exact boxes give (the scene's), not a misread
                parsed = ToolCall("answer", {"text": info["scene"].answers[0]})
            call = parsed.to_json()
            try:
                encoded = policy.encode(call, obs)
            except ValueError:  # an answer outside the vocabulary: nothing to imitate in this episode
                break
            observations.append(obs)
            actions.append(encoded)
            ok = np.zeros(n_cells, dtype=bool)
            box = parsed.args.get("box")
            ok[policy.codec.covering_cells(parse_box(box))[0] if box is not None else encoded[1]] = True
            cells.append(ok)
            obs, _, terminated, truncated, info = env.step(policy.to_calls(torch.from_numpy(encoded)[None], [obs])[0])
            done = terminated or truncated
    return (
        observations_to_batch(observations, policy.config),
        torch.from_numpy(np.stack(actions)),
        torch.from_numpy(np.stack(cells)),
    )


def behaviour_cloning(
    policy: CompactPolicy,
    data: tuple[ObservationBatch, torch.Tensor, torch.Tensor],
    epochs: int = 10,
    lr: float = 1e-3,
    minibatch: int = 64,
    seed: int = 0,
) -> list[float]:
    """Cross-entropy on the components each oracle move uses; the box centre's is set-valued (``-log`` of the
    probability of any cell in :func:`oracle_dataset`'s covering set). Returns the mean loss per epoch."""
    batch, actions, cell_ok = data
    cell = policy.codec.components.index("cell")
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
            per = [F.cross_entropy(logits[name], acts[:, i], reduction="none") for i, name in enumerate(policy.codec.components)]
            lp = F.log_softmax(logits["cell"], dim=-1)
            per[cell] = -torch.logsumexp(lp.masked_fill(~cell_ok[idx], -torch.inf), dim=-1)
            # a tensor: sum() of a non-empty sequence of tensors (typed as maybe its start, the int 0)
            loss = cast(torch.Tensor, sum((p * used[:, i]).sum() for i, p in enumerate(per))) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total.append(float(loss.detach()))
        losses.append(float(np.mean(total)))
    return losses


def imitate_oracle(
    policy: CompactPolicy,
    env_id: str,
    episodes: int,
    env_kwargs: dict[str, Any] | None = None,
    epochs: int = 10,
    data_seed: int = 0,
    seed: int = 0,
) -> list[float]:
    """Behaviour-clone ``policy`` on ``episodes`` oracle episodes (train split, reset seeds from
    ``data_seed``): :func:`oracle_dataset` then :func:`behaviour_cloning` (minibatch order from ``seed``).
    The one warm start of the trainer, the benchmarks and the model teacher. Returns the loss per epoch."""
    data = oracle_dataset(policy, env_id, episodes, env_kwargs, seed=data_seed)
    return behaviour_cloning(policy, data, epochs=epochs, seed=seed)
