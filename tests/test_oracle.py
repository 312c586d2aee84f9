"""The tools are needed: the oracle answers (nearly) everything when it reads through the tools, and far
less when it may only look at the glance image."""

from __future__ import annotations

import gymnasium as gym
import pytest
from iapo_gym.agents import OracleAgent

from iapo_gym import FAMILIES

from .conftest import run_episode

EPISODES = 100


def accuracy(family: str, use_tools: bool) -> float:
    env = gym.make(f"VisualToolVQA-{family}-v0", split="test")
    agent = OracleAgent(use_tools=use_tools)
    return sum(run_episode(env, agent, seed)[0]["correct"] for seed in range(EPISODES)) / EPISODES


@pytest.mark.parametrize("family", FAMILIES)
def test_oracle_with_tools_beats_glance_only(family: str) -> None:
    with_tools, glance = accuracy(family, True), accuracy(family, False)
    assert with_tools >= 0.95, f"{family}: oracle with tools {with_tools:.2f}"
    assert glance <= with_tools - 0.4, f"{family}: glance-only oracle {glance:.2f} vs tools {with_tools:.2f}"
