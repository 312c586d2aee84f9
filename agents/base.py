"""The agent protocol, the agent registry and the evaluation loop (SB3's ``evaluate_policy`` for tool calls).

An agent is anything with ``act(observation, info) -> str`` (a tool call) and ``reset()``; learners also
have ``learn(...)``, ``save(path)`` and ``load(path)``. Agents are found by registered name (``"oracle"``) or
loaded from a ``"module:Class"`` / ``"path/to/file.py:Class"`` spec, so a user's own agent runs in evaluation
and benchmarks without editing this package. A spec read from a file (a checkpoint, a suite) is imported
only if it is in ``iapo_gym``, registered here, or the user opts in (see :mod:`iapo_gym.specs`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np

from iapo_gym.specs import USER_MODULE_PREFIX, load_class


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
    _AGENTS[name] = factory if callable(factory) else _SpecFactory(factory)


@dataclass(frozen=True)
class _SpecFactory:
    """An agent registered by ``"module:Class"`` string: imported when first made."""

    spec: str

    def __call__(self, **kwargs: Any) -> Agent:
        return load_class(self.spec)(**kwargs)


def agent_names() -> tuple[str, ...]:
    return tuple(_AGENTS)


def registered_specs() -> tuple[str, ...]:
    """The ``"module:Class"`` specs the registered agents stand for (registered by string, or a class
    registered in code): a file may name these without ``trust_remote_code``, since the user registered them."""
    specs = []
    for factory in _AGENTS.values():
        spec = getattr(factory, "spec", None)
        if isinstance(spec, str):
            specs.append(spec)
        elif isinstance(factory, type):
            specs.append(f"{factory.__module__}:{factory.__qualname__}")
            origin = getattr(sys.modules.get(factory.__module__), "__file__", None)
            if factory.__module__.startswith(USER_MODULE_PREFIX) and origin:  # registered from a file
                specs.append(f"{origin}:{factory.__qualname__}")
    return tuple(specs)


VLM_PREFIX = "vlm:"
VLM_AGENT = "iapo_gym.agents.vlm.agent:VLMAgent"
SERVED_PREFIX = "openai:"
SERVED_AGENT = "iapo_gym.agents.served:OpenAIAgent"


def is_vlm_folder(path: str | Path) -> bool:
    """A plain Hugging Face model folder (``config.json`` with a ``model_type``, no iapo ``agent_class``)."""
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
    path works too), ``"openai:MODEL@URL"`` (a model served behind an OpenAI-compatible chat API) or a
    ``"module:Class"`` / ``"file.py:Class"`` spec; keyword arguments go to its constructor. The spec is the caller's own (typed in code or on a command line), so it is imported as
    given; a class named inside a file goes through :func:`~iapo_gym.specs.check_trusted`."""
    if spec.startswith(SERVED_PREFIX):
        agent = load_class(SERVED_AGENT).from_spec(spec, **kwargs)
    elif spec.startswith(VLM_PREFIX) or (spec not in _AGENTS and is_vlm_folder(spec)):
        path = spec[len(VLM_PREFIX) :] if spec.startswith(VLM_PREFIX) else spec
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
    scored: bool = True
    """False when the item has no published answer (``info["scored"]``): ``correct`` means nothing then."""
    error: str | None = None
    """Why the agent could not go on (a served model's request that failed for good); the episode ended there."""
    usage: dict[str, Any] | None = None
    """A served agent's tokens, requests and cost for this episode (``None`` for in-process agents)."""


