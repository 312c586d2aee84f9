"""Episodes per second of a served agent (``openai:MODEL@URL``) on one cell, with 1 and with 8 requests in flight.

``python -m iapo_gym.benchmarks.served_speed [--episodes 48] [--latency 0.2] [--out docs]`` starts, in a thread,
an OpenAI-compatible server on 127.0.0.1 that stands in for a model: it answers each chat request after
``--latency`` seconds (the model's time; requests on different connections are served at once, as a server that
batches does), first with a ``zoom`` over the whole image, then with an answer, so an episode is two requests.
The runner then plays the same cell (HBar, difficulty 0, seed 0, ``--episodes`` items) through
:func:`~iapo_gym.benchmarks.runner.run_cell`, as ``iapo-bench run`` does, once with ``max_in_flight`` 1 and once
with 8, side by side; there is no request cache (no results store), so every request reaches the server. A
warm-up pass on the same items first builds the 8 envs of the concurrent lanes and fills the scene cache, so
that both timed passes start equally warm.

Reported per pass: episodes, requests, wall seconds of the cell, episodes/s, the most requests the server had at
once, and the speed-up over one in flight; also the bound the latency sets (``1 / (2 * latency)`` episodes/s per
request in flight). Writes ``served_speed.md`` and ``served_speed.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from iapo_gym.io import atomic_write_json, atomic_write_text
from iapo_gym.validation import check_int

MODEL = "stand-in/latency-model"
FAMILY = "HBar"
IN_FLIGHT = (1, 8)


class LatencyServer:
    """A stand-in model behind ``POST /v1/chat/completions``: each reply after ``latency`` seconds (a zoom over
    the whole image on an episode's first turn, then ``<answer>0</answer>``); counts requests and the most at once."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with server._lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.latency)
                    data = json.dumps(reply(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # the default 5 drops a burst of connects: each dropped SYN costs a 1 s retransmit

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = self.max_in_flight = 0

    def __enter__(self) -> LatencyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def reply(body: dict[str, Any]) -> dict[str, Any]:
    """The stand-in model's chat completion: a zoom on the first turn, then an answer."""
    turn = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant")
    name, args = ("zoom", {"box": [0.0, 0.0, 1.0, 1.0]}) if turn == 0 else ("answer", {"text": "0"})
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": f"call_{turn}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
    }
    return {
        "object": "chat.completion",
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10},
    }


def measure(episodes: int = 48, latency: float = 0.2, in_flight: Sequence[int] = IN_FLIGHT) -> dict[str, Any]:
    """The figures of the module docstring."""
    from .runner import plan_cells, resolve_agent, run_cell
    from .suites import parse_suite

    suite = parse_suite(
        {"name": "served-speed", "seeds": [0], "episodes": episodes, "difficulty": 0, "families": [FAMILY]},
        Path("served-speed.yaml"),
    )
    runs: list[dict[str, Any]] = []
    with LatencyServer(latency) as server:

        def cell(n: int) -> tuple[Any, float]:
            spec = resolve_agent(
                f"openai:{MODEL}@{server.url}", served={"max_in_flight": n, "timeout": 60.0 + 10 * latency, "retries": 0}
            )
            (task,) = plan_cells(suite, [0], [spec], "local")
            task = replace(task, store=None)  # no request cache: every request is asked
            t0 = time.perf_counter()
            result = run_cell(task)
            return result, time.perf_counter() - t0

        saved, server.latency = server.latency, 0.0
        cell(max(in_flight))  # warm-up: the lanes' envs and the scene cache
        server.latency = saved
        for n in in_flight:
            server.reset_counts()
            result, wall = cell(n)
            rows = result.episodes
            runs.append(
                {
                    "max_in_flight": n,
                    "episodes": len(rows),
                    "wall_s": wall,
                    "episodes_per_s": len(rows) / wall,
                    "requests": sum(int((r.usage or {}).get("requests", 0)) for r in rows),
                    "server_requests": server.requests,
                    "max_in_flight_seen": server.max_in_flight,
                    "errors": sum(1 for r in rows if r.error),
                    "correct": [bool(r.correct) for r in rows],
                    "items": [r.item for r in rows],
                }
            )
    base = runs[0]["episodes_per_s"]
    for r in runs:
        r["speedup"] = r["episodes_per_s"] / base
    return {
        "episodes": episodes,
        "latency_s": latency,
        "family": FAMILY,
        "requests_per_episode": 2,
        "bound_episodes_per_s_per_lane": 1.0 / (2 * latency) if latency > 0 else None,
        "runs": runs,
    }


def report(result: dict[str, Any]) -> str:
    lat = result["latency_s"]
    lines = [
        "# Served-model speed: requests in flight",
        "",
        (
            f"`python -m iapo_gym.benchmarks.served_speed --episodes {result['episodes']} --latency {lat:g}`: one cell "
            f"({result['family']}, difficulty 0, seed 0) played by `openai:MODEL@URL` against a local stand-in server "
            f"that answers each request after {lat:g} s (two requests per episode: a zoom, then the answer), no "
            "request cache. The same items in every pass."
        ),
        "",
        "| max_in_flight | episodes | requests | wall (s) | episodes/s | most in flight at the server | speed-up | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['max_in_flight']} | {r['episodes']} | {r['requests']} | {r['wall_s']:.2f} | "
            f"{r['episodes_per_s']:.2f} | {r['max_in_flight_seen']} | {r['speedup']:.1f}x | {r['errors']} |"
        )
    if result.get("bound_episodes_per_s_per_lane"):
        lines += [
            "",
            (
                f"The latency bounds one request in flight at {result['bound_episodes_per_s_per_lane']:.2f} "
                "episodes/s (and N in flight at N times that); the rest is the env (render, zoom) and the client."
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iapo_gym.benchmarks.served_speed", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--episodes", type=int, default=48, help="episodes of the cell (default 48)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the stand-in model takes per request (default 0.2)")
    parser.add_argument("--out", default=None, help="folder for served_speed.md and served_speed.json (default: print only)")
    args = parser.parse_args(argv)
    if not args.latency >= 0:
        parser.error(f"--latency must be >= 0; got {args.latency}")
    result = measure(check_int("--episodes", args.episodes, 1), float(args.latency))
    text = report(result)
    print(text, end="")
    if args.out:
        atomic_write_text(Path(args.out) / "served_speed.md", text)
        atomic_write_json(Path(args.out) / "served_speed.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
