"""Quality of the ``model`` teacher: its accuracy per family as a policy, and how well its attribution
agrees with the oracle teacher's (image-cell top-k overlap, KL(oracle || model) over cells and blocks),
against the same network untrained (chance level).

Besides it, the student it teaches: the default compact policy behaviour-cloned from the same oracle episodes,
so "a stronger teacher" is a measured claim. Writes ``docs/teacher/teacher_quality.{md,json}``.

Run: ``python -m iapo_gym.benchmarks.teacher_quality [--episodes 2000] [--out runs/model-teacher]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from iapo_gym.agents.base import evaluate_agent
from iapo_gym.agents.compact import CompactConfig, CompactPolicy
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.imitation import imitate_oracle
from iapo_gym.agents.model_teacher import ModelTeacher, train_model_teacher

from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.attribution import kl, layout_for_observation, topk_overlap
from iapo_gym.io import atomic_write_json, atomic_write_text
from iapo_gym.teachers import OracleTeacher


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
    return {
        "topk_overlap": float(np.mean(overlaps)),
        "kl_cells": float(np.mean(kls_cells)),
        "kl_blocks": float(np.mean(kls_blocks)),
    }


def accuracy(policy: CompactPolicy, family: str, difficulty: int, episodes: int) -> float:
    """Greedy test accuracy of a compact policy on its own view size."""
    env = gym.make(f"VisualToolVQA-{family}-v0", split="test", difficulty=difficulty, view_size=policy.config.view_size)
    return evaluate_agent(CompactAgent(policy), env, n_episodes=episodes)["accuracy"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2000, help="oracle episodes to imitate (teacher and student)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--difficulty", type=int, default=0)
    p.add_argument("--eval", type=int, default=50, help="test episodes (and decisions) per family")
    p.add_argument("--out", type=Path, default=Path("runs/model-teacher"), help="where the teacher checkpoint goes")
    p.add_argument("--docs", type=Path, default=Path("docs/teacher"), help="where the table goes")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    env_kwargs = {"task": list(HEADLINE_FAMILIES), "difficulty": args.difficulty}
    agent = train_model_teacher("VisualToolVQA-v0", args.out, episodes=args.episodes, epochs=args.epochs, env_kwargs=env_kwargs)
    # the student: the default compact policy (128 px glance), behaviour-cloned from the same oracle episodes
    torch.manual_seed(0)
    student = CompactPolicy(CompactConfig())
    imitate_oracle(student, "VisualToolVQA-v0", args.episodes, env_kwargs, epochs=args.epochs)
    trained = ModelTeacher(agent.policy)
    torch.manual_seed(1)
    untrained = ModelTeacher(CompactPolicy(CompactConfig(**agent.policy.config_dict())))
    n_t, n_s = (sum(q.numel() for q in m.parameters()) for m in (agent.policy, student))
    lines = [
        f"Model teacher: {n_t} parameters, view {agent.policy.config.view_size} px; student: {n_s} parameters, "
        f"view {student.config.view_size} px; both behaviour-cloned from the same {args.episodes} oracle episodes "
        f"({args.epochs} epochs), difficulty {args.difficulty}, {args.eval} test items per family.",
        "",
        "| family | teacher accuracy | student accuracy | teacher top-k overlap with the oracle (untrained) | "
        "KL cells (untrained) | KL blocks (untrained) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    results: dict[str, dict[str, float]] = {}
    for family in HEADLINE_FAMILIES:
        t_acc, s_acc = (
            accuracy(agent.policy, family, args.difficulty, args.eval),
            accuracy(student, family, args.difficulty, args.eval),
        )
        a, u = agreement(trained, family, args.difficulty, args.eval), agreement(untrained, family, args.difficulty, args.eval)
        results[family] = {"teacher_accuracy": t_acc, "student_accuracy": s_acc, **a}
        lines.append(
            f"| {family} | {t_acc:.2f} | {s_acc:.2f} | {a['topk_overlap']:.2f} ({u['topk_overlap']:.2f}) | "
            f"{a['kl_cells']:.2f} ({u['kl_cells']:.2f}) | {a['kl_blocks']:.2f} ({u['kl_blocks']:.2f}) |"
        )
        print(lines[-1], flush=True)
    t_avg = float(np.mean([r["teacher_accuracy"] for r in results.values()]))
    s_avg = float(np.mean([r["student_accuracy"] for r in results.values()]))
    lines.append(f"| **average** | **{t_avg:.3f}** | **{s_avg:.3f}** | | | |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(args.docs / "teacher_quality.md", table)
    atomic_write_json(
        args.docs / "teacher_quality.json",
        {
            "families": results,
            "teacher_average": t_avg,
            "student_average": s_avg,
            "config": {k: str(v) for k, v in vars(args).items()},
        },
    )
    print(table)
    print(f"teacher checkpoint: {args.out} (use --teacher model:{args.out})")


if __name__ == "__main__":
    main()
