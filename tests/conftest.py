"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import settings
from iapo_gym.agents import OracleAgent

import iapo_gym
from iapo_gym.scene import Box, Scene
from iapo_gym.tools import letterbox

# CI replays the same examples every run (a failure found once locally is then pinned by a test of its own)
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

PROCEDURAL_IDS = [i for i in iapo_gym.ENV_TABLE if i not in ("DatasetVQA-v0", "RealVQA-v0")]


def run_episode(env: gym.Env, agent: Any, seed: int) -> tuple[dict[str, Any], list[str], float]:
    """Run one episode; return the last info, the actions taken and the return."""
    obs, info = env.reset(seed=seed)
    agent.reset()
    actions, total, done = [], 0.0, False
    while not done:
        action = agent.act(obs, info)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return info, actions, total


def oracle_accuracy(env_cls: type, difficulty: int, seeds: range, use_tools: bool = True) -> float:
    """The fraction of `seeds` that the oracle (glance only when `use_tools` is false) answers correctly on
    `env_cls(difficulty=difficulty)`, one `run_episode` per seed."""
    env = env_cls(difficulty=difficulty)
    agent = OracleAgent(use_tools=use_tools)
    return float(np.mean([run_episode(env, agent, seed)[0]["correct"] for seed in seeds]))


def assert_oracle_needs_tools(
    env_cls: type, difficulty: int, seeds: range, glance_ceiling: float, tools_floor: float = 0.95
) -> None:
    """The oracle with its tools answers at least `tools_floor` of `seeds`, and glance only at most
    `glance_ceiling` (each family file passes its own ceiling)."""
    with_tools = oracle_accuracy(env_cls, difficulty, seeds)
    glance = oracle_accuracy(env_cls, difficulty, seeds, use_tools=False)
    assert with_tools >= tools_floor, f"{env_cls.family} d{difficulty}: oracle with tools {with_tools:.2f}"
    assert glance <= glance_ceiling, f"{env_cls.family} d{difficulty}: glance-only oracle {glance:.2f}"


def glance_xy(scene: Scene, x: float, y: float, view: int = 128) -> tuple[float, float]:
    """A normalised point of the scene in glance-pixel coordinates (the glance letterboxes the canvas)."""
    oy, ox, nh, nw = letterbox(scene.height, scene.width, view)
    return ox + x * nw, oy + y * nh


def glance_box(scene: Scene, box: Box, view: int = 128) -> tuple[float, float, float, float]:
    """A normalised box of the scene in glance-pixel coordinates (the glance letterboxes the canvas)."""
    x0, y0 = glance_xy(scene, box[0], box[1], view)
    x1, y1 = glance_xy(scene, box[2], box[3], view)
    return x0, y0, x1, y1


def questions_digest(cls: type, difficulty: int, seeds: range = range(40)) -> str:
    """The first 16 hex digits of the sha1 of repr((question, answers)) of `cls`'s scenes over `seeds` at
    `difficulty`: pins the generated questions, so that a changed rng draw shows."""
    h = hashlib.sha1()
    for seed in seeds:
        scene = cls.generate(np.random.default_rng(seed), difficulty)
        h.update(repr((scene.question, scene.answers)).encode())
    return h.hexdigest()[:16]


@pytest.fixture
def oracle() -> OracleAgent:
    return OracleAgent()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (CI runs them always)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run in CI (``CI`` set) or with ``--run-slow``; locally they are skipped."""
    if config.getoption("--run-slow") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="slow: runs in CI, or locally with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
