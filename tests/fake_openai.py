"""A fake OpenAI-compatible chat server for the end-to-end tests of served models (standard library only).

It plays a deterministic "model": an agent's first turn is a ``zoom`` tool call over the whole image, every
later turn answers (``true`` to a "True or false" question, ``0`` to any other); a judge's request (its system
prompt grades responses) gets ``{"extracted_answer": ..., "correct": 1}``. The usage it reports depends only on
the request body, so the same request always costs the same tokens.

Faults (:class:`Fault`) answer chosen requests with 429, 500, 400, a reply slower than the client's timeout,
malformed JSON, or a dropped connection, by the request's ordinal and/or a substring of its question. With
``key`` set, a request without ``Authorization: Bearer <key>`` gets a 401 that echoes what it sent; a fault with
``echo_key`` puts the bearer token in its error body, and an ``echo`` fault in a usable answer's text (the client
must redact it wherever it goes).

Every chat request is logged (:attr:`FakeOpenAI.log`): its ordinal, ``key`` (SHA-256 of the raw body: the
client sends canonical JSON, so equal requests have equal keys), what happened (``ok`` when a usable answer was
sent, else the fault), and its question. Run in a thread (``FakeOpenAI(...).start()``) or as a process of its
own, which appends the log to a JSONL file and can exit by itself after N answers (a server killed mid-run)::

    python tests/fake_openai.py --port 0 --log LOG.jsonl [--exit-after N] [--latency S] [--key-env VAR]

The process prints ``ready PORT`` on its first stdout line once it accepts connections.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("429", "500", "400", "slow", "malformed", "close", "echo")


@dataclass(frozen=True)
class Fault:
    """How to fail chosen chat requests.

    Attributes:
        kind: one of :data:`FAULT_KINDS` (``slow``: a usable answer after ``slow`` seconds, past the client's
            timeout; ``malformed``: HTTP 200 with truncated JSON; ``close``: the connection dropped unanswered;
            ``echo``: a usable answer whose text repeats the bearer token, logged as ``ok``).
        match: only requests whose question holds this text (``""``: any).
        nth: only these request ordinals (1-based over chat requests; empty: any).
        times: at most this many times (``None``: every time).
        echo_key: the error body repeats the bearer token the request carried.
    """

    kind: str
    match: str = ""
    nth: tuple[int, ...] = ()
    times: int | None = None
    echo_key: bool = False


def question_of(body: dict[str, Any]) -> str:
    """The text of a request's first user message (an agent's question, or a judge's whole item)."""
    for m in body.get("messages") or []:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def is_judge(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or [{}]
    system = messages[0].get("content") if messages[0].get("role") == "system" else ""
    return isinstance(system, str) and system.startswith("You grade")


def model_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model's chat completion for a request body (see the module docstring)."""
    question = question_of(body)
    if is_judge(body):
        response = question.rpartition("Response: ")[2]
        message: dict[str, Any] = {"role": "assistant", "content": json.dumps({"extracted_answer": response[:40], "correct": 1})}
    else:
        turn = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant")
        if turn == 0:
            name, args = "zoom", {"box": [0.0, 0.0, 1.0, 1.0]}
        else:
            name, args = "answer", {"text": "true" if question.startswith("True or false") else "0"}
        if body.get("tools"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"call_{turn}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                ],
            }
        else:
            message = {"role": "assistant", "content": json.dumps({"tool": name, "args": args})}
    raw = json.dumps(body, sort_keys=True).encode()
    return {
        "id": "cmpl-fake",
        "object": "chat.completion",
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10 + len(raw) // 1000, "completion_tokens": 7},
    }


class FakeOpenAI:
    """The server (see the module docstring).

    Args:
        faults: how to fail chosen requests (the first that applies wins).
        key: the API key every request must carry (``None``: none checked).
        latency: seconds before each answer (a model's generation time).
        slow: seconds a ``slow`` fault waits.
        exit_after: run as a process (:func:`main`), it exits (``os._exit``) once it has sent this many usable
            answers; requests past that number are dropped unanswered meanwhile.
        log_path: a JSONL file each request's log entry is appended to (flushed at once).
        port: the port (0: any free one).
    """

    def __init__(
        self,
        faults: list[Fault] | tuple[Fault, ...] = (),
        *,
        key: str | None = None,
        latency: float = 0.0,
        slow: float = 2.0,
        exit_after: int | None = None,
        log_path: str | None = None,
        port: int = 0,
    ) -> None:
        for f in faults:
            if f.kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {f.kind!r}; known: {FAULT_KINDS}")
        self.faults = list(faults)
        self.key, self.latency, self.slow, self.exit_after = key, latency, slow, exit_after
        self.log: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self._used = [0] * len(self.faults)
        self._n = self._reserved = 0
        self._exit_process = False  # set by main(): exit_after ends the process
        self._lock = threading.Lock()
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._send(self, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # the default 5 drops a burst of connects (a 1 s SYN retransmit each)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left

        self._httpd = Server(("127.0.0.1", port), Handler)
        self._thread: threading.Thread | None = None

    # -- info --------------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, status: str | None = None, match: str = "") -> int:
        """Chat requests logged (with this ``status``, whose question holds ``match``)."""
        return sum(1 for r in self.log if (status is None or r["status"] == status) and match in r["question"])

    @property
    def answered(self) -> list[str]:
        """Keys of the requests that got a usable answer, in order."""
        return [r["key"] for r in self.log if r["status"] == "ok"]

    # -- serving -----------------------------------------------------------------------------------------------
    def _fault(self, n: int, question: str) -> Fault | None:
        for i, f in enumerate(self.faults):
            if f.match in question and (not f.nth or n in f.nth) and (f.times is None or self._used[i] < f.times):
                self._used[i] += 1
                return f
        return None

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
            if self._log_file is not None:
                self._log_file.write(json.dumps(entry) + "\n")
                self._log_file.flush()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ")
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(h, 400, {"error": {"message": "request body is not JSON"}})
            return
        question = question_of(body)
        with self._lock:
            self._n += 1
            n = self._n
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            over = self.exit_after is not None and self._reserved >= self.exit_after
            unauthorised = self.key is not None and token != self.key
            fault = None if over or unauthorised else self._fault(n, question)
            echo = fault is not None and fault.kind == "echo"
            if echo:
                fault = None
            status = "dropped" if over else "401" if unauthorised else fault.kind if fault else "ok"
            self._reserved += status == "ok"
        entry = {
            "n": n,
            "key": hashlib.sha256(raw).hexdigest(),
            "status": status,
            "question": question,
            "auth": bool(token),
            "judge": is_judge(body),
            "echo": echo,
        }
        if status != "ok":  # logged at once (a slow reply is logged before the client gives up on it)
            self._record(entry)
        try:
            if over:  # the process is on its way out: nothing more is answered
                h.close_connection = True
                return
            if unauthorised:
                self._send(h, 401, {"error": {"message": f"Incorrect API key provided: {token or '(none)'}"}})
                return
            if fault is None:
                time.sleep(self.latency)
                answer = model_reply(body)
                if echo:
                    message = answer["choices"][0]["message"]
                    message["content"] = (message["content"] or "") + f" (authorised with {token})"
                self._send(h, 200, answer)
                self._record(entry)  # answered: logged once sent
                return
            said = f" (request authorised with {token})" if fault.echo_key else ""
            if fault.kind in ("429", "500", "400"):
                headers = {"Retry-After": "0.01"} if fault.kind == "429" else {}
                self._send(h, int(fault.kind), {"error": {"message": f"injected {fault.kind}{said}"}}, headers=headers)
            elif fault.kind == "slow":
                time.sleep(self.slow)
                self._send(h, 200, model_reply(body))
            elif fault.kind == "malformed":
                self._send(h, 200, raw=b'{"choices": [{"message": ' + said.encode())
            else:  # close
                h.close_connection = True
        except OSError:
            pass  # the client gave up (a slow fault)
        finally:
            with self._lock:
                self.in_flight -= 1
            if self._exit_process and self.exit_after is not None and status == "ok" and len(self.answered) >= self.exit_after:
                with self._lock:  # a server killed mid-run: no clean shutdown, whatever is in flight
                    os._exit(0)

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries a server process appended to its JSONL log."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible chat server (tests only).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True, help="JSONL file each request is appended to")
    parser.add_argument("--exit-after", type=int, help="exit after this many usable answers")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--key-env", help="environment variable holding the API key requests must carry")
    args = parser.parse_args(argv)
    key = os.environ.get(args.key_env) if args.key_env else None
    server = FakeOpenAI(key=key, latency=args.latency, exit_after=args.exit_after, log_path=args.log, port=args.port)
    server._exit_process = True
    print(f"ready {server.port}", flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.02)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
