"""The LLM judge (``iapo_gym.benchmarks.judge``) against a scripted OpenAI-compatible server of the test's own on
127.0.0.1: each scorer's prompt (the item and the published rules), the verdict parser over the reply forms, a
failed request is unjudged (not wrong), the response cache, and the API key kept out of everything."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from iapo_gym.benchmarks.judge import NO_ANSWER, PROMPT_VERSION, Judge, Verdict, parse_verdict

MODEL = "judge/model:1"
KEY = "sk-test-judge-secret-4242"
FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.001, "max_backoff": 0.01}


def chat(content: str, finish: str = "stop") -> tuple[int, bytes]:
    body = {
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 9},
    }
    return 200, json.dumps(body).encode()


class FakeServer:
    """Answers chat requests from ``script`` in order, then ``default``; records every request body and its
    headers. A reply is ``(status, bytes)``; the text ``ECHO_KEY`` in a reply is replaced by the bearer token."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = []
        self.default = chat('{"extracted_answer": "x", "correct": 1}')
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
                    status, data = fake.script.pop(0) if fake.script else fake.default
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                data = data.replace(b"ECHO_KEY", token.encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def spec(self) -> str:
        return f"openai:{MODEL}@http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.stop()


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, response: dict[str, Any]) -> None:
        self.data[key] = response


def judge_all(judge: Judge, calls: list[tuple[Any, ...]]) -> list[Verdict]:
    async def go() -> list[Verdict]:
        async with judge:
            return [await judge.verdict(*c) for c in calls]

    return asyncio.run(go())


def text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


# -- prompts ------------------------------------------------------------------------------------------------------
RULE_FACTS: dict[str, list[str]] = {
    "refocus-chart": ["content", "69%", "3%", "0.03", "1.541", "1.54", "80 Meters", "180 Meters", "precision"],
    "refocus-table": ["table", "||"],
    "vtabfact": ["table", "true or false", "refuted"],
    "vtool-r1": ["|||", "||", "order of the items does not matter", "cherry||Pears||Apples", "apple|||pear|||cherry"],
    "exact": ["same value"],
    "relaxed": ["5%"],
}
CHARXIV_FACTS = {
    1: ["same term", "α and alpha", "ACC+ and ACC", "P56962", "P55762"],
    2: ["options", "exactly", "same as the ground truth", "converge", "diverge", "[50, 100]"],
    3: ["exactly the same value", "10^-2", "1.5e3"],
    4: ["exactly the same value", "0.01 and 10^-2", "1500 and 1.5e3", "0.012"],
}


@pytest.mark.parametrize("scorer", [*RULE_FACTS, *(f"charxiv-{c}" for c in CHARXIV_FACTS)])
def test_prompt_has_the_item_and_the_rules(scorer: str) -> None:
    name, context, facts = scorer, None, RULE_FACTS.get(scorer)
    if scorer.startswith("charxiv-"):
        category = int(scorer[-1])
        name, context, facts = "charxiv", {"inst_category": category}, CHARXIV_FACTS[category]
    messages = Judge.prompt("How tall is bar Q7?", ["41.5|||x-ray"], "I think FINAL ANSWER: 41 TERMINATE", name, context)
    assert [m["role"] for m in messages] == ["system", "user"]
    body = text(messages)
    for needle in [
        "How tall is bar Q7?",
        "41.5|||x-ray",
        "I think FINAL ANSWER: 41 TERMINATE",
        *facts,
        '"extracted_answer"',
        '"correct"',
    ]:
        assert needle in body, (scorer, needle)
    json.dumps(messages)  # JSON-safe, as the cache key needs


def test_prompt_details() -> None:
    several = text(Judge.prompt("q", ["alpha", "beta"], "r", "exact"))
    assert "any one of these" in several and "- alpha" in several and "- beta" in several
    assert "5%" not in several  # exact is not relaxed
    assert Judge.prompt("q", "solo", "r", "exact") == Judge.prompt("q", ["solo", None], "r", "exact")
    cat4 = text(Judge.prompt("q", ["3"], "r", "charxiv", {"inst_category": "4"}))
    assert "1.5e3" in cat4 and "converge" not in cat4 and "α" not in cat4
    with pytest.raises(ValueError, match="inst_category"):
        Judge.prompt("q", ["3"], "r", "charxiv", {})
    with pytest.raises(ValueError, match="inst_category.*7"):
        Judge.prompt("q", ["3"], "r", "charxiv", {"inst_category": 7})
    with pytest.raises(ValueError, match="'nope'.*refocus-chart"):
        Judge.prompt("q", ["3"], "r", "nope")
    with pytest.raises(ValueError, match="question"):
        Judge.prompt(None, ["3"], "r", "exact")  # type: ignore[arg-type]


# -- the reply parser ---------------------------------------------------------------------------------------------
REPLIES: list[tuple[str, bool | None, str]] = [
    ('{"extracted_answer": "69%", "correct": 1}', True, "69%"),
    ('{"extracted_answer": "12", "correct": 0}', False, "12"),
    ('```json\n{"extracted_answer": "b", "correct": 1}\n```', True, "b"),
    ('Sure. Here is my verdict: {"extracted_answer": "P55762", "correct": 0} Hope that helps.', False, "P55762"),
    ('{"extracted_answer": "1.5e3", "score": 1}', True, "1.5e3"),  # CharXiv's key
    ('{"extract_answer": "x", "correct": true}', True, "x"),
    ('{"extracted_answer": null, "correct": "no"}', False, ""),
    ('<think>maybe {"correct": 0}</think>{"extracted_answer": "7", "correct": 1}', True, "7"),
    ("1", True, ""),
    ("0", False, ""),
    (" 1.\n", True, ""),
    ("**0**", False, ""),
    ("<|YES|>", True, ""),
    ("<|NO|>", False, ""),
    ("I first thought <|NO|> but <|YES|>", True, ""),
    ("no", False, ""),
    ("Yes", True, ""),
    ("true", True, ""),
    ("The answer looks right to me", None, ""),
    ('{"extracted_answer": "x", "correct": 2}', None, ""),
    ('{"extracted_answer": "x"', None, ""),
    ("", None, ""),
    ("10", None, ""),
]


