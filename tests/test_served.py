"""The served-model agent (``openai:MODEL@URL``) against a scripted OpenAI-compatible server of the test's own on
127.0.0.1: the chat it sends, retries and backoff, errors, the response cache, the in-flight limit, the API key
kept secret, servers without function calling, and ``openai:MODEL@URL`` specs."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import iapo_gym  # noqa: F401  (registers the envs)
from iapo_gym.agents import run_episode
from iapo_gym.agents.served import (
    ChatClient,
    ChatSettings,
    OpenAIAgent,
    ResponseCache,
    ServedError,
    format_spec,
    parse_spec,
    request_key,
)
from iapo_gym.agents.served.client import backoff_delay, parse_retry_after
from iapo_gym.agents.vlm.prompt import DEFAULT_SYSTEM
from iapo_gym.tools import BUILTIN_TOOLS, get_tool

MODEL = "org/test-model:v1"
ZOOM = {"box": [0.0, 0.0, 0.5, 0.5]}
FAST = {"timeout": 0.3, "retries": 2, "backoff": 0.01, "max_backoff": 0.05}


# -- the fake server ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status and a JSON body (or raw bytes), sent after ``delay`` seconds; ``close``
    drops the connection without a response."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False


def completion(message: dict[str, Any], prompt: int = 11, completion_tokens: int = 3) -> Reply:
    return Reply(
        body={
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
        }
    )


def tool_reply(name: str, args: dict[str, Any], call_id: str = "call_1") -> Reply:
    return completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
        }
    )


def text_reply(text: str) -> Reply:
    return completion({"role": "assistant", "content": text})


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body={"error": {"message": message, "type": "test"}}, headers=headers or {})


FAILURES: dict[str, Reply] = {
    "429": error_reply(429, "rate limited"),
    "429-retry-after": error_reply(429, "rate limited", {"Retry-After": "0.04"}),
    "500": error_reply(500, "boom"),
    "503-retry-after-ms": error_reply(503, "overloaded", {"retry-after-ms": "30"}),
    "timeout": replace(text_reply("too late"), delay=1.0),
    "malformed": Reply(raw=b'{"choices": [{"message": '),
    "no-choices": Reply(body={"object": "chat.completion", "choices": []}),
    "close": Reply(close=True),
}


class FakeServer:
    """A scripted OpenAI-compatible server: ``script`` answers the chat requests in order, then ``default``;
    every request is recorded, and the most requests in flight at once is counted."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.default: Reply = text_reply("<answer>0</answer>")
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left: expected here

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests, in order."""
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(
                {"method": method, "path": h.path, "headers": dict(h.headers), "body": json.loads(raw) if raw else None}
            )
            reply = self.script.pop(0) if (self.script and h.path.endswith("/chat/completions")) else self.default
            if h.path.endswith("/models"):
                reply = Reply(body={"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(reply.delay)
            if reply.close:
                h.close_connection = True
                return
            data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            h.send_response(reply.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test)
        finally:
            with self._lock:
                self.in_flight -= 1

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer().start()
    yield s
    s.stop()


@pytest.fixture
def agent(server: FakeServer) -> Iterator[OpenAIAgent]:
    with OpenAIAgent(MODEL, server.url, api_key_env="IAPO_TEST_NO_SUCH_KEY", **FAST) as a:
        yield a


@pytest.fixture(scope="module")
def hbar() -> gym.Env:
    return gym.make("VisualToolVQA-HBar-v0")


class DictCache:
    """A :class:`ResponseCache` in a dict, counting lookups."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.gets = 0

    def get(self, key: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.data.get(key)

    def put(self, key: str, response: dict[str, Any]) -> None:
        self.data[key] = json.loads(json.dumps(response))


def decode(part: dict[str, Any]) -> np.ndarray:
    """The RGB image of an ``image_url`` content part holding a PNG data URL."""
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the chat of an episode ---------------------------------------------------------------------------------------
def test_episode_chat_with_a_tool_call_then_an_answer(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    """System, glance + question, tools=; then the assistant's tool call, the tool message with its id, and the
    crop as a following user message; the episode runs through run_episode."""
    server.script = [tool_reply("zoom", ZOOM, "call_a"), tool_reply("answer", {"text": "7"}, "call_b")]
    result = run_episode(hbar, agent, seed=0)
    assert result.steps == 2 and result.invalid_calls == 0 and result.tool_calls.get("zoom") == 1

    obs, _ = hbar.reset(seed=0)  # the same episode again, by hand, for the images the agent was shown
    zoomed, *_ = hbar.step(json.dumps({"tool": "zoom", "args": ZOOM}))
    first, second = server.chats
    assert first["model"] == MODEL and first["temperature"] == 0.0 and first["max_tokens"] == 512
    assert [t["function"]["name"] for t in first["tools"]] == list(BUILTIN_TOOLS)
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in first["tools"])
    system, user = first["messages"]
    assert system == {"role": "system", "content": DEFAULT_SYSTEM}
    assert user["role"] == "user" and user["content"][1] == {"type": "text", "text": obs["question"]}
    np.testing.assert_array_equal(decode(user["content"][0]), obs["image"])

    msgs = second["messages"]
    assert msgs[:2] == first["messages"] and second["tools"] == first["tools"]
    assert msgs[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "zoom", "arguments": json.dumps(ZOOM)}}],
    }
    assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == "call_a" and isinstance(msgs[3]["content"], str)
    assert msgs[4]["role"] == "user" and len(msgs) == 5
    np.testing.assert_array_equal(decode(msgs[4]["content"][-1]), zoomed["crop"])

    assert agent.usage.prompt_tokens == 22 and agent.usage.completion_tokens == 6
    assert agent.usage.requests == 2 and agent.usage.cached == 0 and agent.usage.cost is None
    json.dumps(agent.config())


