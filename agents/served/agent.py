"""``OpenAIAgent``: a model behind an OpenAI-compatible chat endpoint as an agent (``openai:MODEL@URL``).

The chat of an episode is the ``vlm:`` agent's, in the API's shape: the same system prompt and tool texts;
a user message with the glance (a PNG data URL) and the question; the tools as ``tools=`` function specs
(the item's own schemas from ``info["tools"]`` when the env gives them). After each action: the assistant
message as the server returned it (with its ``tool_calls``), then a ``tool`` message (``tool_call_id``; the
tool's text or the env's error), and when the tool returned an image, a ``user`` message with it (the API
takes no image in a tool message). A reply without a tool call is passed to the env as is and its result
comes back as a ``user`` message. With ``function_calling=False`` (a server without function calling) no
``tools=`` are sent: the system prompt lists the tools' JSON schemas and the accepted text forms, and the
model's text is the action.

Episodes run concurrently through sessions (``agent.session()``, ``await session.act(obs, info)``), which
share the agent's client (its in-flight limit, cache and counters); the plain agent protocol
(``reset()``, ``act(obs, info)``) runs one default session on a private event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from iapo_gym.tools import BUILTIN_TOOLS

from ..base import SERVED_PREFIX as SPEC_PREFIX
from ..vlm.prompt import DEFAULT_SYSTEM, Dialogue, DialogueTracker, Turn, clean
from .client import ChatClient, ChatResult, ResponseCache, ServedError, canonical_json, check_base_url
from .messages import action_of, assistant_message, first_message, function_specs, image_part, text_system

"""Agent specs ``openai:MODEL@URL`` name a served model."""

AGENT_NAME = "openai"

_T = TypeVar("_T")
_SCHEMES = ("http://", "https://")
_SPEC_EXAMPLE = "e.g. 'openai:Qwen/Qwen2.5-VL-7B-Instruct@http://localhost:8000/v1'"


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openai:MODEL@URL"`` -> ``(MODEL, URL)``.

    The model name may hold ``/``, ``:`` and ``@``: the split is at the last ``@`` whose right side starts with
    ``http://`` or ``https://`` (so a URL with credentials, ``https://user:pass@host/v1``, stays whole).

    Raises:
        ValueError: not of that form (the message says what is missing).
    """
    if not isinstance(spec, str):
        raise ValueError(f"agent spec must be a string 'openai:MODEL@URL' ({_SPEC_EXAMPLE}); got {type(spec).__name__}")
    if not spec.startswith(SPEC_PREFIX):
        raise ValueError(
            f"agent spec {spec!r} does not start with {SPEC_PREFIX!r}: expected 'openai:MODEL@URL' ({_SPEC_EXAMPLE})"
        )
    rest = spec[len(SPEC_PREFIX) :]
    cut = max((i for i, c in enumerate(rest) if c == "@" and rest.startswith(_SCHEMES, i + 1)), default=-1)
    if cut < 0:
        raise ValueError(
            f"agent spec {spec!r} has no '@URL' with an http:// or https:// URL after the model "
            f"name: expected 'openai:MODEL@URL' ({_SPEC_EXAMPLE})"
        )
    model, url = rest[:cut], rest[cut + 1 :]
    if not model:
        raise ValueError(f"agent spec {spec!r} has an empty model name: expected 'openai:MODEL@URL' ({_SPEC_EXAMPLE})")
    if any(c.isspace() for c in model):
        raise ValueError(f"agent spec {spec!r}: the model name {model!r} contains whitespace ({_SPEC_EXAMPLE})")
    check_base_url(url, what=f"the URL in agent spec '{SPEC_PREFIX}{model}@...'")
    return model, url


def format_spec(model: str, url: str) -> str:
    """The spec :func:`parse_spec` reads back as ``(model, url)``."""
    return f"{SPEC_PREFIX}{model}@{url}"


