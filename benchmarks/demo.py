"""``iapo-demo``: the main job. Train IAPO and GRPO briefly on the six headline families (from one shared
warm start), then benchmark them beside the random, no-tool and oracle agents and print the leaderboard.

``--scale tiny`` is a smoke test (seconds), ``small`` (default) a few minutes on a laptop CPU, ``full`` the
settings of ``benchmarks/learning.py``.

It trains agents and runs benchmarks, so it lives in the benchmarks layer (``iapo_gym.benchmarks.demo``;
until 0.1 it was ``iapo_gym.demo``, which forwards here for one release).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from iapo_gym import HEADLINE_FAMILIES

SCALES = {
    #         warm-start episodes, BC epochs, updates, benchmark episodes per family
    "tiny": dict(warm=12, epochs=1, updates=1, episodes=2, questions=2, group=2),
    "small": dict(warm=1000, epochs=10, updates=40, episodes=20, questions=4, group=8),
    "full": dict(warm=2000, epochs=12, updates=100, episodes=50, questions=4, group=8),
}


def run_demo(out: str | Path, scale: str = "small", seed: int = 0, progress: bool = True) -> Path:
    """Train, save ``out/grpo`` and ``out/iapo``, benchmark into ``out/bench``; returns the leaderboard folder."""
    import torch

    from iapo_gym.agents.compact import CompactPolicy
    from iapo_gym.agents.compact_agent import CompactAgent
    from iapo_gym.agents.imitation import imitate_oracle
    from iapo_gym.agents.train_config import REWARDS
    from iapo_gym.agents.trainer import TrainConfig

    from .runner import run_benchmark

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    s, out = SCALES[scale], Path(out)
    env_kwargs = {"task": list(HEADLINE_FAMILIES), "difficulty": 0}
    torch.manual_seed(seed)
    warm = CompactPolicy()
    print(f"[1/3] warm start: imitating the oracle on {s['warm']} episodes", file=sys.stderr)
    imitate_oracle(warm, "VisualToolVQA-v0", s["warm"], env_kwargs, epochs=s["epochs"], data_seed=seed)
    for reward in REWARDS:
        print(f"[2/3] training {reward} for {s['updates']} updates", file=sys.stderr)
        cfg = TrainConfig(
            env_id="VisualToolVQA-v0",
            env_kwargs=env_kwargs,
            reward=reward,
            updates=s["updates"],
            questions=s["questions"],
            group_size=s["group"],
            eval_every=10**6,
            seed=seed,
        )
        CompactAgent(copy.deepcopy(warm), train=cfg).learn(out=out / reward, progress=progress)
    print("[3/3] benchmarking on suite six-easy", file=sys.stderr)
    agents = ["random", "no-tool", "oracle", f"grpo={out / 'grpo'}", f"iapo={out / 'iapo'}"]
    return run_benchmark(agents, "six-easy", seeds=[0], out=out / "bench", episodes=s["episodes"], progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iapo-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--scale", choices=list(SCALES), default="small", help="how long to train (default: small)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    board = run_demo(args.out, args.scale, args.seed)
    print((board / "leaderboard.md").read_text())
    print(f"leaderboard files (md, csv, json, png) in {board}/; learning curves in {args.out}/{{grpo,iapo}}/curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
