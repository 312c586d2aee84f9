"""IAPO vs GRPO at equal env steps: final test accuracy per family with 95% CIs, env steps to reach GRPO's
final accuracy, wall-clock per update (the ratio is the attribution overhead) and tool calls over training.

Run: ``python -m iapo_gym.benchmarks.learning --out runs/learning [--seeds 0 1 2] [--steps 20000]``.

Both methods start from the same behaviour-cloned warm start per seed (the paper's students start from a
supervised model too), train on the mixture of the six headline families at ``--difficulty`` with the same
env-step budget, and are evaluated greedily on the same test-split items. Writes ``results.json``,
``table.md`` and ``curves.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import io
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from iapo_gym.agents.base import run_episode
from iapo_gym.agents.compact import CompactConfig, CompactPolicy
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.imitation import behaviour_cloning, oracle_dataset
from iapo_gym.agents.trainer import GroupTrainer, TrainConfig

from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.io import atomic_write_bytes, atomic_write_json, atomic_write_text


def mean_ci(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% bootstrap CI."""
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    boots = rng.choice(arr, size=(n_boot, len(arr)), replace=True).mean(axis=1)
    return float(arr.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def evaluate_per_family(policy: CompactPolicy, difficulty: int, episodes: int) -> dict[str, list[bool]]:
    agent = CompactAgent(policy, greedy=True)
    out = {}
    for family in HEADLINE_FAMILIES:
        env = gym.make(f"VisualToolVQA-{family}-v0", split="test", difficulty=difficulty, view_size=policy.config.view_size)
        lo, hi = env.unwrapped.scene_id_range()
        ids = np.random.default_rng(777).integers(lo, hi, size=episodes)
        out[family] = [run_episode(env, agent, options={"scene_id": int(s)}).correct for s in ids]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"config": vars(args) | {"out": str(args.out)}, "runs": []}
    for seed in args.seeds:
        base = TrainConfig(
            env_id="VisualToolVQA-v0", env_kwargs={"task": list(HEADLINE_FAMILIES), "difficulty": args.difficulty},
            updates=10_000, max_env_steps=args.steps, eval_every=10_000, seed=seed, lam=args.lam,
            attribution_method=args.method, attribution_steps=args.ig_steps, normalise=args.normalise,
            granularity=args.granularity,
        )
        torch.manual_seed(seed)
        warm = CompactPolicy(CompactConfig())
        t0 = time.perf_counter()
        if args.warm_start:
            data = oracle_dataset(warm, base.env_id, args.warm_start, base.env_kwargs, seed=10_000 + seed)
            behaviour_cloning(warm, data, epochs=args.warm_epochs, seed=seed)
        warm_s = time.perf_counter() - t0
        start_acc = evaluate_per_family(warm, args.difficulty, args.eval_episodes)
        for reward in ("grpo", "iapo"):
            cfg = TrainConfig(**{**base.__dict__, "reward": reward})
            trainer = GroupTrainer(cfg, copy.deepcopy(warm))
            history = trainer.train(progress=not args.quiet)
            CompactAgent(trainer.policy, train=cfg).save(args.out / "checkpoints" / f"{reward}-seed{seed}")
            final = evaluate_per_family(trainer.policy, args.difficulty, args.eval_episodes)
            results["runs"].append({
                "seed": seed, "reward": reward, "warm_start_s": warm_s, "history": history,
                "start": {f: float(np.mean(v)) for f, v in start_acc.items()},
                "final": {f: [bool(x) for x in v] for f, v in final.items()},
                "update_s": float(np.mean([r["update_s"] for r in history])),
            })
            print(f"seed {seed} {reward}: final accuracy {np.mean([np.mean(v) for v in final.values()]):.3f} "
                  f"(warm start {np.mean(list(results['runs'][-1]['start'].values())):.3f}), "
                  f"{np.mean([r['update_s'] for r in history]):.2f} s/update")
    return results


def steps_to_reach(history: list[dict[str, float]], target: float, window: int = 5) -> float | None:
    """First env-step count where the moving average of train accuracy reaches ``target``."""
    acc = np.array([r["accuracy"] for r in history])
    steps = np.array([r["env_steps"] for r in history])
    if len(acc) == 0:
        return None
    smooth = np.convolve(acc, np.ones(window) / window, mode="valid") if len(acc) >= window else acc
    hit = np.flatnonzero(smooth >= target)
    return float(steps[hit[0] + (window - 1 if len(acc) >= window else 0)]) if len(hit) else None


