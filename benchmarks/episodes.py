"""Episode pictures from a results store alone: no agent is run.

The store keeps each episode's trajectory (actions, chosen boxes, tool outputs, attributions) and how
each suite family's env was made; the scene and the crops come back by re-playing the stored actions in
that env (:func:`iapo_gym.trajectory.replay`), and :func:`iapo_gym.viz.draw_episode` draws it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from iapo_gym.trajectory import Recording, ReplayMismatch, replay
from iapo_gym.viz import draw_episode, save_figure

from .store import DB_NAME, EpisodeRow, ResultsStore, StoreError


class EpisodeNotFound(StoreError):
    """No such episode (or no trajectory of it) in a store; the message lists what there is."""


def find_episode(
    store: ResultsStore, agent: str, family: str, episode: int = 0, suite: str | None = None, seed: int | None = None
) -> EpisodeRow:
    """The stored episode ``episode`` (index within its cell) of ``agent`` on ``family``.

    ``suite`` may be left out when one suite has that agent and family; ``seed`` defaults to the smallest.
    """
    rows = [e for e in store.episodes(suite=suite) if e.agent == agent]
    if not rows:
        known = sorted({e.agent for e in store.episodes(suite=suite)})
        raise EpisodeNotFound(
            f"no episodes of agent {agent!r} in {store.path}{f' (suite {suite!r})' if suite else ''}; "
            f"agents there: {', '.join(known) or 'none'}"
        )
    rows = [e for e in rows if e.family == family]
    if not rows:
        known = sorted({e.family for e in store.episodes(suite=suite) if e.agent == agent})
        raise EpisodeNotFound(f"agent {agent!r} has no episodes of family {family!r}; its families: {', '.join(known)}")
    suites = sorted({e.suite for e in rows})
    if len(suites) > 1:
        raise EpisodeNotFound(f"agent {agent!r} played {family} in several suites ({', '.join(suites)}); choose one with --suite")
    seeds = sorted({e.seed for e in rows})
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise EpisodeNotFound(f"agent {agent!r} has no {family} episodes with seed {seed}; seeds: {', '.join(map(str, seeds))}")
    cell = [e for e in rows if e.seed == seed]
    match = [e for e in cell if e.episode == episode]
    if not match:
        raise EpisodeNotFound(f"no episode {episode} of agent {agent!r} on {family} seed {seed}; episodes 0 to {len(cell) - 1}")
    return match[0]


def load_recording(store: ResultsStore, row: EpisodeRow, envs: dict[tuple[str, str], gym.Env] | None = None) -> Recording:
    """The stored trajectory of ``row`` with its scene and crops (re-played in the family's env as run).

    ``envs`` caches envs by (suite, family) across calls.
    """
    trajectory = store.trajectory(row)
    if trajectory is None:
        raise EpisodeNotFound(
            f"episode {row.episode} of {row.agent} on {row.family} (seed {row.seed}) has no stored trajectory: "
            f"it was run before trajectories were recorded (results schema version 1); rerun that agent "
            f"into a new --out folder to draw its episodes"
        )
    task = store.task(row.suite, row.family)
    if task is None:
        raise EpisodeNotFound(f"{store.path} does not record how suite {row.suite!r} made the env of {row.family}")
    if envs is None:  # a one-off: make the env, replay, close it
        env = gym.make(task[0], **task[1])
        try:
            return replay(env, trajectory)
        finally:
            env.close()
    key = (row.suite, row.family)
    if key not in envs:
        envs[key] = gym.make(task[0], **task[1])
    return replay(envs[key], trajectory)


def title_of(row: EpisodeRow) -> str:
    return f"{row.agent} · suite {row.suite} · seed {row.seed} · episode {row.episode}"


def draw_stored_episode(
    results: str | os.PathLike[str],
    agent: str,
    family: str,
    episode: int = 0,
    *,
    suite: str | None = None,
    seed: int | None = None,
    out: str | os.PathLike[str] | None = None,
) -> Any:
    """Draw one stored episode of the results folder ``results`` (see :func:`find_episode`); returns the
    ``Figure`` and writes it to ``out`` (a PNG) when given."""
    with ResultsStore(Path(results).expanduser() / DB_NAME, readonly=True) as store:
        row = find_episode(store, agent, family, episode, suite, seed)
        try:
            recording = load_recording(store, row)
        except ReplayMismatch as exc:
            raise EpisodeNotFound(f"cannot redraw episode {row.episode} of {agent} on {family}: {exc}") from None
    fig = draw_episode(recording, title=title_of(row))
    if out is not None:
        save_figure(fig, out)
    return fig


def pick_episodes(rows: Sequence[EpisodeRow], k: int) -> list[EpisodeRow]:
    """Up to ``k`` episodes to show: the first right one and the first wrong one, then the next in order."""
    ordered = sorted(rows, key=lambda e: (e.seed, e.episode))
    picks: list[EpisodeRow] = []
    for want in (True, False):
        first = next((e for e in ordered if e.correct == want), None)
        if first is not None and len(picks) < k:
            picks.append(first)
    picks += [e for e in ordered if e not in picks][: max(0, k - len(picks))]
    return sorted(picks, key=lambda e: (e.seed, e.episode))


__all__ = ["EpisodeNotFound", "draw_stored_episode", "find_episode", "load_recording", "pick_episodes", "title_of"]