@pytest.mark.parametrize(("reply", "correct", "extracted"), REPLIES)
def test_parse_verdict(reply: str, correct: bool | None, extracted: str) -> None:
    assert parse_verdict(reply) == (correct, extracted)


def test_verdicts_from_the_server(server: FakeServer) -> None:
    server.script = [
        chat('```json\n{"extracted_answer": "69%", "correct": 1}\n```'),
        chat("<|NO|>"),
        chat("no idea"),
        chat('{"extracted_answer": "1', finish="length"),
    ]
    judge = Judge(server.spec, **FAST)
    right, wrong, unread, cut = judge_all(
        judge,
        [
            ("What is it?", ["69"], "ANSWER: 69%. TERMINATE", "refocus-chart"),
            ("q", ["a|||b"], "a", "vtool-r1"),
            ("q", ["3"], "3", "exact"),
            ("q", ["3"], "3", "exact"),
        ],
    )
    assert right == Verdict(True, "69%", '```json\n{"extracted_answer": "69%", "correct": 1}\n```', None, 50, 9, False)
    assert right.judged and wrong.correct is False and wrong.error is None
    assert unread.correct is None and "unreadable" in (unread.error or "") and unread.raw == "no idea"
    assert cut.correct is None and "max_tokens" in (cut.error or "")
    body = server.requests[0]["body"]
    assert body["model"] == MODEL and body["temperature"] == 0.0 and body["max_tokens"] == 128 and body["seed"] == 0
    assert body["messages"] == Judge.prompt("What is it?", ["69"], "ANSWER: 69%. TERMINATE", "refocus-chart")


def test_no_published_answer_makes_no_request(server: FakeServer) -> None:
    judge = Judge(server.spec, **FAST)
    verdicts = judge_all(
        judge, [("q", [], "r", "exact"), ("q", None, "r", "charxiv", {"inst_category": 2}), ("q", [None], "r", "refocus-table")]
    )
    assert all(v.correct is None and v.error == NO_ANSWER for v in verdicts)
    assert server.requests == []


def test_failed_request_is_unjudged_not_wrong(server: FakeServer) -> None:
    server.script = [(500, b'{"error": {"message": "boom"}}')] * 3
    judge = Judge(server.spec, **FAST)
    (v,) = judge_all(judge, [("q", ["3"], "3", "refocus-table")])
    assert v.correct is None and v.correct is not False
    assert "boom" in (v.error or "") and "3 attempts" in (v.error or "")
    assert len(server.requests) == 3  # 1 + retries=2
    server.script = [(500, b"garbage")] * 2 + [chat('{"extracted_answer": "3", "correct": 1}')]
    (v,) = judge_all(judge, [("q", ["3"], "3", "refocus-table")])
    assert v.correct is True and len(server.requests) == 6


def test_cache_answers_a_repeated_verdict(server: FakeServer) -> None:
    cache = DictCache()
    judge = Judge(server.spec, cache=cache, **FAST)
    call = ("q", ["3"], "FINAL ANSWER: 3", "charxiv", {"inst_category": 3})
    first, second = judge_all(judge, [call, call])
    assert len(server.requests) == 1 and len(cache.data) == 1
    assert first.correct is second.correct is True and not first.cached and second.cached
    again = Judge(server.spec, cache=cache, **FAST)  # a rerun with the same cache asks nothing
    (third,) = judge_all(again, [call])
    assert third.cached and len(server.requests) == 1
    judge_all(judge, [("q", ["3"], "FINAL ANSWER: 3", "charxiv", {"inst_category": 1})])  # another prompt: asked
    assert len(server.requests) == 2


def test_key_never_leaks(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    server.script = [
        chat('{"extracted_answer": "ECHO_KEY", "correct": 1} ECHO_KEY'),
        *[(500, b'{"error": {"message": "bad key ECHO_KEY"}}')] * 3,
        chat("ECHO_KEY"),
    ]
    judge = Judge(server.spec, api_key_env="JUDGE_TEST_KEY", **FAST)
    verdicts = judge_all(judge, [("q", ["3"], "3", "exact")] * 3)
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"  # it was sent, and echoed
    assert verdicts[0].correct is True and verdicts[1].correct is None and verdicts[2].correct is None
    config = judge.config()
    dumped = json.dumps([v.to_json() for v in verdicts]) + json.dumps(config) + repr(judge)
    assert KEY not in dumped and "***" in dumped
    assert config["prompt_version"] == PROMPT_VERSION and config["api_key_env"] == "JUDGE_TEST_KEY"
    assert config["model"] == MODEL and config["url"].startswith("http://127.0.0.1:")


def test_spec_errors() -> None:
    with pytest.raises(ValueError, match="openai:MODEL@URL"):
        Judge("gpt-4o")
    with pytest.raises(ValueError, match="URL"):
        Judge("openai:gpt-4o")
