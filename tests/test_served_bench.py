"""End-to-end tests of served models on the leaderboard (``iapo-bench run --agents openai:MODEL@URL ... --judge``),
every server on 127.0.0.1 and started here: a real ``transformers serve`` of a tiny random VLM; a fake server of
our own (``tests/fake_openai.py``) answering 429, 500, slowly, malformed JSON or not at all on chosen requests,
in a thread or as a process killed mid-run; the judge against faults; the API key kept out of every file and
log; and the served-speed benchmark."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from iapo_gym.benchmarks.cli import main as bench_main

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    """A helper module of tests/ (the suite imports with --import-mode=importlib: tests/ is not on sys.path)."""
    full = f"iapo_tests_{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[full]


fake_openai = _load("fake_openai")
FakeOpenAI, Fault = fake_openai.FakeOpenAI, fake_openai.Fault

MODEL = "fake/vlm-1"
SUITE = "tiny-served"
FAMILIES = ("HBar", "TableFact")  # the fake server tells them apart by the question: "True or false: ..." is TableFact
EPISODES = 3
PER_EPISODE = 2  # the fake model's requests per episode: a zoom, then the answer


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-served.yaml"
    path.write_text(
        f"name: {SUITE}\nseeds: [0]\nepisodes: {EPISODES}\ndifficulty: 0\nocr: scene\nview_size: 128\n"
        f"budget: 3\nfamilies: [{', '.join(FAMILIES)}]\n",
        encoding="utf-8",
    )
    return path


def bench(suite: Path, out: Path, agents: list[str], *extra: str, quiet: bool = True) -> int:
    """``iapo-bench run`` on the tiny suite, seed 0, with tiny timeouts and backoff (``extra`` overrides)."""
    argv = [
        "run",
        "--agents",
        *agents,
        "--suite",
        str(suite),
        "--seeds",
        "0",
        "--episodes",
        str(EPISODES),
        "--out",
        str(out),
        "--request-timeout",
        "0.5",
        "--backoff",
        "0.01",
        "--max-in-flight",
        "2",
        *extra,
    ]
    return bench_main(argv + (["--quiet"] if quiet else []))


def spec(url: str, model: str = MODEL, label: str = "fake") -> str:
    return f"{label}=openai:{model}@{url}"


def query(out: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def board(out: Path) -> dict[str, Any]:
    return json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))


def entry(out: Path, agent: str = "fake") -> dict[str, Any]:
    (e,) = [e for e in board(out)["suites"][SUITE]["entries"] if e["agent"] == agent]
    return e


def md_row(out: Path, heading: str, agent: str = "fake") -> list[str]:
    """The cells of ``agent``'s row in the Markdown table that follows the line starting with ``heading``."""
    lines = (out / "leaderboard.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    for line in lines[start:]:
        if line.startswith(f"| `{agent}` |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row for {agent} under {heading!r}")


def served_row(out: Path, agent: str = "fake") -> dict[str, str]:
    names = ["agent", "model", "url", "tokens_in", "tokens_out", "cost", "errors"]
    return dict(zip(names, md_row(out, "Served models", agent)))


def judge_row(out: Path, agent: str = "fake") -> dict[str, str]:
    names = ["agent", "judge", "judged", "unjudged", "judge_accuracy", "rule_accuracy", "agreement"]
    return dict(zip(names, md_row(out, "LLM judge", agent)))


def episodes(out: Path) -> list[tuple[Any, ...]]:
    """(family, episode, item, correct, steps, reward, tool_calls, error, prompt, completion) of every episode."""
    rows = query(
        out,
        "SELECT family, episode, item, correct, steps, reward, tool_calls, error, usage FROM episodes "
        "ORDER BY family, seed, episode",
    )
    return [(*r[:8], json.loads(r[8])["prompt_tokens"], json.loads(r[8])["completion_tokens"]) for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server() -> Iterator[Any]:
    s = FakeOpenAI().start()
    yield s
    s.stop()


# -- 1. a real `transformers serve` -----------------------------------------------------------------------------
def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``transformers serve FOLDER`` of a tiny random Qwen3-VL on a free port: (model name, base URL).

    The model name a pinned server accepts is the folder as given (it reports ``FOLDER@main``; ``/v1/models``
    fails offline: it scans the hub cache). Qwen3-VL, not Qwen2.5-VL: serve parses each reply for
    ``<tool_call>`` JSON (the same response template for both) and answers HTTP 500 when a random model writes
    that token before garbage: the Qwen2.5-VL tiny model does so in most HBar episodes, the Qwen3-VL one in none
    of these (greedy decoding on the CPU: the same replies every run)."""
    from iapo_gym.agents.vlm.tiny import build_tiny_vlm

    root = tmp_path_factory.mktemp("transformers-serve")
    folder = build_tiny_vlm(root / "tiny-vlm", family="qwen3_vl")
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        pytest.fail("the `transformers` command is missing: install the serving extra (pip install -e '.[serving]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(root / "hf-home"),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "2",
        "TOKENIZERS_PARALLELISM": "false",
    }
    log_path = root / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [exe, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline, last = time.monotonic() + 90, ""
        while True:  # ready once a chat request with the folder as the model name is answered
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with code {proc.returncode} before answering:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                status, last = _post(
                    url + "/chat/completions",
                    {"model": str(folder), "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]},
                    10,
                )
                if status == 200:
                    break
            except OSError as exc:  # not listening yet
                last = repr(exc)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"transformers serve gave no chat answer within 90 s (last: {last[:300]}):\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.25)
        yield str(folder), url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_transformers_serve_on_the_leaderboard_and_as_judge(
    transformers_serve: tuple[str, str], suite: Path, tmp_path: Path
) -> None:
    """A tiny random VLM behind `transformers serve`: every family on the leaderboard with its tokens per episode
    (Markdown and JSON); then the same model as --judge: a verdict stored per scored episode (mostly unjudged:
    a random model writes no verdict) and the judge table shown."""
    model, url = transformers_serve
    out = tmp_path / "out"
    agent = f"tiny=openai:{model}@{url}"
    assert bench(suite, out, [agent], "--max-tokens", "16", "--request-timeout", "60", "--retries", "1") == 0
    (e,) = board(out)["suites"][SUITE]["entries"]
    assert e["agent"] == "tiny" and sorted(e["accuracy"]) == sorted(FAMILIES)
    assert e["usage"]["episodes"] == len(FAMILIES) * EPISODES
    assert e["usage"]["errors"] == 0, query(out, "SELECT family, episode, error FROM episodes WHERE error IS NOT NULL")
    assert e["usage"]["tokens_in"] > 0 and 0 < e["usage"]["tokens_out"] <= 16 * 3  # --max-tokens 16, budget 3
    config = board(out)["agents"]["tiny"]
    assert config["model"] == model and config["url"] == url and config["max_tokens"] == 16
    row = served_row(out, "tiny")
    assert row["model"] == f"`{model}`" and row["url"] == url and row["errors"] == "0"
    assert float(row["tokens_in"]) == pytest.approx(e["usage"]["tokens_in"], abs=0.5) and float(row["tokens_in"]) > 0
    assert float(row["tokens_out"]) > 0
    n_requests = query(out, "SELECT COUNT(*) FROM requests")[0][0]
    usage = [json.loads(u) for (u,) in query(out, "SELECT usage FROM episodes")]
    assert n_requests == sum(u["requests"] for u in usage) > 0 and all(u["cached"] == 0 for u in usage)

    assert (
        bench(
            suite,
            out,
            [agent],
            "--max-tokens",
            "16",
            "--request-timeout",
            "60",
            "--retries",
            "1",
            "--judge",
            f"openai:{model}@{url}",
        )
        == 0
    )
    verdicts = query(out, "SELECT verdict, error FROM judgements")
    scored = query(out, "SELECT COUNT(*) FROM episodes WHERE scored = 1")[0][0]
    assert len(verdicts) == scored == len(FAMILIES) * EPISODES
    (summary,) = board(out)["suites"][SUITE]["judge"]
    assert summary["judge"] == f"openai:{model}" and summary["judged"] + summary["unjudged"] == scored
    assert summary["unjudged"] == sum(v is None for v, _ in verdicts)
    assert all(err for v, err in verdicts if v is None)  # an unjudged verdict says why
    jrow = judge_row(out, "tiny")
    assert (int(jrow["judged"]), int(jrow["unjudged"])) == (summary["judged"], summary["unjudged"])
    assert query(out, "SELECT COUNT(*) FROM requests")[0][0] > n_requests  # the judge's replies are cached too


# -- 2. faults of a live server -----------------------------------------------------------------------------------
def test_faults_with_enough_retries_give_the_clean_numbers(suite: Path, tmp_path: Path) -> None:
    """429 (with Retry-After), 500, a reply slower than --request-timeout, malformed JSON and a dropped
    connection on chosen requests: retried, and the run stores exactly what a run against a healthy server
    stores (answers, steps, rewards, tokens), with no errors."""
    with FakeOpenAI() as clean:
        assert bench(suite, tmp_path / "clean", [spec(clean.url)], "--retries", "0") == 0
        reference = episodes(tmp_path / "clean")
        needed = clean.count()
    assert needed == len(FAMILIES) * EPISODES * PER_EPISODE and clean.count("ok") == needed

    faults = [
        Fault("429", nth=(1,)),
        Fault("500", nth=(3,)),
        Fault("slow", nth=(5,)),
        Fault("malformed", nth=(7,)),
        Fault("close", nth=(9,)),
    ]
    out = tmp_path / "faulty"
    with FakeOpenAI(faults, slow=1.5) as faulty:
        assert bench(suite, out, [spec(faulty.url)], "--retries", str(len(faults) + 1)) == 0
    assert episodes(out) == reference
    injected = [r["status"] for r in faulty.log if r["status"] != "ok"]
    assert sorted(injected) == sorted(f.kind for f in faults)
    assert faulty.count("ok") == needed and faulty.count() == needed + len(injected)
    assert len(set(faulty.answered)) == needed  # no usable answer was asked for twice
    assert entry(out)["usage"]["errors"] == 0 and served_row(out)["errors"] == "0"
    assert served_row(out)["tokens_in"] == served_row(tmp_path / "clean")["tokens_in"]
    assert entry(out)["accuracy"] == entry(tmp_path / "clean")["accuracy"]
    usage = [json.loads(u) for (u,) in query(out, "SELECT usage FROM episodes")]
    assert sum(u["retries"] for u in usage) == len(injected) and sum(u["requests"] for u in usage) == faulty.count()
    assert query(out, "SELECT COUNT(*) FROM requests")[0][0] == needed


def test_one_family_failing_is_stored_with_its_error_and_replayed(suite: Path, tmp_path: Path) -> None:
    """--retries 0 and HTTP 500 for every TableFact question: its episodes are stored with their error and
    counted in the errors column, the run finishes (exit 0). A rerun replays that cell only and, once the
    server behaves, completes it: no duplicate rows, and no answered request asked again."""
    out = tmp_path / "out"
    with FakeOpenAI([Fault("500", match="True or false")]) as server:
        assert bench(suite, out, [spec(server.url)], "--retries", "0") == 0
        broken = list(server.log)
        assert sum(r["status"] == "ok" for r in broken) == EPISODES * PER_EPISODE  # HBar's
        assert [r["status"] for r in broken if r["question"].startswith("True or false")] == ["500"] * EPISODES
        rows = query(out, "SELECT family, error FROM episodes ORDER BY family, episode")
        assert [f for f, _ in rows] == ["HBar"] * EPISODES + ["TableFact"] * EPISODES
        assert all(err is None for f, err in rows if f == "HBar")
        for _, err in rows[EPISODES:]:
            assert "HTTP 500: injected 500" in err and "failed after 1 attempt" in err and MODEL in err
        assert entry(out)["usage"]["errors"] == EPISODES and served_row(out)["errors"] == str(EPISODES)
        assert entry(out)["family_usage"]["TableFact"]["errors"] == EPISODES
        assert entry(out)["family_usage"]["HBar"]["errors"] == 0

        server.faults.clear()  # the server behaves: the same command again
        assert bench(suite, out, [spec(server.url)], "--retries", "0") == 0
        again = server.log[len(broken) :]
        assert len(again) == EPISODES * PER_EPISODE and all(r["status"] == "ok" for r in again)
        assert all(r["question"].startswith("True or false") for r in again)  # the TableFact cell only
        answered = [r["key"] for r in server.log if r["status"] == "ok"]
        assert len(set(answered)) == len(answered)  # no answered request was sent again
        assert query(out, "SELECT COUNT(*) FROM requests")[0][0] == len(answered)
        assert query(out, "SELECT COUNT(*) FROM episodes")[0][0] == len(FAMILIES) * EPISODES
        assert query(out, "SELECT COUNT(*) FROM cells")[0][0] == len(FAMILIES)
        assert query(out, "SELECT COUNT(*) FROM episodes WHERE error IS NOT NULL")[0][0] == 0
        assert query(out, "SELECT COUNT(*) FROM trajectories")[0][0] == len(FAMILIES) * EPISODES
        assert entry(out)["usage"]["errors"] == 0 and served_row(out)["errors"] == "0"
        n = len(server.log)
        assert bench(suite, out, [spec(server.url)], "--retries", "0") == 0  # finished: a third run asks nothing
        assert len(server.log) == n


# -- 3. the server killed mid-run ---------------------------------------------------------------------------------
def start_process_server(log: Path, port: int = 0, exit_after: int | None = None) -> tuple[subprocess.Popen[str], int]:
    """``python tests/fake_openai.py`` as a process of its own: (the process, its port)."""
    cmd = [sys.executable, str(HERE / "fake_openai.py"), "--port", str(port), "--log", str(log)]
    cmd += ["--exit-after", str(exit_after)] if exit_after is not None else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready "), f"the fake server did not start: {line!r}"
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_server_killed_mid_run_then_resumed(suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The serve process dies after 7 answers (the HBar cell's 6, then TableFact's first): the run stops with exit
    code 2 and a message naming the server and the connection and saying to rerun; the HBar cell is kept. The
    same command against a restarted server finishes, and the new server is never asked a request whose
    answer is in the store."""
    out = tmp_path / "out"
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    proc, port = start_process_server(first_log, exit_after=EPISODES * PER_EPISODE + 1)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        code = bench(suite, out, [spec(url)], "--retries", "1")
        proc.wait(10)
    finally:
        stop(proc)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cell agent=fake" in err and "family=TableFact" in err and "rerun the same command" in err
    assert f"POST {url}/chat/completions" in err and "connection refused" in err
    assert query(out, "SELECT family, COUNT(*), COUNT(error) FROM episodes GROUP BY family") == [("HBar", EPISODES, 0)]
    first = [r for r in fake_openai.read_log(first_log) if r["status"] == "ok"]
    assert len(first) == EPISODES * PER_EPISODE + 1
    assert query(out, "SELECT COUNT(*) FROM requests")[0][0] == len(first)  # TableFact's first answer is cached

    proc, _ = start_process_server(second_log, port=port)  # restarted: fresh counter, same URL
    try:
        assert bench(suite, out, [spec(url)], "--retries", "1") == 0
    finally:
        stop(proc)
    second = fake_openai.read_log(second_log)
    assert all(r["status"] == "ok" for r in second)
    assert all(r["question"].startswith("True or false") for r in second)  # the finished HBar cell was kept
    assert not {r["key"] for r in first} & {r["key"] for r in second}  # nothing answered before was asked again
    assert len(second) == len(FAMILIES) * EPISODES * PER_EPISODE - len(first)
    assert query(out, "SELECT family, COUNT(*), COUNT(error) FROM episodes GROUP BY family ORDER BY family") == [
        ("HBar", EPISODES, 0),
        ("TableFact", EPISODES, 0),
    ]
    assert query(out, "SELECT COUNT(*) FROM requests")[0][0] == len(FAMILIES) * EPISODES * PER_EPISODE


# -- 4. the judge against faults ----------------------------------------------------------------------------------
def test_failed_verdicts_are_unjudged_not_wrong(suite: Path, tmp_path: Path, server: Any) -> None:
    """A judge that answers HTTP 500 to TableFact items (no retries): those verdicts are stored as unjudged
    (NULL, with the error), the leaderboard counts them under "unjudged", never as wrong; a rerun with the judge
    healthy fills them in without asking the judged ones again."""
    out = tmp_path / "out"
    with FakeOpenAI(
        [Fault("500", match="Question: True or false"), Fault("malformed", match="Question: What", nth=(2,))]
    ) as judge:
        assert bench(suite, out, [spec(server.url)], "--retries", "0", "--judge", f"openai:judge/m@{judge.url}") == 0
    assert all(r["judge"] for r in judge.log) and not any(r["judge"] for r in server.log)
    rows = query(
        out,
        "SELECT e.family, j.judge, j.verdict, j.error FROM judgements j JOIN episodes e USING "
        "(agent, suite, family, seed, episode) ORDER BY e.family, e.episode",
    )
    assert len(rows) == len(FAMILIES) * EPISODES and {j for _, j, _, _ in rows} == {"openai:judge/m"}
    hbar = [r for r in rows if r[0] == "HBar"]
    fact = [r for r in rows if r[0] == "TableFact"]
    assert sum(v is None for _, _, v, _ in hbar) == 1  # the malformed reply, not retried
    assert all(v is None and "judge request failed" in e and "HTTP 500" in e for _, _, v, e in fact)
    assert query(out, "SELECT COUNT(*) FROM judgements WHERE verdict = 0")[0][0] == 0  # never wrong
    (summary,) = board(out)["suites"][SUITE]["judge"]
    assert (summary["judged"], summary["unjudged"]) == (EPISODES - 1, EPISODES + 1)
    assert summary["judge_accuracy"] == 1.0  # the fake judge says correct to all it judged: unjudged are not wrong
    jrow = judge_row(out)
    assert (jrow["judged"], jrow["unjudged"]) == (str(EPISODES - 1), str(EPISODES + 1))
    assert float(jrow["judge_accuracy"]) == 100.0

    with FakeOpenAI() as healthy:  # a rerun asks again for the unjudged verdicts only
        assert bench(suite, out, [spec(server.url)], "--retries", "0", "--judge", f"openai:judge/m@{healthy.url}") == 0
    assert healthy.count() == EPISODES + 1
    assert query(out, "SELECT COUNT(*) FROM judgements WHERE verdict IS NULL")[0][0] == 0
    (summary,) = board(out)["suites"][SUITE]["judge"]
    assert (summary["judged"], summary["unjudged"]) == (2 * EPISODES, 0)


# -- 5. the API key -----------------------------------------------------------------------------------------------
def test_api_key_is_nowhere(
    suite: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key is sent (the server checks it) and echoed back in error bodies, yet it is in no table, no byte of
    results.sqlite, no leaderboard file or page, no submission and no log line."""
    secret = "sk-iapo-e2e-7f3a9c1d5b-DO-NOT-LEAK"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    out = tmp_path / "out"
    faults = [
        Fault("500", nth=(1, 2), echo_key=True),
        Fault("429", nth=(4,), echo_key=True),
        Fault("malformed", nth=(6,), echo_key=True),
        Fault("echo", nth=(8, 9, 10)),
        Fault("400", match="True or false", times=1, echo_key=True),
    ]  # not retried: an errored episode
    judge_faults = [Fault("500", match="Question: True or false", echo_key=True), Fault("echo", match="Question: What")]
    with FakeOpenAI(faults, key=secret) as agent_server, FakeOpenAI(judge_faults, key=secret) as judge:
        assert (
            bench(suite, out, [spec(agent_server.url)], "--retries", "4", "--judge", f"openai:judge/m@{judge.url}", quiet=False)
            == 0
        )
    assert {r["auth"] for r in agent_server.log + judge.log} == {True}
    assert agent_server.count("401") == judge.count("401") == 0  # the key was sent with every request
    assert agent_server.count("400") == 1 and judge.count("500") >= 1  # and echoed back, in errors
    assert sum(r["echo"] for r in agent_server.log) == 3 and sum(r["echo"] for r in judge.log) == EPISODES  # and answers
    errors = [e for (e,) in query(out, "SELECT error FROM episodes WHERE error IS NOT NULL")]
    assert len(errors) == 1 and "***" in errors[0] and "HTTP 400" in errors[0]
    assert any("***" in (e or "") for (e,) in query(out, "SELECT error FROM judgements"))

    # a wrong key: the server's 401 echoes it; the run stops (every episode refused) and says which variable
    monkeypatch.setenv("IAPO_OTHER_KEY", secret + "-wrong")
    with FakeOpenAI(key=secret) as strict:
        code = bench(suite, tmp_path / "wrong", [spec(strict.url)], "--api-key-env", "IAPO_OTHER_KEY", quiet=False)
    assert code == 2 and strict.count("401") > 0
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "$IAPO_OTHER_KEY" in logs and "HTTP 401" in logs

    files = [p for p in (*out.rglob("*"), *(tmp_path / "wrong").rglob("*")) if p.is_file()]
    names = {p.name for p in files}
    assert {
        "results.sqlite",
        "leaderboard.md",
        "leaderboard.csv",
        "leaderboard.json",
        "leaderboard.html",
        "leaderboard.png",
        "summary.json",
        "metadata.yaml",
    } <= names
    for p in files:
        data = p.read_bytes()
        assert secret.encode() not in data and secret[:20].encode() not in data, p
    conn = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True)
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                assert secret[:20] not in repr(row), table
    finally:
        conn.close()
    assert secret[:20] not in logs
    assert secret[:20] not in json.dumps(board(out)) and "OPENAI_API_KEY" in json.dumps(board(out)["agents"])


# -- 6. the served-speed benchmark --------------------------------------------------------------------------------
def test_served_speed_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from iapo_gym.benchmarks import served_speed

    assert served_speed.main(["--episodes", "6", "--latency", "0.05", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "served_speed.json").read_text(encoding="utf-8"))
    assert (tmp_path / "served_speed.md").read_text(encoding="utf-8") == text
    runs = {r["max_in_flight"]: r for r in result["runs"]}
    assert sorted(runs) == [1, 8]
    assert all(r["episodes"] == 6 and r["errors"] == 0 and r["episodes_per_s"] > 0 for r in runs.values())
    assert runs[1]["requests"] == runs[8]["requests"] == runs[1]["server_requests"] == runs[8]["server_requests"]
    assert runs[1]["max_in_flight_seen"] == 1 and 1 < runs[8]["max_in_flight_seen"] <= 8
    assert runs[1]["correct"] == runs[8]["correct"]  # the same items, the same answers
    assert runs[8]["episodes_per_s"] > runs[1]["episodes_per_s"]
    assert "max_in_flight" in text and "episodes/s" in text
