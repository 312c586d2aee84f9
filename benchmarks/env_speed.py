"""Environment speed: steps/s and episodes/s per family (scene OCR), and ms per call of the easyocr backend.

Run: ``python -m iapo_gym.benchmarks.env_speed [--episodes 300] [--skip-easyocr]``. Single core: OpenCV is
limited to one thread. The workload is a random tool-using agent: each step is a zoom or OCR of a random
box, or (with probability 1/4) an answer, so episodes average ~4 steps, like an untrained policy.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import gymnasium as gym
import numpy as np

from iapo_gym import FAMILIES


def random_actions(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < 0.25:
            out.append("<answer>0</answer>")
            continue
        x0, y0 = rng.uniform(0, 0.8, 2)
        s = rng.uniform(0.05, 0.2)
        tool = "zoom" if rng.random() < 0.5 else "ocr"
        out.append(json.dumps({"tool": tool, "args": {"box": [x0, y0, x0 + s, y0 + s]}}))
    return out


def measure_family(family: str, episodes: int, seed: int = 0) -> dict[str, float]:
    env = gym.make(f"VisualToolVQA-{family}-v0")
    actions = random_actions(np.random.default_rng(seed), 64 * episodes)
    steps, k = 0, 0
    reset_time = step_time = 0.0
    for ep in range(episodes):
        t0 = time.perf_counter()
        env.reset(seed=seed + ep)
        t1 = time.perf_counter()
        reset_time += t1 - t0
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(actions[k])
            k += 1
            steps += 1
            done = terminated or truncated
        step_time += time.perf_counter() - t1
    total = reset_time + step_time
    return {
        "steps_per_s": steps / total,
        "episodes_per_s": episodes / total,
        "reset_ms": 1e3 * reset_time / episodes,
        "step_ms": 1e3 * step_time / steps,
        "steps_per_episode": steps / episodes,
    }


def measure_easyocr(calls: int = 20) -> float:
    """Mean ms per ``ocr`` call with the easyocr backend on TextRead evidence (reader loaded beforehand)."""
    env = gym.make("VisualToolVQA-TextRead-v0", ocr="easyocr")
    _, info = env.reset(seed=0)
    box = list(info["scene"].evidence[0].box)
    env.step(json.dumps({"tool": "ocr", "args": {"box": box}}))  # loads the reader
    t0 = time.perf_counter()
    for i in range(calls):
        _, info = env.reset(seed=i)
        env.step(json.dumps({"tool": "ocr", "args": {"box": list(info["scene"].evidence[0].box)}}))
    return 1e3 * (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--skip-easyocr", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"{'family':<12}{'steps/s':>10}{'episodes/s':>12}{'reset ms':>10}{'step ms':>9}{'steps/ep':>10}")
    for family in FAMILIES:
        r = measure_family(family, args.episodes)
        print(f"{family:<12}{r['steps_per_s']:>10.0f}{r['episodes_per_s']:>12.0f}{r['reset_ms']:>10.2f}"
              f"{r['step_ms']:>9.3f}{r['steps_per_episode']:>10.2f}")
    if not args.skip_easyocr:
        import torch

        torch.set_num_threads(1)
        print(f"easyocr backend: {measure_easyocr():.1f} ms per ocr call (incl. a reset each; CPU, 1 thread)")


if __name__ == "__main__":
    main()