class EpisodeTally:
    """Adds up one episode's steps: the tool calls per tool, invalid calls, reward and its named terms."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.calls: dict[str, int] = {}
        self.terms: dict[str, float] = {}
        self.invalid = self.steps = 0
        self.total = 0.0

    def step(self, reward: SupportsFloat, info: dict[str, Any]) -> None:
        self.info = info
        self.steps += 1
        self.total += float(reward)
        if info.get("error"):
            self.invalid += 1
        elif info.get("tool"):
            self.calls[info["tool"]] = self.calls.get(info["tool"], 0) + 1
        for k, v in info.get("reward_terms", {}).items():
            self.terms[k] = self.terms.get(k, 0.0) + float(v)

    def result(
        self, alignments: list[float] | None = None, error: str | None = None, usage: dict[str, Any] | None = None
    ) -> EpisodeResult:
        info = self.info
        return EpisodeResult(
            info["family"],
            int(info["scene_id"]),
            bool(info.get("correct", False)) and error is None,
            self.total,
            self.calls,
            self.invalid,
            self.steps,
            self.terms,
            float(np.mean(alignments)) if alignments else None,
            bool(info.get("scored", True)),
            error,
            usage,
        )


def run_episode(
    env: gym.Env, agent: Agent, seed: int | None = None, options: dict[str, Any] | None = None, *, align: bool = True
) -> EpisodeResult:
    """Play one episode of ``agent`` in ``env`` and tally its tool use; with ``align`` (and a teacher wrapper
    on the env, and an agent with ``alignment(obs, info, action)``) also its mean alignment with the teacher.
    The benchmark runner passes ``align=False``: it measures alignment once, from the recorded trajectory."""
    obs, info = env.reset(seed=seed, options=options)
    agent.reset()
    tally = EpisodeTally(info)
    done = False
    aligner = getattr(agent, "alignment", None) if align else None
    alignments: list[float] = []
    while not done:
        action = agent.act(obs, info)
        chosen_on = obs
        obs, reward, terminated, truncated, info = env.step(action)
        if callable(aligner) and "teacher_attribution" in info:  # the teacher's attribution of this action
            alignments.append(float(aligner(chosen_on, info, action)))
        tally.step(reward, info)
        done = terminated or truncated
    return tally.result(alignments)


@runtime_checkable
class Session(Protocol):
    """One episode of an agent that waits on I/O (a served model): ``await act(observation, info)``."""

    usage: Any

    async def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str: ...


async def run_episode_async(
    env: gym.Env,
    session: Session,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    *,
    errors: tuple[type[BaseException], ...] = (),
) -> EpisodeResult:
    """:func:`run_episode` for a session whose ``act`` is a coroutine, so that many episodes (each with its own
    env and session) run concurrently in one event loop. An exception of a type in ``errors`` (a request
    that failed for good) ends the episode: it is returned as ``error``, never scored as an answer."""
    obs, info = env.reset(seed=seed, options=options)
    tally = EpisodeTally(info)
    done = False
    error: str | None = None
    while not done:
        try:
            action = await session.act(obs, info)
        except errors as exc:
            error = str(exc)
            break
        obs, reward, terminated, truncated, info = env.step(action)
        tally.step(reward, info)
        done = terminated or truncated
    usage = session.usage.to_json() if hasattr(session.usage, "to_json") else None
    return tally.result(error=error, usage=usage)


def evaluate_episodes(
    agent: Agent, env: gym.Env, *, seeds: Sequence[int] | None = None, scene_ids: Sequence[int] | None = None
) -> Iterator[EpisodeResult]:
    """The one evaluation loop: ``agent`` plays one episode per seed (``reset(seed=s)``) or per scene id
    (``options={"scene_id": i}``), and each result is yielded as it finishes (the env is as the episode left
    it, so a wrapping :class:`~iapo_gym.trajectory.TrajectoryRecorder` holds that episode's trajectory).
    :func:`evaluate_agent`, the trainer's evaluation and the learning benchmarks play through it."""
    if (seeds is None) == (scene_ids is None):
        raise ValueError("give exactly one of seeds= (reset seeds) or scene_ids= (items to play)")
    if seeds is not None:
        for seed in seeds:
            yield run_episode(env, agent, seed=int(seed))
    elif scene_ids is not None:  # always (exactly one is given)
        for scene_id in scene_ids:
            yield run_episode(env, agent, options={"scene_id": int(scene_id)})


def evaluate_agent(
    agent: Agent, env: gym.Env, n_episodes: int = 20, seed: int = 0, *, scene_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """Mean accuracy, return, tool calls and invalid calls per episode over ``n_episodes`` seeded episodes
    (seeds ``seed .. seed + n_episodes - 1``), or over the given ``scene_ids``.

    Accuracy counts the scored episodes only (items without a published answer are played, not scored; NaN
    when none is scored); ``scored`` is how many were."""
    if scene_ids is None and n_episodes <= 0:
        raise ValueError(f"n_episodes must be positive; got {n_episodes}")
    if scene_ids is not None:
        results = list(evaluate_episodes(agent, env, scene_ids=scene_ids))
    else:
        results = list(evaluate_episodes(agent, env, seeds=range(seed, seed + n_episodes)))
    scored = [r.correct for r in results if r.scored]
    return {
        "accuracy": float(np.mean(scored)) if scored else float("nan"),
        "scored": float(len(scored)),
        "return": float(np.mean([r.reward for r in results])),
        "tool_calls": float(np.mean([sum(r.tool_calls.values()) - r.tool_calls.get("answer", 0) for r in results])),
        "invalid_calls": float(np.mean([r.invalid_calls for r in results])),
    }
