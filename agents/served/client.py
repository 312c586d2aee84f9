"""An asynchronous client for OpenAI-compatible chat endpoints (vLLM, SGLang, TGI, ``transformers serve``,
hosted APIs): ``POST {base_url}/chat/completions``.

- :class:`ChatSettings`: the model and the sampling and retry settings.
- :class:`ChatClient`: at most ``max_in_flight`` requests in flight; retries with exponential backoff and
  full jitter on 429, 5xx, timeouts, connection errors and malformed responses (``Retry-After`` honoured,
  capped); no retry on other 4xx; an optional :class:`ResponseCache` answers a request already made, so a
  killed run resumes without asking again.
- :func:`request_key`: the cache key of a request (no credentials in it).
- :class:`ServedError`: what failed, after how many attempts.

The API key is read once, from the environment variable the caller names, and sent as a Bearer header only:
it is never put into an error, a log line, a repr, a cache key or a result (text echoed by a server is
redacted too). Credentials in the URL (``https://user:pass@host``) are left out of every message as well.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import httpx2

log = logging.getLogger("iapo_gym.served")

KEY_VERSION = 1
"""Bumped when the layout hashed by :func:`request_key` changes (old cache entries then miss)."""

ANSWER_FIELDS = ("model", "temperature", "max_tokens", "seed")
"""The :class:`ChatSettings` fields sent with a request: they change the answer, so they are in its key."""


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class ChatSettings:
    """What is asked of the server, and how patiently.

    Args:
        model: the model name the server knows (``Qwen/Qwen2.5-VL-7B-Instruct``, ``gpt-4o``...).
        temperature: sampling temperature (0: greedy, as evaluation wants).
        max_tokens: cap on the reply's length, in tokens.
        seed: the server's sampling seed (``None``: not sent).
        timeout: seconds one request may take, from sending to the whole response read.
        retries: retries after the first attempt (429, 5xx, timeouts, connection errors, malformed replies).
        backoff: base of the exponential backoff, in seconds (retry ``k`` waits up to ``backoff * 2**(k-1)``).
        max_backoff: cap on one wait, in seconds (a server's ``Retry-After`` included).
    """

    model: str
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a non-empty model name the server knows; got {self.model!r}")
        for name in ("temperature", "backoff"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
            object.__setattr__(self, name, float(value))  # 0 and 0.0 give the same cache key
        for name in ("timeout", "max_backoff"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer; got {self.max_tokens!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0 (retries after the first attempt); got {self.retries!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer or None; got {self.seed!r}")

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict (to store with results)."""
        return asdict(self)

    def request_fields(self) -> dict[str, Any]:
        """The fields of a chat completion request body these settings give (``seed`` only when set)."""
        body: dict[str, Any] = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@runtime_checkable
class ResponseCache(Protocol):
    """Where raw chat completion responses are kept by :func:`request_key` (e.g. the results store)."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The response stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, response: dict[str, Any]) -> None:
        """Store a successful response (the server's JSON body) under ``key``."""
        ...


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, no spaces, no NaN): equal requests give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(
    settings: ChatSettings, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The cache key of a chat request: the SHA-256 (hex) of the canonical JSON of the model, the settings
    that change the answer (:data:`ANSWER_FIELDS`), the messages and the tools.

    The URL, the API key and the retry and timeout settings are not in it: the same question to the same
    model served elsewhere hits the same entry.

    Raises:
        TypeError: a message or tool holds something that is not JSON (e.g. a numpy array).
    """
    fields = {k: getattr(settings, k) for k in ANSWER_FIELDS}
    payload = {"v": KEY_VERSION, **fields, "messages": list(messages), "tools": list(tools) if tools else None}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChatResult:
    """One chat completion.

    Attributes:
        message: the assistant message as the server returned it (``choices[0].message``).
        prompt_tokens: input tokens the server counted (0 if it did not say).
        completion_tokens: output tokens the server counted (0 if it did not say).
        cached: answered from the cache, without a request.
        attempts: HTTP requests made for it (0 when cached).
        finish_reason: ``choices[0].finish_reason`` (``"stop"``, ``"length"``, ``"tool_calls"``...).
    """

    message: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 1
    finish_reason: str | None = None


class ServedError(RuntimeError):
    """A request to a served model that failed for good: its message says which request, after how many
    attempts, and why (HTTP status and the server's message, timeout, connection refused, malformed reply).

    Attributes:
        attempts: requests made before giving up.
        status: the last HTTP status, if a response came back.
    """

    def __init__(self, message: str, *, attempts: int = 0, status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class _Secret:
    """A string kept out of reprs (the API key)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


@dataclass(frozen=True)
class _Failure:
    """Why one attempt failed, and whether another may succeed."""

    reason: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None


@dataclass
class _LoopState:
    """The HTTP connection pool and the in-flight gate of one event loop."""

    http: httpx2.AsyncClient
    gate: asyncio.Semaphore


def display_url(url: str) -> str:
    """``url`` fit for messages: without user, password, query string or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_base_url(url: str, what: str = "base_url") -> str:
    """``url`` without a trailing slash, if it is an ``http(s)://host[:port][/path]`` URL.

    Raises:
        ValueError: not such a URL (the message shows it without credentials).
    """
    example = "e.g. 'http://localhost:8000/v1' or 'https://api.openai.com/v1'"
    if not isinstance(url, str):
        raise ValueError(f"{what} must be a URL string ({example}); got {type(url).__name__}")
    shown = display_url(url) if "@" in url else url  # never echo credentials
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {shown!r} is not an http:// or https:// URL with a host ({example})")
    try:
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        raise ValueError(f"{what} {shown!r} has a bad port ({example})") from None
    if any(c.isspace() for c in url.strip()):
        raise ValueError(f"{what} {shown!r} contains whitespace ({example})")
    return url.strip().rstrip("/")


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asks to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date;
    ``None`` when absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                continue
            if when is None:
                continue
            value = when.timestamp() - (time.time() if now is None else now)
        if math.isfinite(value):
            return max(0.0, value)
    return None


def backoff_delay(
    retry: int, settings: ChatSettings, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    The server's ``retry_after`` when given, capped at ``settings.max_backoff``; else full jitter: uniform in
    ``[0, min(max_backoff, backoff * 2**(retry-1))]``.
    """
    if retry_after is not None:
        return min(max(0.0, retry_after), settings.max_backoff)
    ceiling = min(settings.max_backoff, settings.backoff * 2.0 ** max(0, retry - 1))
    return (rng or random).uniform(0.0, ceiling)


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _server_message(resp: httpx2.Response) -> str:
    """The error text a server put in its response body (OpenAI's ``{"error": {"message": ...}}``, FastAPI's
    ``{"detail": ...}``, or the raw text)."""
    try:
        body = resp.json()
    except ValueError:
        return _snippet(resp.text) or "(empty body)"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return _snippet(str(err["message"]))
        for key in ("error", "message", "detail"):
            if body.get(key):
                value = body[key]
                return _snippet(value if isinstance(value, str) else json.dumps(value))
    return _snippet(json.dumps(body))


def _usage_int(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0


def result_of(response: Any, *, cached: bool, attempts: int) -> ChatResult:
    """A :class:`ChatResult` from a chat completion response body.

    Raises:
        ValueError: the body has no ``choices[0].message`` object.
    """
    if not isinstance(response, dict):
        raise ValueError(f"the response is a JSON {type(response).__name__}, not an object")
    choices = response.get("choices")
    if (
        not isinstance(choices, list)
        or not choices
        or not isinstance(choices[0], dict)
        or not isinstance(choices[0].get("message"), dict)
    ):
        err = response.get("error")
        extra = f" (the body says: {_snippet(json.dumps(err), 200)})" if err else ""
        raise ValueError(f"the response has no choices[0].message{extra}: {_snippet(json.dumps(response), 200)}")
    usage = response.get("usage")
    finish = choices[0].get("finish_reason")
    return ChatResult(
        dict(choices[0]["message"]),
        _usage_int(usage, "prompt_tokens"),
        _usage_int(usage, "completion_tokens"),
        cached,
        attempts,
        finish if isinstance(finish, str) else None,
    )


class ChatClient:
    """Chat completions from an OpenAI-compatible endpoint, with bounded concurrency, retries and a cache.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (requests go to ``{base_url}/chat/completions``).
        settings: model, sampling, timeout and retry settings.
        api_key_env: the environment variable holding the API key, read now (unset or empty: no
            ``Authorization`` header; a local server needs none).
        max_in_flight: at most this many requests in flight at once (per event loop), waits included.
        cache: where responses are kept by :func:`request_key` (``None``: no cache).

    Counters (over the client's life): ``requests`` (HTTP requests sent), ``cache_hits``, ``retries``,
    ``failures`` (calls that raised :class:`ServedError`), ``waited`` (seconds spent in backoff).

    The client keeps one HTTP connection pool per event loop it is used in; :meth:`aclose` closes the current
    loop's (or use ``async with client:``).
    """

    @classmethod
    def for_model(
        cls,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_in_flight: int = 8,
        cache: ResponseCache | None = None,
        **settings: Any,
    ) -> ChatClient:
        """A client for ``model`` at ``base_url``, its :class:`ChatSettings` built from ``settings`` (temperature,
        max_tokens, seed, timeout, retries, backoff, max_backoff): how the served agent and the judge make theirs."""
        return cls(base_url, ChatSettings(model, **settings), api_key_env=api_key_env, max_in_flight=max_in_flight, cache=cache)

    def __init__(
        self,
        base_url: str,
        settings: ChatSettings,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_in_flight: int = 8,
        cache: ResponseCache | None = None,
    ) -> None:
        if not isinstance(settings, ChatSettings):
            raise TypeError(f"settings must be a ChatSettings; got {type(settings).__name__}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive integer; got {max_in_flight!r}")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError(f"api_key_env must name an environment variable (e.g. 'OPENAI_API_KEY'); got {api_key_env!r}")
        if cache is not None and not isinstance(cache, ResponseCache):
            raise TypeError(f"cache must have get(key) and put(key, response); got {type(cache).__name__}")
        self._base_url = check_base_url(base_url)
        self.url = display_url(self._base_url)
        """The base URL without credentials (safe to show and to store)."""
        self.settings = settings
        self.api_key_env = api_key_env
        key = (os.environ.get(api_key_env) or "").strip()
        self._key = _Secret(key) if key else None
        self.max_in_flight = max_in_flight
        self.cache = cache
        self.requests = self.cache_hits = self.retries = self.failures = 0
        self.waited = 0.0
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._rng = random.Random()

    @property
    def has_api_key(self) -> bool:
        """Whether an API key was found in ``api_key_env``."""
        return self._key is not None

    def __repr__(self) -> str:
        key = "set" if self._key is not None else "not set"
        return (
            f"ChatClient(url={self.url!r}, model={self.settings.model!r}, api_key_env={self.api_key_env!r} "
            f"({key}), max_in_flight={self.max_in_flight})"
        )

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        """``text`` with the API key and the URL's credentials blanked out (servers may echo them)."""
        if self._key is not None:
            text = text.replace(self._key.value, "***")
        parts = urlsplit(self._base_url)
        for secret in (parts.password, parts.username):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _redact_json(self, value: Any) -> Any:
        """``value`` (a parsed response) with :meth:`_redact` applied to every string in it, keys included."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {self._redact(str(k)): self._redact_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_json(v) for v in value]
        return value

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.value}"
        return headers

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        for old in [lp for lp in self._loops if lp.is_closed()]:  # loops gone (asyncio.run ended): drop
            del self._loops[old]
        state = self._loops.get(loop)
        if state is None:
            limits = httpx2.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
            http = httpx2.AsyncClient(timeout=httpx2.Timeout(self.settings.timeout), limits=limits)
            state = self._loops[loop] = _LoopState(http, asyncio.Semaphore(self.max_in_flight))
        return state

    async def aclose(self) -> None:
        """Close the current event loop's connection pool."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.http.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, http: httpx2.AsyncClient, method: str, url: str, body: bytes | None) -> httpx2.Response | _Failure:
        """One HTTP request with the total timeout; a transport failure comes back as a :class:`_Failure`."""
        timeout = self.settings.timeout
        try:
            return await asyncio.wait_for(http.request(method, url, content=body, headers=self._headers()), timeout)
        except (asyncio.TimeoutError, httpx2.TimeoutException):
            return _Failure(f"timed out after {timeout:g} s", True)
        except httpx2.ConnectError as exc:
            detail = self._redact(str(exc)) or type(exc).__name__
            return _Failure(f"connection refused or host unreachable ({detail})", True)
        except (httpx2.TransportError, httpx2.DecodingError) as exc:  # closed without a response, read errors
            return _Failure(f"connection error: {type(exc).__name__}: {self._redact(str(exc)) or 'no detail'}", True)

    async def _attempt(self, http: httpx2.AsyncClient, body: bytes) -> dict[str, Any] | _Failure:
        resp = await self._send(http, "POST", self._base_url + "/chat/completions", body)
        if isinstance(resp, _Failure):
            return resp
        code = resp.status_code
        if code == 429 or code >= 500:
            return _Failure(f"HTTP {code}: {self._redact(_server_message(resp))}", True, code, parse_retry_after(resp.headers))
        if not 200 <= code < 300:
            hint = ""
            if code in (401, 403):
                hint = f" (check the API key in ${self.api_key_env}: {'set' if self._key is not None else 'not set'})"
            elif code == 404:
                hint = f" (check the URL, usually ending in /v1, and the model name {self.settings.model!r})"
            return _Failure(f"HTTP {code}: {self._redact(_server_message(resp))}{hint}", False, code)
        try:
            data = resp.json()
        except ValueError:
            return _Failure(
                f"malformed JSON in the response (HTTP {code}): {self._redact(_snippet(resp.text, 200))!r}", True, code
            )
        try:
            result_of(data, cached=False, attempts=1)
        except ValueError as exc:
            return _Failure(f"malformed response (HTTP {code}): {self._redact(str(exc))}", True, code)
        return data

    # -- API ---------------------------------------------------------------------------------------------------
    async def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> ChatResult:
        """The assistant's reply to ``messages`` (``tools``: OpenAI-style function specs, sent as ``tools=``).

        A cached response returns at once; otherwise up to ``1 + settings.retries`` requests are made.

        Raises:
            ServedError: no usable response (the message says why and after how many attempts).
            TypeError: ``messages`` or ``tools`` hold something that is not JSON.
        """
        messages = list(messages)
        tools = list(tools) if tools else None
        key = request_key(self.settings, messages, tools) if self.cache is not None else None
        if key is not None and self.cache is not None:  # a key only with a cache
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    result = result_of(hit, cached=True, attempts=0)
                except ValueError as exc:
                    log.warning("cache entry %s... is not a chat completion (%s); asking the server", key[:12], exc)
                else:
                    self.cache_hits += 1
                    return result
        payload: dict[str, Any] = {**self.settings.request_fields(), "messages": messages}
        if tools:
            payload["tools"] = tools
        try:
            body = canonical_json(payload).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"chat request for model {self.settings.model!r} is not JSON: {exc}") from None
        what = f"POST {self.url}/chat/completions (model {self.settings.model!r})"
        state = self._state()
        total = 1 + self.settings.retries
        failure: _Failure | None = None
        for attempt in range(1, total + 1):
            if failure is not None:
                delay = backoff_delay(attempt - 1, self.settings, failure.retry_after, self._rng)
                log.warning("%s: %s (attempt %d of %d); retrying in %.2f s", what, failure.reason, attempt - 1, total, delay)
                self.retries += 1
                self.waited += delay
                await asyncio.sleep(delay)
            async with state.gate:
                self.requests += 1
                outcome = await self._attempt(state.http, body)
            if not isinstance(outcome, _Failure):
                outcome = self._redact_json(outcome)  # a server echoing the key: not into the cache, nor the result
                if key is not None and self.cache is not None:
                    self.cache.put(key, outcome)
                return result_of(outcome, cached=False, attempts=attempt)
            failure = outcome
            if not failure.retryable:
                self.failures += 1
                raise ServedError(
                    f"{what} failed after {attempt} attempt{'s' * (attempt > 1)} (not retried): {failure.reason}",
                    attempts=attempt,
                    status=failure.status,
                )
        assert failure is not None
        self.failures += 1
        raise ServedError(
            f"{what} failed after {total} attempt{'s' * (total > 1)}: {failure.reason}", attempts=total, status=failure.status
        )

    async def models(self) -> list[str]:
        """The model ids the server lists (``GET {base_url}/models``): a health check, one attempt.

        Raises:
            ServedError: the server is down, unreachable, or answers with an error.
        """
        what = f"GET {self.url}/models"
        resp = await self._send(self._state().http, "GET", self._base_url + "/models", None)
        if isinstance(resp, _Failure):
            raise ServedError(f"{what} failed: {resp.reason}; is an OpenAI-compatible server running at {self.url}?", attempts=1)
        if not 200 <= resp.status_code < 300:
            raise ServedError(
                f"{what} failed: HTTP {resp.status_code}: {self._redact(_server_message(resp))}",
                attempts=1,
                status=resp.status_code,
            )
        try:
            data = resp.json()
        except ValueError:
            raise ServedError(
                f"{what} failed: malformed JSON: {self._redact(_snippet(resp.text, 200))!r}", attempts=1, status=resp.status_code
            ) from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ServedError(
                f'{what} failed: expected {{"data": [{{"id": ...}}]}}; got {self._redact(_snippet(json.dumps(data), 200))}',
                attempts=1,
                status=resp.status_code,
            )
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]


__all__ = [
    "ANSWER_FIELDS",
    "ChatClient",
    "ChatResult",
    "ChatSettings",
    "ResponseCache",
    "ServedError",
    "backoff_delay",
    "canonical_json",
    "check_base_url",
    "display_url",
    "parse_retry_after",
    "request_key",
    "result_of",
]
