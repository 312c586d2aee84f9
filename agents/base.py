"""The agent protocol, the agent registry and the evaluation loop (SB3's ``evaluate_policy`` for tool calls).

An agent is anything with ``act(observation, info) -> str`` (a tool call) and ``reset()``; learners also
have ``learn(...)``, ``save(path)`` and ``load(path)``. Agents are found by registered name (``"oracle"``) or
loaded from a ``"module:Class"`` / ``"path/to/file.py:Class"`` spec, so a user's own agent runs in evaluation
and benchmarks without editing this package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class Agent(Protocol):
    """What every agent provides."""

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """The next tool call (a string the env parses) for this observation."""
        ...

    def reset(self) -> None:
        """Forget per-episode state (called before each episode)."""
        ...


@runtime_checkable
class Learner(Agent, Protocol):
    """An agent that trains and persists."""

    def learn(self, *args: Any, **kwargs: Any) -> Any: ...

    def save(self, path: str) -> Any: ...

    def load(self, path: str) -> Any: ...


_AGENTS: dict[str, Callable[..., Agent]] = {}


def register_agent(name: str, factory: Callable[..., Agent] | str, *, overwrite: bool = False) -> None:
    """Make ``name`` loadable by :func:`make_agent`; ``factory`` is a callable or a ``"module:Class"`` string."""
    if name in _AGENTS and not overwrite:
        raise ValueError(f"an agent named {name!r} is registered already; pass overwrite=True to replace it")
    _AGENTS[name] = factory if callable(factory) else (lambda spec: (lambda **kw: load_class(spec)(**kw)))(factory)


def agent_names() -> tuple[str, ...]:
    return tuple(_AGENTS)


def load_class(spec: str) -> Any:
    """Import ``"package.module:Name"`` or ``"path/to/file.py:Name"`` and return the attribute."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"agent spec {spec!r} must look like 'module:Class' or 'path/to/file.py:Class'")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"agent spec {spec!r}: no file {path}")
        mod_key = f"iapo_user_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(mod_key)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(mod_key, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_key] = module
            loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"agent spec {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"agent spec {spec!r}: module {module_name!r} has no attribute {attr!r}") from None


VLM_PREFIX = "vlm:"
VLM_AGENT = "iapo_gym.agents.vlm.agent:VLMAgent"


def is_vlm_folder(path: str | Path) -> bool:
    """A plain Hugging Face model folder (``config.json`` with a ``model_type``, no iapo ``agent_class``)."""
    import json

    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "model_type" in data and data.get("agent_class", VLM_AGENT) == VLM_AGENT


def make_agent(spec: str, **kwargs: Any) -> Agent:
    """An agent from a registered name, ``"vlm:PATH"`` (a local VLM folder; a plain Hugging Face model folder
    path works too) or a ``"module:Class"`` spec; keyword arguments go to its constructor."""
    if spec.startswith(VLM_PREFIX) or (spec not in _AGENTS and is_vlm_folder(spec)):
        path = spec[len(VLM_PREFIX):] if spec.startswith(VLM_PREFIX) else spec
        if not Path(path).expanduser().is_dir():
            raise ValueError(f"agent {spec!r}: no folder {path!r}; 'vlm:PATH' needs a local VLM checkpoint folder")
        agent = load_class(VLM_AGENT).load_checkpoint(Path(path).expanduser(), **kwargs)
    elif spec in _AGENTS:
        agent = _AGENTS[spec](**kwargs)
    elif ":" in spec:
        agent = load_class(spec)(**kwargs)
    else:
        raise ValueError(f"unknown agent {spec!r}; known: {', '.join(_AGENTS)}; or give a 'module:Class' spec")
    if not isinstance(agent, Agent):
        raise TypeError(f"agent {spec!r} ({type(agent).__name__}) needs act(observation, info) -> str and reset()")
    return agent


@dataclass
class EpisodeResult:
    """One evaluated episode."""

    family: str
    scene_id: int
    correct: bool
    reward: float
    tool_calls: dict[str, int] = field(default_factory=dict)
    invalid_calls: int = 0
    steps: int = 0
    reward_terms: dict[str, float] = field(default_factory=dict)
    alignment: float | None = None
    """Mean divergence between the teacher's and the agent's attribution of its decisions (lower is closer),
    when the env carries ``info["teacher_attribution"]`` and the agent has ``alignment(obs, info, action)``."""


def run_episode(env: gym.Env, agent: Agent, seed: int | None = None, options: dict[str, Any] | None = None) -> EpisodeResult:
    """Play one episode of ``agent`` in ``env`` and tally its tool use."""
    obs, info = env.reset(seed=seed, options=options)
    agent.reset()
    calls: dict[str, int] = {}
    terms: dict[str, float] = {}
    invalid = steps = 0
    total = 0.0
    done = False
    aligner = getattr(agent, "alignment", None)
    alignments: list[float] = []
    while not done:
        action = agent.act(obs, info)
        chosen_on = obs
        obs, reward, terminated, truncated, info = env.step(action)
        if callable(aligner) and "teacher_attribution" in info:  # the teacher's attribution of this action
            alignments.append(float(aligner(chosen_on, info, action)))
        steps += 1
        total += float(reward)
        if info.get("error"):
            invalid += 1
        elif info.get("tool"):
            calls[info["tool"]] = calls.get(info["tool"], 0) + 1
        for k, v in info.get("reward_terms", {}).items():
            terms[k] = terms.get(k, 0.0) + float(v)
        done = terminated or truncated
    return EpisodeResult(info["family"], int(info["scene_id"]), bool(info.get("correct", False)), total, calls,
                         invalid, steps, terms, float(np.mean(alignments)) if alignments else None)


def evaluate_agent(agent: Agent, env: gym.Env, n_episodes: int = 20, seed: int = 0) -> dict[str, float]:
    """Mean accuracy, return, tool calls and invalid calls per episode over ``n_episodes`` seeded episodes."""
    if n_episodes <= 0:
        raise ValueError(f"n_episodes must be positive; got {n_episodes}")
    results = [run_episode(env, agent, seed=seed + i) for i in range(n_episodes)]
    return {
        "accuracy": float(np.mean([r.correct for r in results])),
        "return": float(np.mean([r.reward for r in results])),
        "tool_calls": float(np.mean([sum(r.tool_calls.values()) - r.tool_calls.get("answer", 0) for r in results])),
        "invalid_calls": float(np.mean([r.invalid_calls for r in results])),
    }