@dataclass
class Usage:
    """What one episode (session) used.

    Attributes:
        prompt_tokens, completion_tokens: tokens over all its replies, cached ones included (what the episode
            costs, whether or not this run paid for it again).
        requests: HTTP requests sent (retries included; none for cached replies).
        cached: replies that came from the cache.
        retries: requests that were retries.
        cost: USD at the agent's ``prices`` over the tokens above (``None`` without prices).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cached: int = 0
    retries: int = 0
    cost: float | None = None

    def add(self, result: ChatResult, prices: tuple[float, float] | None) -> None:
        """Count one reply."""
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.requests += result.attempts
        self.retries += max(0, result.attempts - 1)
        self.cached += int(result.cached)
        if prices is not None:
            self.cost = (self.prompt_tokens * prices[0] + self.completion_tokens * prices[1]) / 1e6

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EpisodeSession:
    """One episode's chat with the served model (made by :meth:`OpenAIAgent.session`).

    ``await act(observation, info)`` returns the next action. A request that fails for good raises
    :class:`~iapo_gym.agents.served.client.ServedError` out of ``act`` (and sets :attr:`error`), so the caller
    records the episode as errored instead of scoring a made-up answer.

    Attributes:
        messages: the chat so far, as sent (the last request's messages plus the reply).
        usage: tokens, requests, cache hits and cost of this episode (:class:`Usage`).
        error: the message of the :class:`ServedError` that ended the episode, if one did.
        failure: that :class:`ServedError` itself (its ``status``: the last HTTP status, ``None`` when no
            response came back).
        actions: the actions returned, in order.
    """

    def __init__(self, agent: OpenAIAgent) -> None:
        self._agent = agent
        self._tracker = DialogueTracker(agent.tools, agent.system)
        self._dialogue: Dialogue | None = None
        self._functions: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []  # tool calls of the last assistant message
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage(cost=0.0 if agent.prices is not None else None)
        self.error: str | None = None
        self.failure: ServedError | None = None
        self.actions: list[str] = []

    def __repr__(self) -> str:
        return (
            f"EpisodeSession(model={self._agent.settings.model!r}, actions={len(self.actions)}, "
            f"usage={self.usage}, error={self.error!r})"
        )

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The function specs of this episode's tools (sent as ``tools=`` when function calling is on)."""
        return self._functions

    def _start(self, dialogue: Dialogue) -> None:
        agent = self._agent
        self._functions = agent.function_specs(dialogue.tools, dialogue.tool_specs)
        system = agent.system if agent.function_calling else text_system(agent.system, self._functions)
        self.messages = first_message(system, dialogue.image, dialogue.question)
        self._calls = []

    def _feedback(self, turn: Turn) -> None:
        """The messages reporting the last action's result."""
        text = clean(turn.text)
        if self._calls:
            first = self._calls[0]
            shown = text or ("(the tool returned an image: see the next message)" if turn.image is not None else "(no output)")
            self.messages.append({"role": "tool", "tool_call_id": first["id"], "content": shown})
            for call in self._calls[1:]:  # the API wants an answer to every call; the env runs one per turn
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": "not run: one tool call per turn; call it again if still needed",
                    }
                )
            if turn.image is not None:
                name = first["function"]["name"] or "tool"
                self.messages.append(
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": f"The image returned by the {name} call:"}, image_part(turn.image)],
                    }
                )
        else:
            content: list[dict[str, Any]] = [{"type": "text", "text": text or "(no output)"}]
            if turn.image is not None:
                content.append(image_part(turn.image))
            self.messages.append({"role": "user", "content": content})

    async def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        """The next action (a string the env parses) for ``observation``.

        The first observation of an episode starts the chat; each later one adds the result of the previous
        action.

        Raises:
            ServedError: the server gave no usable reply after the client's retries (:attr:`error` is set).
        """
        info = info or {}
        dialogue = self._tracker.observe(observation, info)
        if dialogue is not self._dialogue:
            self._dialogue = dialogue
            self._start(dialogue)
        else:
            self._feedback(dialogue.turns[-1])
        agent = self._agent
        try:
            result = await agent.client.complete(self.messages, self._functions if agent.function_calling else None)
        except ServedError as exc:
            self.error = str(exc)
            self.failure = exc
            raise
        self.usage.add(result, agent.prices)
        message = assistant_message(result.message, len(self.actions))
        self.messages.append(message)
        self._calls = list(message.get("tool_calls") or [])
        action = action_of(result.message)  # the model's own text: the env sees what it wrote
        self._tracker.record(action)
        self.actions.append(action)
        return action


