"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest

import iapo_gym
from iapo_gym.agents import OracleAgent

PROCEDURAL_IDS = [i for i in iapo_gym.ENV_TABLE if i != "DatasetVQA-v0"]


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


@pytest.fixture
def oracle() -> OracleAgent:
    return OracleAgent()