def report(results: dict[str, Any], out: Path) -> str:
    runs = results["runs"]
    lines = ["| method | " + " | ".join(HEADLINE_FAMILIES) + " | average | s/update | steps to GRPO final |",
             "|---|" + "---|" * (len(HEADLINE_FAMILIES) + 3)]
    grpo_final = np.mean([np.mean([np.mean(v) for v in r["final"].values()]) for r in runs if r["reward"] == "grpo"])
    summary = {}
    for reward in ("warm start", "grpo", "iapo"):
        sel = [r for r in runs if r["reward"] == (reward if reward != "warm start" else "grpo")]
        cells = []
        per_seed_avg = []
        for fam in HEADLINE_FAMILIES:
            if reward == "warm start":
                vals = [r["start"][fam] for r in sel]
                m, lo, hi = mean_ci(vals) if len(vals) > 1 else (vals[0], vals[0], vals[0])
            else:
                vals = [float(x) for r in sel for x in r["final"][fam]]  # items x seeds
                m, lo, hi = mean_ci(vals)
            cells.append(f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
        for r in sel:
            per_seed_avg.append(np.mean(list(r["start"].values())) if reward == "warm start"
                                else np.mean([np.mean(v) for v in r["final"].values()]))
        if reward == "warm start":
            avg = f"{np.mean(per_seed_avg):.3f}"
            speed, reach = "", ""
        else:
            items = [float(x) for r in sel for v in r["final"].values() for x in v]
            m, lo, hi = mean_ci(items)
            avg = f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            speed = f"{np.mean([r['update_s'] for r in sel]):.2f}"
            reached = [steps_to_reach(r["history"], grpo_final) for r in sel]
            reach = ", ".join("never" if s is None else f"{int(s)}" for s in reached)
            summary[reward] = {"average": m, "ci": [lo, hi], "s_per_update": float(speed)}
        lines.append(f"| {reward} | " + " | ".join(cells) + f" | {avg} | {speed} | {reach} |")
    if "grpo" in summary and "iapo" in summary:
        ratio = summary["iapo"]["s_per_update"] / max(summary["grpo"]["s_per_update"], 1e-9)
        lines.append(f"\nAttribution overhead: IAPO update takes {ratio:.2f}x a GRPO update.")
    table = "\n".join(lines)
    atomic_write_text(out / "table.md", table + "\n")
    return table


def plot(results: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    colors = {"grpo": "tab:blue", "iapo": "tab:red"}
    for r in results["runs"]:
        h = r["history"]
        x = [row["env_steps"] for row in h]
        acc = np.array([row["accuracy"] for row in h])
        k = min(5, len(acc))
        axes[0].plot(x[k - 1:], np.convolve(acc, np.ones(k) / k, mode="valid"), color=colors[r["reward"]], alpha=0.7,
                     label=r["reward"] if r["seed"] == results["runs"][0]["seed"] else None)
        axes[1].plot(x, [row.get("calls_zoom", 0) + row.get("calls_ocr", 0) + row.get("calls_focus", 0) for row in h],
                     color=colors[r["reward"]], alpha=0.7)
        if "alignment" in h[0]:
            axes[2].plot(x, [row["alignment"] for row in h], color=colors[r["reward"]], alpha=0.7)
    axes[0].set_title("train accuracy (moving avg 5)")
    axes[1].set_title("tool calls per episode (zoom+ocr+focus)")
    axes[2].set_title("IAPO alignment: KL(teacher || student), blocks")
    for ax in axes:
        ax.set_xlabel("env steps")
    axes[0].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(out / "curves.png", buf.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/learning"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=6000, help="env steps per run")
    p.add_argument("--difficulty", type=int, default=0)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--method", default="integrated_gradients")
    p.add_argument("--normalise", default="sum", choices=["sum", "separate"], help="IAPO advantage normalisation")
    p.add_argument("--granularity", default="blocks", choices=["blocks", "components"])
    p.add_argument("--ig-steps", type=int, default=8)
    p.add_argument("--warm-start", type=int, default=600, help="oracle episodes for the shared warm start (0: none)")
    p.add_argument("--warm-epochs", type=int, default=8)
    p.add_argument("--eval-episodes", type=int, default=50, help="test items per family")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    results = run(args)
    atomic_write_json(args.out / "results.json", results)
    print(report(results, args.out))
    print(f"curves: {plot(results, args.out)}")


if __name__ == "__main__":
    main()