class OpenAIAgent:
    """A model served behind an OpenAI-compatible chat API, as an agent.

    Args:
        model: the model name the server knows.
        base_url: the API root, e.g. ``http://localhost:8000/v1``.
        api_key_env: the environment variable holding the API key (read now; kept in memory only, never
            written out or shown).
        temperature, max_tokens, seed: sampling settings sent with each request.
        timeout: seconds per request; retries: retries after the first attempt; backoff, max_backoff: the
            base and the cap of the waits between attempts, in seconds (see :class:`ChatSettings`).
        max_in_flight: at most this many requests in flight at once, over all sessions (per event loop).
        function_calling: send the tools as ``tools=`` and read the reply's ``tool_calls``; ``False``: list the
            tools in the system prompt and take the reply's text as the action.
        system: the instructions (the ``vlm:`` agent's by default).
        tools: the registered tools offered when the env does not give the item's own (``info["tools"]``).
        prices: USD per 1M input and output tokens, for :attr:`Usage.cost`.
        cache: where responses are kept (e.g. the results store), so a rerun asks nothing twice.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_in_flight: int = 8,
        function_calling: bool = True,
        system: str = DEFAULT_SYSTEM,
        tools: Sequence[str] = BUILTIN_TOOLS,
        prices: tuple[float, float] | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.client = ChatClient.for_model(
            base_url,
            model,
            api_key_env=api_key_env,
            max_in_flight=max_in_flight,
            cache=cache,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self.settings = self.client.settings
        if isinstance(tools, str) or not all(isinstance(t, str) for t in tools):
            raise ValueError(f"tools must be a sequence of registered tool names, e.g. {list(BUILTIN_TOOLS)}; got {tools!r}")
        if not isinstance(system, str):
            raise ValueError(f"system must be the instruction text; got {type(system).__name__}")
        self.function_calling = bool(function_calling)
        self.system = system
        self.tools = tuple(tools)
        self.prices = _prices(prices)
        self._specs: dict[str, list[dict[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: EpisodeSession | None = None

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIAgent:
        """An agent from ``"openai:MODEL@URL"`` (keyword arguments as for the constructor)."""
        model, url = parse_spec(spec)
        return cls(model, url, **kwargs)

    def __repr__(self) -> str:
        return (
            f"OpenAIAgent(model={self.settings.model!r}, url={self.client.url!r}, "
            f"api_key_env={self.client.api_key_env!r}, function_calling={self.function_calling})"
        )

    # -- sessions ----------------------------------------------------------------------------------------------
    def function_specs(
        self, tools: Sequence[str], parameters: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The function specs of ``tools`` (with an item's own ``parameters``), built once per distinct set."""
        key = canonical_json([list(tools), parameters or {}])
        if key not in self._specs:
            self._specs[key] = function_specs(tools, parameters)
        return self._specs[key]

    def session(self) -> EpisodeSession:
        """A new episode's chat; sessions may run concurrently in one event loop (``await session.act(...)``)."""
        return EpisodeSession(self)

    # -- the plain agent protocol ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new default session (the next :meth:`act` begins an episode)."""
        self._session = self.session()

    @property
    def current(self) -> EpisodeSession:
        """The default session (:meth:`reset` / :meth:`act`)."""
        if self._session is None:
            self._session = self.session()
        return self._session

    @property
    def usage(self) -> Usage:
        """The default session's :class:`Usage`."""
        return self.current.usage

    @property
    def error(self) -> str | None:
        """The default session's error, if a request failed for good."""
        return self.current.error

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        """The next action for the default session, synchronously (one episode at a time per agent: run
        concurrent episodes through :meth:`session`).

        Raises:
            ServedError: the server gave no usable reply (see :class:`EpisodeSession`).
        """
        return self._run(self.current.act(observation, info))

    def models(self) -> list[str]:
        """The model ids the server lists: a health check (raises :class:`ServedError` when it is down)."""
        return self._run(self.client.models())

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the agent's private event loop (on a worker thread when this thread already runs a
        loop, e.g. in a notebook)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        with ThreadPoolExecutor(1, thread_name_prefix="iapo-served") as pool:
            return pool.submit(self._loop.run_until_complete, coro).result()

    def close(self) -> None:
        """Close the private event loop and its connections (the agent can still be used: a new loop opens)."""
        if self._loop is not None and not self._loop.is_closed():
            self._run(self.client.aclose())
            self._loop.close()
        self._loop = None

    def __enter__(self) -> OpenAIAgent:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def config(self) -> dict[str, Any]:
        """The settings to store with results (JSON-safe; the API key's variable name only, the URL without
        credentials)."""
        s = self.settings
        return {
            "agent": AGENT_NAME,
            "spec": format_spec(s.model, self.client.url),
            "model": s.model,
            "url": self.client.url,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "timeout": s.timeout,
            "retries": s.retries,
            "max_in_flight": self.client.max_in_flight,
            "function_calling": self.function_calling,
            "api_key_env": self.client.api_key_env,
            "tools": list(self.tools),
            "system": self.system,
            "prices": list(self.prices) if self.prices is not None else None,
        }


def _prices(prices: Any) -> tuple[float, float] | None:
    if prices is None:
        return None
    try:
        inp, out = (float(p) for p in prices)
    except (TypeError, ValueError):
        raise ValueError(f"prices must be (USD per 1M input tokens, USD per 1M output tokens); got {prices!r}") from None
    if not (math.isfinite(inp) and math.isfinite(out) and inp >= 0 and out >= 0):
        raise ValueError(f"prices must be two finite non-negative numbers (USD per 1M input/output tokens); got {prices!r}")
    return (inp, out)


__all__ = ["AGENT_NAME", "SPEC_PREFIX", "EpisodeSession", "OpenAIAgent", "Usage", "format_spec", "parse_spec"]
