"""What an IAPO update costs next to a GRPO update, measured side by side in one process.

Run: ``python -m iapo_gym.benchmarks.update_cost [--updates 12] [--out docs/learning]``; ``--grids 8 16 32`` adds
the default at those comparison grids (the teacher's map at a resolution that can say where), ``--policy PATH``
starts every trainer from a compact-agent checkpoint instead of a fresh policy (a trained start succeeds more
often, so the default's loss, which weighs successful rollouts, attributes more decisions); ``--methods NAME...``
adds methods of the learning benchmark (:data:`~iapo_gym.benchmarks.learning.METHODS`) by their names.

The trainers (GRPO, the default IAPO, the paper preset) start from the same policy and take turns, one
:meth:`~iapo_gym.agents.trainer.GroupTrainer.step` each, so machine noise hits them alike. The default's
alignment loss is in its optimisation (the student's attribution with ``create_graph``, on the decisions it
weighs), and the alignment it logs is what that loss measured; the attribution pass before the update is
what the paper's reward form needs (0 for the default: it has none). The figure that counts is the ratio of medians, not the absolute time. Writes ``update_cost.{md,json}``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iapo_gym.agents.compact import CompactPolicy
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.trainer import GroupTrainer, TrainConfig
from iapo_gym.benchmarks.learning import METHODS as LEARNING_METHODS

from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.io import atomic_write_json, atomic_write_text

METHODS: dict[str, dict[str, Any]] = {
    "grpo": {"reward": "grpo"},
    "iapo (default)": {"reward": "iapo"},
    "iapo (paper)": {"reward": "iapo", "preset": "paper"},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=12, help="timed updates per method (after one warm-up)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--questions", type=int, default=4, help="questions per update")
    p.add_argument("--group-size", type=int, default=8, help="rollouts per question")
    p.add_argument("--grids", type=int, nargs="*", default=[], help="also the default IAPO at these comparison grids")
    p.add_argument("--policy", type=Path, help="a compact-agent checkpoint to start every trainer from")
    p.add_argument(
        "--methods",
        nargs="*",
        default=[],
        choices=[m for m in LEARNING_METHODS if "{teacher}" not in str(LEARNING_METHODS[m])],
        help="also these methods of the learning benchmark",
    )
    p.add_argument("--no-paper", action="store_true", help="leave the paper preset out (its update is the slowest)")
    p.add_argument("--out", type=Path, default=Path("docs/learning"))
    args = p.parse_args(argv)
    if any(g < 1 for g in args.grids):
        p.error(f"--grids must be cells per side >= 1; got {args.grids}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = CompactAgent.load_checkpoint(args.policy).policy if args.policy else CompactPolicy()
    env_kwargs = {"task": list(HEADLINE_FAMILIES), "difficulty": 0}
    methods = {k: v for k, v in METHODS.items() if not (args.no_paper and k == "iapo (paper)")}
    methods.update({f"iapo (default, grid {g})": {"reward": "iapo", "iapo": {"grid": g}} for g in args.grids})
    methods.update({name: LEARNING_METHODS[name] for name in args.methods})
    trainers = {
        name: GroupTrainer(
            TrainConfig(
                env_kwargs=env_kwargs, updates=10**6, seed=0, questions=args.questions, group_size=args.group_size, **fields
            ),
            copy.deepcopy(policy),
        )
        for name, fields in methods.items()
    }
    times: dict[str, list[dict[str, float]]] = {name: [] for name in trainers}
    for i in range(args.updates + 1):
        for name, trainer in trainers.items():
            row = trainer.step()  # the very update the trainer runs
            if i:  # the first update of each warms caches
                aligned = float(row.get("alignment_decisions", 0.0) or 0.0)
                times[name].append({"attribution": row.get("attribution_s", 0.0), "total": row["update_s"], "aligned": aligned})
    base = float(np.median([t["total"] for t in times["grpo"]]))
    start = f"the checkpoint {args.policy.name}" if args.policy else "a fresh policy"
    lines = [
        f"Seconds per update (median of {args.updates}, one process, {args.threads} thread(s), the methods taking "
        f"turns; {args.questions} questions x {args.group_size} rollouts, 2 epochs, six headline families at difficulty 0, from {start}; comparison grid 4 unless named):",
        "",
        "| method | attribution pass (before the update) | total | x GRPO | decisions aligned per update |",
        "|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for name, ts in times.items():
        med = {k: float(np.median([t[k] for t in ts])) for k in ("attribution", "total")}
        aligned = float(np.mean([t["aligned"] for t in ts]))
        summary[name] = {**med, "ratio_to_grpo": med["total"] / base, "aligned_decisions": aligned}
        lines.append(f"| {name} | {med['attribution']:.3f} | {med['total']:.3f} | {med['total'] / base:.2f} | {aligned:.1f} |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "update_cost.md", table)
    atomic_write_json(args.out / "update_cost.json", summary)
    print(table)


if __name__ == "__main__":
    main()
