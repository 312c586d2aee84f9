"""Environment speed: steps/s per family, side by side with Minigrid, reset and OCR costs, GRPO rollout time.

Run::

    python -m iapo_gym.benchmarks.env_speed                      # steps/s per family, easyocr ms per call
    python -m iapo_gym.benchmarks.env_speed --vs-minigrid        # + Minigrid ratios, resets, rollout phase
    python -m iapo_gym.benchmarks.env_speed --vs-minigrid --out docs   # also writes docs/env_speed.{json,md}

One process, one core (OpenCV and torch limited to one thread). The workload is a random agent. On our
envs each step is a zoom or OCR of a random box, or (with probability 1/4) an answer, so episodes average
~4 steps, like an untrained policy; on Minigrid's ``MiniGrid-DoorKey-8x8-v0`` with ``RGBImgObsWrapper``
each step is a uniformly random action. Both run the same protocol, for the same number of steps, with
the same resets, timed end to end (resets included), interleaved family by family so both see the same
machine load, and repeated ``--rounds`` times (medians reported, with the ratio's range):

- ``fresh``: episode ``k`` resets with seed ``k``: a new scene (a new grid) every episode.
- ``grouped``: episode ``k`` resets with seed ``k // 8``: each scene is played by a group of 8 episodes, as
  the GRPO trainer does (``group_size=8``), so our envs reuse the drawn scene from the scene cache.

``--vs-minigrid`` also times a reset on a cached scene against a fresh draw, an ``ocr`` step of the
easyocr backend the first time and repeated on the same box, and the rollout phase of GRPO updates
(seconds per update in env resets and steps, the trainer's own envs and untrained policy) with the scene
cache on and off. Minigrid comes with the ``bench`` extra: ``pip install 'iapo-gym[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import cv2
import gymnasium as gym
import numpy as np

from iapo_gym import FAMILIES
from iapo_gym.envs.cache import scene_cache, scene_cache_size, set_scene_cache_size
from iapo_gym.io import atomic_write_json, atomic_write_text
from iapo_gym.tools import resample
from iapo_gym.validation import check_int

HEADLINE = ("HBar", "VBar", "SciChart", "TableQA", "TableSynth", "TableFact")
MINIGRID_ID = "MiniGrid-DoorKey-8x8-v0"
GROUP = 8
"""Episodes per scene in the ``grouped`` protocol (the GRPO trainer's default ``group_size``)."""
PROTOCOLS = {"fresh": 1, "grouped": GROUP}


def random_actions(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random tool calls: a zoom or OCR of a random box, or (probability 1/4) an answer."""
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


def run_random_agent(env: gym.Env, actions: list[Any], group: int) -> float:
    """Seconds to play ``len(actions)`` steps of the random agent, resetting with seed ``episode // group``
    whenever an episode ends (the first reset included)."""
    episode = 0
    t0 = time.perf_counter()
    env.reset(seed=0)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episode += 1
            env.reset(seed=episode // group)
    return time.perf_counter() - t0


def minigrid_env() -> tuple[gym.Env, Callable[[np.random.Generator, int], list[Any]]]:
    """Minigrid's DoorKey-8x8 with RGB image observations, and its random-action generator."""
    try:
        import minigrid  # noqa: F401  (registers the MiniGrid ids)
        from minigrid.wrappers import RGBImgObsWrapper
    except ImportError:
        raise SystemExit("--vs-minigrid needs Minigrid: pip install 'iapo-gym[bench]' (pinned in constraints.txt)") from None
    env = RGBImgObsWrapper(gym.make(MINIGRID_ID))
    n = int(cast("gym.spaces.Discrete", env.action_space).n)
    return env, lambda rng, k: [int(a) for a in rng.integers(n, size=k)]


def measure_family(family: str, episodes: int, seed: int = 0) -> dict[str, float]:
    """Steps/s, episodes/s, reset and step ms of the random agent over ``episodes`` fresh scenes."""
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


def vs_minigrid(families: tuple[str, ...], steps: int, rounds: int = 3, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per family and protocol: our steps/s, Minigrid's measured just before, and the ratio; each the median
    of ``rounds`` repeats of the same workload (a Minigrid run and ours back to back each time), with the
    range of the ratio over the repeats."""
    mg, mg_actions = minigrid_env()
    out: dict[str, dict[str, Any]] = {}
    for family in families:
        env = gym.make(f"VisualToolVQA-{family}-v0")
        row: dict[str, Any] = {}
        for name, group in PROTOCOLS.items():
            ours, theirs = [], []
            for _ in range(rounds):
                scene_cache().clear()
                rng = np.random.default_rng(seed)
                theirs.append(steps / run_random_agent(mg, mg_actions(rng, steps), group))
                ours.append(steps / run_random_agent(env, random_actions(rng, steps), group))
            ratios = [a / b for a, b in zip(ours, theirs)]
            row |= {
                f"{name}_steps_per_s": float(np.median(ours)),
                f"{name}_minigrid_steps_per_s": float(np.median(theirs)),
                f"{name}_ratio": float(np.median(ratios)),
                f"{name}_ratio_range": [min(ratios), max(ratios)],
            }
        out[family] = row
    return out


def kernel_ab(families: tuple[str, ...], steps: int, rounds: int = 3, seed: int = 0) -> dict[str, dict[str, float]]:
    """Grouped-protocol steps/s per family with views shrunk by ``cv2.resize`` and by the compiled area
    kernel (``iapo_gym._area``, same pixels), interleaved ``rounds`` times (medians; empty without the
    kernel). Toggled through ``IAPO_GYM_AREA_KERNEL``, restored afterwards."""
    if resample.kernel() is None:
        return {}
    saved = os.environ.get("IAPO_GYM_AREA_KERNEL")
    out = {}
    try:
        for family in families:
            env = gym.make(f"VisualToolVQA-{family}-v0")
            rates: dict[str, list[float]] = {"0": [], "1": []}
            for _ in range(rounds):
                for setting in ("0", "1"):
                    os.environ["IAPO_GYM_AREA_KERNEL"] = setting
                    resample.kernel.cache_clear()
                    scene_cache().clear()
                    actions = random_actions(np.random.default_rng(seed), steps)
                    rates[setting].append(steps / run_random_agent(env, actions, GROUP))
            off, on = float(np.median(rates["0"])), float(np.median(rates["1"]))
            out[family] = {"cv2_steps_per_s": off, "kernel_steps_per_s": on, "speedup": on / off}
    finally:
        if saved is None:
            os.environ.pop("IAPO_GYM_AREA_KERNEL", None)
        else:
            os.environ["IAPO_GYM_AREA_KERNEL"] = saved
        resample.kernel.cache_clear()
    return out


def reset_costs(families: tuple[str, ...], n: int = 40) -> dict[str, dict[str, float]]:
    """ms per reset drawing the scene (cache off) and taking it from the cache, on the same scene ids."""
    out = {}
    size = scene_cache_size()
    for family in families:
        env = gym.make(f"VisualToolVQA-{family}-v0")
        ids = [1000 + i for i in range(n)]
        set_scene_cache_size(0)
        t0 = time.perf_counter()
        for i in ids:
            env.reset(options={"scene_id": i})
        fresh = (time.perf_counter() - t0) / n
        set_scene_cache_size(max(size, 1))
        scene_cache().clear()
        env.reset(options={"scene_id": ids[0]})
        t0 = time.perf_counter()
        for _ in ids:
            env.reset(options={"scene_id": ids[0]})
        cached = (time.perf_counter() - t0) / n
        out[family] = {"fresh_ms": 1e3 * fresh, "cached_ms": 1e3 * cached, "speedup": fresh / cached}
    set_scene_cache_size(size)
    return out


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


def easyocr_repeat(calls: int = 10) -> dict[str, float]:
    """ms of an easyocr ``ocr`` step on a TextRead evidence box the first time in an episode, and repeated."""
    env = gym.make("VisualToolVQA-TextRead-v0", ocr="easyocr", budget=4)
    _, info = env.reset(seed=0)
    env.step(json.dumps({"tool": "ocr", "args": {"box": list(info["scene"].evidence[0].box)}}))  # loads the reader
    first = again = 0.0
    for i in range(calls):
        _, info = env.reset(seed=i + 1)
        call = json.dumps({"tool": "ocr", "args": {"box": list(info["scene"].evidence[0].box)}})
        t0 = time.perf_counter()
        env.step(call)
        t1 = time.perf_counter()
        env.step(call)
        t2 = time.perf_counter()
        first, again = first + t1 - t0, again + t2 - t1
    return {"first_ms": 1e3 * first / calls, "repeated_ms": 1e3 * again / calls}


class _Timed(gym.Wrapper):
    """Adds the seconds spent in ``reset`` and ``step`` to ``clock[0]``."""

    def __init__(self, env: gym.Env, clock: list[float]) -> None:
        super().__init__(env)
        self.clock = clock

    def reset(self, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.clock[0] += time.perf_counter() - t0
        return out

    def step(self, action: Any) -> Any:
        t0 = time.perf_counter()
        out = self.env.step(action)
        self.clock[0] += time.perf_counter() - t0
        return out


def rollout_phase(updates: int = 5, seed: int = 0) -> dict[str, float]:
    """Seconds per GRPO update spent in env resets and steps (4 questions x groups of 8, the trainer's
    defaults, on the mixture env with the untrained compact policy acting), scene cache off and on."""
    import torch

    from iapo_gym.agents.trainer import GroupTrainer, TrainConfig

    out = {}
    size = scene_cache_size()
    for name, cache in (("uncached", 0), ("cached", max(size, 1))):
        set_scene_cache_size(cache)
        scene_cache().clear()
        torch.manual_seed(seed)
        trainer = GroupTrainer(TrainConfig(reward="grpo", seed=seed, policy={"width": 8, "hidden": 32}))
        clock = [0.0]
        trainer.envs = [_Timed(env, clock) for env in trainer.envs]
        steps = 0
        for _ in range(updates):
            steps += trainer.collect().steps
        out[f"{name}_s_per_update"] = clock[0] / updates
        out[f"{name}_env_steps_per_update"] = steps / updates
    set_scene_cache_size(size)
    out["speedup"] = out["uncached_s_per_update"] / out["cached_s_per_update"]
    return out


def _ratio(v: dict[str, Any], protocol: str) -> str:
    lo_hi = v.get(f"{protocol}_ratio_range")
    return f"{v[f'{protocol}_ratio']:.2f}" + (f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "")


def render_markdown(r: dict[str, Any]) -> str:
    """The Markdown page of a ``--vs-minigrid`` result."""
    lines = [
        "# Environment speed",
        "",
        f"`{r['command']}` — {r['machine']}; one process, OpenCV and torch on one thread (absolute rates vary",
        "with the machine's load; each ratio pairs two runs taken back to back).",
        "",
        f"Random agent, {r['steps']} steps per family and protocol, resets included; each figure the median of "
        f"{r.get('rounds', 1)} repeats",
        "of the same workload (Minigrid's run and ours back to back each time; the ratio's range over them in brackets).",
        "`fresh`: a new scene",
        f"(a new grid) every episode; `grouped`: each scene played by {GROUP} episodes, as the GRPO trainer",
        f"does. Minigrid: `{MINIGRID_ID}` with `RGBImgObsWrapper`, uniformly random actions, same protocol.",
        "",
        "| family | fresh steps/s | Minigrid | ratio | grouped steps/s | Minigrid | ratio | reset fresh ms | reset cached ms | x |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fam, v in r["vs_minigrid"].items():
        c = r["resets"][fam]
        lines.append(
            f"| {fam}{' *' if fam in HEADLINE else ''} | {v['fresh_steps_per_s']:,.0f} | {v['fresh_minigrid_steps_per_s']:,.0f} | "
            f"{_ratio(v, 'fresh')} | {v['grouped_steps_per_s']:,.0f} | {v['grouped_minigrid_steps_per_s']:,.0f} | "
            f"{_ratio(v, 'grouped')} | {c['fresh_ms']:.2f} | {c['cached_ms']:.3f} | {c['speedup']:.0f} |"
        )
    ro, ocr, ab = r["rollout"], r.get("easyocr"), r.get("kernel_ab")
    lines += [
        "",
        "`*`: headline family. Views shrunk by "
        + (
            "the compiled area kernel (`iapo_gym._area`; the same pixels as `cv2.resize`)."
            if r.get("area_kernel")
            else "`cv2.resize` (the compiled area kernel absent or turned off)."
        ),
        "",
        f"GRPO rollout phase (env resets + steps per update; 4 questions x {GROUP} episodes, mixture env, untrained "
        f"compact policy): {ro['uncached_s_per_update']:.3f} s without the scene cache, {ro['cached_s_per_update']:.3f} s "
        f"with it ({ro['speedup']:.1f}x; {ro['cached_env_steps_per_update']:.0f} env steps per update).",
    ]
    if ab:
        lines += [
            "",
            f"Grouped steps/s with views shrunk by `cv2.resize` and by the compiled area kernel (same pixels), "
            f"interleaved, median of {r.get('rounds', 1)}:",
            "",
            "| family | cv2.resize | kernel | x |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {fam} | {v['cv2_steps_per_s']:,.0f} | {v['kernel_steps_per_s']:,.0f} | {v['speedup']:.2f} |"
            for fam, v in ab.items()
        ]
    if ocr:
        lines += [
            "",
            f"easyocr backend, `ocr` step on a TextRead evidence box: {ocr['first_ms']:.1f} ms the first time in "
            f"an episode, {ocr['repeated_ms']:.3f} ms repeated (memoised per box within the episode).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=300, help="episodes per family of the plain table")
    parser.add_argument("--skip-easyocr", action="store_true", help="do not time the easyocr backend")
    parser.add_argument("--vs-minigrid", action="store_true", help="side by side with Minigrid DoorKey-8x8 RGB, and more")
    parser.add_argument("--steps", type=int, default=3000, help="steps per family and protocol with --vs-minigrid")
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeats per family and protocol with --vs-minigrid (medians reported)"
    )
    parser.add_argument("--updates", type=int, default=5, help="GRPO updates timed per setting with --vs-minigrid")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY")
    parser.add_argument("--out", type=Path, help="with --vs-minigrid: write OUT/env_speed.json and OUT/env_speed.md")
    args = parser.parse_args(argv)
    try:
        for name in ("episodes", "steps", "rounds", "updates"):
            check_int(f"--{name}", getattr(args, name), 1)
    except ValueError as exc:
        parser.error(str(exc))
    cv2.setNumThreads(1)
    families = tuple(args.families)
    if not args.vs_minigrid:
        print(f"{'family':<12}{'steps/s':>10}{'episodes/s':>12}{'reset ms':>10}{'step ms':>9}{'steps/ep':>10}")
        for family in families:
            r = measure_family(family, args.episodes)
            print(
                f"{family:<12}{r['steps_per_s']:>10.0f}{r['episodes_per_s']:>12.0f}{r['reset_ms']:>10.2f}"
                f"{r['step_ms']:>9.3f}{r['steps_per_episode']:>10.2f}"
            )
        if not args.skip_easyocr:
            import torch

            torch.set_num_threads(1)
            print(f"easyocr backend: {measure_easyocr():.1f} ms per ocr call (incl. a reset each; CPU, 1 thread)")
        return
    import torch

    torch.set_num_threads(1)
    command = "python -m iapo_gym.benchmarks.env_speed --vs-minigrid" + (f" --steps {args.steps}" if args.steps != 3000 else "")
    command += f" --rounds {args.rounds}" if args.rounds != 3 else ""
    result: dict[str, Any] = {
        "command": command,
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "steps": args.steps,
        "rounds": args.rounds,
        "group": GROUP,
    }
    result["vs_minigrid"] = vs_minigrid(families, args.steps, args.rounds)
    print(f"{'family':<12}{'fresh':>9}{'minigrid':>10}{'ratio':>7}{'grouped':>9}{'minigrid':>10}{'ratio':>7}")
    for fam, v in result["vs_minigrid"].items():
        print(
            f"{fam:<12}{v['fresh_steps_per_s']:>9.0f}{v['fresh_minigrid_steps_per_s']:>10.0f}{v['fresh_ratio']:>7.2f}"
            f"{v['grouped_steps_per_s']:>9.0f}{v['grouped_minigrid_steps_per_s']:>10.0f}{v['grouped_ratio']:>7.2f}"
        )
    result["area_kernel"] = resample.kernel() is not None
    result["kernel_ab"] = ab = kernel_ab(families, args.steps, args.rounds)
    for fam, a in ab.items():
        print(
            f"{fam:<12} grouped with cv2.resize {a['cv2_steps_per_s']:.0f} steps/s, with the area kernel "
            f"{a['kernel_steps_per_s']:.0f} ({a['speedup']:.2f}x)"
        )
    result["resets"] = reset_costs(families)
    for fam, c in result["resets"].items():
        print(f"{fam:<12} reset: fresh draw {c['fresh_ms']:.2f} ms, cached {c['cached_ms']:.3f} ms ({c['speedup']:.0f}x)")
    result["rollout"] = ro = rollout_phase(args.updates)
    print(
        f"GRPO rollout phase: {ro['uncached_s_per_update']:.3f} s/update without the scene cache, "
        f"{ro['cached_s_per_update']:.3f} s with it ({ro['speedup']:.1f}x)"
    )
    if not args.skip_easyocr:
        result["easyocr"] = ocr = easyocr_repeat()
        print(f"easyocr ocr step: {ocr['first_ms']:.1f} ms first, {ocr['repeated_ms']:.3f} ms repeated")
    if args.out is not None:
        atomic_write_json(args.out / "env_speed.json", result)
        atomic_write_text(args.out / "env_speed.md", render_markdown(result))
        print(f"wrote {args.out / 'env_speed.json'} and {args.out / 'env_speed.md'}")


if __name__ == "__main__":
    main()
