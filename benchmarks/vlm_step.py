"""VLM trainer speed: seconds per update on tiny random Qwen2.5-VL models, GRPO vs IAPO (the attribution
overhead), with the time split into rollouts, attribution (student + teacher) and the gradient update.

Run: ``python -m iapo_gym.benchmarks.vlm_step [--view-size 448] [--group-size 4] [--steps 3] [--n-steps 16]
[--rollout first|episode] [--method integrated_gradients] [--image-input embeddings|pixels] [--json out.json]``.

The student is the default tiny model (2 layers, hidden 64); the teacher a larger tiny one (3 layers,
hidden 96). Both are built in a temporary folder first (offline). Sampling is seeded, so GRPO and IAPO see
the same questions; their rollouts differ only once the weights do. The first step of each run is a warm-up
and is not counted. On a real 3B/7B model on a GPU the ratio is driven by ``n_steps`` (each integrated-
gradients point is one forward+backward of the whole prompt, for the student and again for the teacher).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def run(reward: str, student: Path, teacher: Path | None, args: argparse.Namespace) -> dict[str, float]:
    from iapo_gym.agents.vlm.agent import VLMAgent
    from iapo_gym.agents.vlm.trainer import VLMTrainer

    agent = VLMAgent(student, device=args.device, max_new_tokens=args.max_new_tokens)
    trainer = VLMTrainer(
        agent, args.env, env_kwargs={"view_size": args.view_size, "budget": args.budget},
        teacher=f"vlm:{teacher}" if reward == "iapo" else None, reward=reward, group_size=args.group_size,
        lr=1e-4, rollout=args.rollout, seed=args.seed,
        attribution={"method": args.method, "image_input": args.image_input, "n_steps": args.n_steps},
    )
    trainer.step()  # warm-up
    rows = [trainer.step() for _ in range(args.steps)]
    keys = ("seconds", "seconds_rollout", "seconds_attribution", "seconds_update", "decisions")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iapo_gym.benchmarks.vlm_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="VisualToolVQA-v0")
    p.add_argument("--view-size", type=int, default=448)
    p.add_argument("--budget", type=int, default=3)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after one warm-up step)")
    p.add_argument("--n-steps", type=int, default=16, help="integrated-gradients points")
    p.add_argument("--method", default="integrated_gradients")
    p.add_argument("--image-input", default="embeddings", choices=("embeddings", "pixels"))
    p.add_argument("--rollout", default="first", choices=("first", "episode"))
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)

    import torch
    from iapo_gym.agents.vlm.tiny import build_tiny_vlm

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        student = build_tiny_vlm(Path(tmp) / "student", seed=0)
        teacher = build_tiny_vlm(Path(tmp) / "teacher", layers=3, hidden=96, seed=1)
        results = {r: run(r, student, teacher if r == "iapo" else None, args) for r in ("grpo", "iapo")}
    ratio = results["iapo"]["seconds"] / results["grpo"]["seconds"]
    print(f"tiny Qwen2.5-VL, {args.env}, view {args.view_size}, G={args.group_size}, rollout={args.rollout}, "
          f"{args.method} ({args.image_input}, n_steps={args.n_steps}), device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print("| reward | s / update | rollout | attribution | update | decisions / update |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.2f} | {r['seconds_rollout']:.2f} | {r['seconds_attribution']:.2f} | "
              f"{r['seconds_update']:.2f} | {r['decisions']:.1f} |")
    print(f"IAPO / GRPO time per update: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "results": results, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
