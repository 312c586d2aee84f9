"""Quality of the ``model`` teacher: its accuracy per family as a policy, and how well its attribution
agrees with the oracle teacher's (image-cell top-k overlap, KL(oracle || model) over cells and blocks),
against the same network untrained (chance level).

Run: ``python -m iapo_gym.benchmarks.teacher_quality [--episodes 600] [--difficulty 0] [--out runs/teacher]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from iapo_gym.agents.base import run_episode
from iapo_gym.agents.compact import CompactConfig, CompactPolicy
from iapo_gym.agents.compact_agent import CompactAgent

from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.attribution import kl, layout_for_observation, topk_overlap
from iapo_gym.teachers import OracleTeacher
from iapo_gym.teachers.model import ModelTeacher, train_model_teacher


def agreement(teacher: ModelTeacher, family: str, difficulty: int, decisions: int, grid: int = 4) -> dict[str, float]:
    """Mean top-k overlap and KL of the model teacher's attribution with the oracle's, at the first decision
    of test scenes (where to look), k = the number of evidence cells."""
    env = gym.make(f"VisualToolVQA-{family}-v0", split="test", difficulty=difficulty, view_size=teacher.policy.config.view_size)
    oracle = OracleTeacher()
    overlaps, kls_cells, kls_blocks = [], [], []
    for seed in range(decisions):
        obs, info = env.reset(seed=seed)
        layout = layout_for_observation(obs, grid)
        o, m = oracle.attribute(obs, info, layout), teacher.attribute(obs, info, layout)
        oi, mi = o.block("image"), m.block("image")
        k = max(1, int((oi > 0).sum()))
        overlaps.append(topk_overlap(oi, mi + 1e-12, k))
        kls_cells.append(kl(oi, mi + 1e-12))
        kls_blocks.append(kl(o.vector("blocks"), m.vector("blocks")))
    return {"topk_overlap": float(np.mean(overlaps)), "kl_cells": float(np.mean(kls_cells)),
            "kl_blocks": float(np.mean(kls_blocks))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=600, help="oracle episodes to imitate")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--difficulty", type=int, default=0)
    p.add_argument("--eval", type=int, default=40, help="test episodes (and decisions) per family")
    p.add_argument("--out", type=Path, default=Path("runs/model-teacher"))
    args = p.parse_args()
    torch.set_num_threads(2)
    env_kwargs = {"task": list(HEADLINE_FAMILIES), "difficulty": args.difficulty}
    agent = train_model_teacher("VisualToolVQA-v0", args.out, episodes=args.episodes, epochs=args.epochs, env_kwargs=env_kwargs)
    trained = ModelTeacher(agent.policy)
    torch.manual_seed(1)
    untrained = ModelTeacher(CompactPolicy(CompactConfig(**agent.policy.config_dict())))
    print(f"model teacher: {sum(p.numel() for p in agent.policy.parameters())} parameters, view "
          f"{agent.policy.config.view_size}, {args.episodes} oracle episodes; saved to {args.out}")
    print("| family | accuracy | top-k overlap (untrained) | KL cells (untrained) | KL blocks (untrained) |")
    print("|---|---:|---:|---:|---:|")
    for family in HEADLINE_FAMILIES:
        env = gym.make(f"VisualToolVQA-{family}-v0", split="test", difficulty=args.difficulty,
                       view_size=agent.policy.config.view_size)
        acc = np.mean([run_episode(env, CompactAgent(agent.policy), seed=s).correct for s in range(args.eval)])
        a, u = agreement(trained, family, args.difficulty, args.eval), agreement(untrained, family, args.difficulty, args.eval)
        print(f"| {family} | {acc:.2f} | {a['topk_overlap']:.2f} ({u['topk_overlap']:.2f}) | {a['kl_cells']:.2f} "
              f"({u['kl_cells']:.2f}) | {a['kl_blocks']:.2f} ({u['kl_blocks']:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
