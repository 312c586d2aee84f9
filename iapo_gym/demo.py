"""``iapo-demo``: step the oracle agent through every task family and save what it saw as PNG files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from . import FAMILIES
from .io import atomic_write_bytes


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def run_demo(out: str | os.PathLike[str], seed: int = 0, families: tuple[str, ...] = FAMILIES) -> list[dict[str, object]]:
    """One oracle episode per family; writes ``<family>_step<k>.png`` (glance, crop) and returns a summary."""
    from iapo_gym.agents import OracleAgent

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in families:
        env = gym.make(f"VisualToolVQA-{family}-v0", render_mode="rgb_array")
        agent = OracleAgent()
        obs, info = env.reset(seed=seed)
        atomic_write_bytes(out_dir / f"{family}_scene.png", _png(info["scene"].image))
        actions, done, step = [], False, 0
        while not done:
            action = agent.act(obs, info)
            actions.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            step += 1
            atomic_write_bytes(out_dir / f"{family}_step{step}.png", _png(np.hstack([obs["image"], obs["crop"]])))
            done = terminated or truncated
        rows.append({"family": family, "question": obs["question"], "actions": actions, "correct": info["correct"],
                     "answers": list(info["scene"].answers)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iapo-demo", description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="folder for the PNG files (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    args = parser.parse_args(argv)
    for row in run_demo(args.out, args.seed):
        mark = "ok " if row["correct"] else "bad"
        print(f"[{mark}] {row['family']:<11} {row['question']}  -> {len(row['actions'])} calls, answer {row['answers']}")
    print(f"images written to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