def test_item_own_tool_schemas_from_info(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    """info["tools"] (as RealVQA-v0 gives it) replaces the registered tools, with the item's own schemas."""
    obs, info = hbar.reset(seed=0)
    focus = json.loads(json.dumps(get_tool("focus").parameters))
    focus["properties"]["axis"]["enum"] = ["bars"]
    focus["properties"]["labels"]["items"]["enum"] = ["Dec", "Quito"]
    info = {**info, "tools": {"zoom": get_tool("zoom").parameters, "focus": focus}}
    server.script = [text_reply("<answer>Dec</answer>")]
    assert agent.act(obs, info) == "<answer>Dec</answer>"  # a plain text reply is the action, as is
    tools = server.chats[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["zoom", "focus"]
    props = tools[1]["function"]["parameters"]["properties"]
    assert props["axis"]["enum"] == ["bars"] and props["labels"]["items"]["enum"] == ["Dec", "Quito"]


def test_plain_text_reply_then_env_error_as_user_message(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    """A reply without a tool call goes to the env as is; the env's error comes back as a user message. A
    special token the model wrote is not sent back as one (the server would count an image too many)."""
    server.script = [text_reply("hmm, <|image_pad|>"), tool_reply("answer", {"text": "3"})]
    result = run_episode(hbar, agent, seed=1)
    assert result.invalid_calls == 1 and result.steps == 2
    assert agent.current.actions[0] == "hmm, <|image_pad|>"
    msgs = server.chats[1]["messages"]
    assert msgs[2] == {"role": "assistant", "content": "hmm, < |image_pad|>"}
    assert msgs[3]["role"] == "user" and msgs[3]["content"][0]["text"].startswith("error:")


def test_malformed_tool_arguments_reach_the_env_as_an_error(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    bad = completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "zoom", "arguments": "{box: oops"}}],
        }
    )
    server.script = [bad, tool_reply("answer", {"text": "3"})]
    result = run_episode(hbar, agent, seed=2)
    assert result.invalid_calls == 1
    tool_msg = server.chats[1]["messages"][3]
    assert tool_msg["tool_call_id"] == "c1" and "malformed JSON" in tool_msg["content"]


