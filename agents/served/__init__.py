"""Served models: agents for OpenAI-compatible chat endpoints (vLLM, SGLang, TGI, ``transformers serve``,
hosted APIs), named ``openai:MODEL@URL``.

- :class:`OpenAIAgent` (``agent``): the agent protocol (``reset``/``act``/``config``) and concurrent episodes
  through :meth:`OpenAIAgent.session` (:class:`EpisodeSession`, ``await session.act(obs, info)``);
  :func:`parse_spec` reads ``openai:MODEL@URL``.
- :class:`ChatClient`, :class:`ChatSettings`, :class:`ChatResult`, :class:`ResponseCache`, :class:`ServedError`,
  :func:`request_key` (``client``): requests with bounded concurrency, retries, backoff and a response cache.

The API key is read from an environment variable (``OPENAI_API_KEY`` unless told otherwise) and never stored.
"""

from __future__ import annotations

from .agent import SPEC_PREFIX, EpisodeSession, OpenAIAgent, Usage, format_spec, parse_spec
from .client import ChatClient, ChatResult, ChatSettings, ResponseCache, ServedError, request_key

__all__ = [
    "SPEC_PREFIX",
    "ChatClient",
    "ChatResult",
    "ChatSettings",
    "EpisodeSession",
    "OpenAIAgent",
    "ResponseCache",
    "ServedError",
    "Usage",
    "format_spec",
    "parse_spec",
    "request_key",
]
