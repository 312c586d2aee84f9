"""Regenerate the README's pictures: ``docs/episode.png`` (one episode of a freshly trained default IAPO agent,
with its and its teacher's attribution maps) and ``docs/leaderboard-page.png`` (a screenshot of the
leaderboard page of a small benchmark of it beside the random, no-tool and oracle agents).

    python -m iapo_gym.benchmarks.docs_figures --out docs            # a few minutes on a laptop CPU

The agent is the default ``iapo`` training config (a short warm start on the oracle, then IAPO updates)
on the six headline families at difficulty 0; rerun this after the IAPO objective changes. The page
screenshot needs Debian's ``chromium`` and ``chromium-driver`` and the ``dev`` extra (selenium).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.trajectory import record_episode
from iapo_gym.viz import draw_episode, save_figure
from iapo_gym.wrappers import TeacherAttributionWrapper

from .browser import screenshot
from .runner import run_benchmark

if TYPE_CHECKING:
    from iapo_gym.envs.base import ToolVQAEnv

EPISODE_FAMILY = "TableQA"
SUITE = "six-easy-teacher"


def train_agent(out: Path, updates: int, warm_start: int, seed: int = 0) -> Path:
    """Train the default IAPO agent on the headline families at difficulty 0; returns its checkpoint folder."""
    from iapo_gym.agents.compact_agent import CompactAgent

    agent = CompactAgent(
        train={
            "env_id": "VisualToolVQA-v0",
            "env_kwargs": {"task": list(HEADLINE_FAMILIES), "difficulty": 0},
            "reward": "iapo",
            "updates": updates,
            "warm_start_episodes": warm_start,
            "seed": seed,
        }
    )
    agent.learn(out=out, progress=False)
    return out


def episode_picture(checkpoint: Path, out: Path, family: str = EPISODE_FAMILY, tries: int = 30) -> Path:
    """Draw a test-split episode of the agent with the oracle teacher's maps: the first one where it calls
    a tool and answers right (else the first where it calls a tool, else the first)."""
    from iapo_gym.agents.checkpoint import load_agent

    agent: Any = load_agent(checkpoint)
    env = TeacherAttributionWrapper(gym.make(f"VisualToolVQA-{family}-v0", difficulty=0, split="test"), teacher="oracle")
    lo = cast("ToolVQAEnv", env.unwrapped).scene_id_range()[0]
    best = None
    for k in range(tries):
        rec = record_episode(env, agent, seed=k, options={"scene_id": lo + k})
        looked = any(s.boxes for s in rec.trajectory.steps)
        if best is None or (looked and not any(s.boxes for s in best.trajectory.steps)):
            best = rec
        if looked and rec.trajectory.correct:
            best = rec
            break
    assert best is not None
    save_figure(draw_episode(best, title=f"trained default iapo agent · {family} (test split) · teacher oracle"), out)
    env.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m iapo_gym.benchmarks.docs_figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("docs"), help="where episode.png and leaderboard-page.png go (default docs)")
    p.add_argument("--work", type=Path, help="folder for the checkpoint and the benchmark results (default: a temporary one)")
    p.add_argument("--updates", type=int, default=15, help="IAPO updates (default 15)")
    p.add_argument("--warm-start", type=int, default=300, help="oracle episodes imitated first (default 300)")
    p.add_argument("--episodes", type=int, default=4, help="benchmark episodes per family (default 4)")
    p.add_argument("--checkpoint", type=Path, help="draw this trained agent instead of training one")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="iapo-docs-") as tmp:
        work = args.work or Path(tmp)
        if args.checkpoint is None:
            print("[1/3] training the default IAPO agent", file=sys.stderr)
            ckpt = train_agent(work / "iapo", args.updates, args.warm_start)
        else:
            ckpt = args.checkpoint
        print("[2/3] drawing an episode", file=sys.stderr)
        episode_picture(ckpt, args.out / "episode.png")
        print(f"[3/3] benchmarking on {SUITE} and taking a screenshot of the page", file=sys.stderr)
        board = run_benchmark(
            ["random", "no-tool", "oracle", f"iapo={ckpt}"],
            SUITE,
            seeds=[0],
            episodes=args.episodes,
            out=work / "bench",
            progress=False,
        )
        screenshot(board / "leaderboard.html", args.out / "leaderboard-page.png", width=1400, height=1000)
    print(f"wrote {args.out / 'episode.png'} and {args.out / 'leaderboard-page.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