def test_function_calling_off_sends_no_tools_and_uses_the_text(server: FakeServer, hbar: gym.Env) -> None:
    server.script = [text_reply(json.dumps({"tool": "zoom", "args": ZOOM})), text_reply("<answer>3</answer>")]
    with OpenAIAgent(MODEL, server.url, function_calling=False, **FAST) as agent:
        result = run_episode(hbar, agent, seed=0)
    assert result.tool_calls.get("zoom") == 1 and result.invalid_calls == 0
    first, second = server.chats
    assert "tools" not in first and "tools" not in second
    system = first["messages"][0]["content"]
    assert system.startswith(DEFAULT_SYSTEM) and '"name": "zoom"' in system and "<answer>ANSWER</answer>" in system
    assert second["messages"][2] == {"role": "assistant", "content": json.dumps({"tool": "zoom", "args": ZOOM})}
    feedback = second["messages"][3]
    assert feedback["role"] == "user" and feedback["content"][-1]["type"] == "image_url"


def test_sync_act_inside_a_running_loop(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    """act() works from code that already runs an event loop (a notebook), and again afterwards."""
    obs, info = hbar.reset(seed=0)

    async def inside() -> str:
        return agent.act(obs, info)

    assert asyncio.run(inside()) == "<answer>0</answer>"
    agent.reset()
    assert agent.act(obs, info) == "<answer>0</answer>"


# -- retries, backoff and errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_retry_then_success(server: FakeServer, kind: str) -> None:
    server.script = [FAILURES[kind], text_reply("ok")]
    client = ChatClient(server.url, ChatSettings(MODEL, **FAST))
    result = asyncio.run(client.complete([{"role": "user", "content": "hi"}]))
    assert result.message["content"] == "ok" and result.attempts == 2 and not result.cached
    assert len(server.chats) == 2 and client.requests == 2 and client.retries == 1 and client.failures == 0
    if kind == "429-retry-after":
        assert client.waited == pytest.approx(0.04)  # the server's Retry-After, not the jittered backoff
    elif kind == "503-retry-after-ms":
        assert client.waited == pytest.approx(0.03)
    else:
        assert 0.0 <= client.waited <= FAST["backoff"]  # full jitter, first retry


def test_retry_after_is_capped(server: FakeServer) -> None:
    server.script = [error_reply(429, "slow down", {"Retry-After": "120"}), text_reply("ok")]
    client = ChatClient(server.url, ChatSettings(MODEL, **FAST))
    assert asyncio.run(client.complete([{"role": "user", "content": "hi"}])).attempts == 2
    assert client.waited == pytest.approx(FAST["max_backoff"])


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("500", "HTTP 500: boom"),
        ("429", "HTTP 429: rate limited"),
        ("timeout", "timed out after 0.3 s"),
        ("malformed", "malformed JSON"),
        ("no-choices", "no choices[0].message"),
        ("close", "connection error"),
    ],
)
def test_exhausted_retries_raise_a_clear_error(server: FakeServer, kind: str, says: str) -> None:
    server.default = FAILURES[kind]
    client = ChatClient(server.url, ChatSettings(MODEL, **FAST))
    with pytest.raises(ServedError) as err:
        asyncio.run(client.complete([{"role": "user", "content": "hi"}]))
    msg = str(err.value)
    assert says in msg and "failed after 3 attempts" in msg and MODEL in msg and server.url in msg
    assert err.value.attempts == 3 and len(server.chats) == 3
    assert client.failures == 1 and client.retries == 2 and client.requests == 3


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient(url, ChatSettings(MODEL, **FAST))
    with pytest.raises(ServedError, match="failed after 3 attempts: connection refused"):
        asyncio.run(client.complete([{"role": "user", "content": "hi"}]))
    with pytest.raises(ServedError, match="is an OpenAI-compatible server running"):
        asyncio.run(client.models())


