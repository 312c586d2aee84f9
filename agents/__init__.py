"""Agents: the protocol, the registry, built-in agents and trainers."""

from .base import (
    Agent,
    EpisodeResult,
    Learner,
    agent_names,
    evaluate_agent,
    evaluate_episodes,
    load_class,
    make_agent,
    register_agent,
    run_episode,
    run_episode_async,
)
from .oracle import OracleAgent
from .simple import NoToolAgent, RandomAgent

register_agent("random", RandomAgent, overwrite=True)
register_agent("no-tool", NoToolAgent, overwrite=True)
register_agent("oracle", OracleAgent, overwrite=True)
register_agent("iapo", "iapo_gym.agents.compact_agent:make_iapo_agent", overwrite=True)
register_agent("grpo", "iapo_gym.agents.compact_agent:make_grpo_agent", overwrite=True)
register_agent("ppo", "iapo_gym.agents.ppo:PPOAgent", overwrite=True)
register_agent("vlm", "iapo_gym.agents.vlm:VLMAgent", overwrite=True)

__all__ = [
    "Agent",
    "EpisodeResult",
    "Learner",
    "NoToolAgent",
    "OracleAgent",
    "RandomAgent",
    "agent_names",
    "evaluate_agent",
    "evaluate_episodes",
    "load_class",
    "make_agent",
    "register_agent",
    "run_episode",
    "run_episode_async",
]