def test_no_retry_on_400_and_the_session_records_the_error(server: FakeServer, agent: OpenAIAgent, hbar: gym.Env) -> None:
    server.script = [error_reply(400, f"The model `{MODEL}` does not exist")]
    obs, info = hbar.reset(seed=0)
    with pytest.raises(ServedError) as err:
        agent.act(obs, info)
    msg = str(err.value)
    assert "HTTP 400" in msg and "does not exist" in msg and "not retried" in msg and err.value.status == 400
    assert len(server.chats) == 1 and agent.client.retries == 0
    assert agent.error == msg


def test_health_check(server: FakeServer, agent: OpenAIAgent) -> None:
    assert agent.models() == [MODEL]
    assert server.requests[-1]["path"] == "/v1/models"


def test_backoff_and_retry_after_rules() -> None:
    s = ChatSettings(MODEL, backoff=0.5, max_backoff=8.0)
    rng = random.Random(0)
    for retry in range(1, 10):
        ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
        assert all(0.0 <= backoff_delay(retry, s, rng=rng) <= ceiling for _ in range(50))
    assert backoff_delay(3, s, retry_after=2.5) == 2.5 and backoff_delay(1, s, retry_after=99) == 8.0
    assert parse_retry_after({"Retry-After": "3"}) == 3.0 and parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"model": ""}, "model must be"),
        ({"model": "m", "retries": -1}, "retries"),
        ({"model": "m", "timeout": 0}, "timeout"),
        ({"model": "m", "temperature": float("nan")}, "temperature"),
    ],
)
def test_settings_are_checked(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ChatSettings(**kwargs)


# -- the cache ----------------------------------------------------------------------------------------------------
def test_cache_answers_a_rerun_without_requests(server: FakeServer, hbar: gym.Env) -> None:
    cache = DictCache()
    assert isinstance(cache, ResponseCache)
    server.script = [tool_reply("zoom", ZOOM), tool_reply("answer", {"text": "7"})]
    with OpenAIAgent(MODEL, server.url, cache=cache, prices=(1.0, 2.0), **FAST) as agent:
        first = run_episode(hbar, agent, seed=0)
        assert len(server.chats) == 2 and len(cache.data) == 2 and agent.usage.cached == 0
        cost = agent.usage.cost
        again = run_episode(hbar, agent, seed=0)  # a resumed run: the same messages, answered from the cache
        assert len(server.chats) == 2 and agent.client.cache_hits == 2
        assert agent.usage.cached == 2 and agent.usage.requests == 0
        assert agent.usage.cost == cost == pytest.approx(34e-6)  # what the episode costs, cached or not
    assert (again.correct, again.steps, again.tool_calls) == (first.correct, first.steps, first.tool_calls)
    body = server.chats[0]
    assert request_key(agent.settings, body["messages"], body["tools"]) in cache.data


def test_request_key_covers_what_changes_the_answer() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    base = request_key(ChatSettings(MODEL), msgs)
    assert base == request_key(ChatSettings(MODEL, timeout=5, retries=0, backoff=0.1), msgs)
    assert base == request_key(ChatSettings(MODEL, temperature=0), msgs)
    for other in (
        ChatSettings(MODEL, temperature=0.5),
        ChatSettings(MODEL, seed=1),
        ChatSettings(MODEL, max_tokens=9),
        ChatSettings("other"),
    ):
        assert request_key(other, msgs) != base
    assert request_key(ChatSettings(MODEL), [{"role": "user", "content": "ho"}]) != base
    assert request_key(ChatSettings(MODEL), msgs, [{"type": "function", "function": {"name": "zoom"}}]) != base


# -- concurrency --------------------------------------------------------------------------------------------------
def test_in_flight_limit_over_concurrent_sessions(server: FakeServer, hbar: gym.Env) -> None:
    server.default = replace(text_reply("<answer>1</answer>"), delay=0.15)
    agent = OpenAIAgent(MODEL, server.url, max_in_flight=2, timeout=5)
    starts = [hbar.reset(seed=s) for s in range(6)]

    async def main() -> list[str]:
        sessions = [agent.session() for _ in starts]
        try:
            return await asyncio.gather(*(s.act(o, i) for s, (o, i) in zip(sessions, starts)))
        finally:
            await agent.client.aclose()

    assert asyncio.run(main()) == ["<answer>1</answer>"] * 6
    assert len(server.chats) == 6 and server.max_in_flight == 2
    questions = {c["messages"][1]["content"][1]["text"] for c in server.chats}
    assert questions == {o["question"] for o, _ in starts}


# -- the API key --------------------------------------------------------------------------------------------------
def test_api_key_is_sent_and_shown_nowhere(server: FakeServer, hbar: gym.Env, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("IAPO_TEST_KEY", secret)
    cache = DictCache()
    server.script = [text_reply("hmm"), error_reply(401, f"Incorrect API key provided: {secret}")]
    obs, info = hbar.reset(seed=0)
    with OpenAIAgent(MODEL, server.url, api_key_env="IAPO_TEST_KEY", cache=cache, **FAST) as agent:
        agent.act(obs, info)
        obs2, _, _, _, info2 = hbar.step("hmm")
        with pytest.raises(ServedError) as err:
            agent.act(obs2, info2)
        texts = [
            str(err.value),
            repr(err.value),
            repr(agent),
            repr(agent.client),
            repr(vars(agent.client)),
            repr(agent.current),
            str(agent.error),
            json.dumps(agent.config()),
            json.dumps(list(cache.data)),
            json.dumps(list(cache.data.values())),
        ]
    assert all(secret not in t for t in texts)
    assert "HTTP 401" in str(err.value) and "$IAPO_TEST_KEY" in str(err.value) and "***" in str(err.value)
    assert [r["headers"].get("Authorization") for r in server.requests] == [f"Bearer {secret}"] * 2
    assert agent.config()["api_key_env"] == "IAPO_TEST_KEY"

    monkeypatch.delenv("IAPO_TEST_KEY")
    with OpenAIAgent(MODEL, server.url, api_key_env="IAPO_TEST_KEY", **FAST) as keyless:
        keyless.act(obs, info)
    assert "Authorization" not in server.requests[-1]["headers"]


# -- specs --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "model", "url"),
    [
        ("openai:gpt-4o@https://api.openai.com/v1", "gpt-4o", "https://api.openai.com/v1"),
        (
            "openai:Qwen/Qwen2.5-VL-7B-Instruct@http://localhost:8000/v1",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            "http://localhost:8000/v1",
        ),
        ("openai:org/m:tag@v2@http://10.0.0.2:30000/v1", "org/m:tag@v2", "http://10.0.0.2:30000/v1"),
        ("openai:m@https://user:pa@ss@host.example/v1", "m", "https://user:pa@ss@host.example/v1"),
    ],
)
def test_parse_spec(spec: str, model: str, url: str) -> None:
    assert parse_spec(spec) == (model, url)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("gpt-4o@https://api.openai.com/v1", "does not start with 'openai:'"),
        ("openai:gpt-4o", "no '@URL'"),
        ("openai:gpt-4o@api.openai.com/v1", "no '@URL'"),
        ("openai:gpt-4o@ftp://host/v1", "no '@URL'"),
        ("openai:@http://localhost:8000/v1", "empty model name"),
        ("openai:my model@http://localhost:8000/v1", "whitespace"),
        ("openai:m@http://", "not an http:// or https:// URL with a host"),
        ("openai:m@http://host:99999/v1", "bad port"),
    ],
)
def test_parse_spec_rejects(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        parse_spec(spec)
    assert "openai:MODEL@URL" in str(err.value) or "e.g." in str(err.value)


_MODELS = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=40).filter(
    lambda m: not any(c.isspace() for c in m)
)
_URLS = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["", "u:p@", "user:pa:ss@"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z]{2,5}){0,2}", fullmatch=True) | st.just("127.0.0.1"),
    st.sampled_from(["", ":8000", ":1"]),
    st.sampled_from(["", "/", "/v1", "/openai/v1"]),
)


@given(_MODELS, _URLS)
def test_parse_spec_round_trips(model: str, url: str) -> None:
    assert parse_spec(format_spec(model, url)) == (model, url)
