"""iapo-bench: suites, the results store, resume after a kill, reproducibility, CIs, user agents, bad input, Ray."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from iapo_gym.benchmarks import cli
from iapo_gym.benchmarks.leaderboard import FILES, accuracy_scores
from iapo_gym.benchmarks.runner import BenchmarkError, run_benchmark
from iapo_gym.benchmarks.store import (
    DB_NAME,
    SCHEMA_VERSION,
    EpisodeRow,
    ResultsStore,
    StoreError,
)
from iapo_gym.benchmarks.suites import SuiteError, builtin_suites, load_suite
from iapo_gym.envs.base import SPLITS

TINY = "seeds: [0, 1]\nepisodes: 3\nfamilies: [HBar, TableFact]\n"

SLOW_AGENT = '''
import json, time

class SlowAgent:
    """Deterministic and slow enough that a run can be killed between cells."""

    def __init__(self):
        self.n = 0

    def reset(self):
        pass

    def act(self, observation, info):
        time.sleep(0.03)
        self.n += 1
        return json.dumps({"tool": "answer", "args": {"text": "true" if self.n % 3 else "1"}})
'''

USER_AGENT = '''
import json

class MyAgent:
    """Zooms once into the top-left quarter, then answers 'true'."""

    def __init__(self):
        self.t = 0

    def reset(self):
        self.t = 0

    def act(self, observation, info):
        self.t += 1
        if self.t == 1:
            return json.dumps({"tool": "zoom", "args": {"box": [0, 0, 0.5, 0.5]}})
        return json.dumps({"tool": "answer", "args": {"text": "true"}})


class CkptAgent(MyAgent):
    """Loads from a checkpoint folder, like the trained agents do."""

    @classmethod
    def load_checkpoint(cls, path):
        from iapo_gym.agents.checkpoint import read_checkpoint

        config, tensors = read_checkpoint(path)
        agent = cls()
        agent.weights = tensors
        return agent
'''


# -- helpers ------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _strip_timing(x: Any) -> Any:
    """Leaderboard JSON without what legitimately varies between runs: speed and finish times."""
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items() if k not in ("episodes_per_s", "finished_at")}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def numbers(out: Path) -> Any:
    return _strip_timing(json.loads((out / "leaderboard.json").read_text()))


def rows(out: Path) -> list[tuple[Any, ...]]:
    """Every stored episode without its wall time, in a fixed order."""
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        return [
            tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in e.__dict__.items() if k != "wall_time")
            for e in store.episodes()
        ]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "iapo_gym.benchmarks.cli", *args]


# -- suites -------------------------------------------------------------------------------------------------
def test_builtin_suites_validate_and_items_are_deterministic() -> None:
    assert set(builtin_suites()) >= {"six", "zoom", "all", "easy-vqa"}
    six = load_suite("six")
    assert six.families == ("HBar", "VBar", "SciChart", "TableQA", "TableSynth", "TableFact") and six.seeds == (0, 1, 2)
    assert all(t.env_kwargs["split"] == "test" for t in six.tasks)
    assert load_suite("zoom").families == ("FineDetail", "TextRead") and len(load_suite("all").families) == 8
    easy = load_suite("easy-vqa")
    assert easy.tasks[0].env_id == "DatasetVQA-v0" and easy.tasks[0].env_kwargs["ocr"] == "scene"

    test_range = SPLITS["test"]
    a = six.items("HBar", 0, test_range)
    assert a == six.items("HBar", 0, test_range) and len(set(a)) == six.episodes
    assert all(test_range[0] <= i < test_range[1] for i in a)
    assert a != six.items("HBar", 1, test_range) and a != six.items("VBar", 0, test_range)
    assert six.with_episodes(5).items("HBar", 0, test_range) == a[:5]  # more episodes only add items
    assert easy.with_episodes(7).items("EasyVQA", 2, (0, 100)) == easy.items("EasyVQA", 2, (0, 100))[:7]


@pytest.mark.parametrize(
    "text, message",
    [
        ("seeds: [0]\nepisodes: 2\nfamilies: [HBar]\ncolour: red\n", "unknown key 'colour'"),
        ("seeds: [0]\nepisodes: 2\nfamilies: [HBrr]\n", "unknown family 'HBrr'; known: HBar"),
        ("seeds: [0, 0]\nepisodes: 2\nfamilies: [HBar]\n", "lists a seed twice"),
        ("seeds: [0]\nepisodes: 0\nfamilies: [HBar]\n", "'episodes' must be an integer >= 1"),
        ("seeds: [0]\nepisodes: 2\n", "exactly one of 'families'"),
        ("seeds: [0]\nepisodes: 2\nocr: tesseract\nfamilies: [HBar]\n", "'ocr' must be one of scene, easyocr"),
        ("seeds: [0]\nepisodes: 2\ndataset: {source: vqa2}\n", "unknown dataset source 'vqa2'"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_suite_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=message.replace("[", r"\[")) as err:
        load_suite(str(path))
    assert str(path) in str(err.value)


# -- resume after SIGKILL -----------------------------------------------------------------------------------
def _finished_cells(db: Path) -> int:
    try:
        # rw (never create): after the kill only a writable connection may roll back a half-done transaction
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=0.05)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or locked for a moment by the writer
        return 0


def test_killed_run_resumes_to_the_same_leaderboard(tmp_path: Path) -> None:
    suite = tmp_path / "resume.yaml"
    suite.write_text("seeds: [0, 1, 2, 3]\nepisodes: 5\nfamilies: [HBar, TableFact]\n")
    (tmp_path / "slow.py").write_text(SLOW_AGENT)
    agents = [f"{tmp_path / 'slow.py'}:SlowAgent", "random", "oracle"]
    n_cells = len(agents) * 2 * 4
    killed = tmp_path / "killed"
    cmd = bench("run", "--agents", *agents, "--suite", str(suite), "--out", str(killed), "--quiet")

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _finished_cells(killed / DB_NAME) < 1:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no cell finished within 60 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = _finished_cells(killed / DB_NAME)
    assert 1 <= done < n_cells, "the kill must land mid-run"
    assert len(rows(killed)) == 5 * done  # whole cells only: a cell's episodes commit together

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr

    straight = run_benchmark(agents, str(suite), out=tmp_path / "straight", progress=False)
    resumed = rows(killed)
    keys = [r[:6] for r in resumed]  # (agent, checkpoint hash, suite, family, seed, episode)
    assert len(resumed) == 5 * n_cells and len(set(keys)) == len(keys)  # nothing lost, nothing twice
    assert resumed == rows(straight)
    assert numbers(killed) == numbers(straight)


HALF_WRITTEN = r"""
import os, sys
from iapo_gym.benchmarks.store import ResultsStore
store = ResultsStore(sys.argv[1])
store.conn.execute("PRAGMA cache_size = 1")  # spill pages into the file mid-transaction: the journal is hot
store.conn.execute("BEGIN")
store.conn.execute("INSERT INTO cells VALUES ('a', 's', 'F', 0, 20000, 0.0, 'local', '0', 'x')")
store.conn.executemany("INSERT INTO episodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       [("a", None, "s", "F", 0, k, k, 1, 1.0, "{}", "{}", 0, 1, None, 0.0, "scene", None, None, 1, None, None)
                        for k in range(20000)])
os._exit(0)  # dies inside the transaction, like a SIGKILL
"""


def test_a_cell_killed_inside_its_transaction_leaves_no_trace(earlier: Path, tiny: Path) -> None:
    db = earlier / DB_NAME
    before = rows(earlier)
    subprocess.run([sys.executable, "-c", HALF_WRITTEN, str(db)], check=True, timeout=60)
    assert (earlier / f"{DB_NAME}-journal").stat().st_size > 0  # a hot journal: the file holds half a cell
    assert rows(earlier) == before  # readers roll it back: no half cell is ever seen
    assert cli.main(["run", "--agents", "no-tool", "--suite", str(tiny), "--out", str(earlier), "--quiet"]) == 0
    assert rows(earlier) == before


def test_same_command_twice_gives_identical_numbers_and_a_rerun_adds_nothing(tiny: Path, tmp_path: Path) -> None:
    agents = ["random", "no-tool", "oracle"]
    a = run_benchmark(agents, str(tiny), out=tmp_path / "a", progress=False)
    b = run_benchmark(agents, str(tiny), out=tmp_path / "b", workers=2, progress=False)  # processes: same rows
    assert numbers(a) == numbers(b) and rows(a) == rows(b)
    before = rows(a)
    assert cli.main(["run", "--agents", *agents, "--suite", str(tiny), "--out", str(a), "--quiet"]) == 0
    assert rows(a) == before  # every cell was finished: skipped, not duplicated
    board = json.loads((a / "leaderboard.json").read_text())["suites"]["tiny"]
    by_agent = {e["agent"]: e for e in board["entries"]}
    assert by_agent["oracle"]["average"]["mean"] == 1.0 and by_agent["oracle"]["usage"]["tool_usage"]["ocr"] > 0
    for name in FILES:
        assert (a / name).stat().st_size > 0
    for agent in agents:
        summary = json.loads((a / "submissions" / agent / "summary.json").read_text())
        assert set(summary["suites"]["tiny"]["families"]) == {"HBar", "TableFact"}
        assert "library_version: 0.1.0" in (a / "submissions" / agent / "metadata.yaml").read_text()


# -- confidence intervals -----------------------------------------------------------------------------------
def _synthetic(seeds: int, items: int, p: float, rng: np.random.Generator) -> list[EpisodeRow]:
    return [
        EpisodeRow("a", None, "s", fam, s, k, k, bool(rng.random() < p), 0.0, {}, {}, 0, 1, None, 0.001, "scene")
        for fam in ("F1", "F2")
        for s in range(seeds)
        for k in range(items)
    ]


def test_ci_of_the_average_contains_the_mean_and_shrinks_with_more_seeds(tmp_path: Path) -> None:
    rows_all = _synthetic(16, 20, 0.5, np.random.default_rng(0))
    widths = []
    for seeds in (1, 4, 16):  # the same data, more of its seeds
        fams, avg = accuracy_scores([r for r in rows_all if r.seed < seeds], ["F1", "F2"], (1, 2))
        assert avg.low <= avg.mean <= avg.high and all(f.low <= f.mean <= f.high for f in fams.values())
        widths.append(avg.high - avg.low)
    assert widths[0] > widths[1] > widths[2] and widths[2] < widths[0] / 2

    suite = tmp_path / "ci.yaml"
    suite.write_text("seeds: [0, 1, 2, 3, 4, 5]\nepisodes: 8\nfamilies: [HBar, TableFact]\n")
    out = run_benchmark(["no-tool"], str(suite), out=tmp_path / "ci", progress=False)
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        episodes = store.episodes()
    one = accuracy_scores([e for e in episodes if e.seed == 0], ["HBar", "TableFact"], (7,))[1]
    six = accuracy_scores(episodes, ["HBar", "TableFact"], (7,))[1]
    assert one.low <= one.mean <= one.high and six.low <= six.mean <= six.high
    assert six.high - six.low < one.high - one.low
    assert accuracy_scores(episodes, ["HBar", "TableFact"], (7,)) == accuracy_scores(episodes, ["HBar", "TableFact"], (7,))
    entry = json.loads((out / "leaderboard.json").read_text())["suites"]["ci"]["entries"][0]["average"]
    assert entry["low"] <= entry["mean"] <= entry["high"]


# -- user agents and checkpoints ----------------------------------------------------------------------------
def test_user_agent_file_and_checkpoint_folder_reach_the_leaderboard(tiny: Path, tmp_path: Path, capsys: Any) -> None:
    import torch
    from iapo_gym.agents.checkpoint import checkpoint_hash, write_checkpoint

    agent_file = tmp_path / "my_agent.py"
    agent_file.write_text(USER_AGENT)
    ckpt = write_checkpoint(tmp_path / "ckpts" / "tiny-iapo", {"agent_class": f"{agent_file}:CkptAgent"}, {"w": torch.zeros(3)})
    out = tmp_path / "user"
    # the checkpoint names a class in a file: it runs only with the opt-in (see test_safe_loading.py)
    rc = cli.main(
        [
            "run",
            "--agents",
            f"{agent_file}:MyAgent",
            f"mine={ckpt}",
            "--suite",
            str(tiny),
            "--out",
            str(out),
            "--quiet",
            "--trust-remote-code",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    md = (out / "leaderboard.md").read_text()
    assert "`my_agent.py:MyAgent`" in md and "`mine`" in md and f"`{checkpoint_hash(ckpt)}`" in md
    entries = {e["agent"]: e for e in json.loads((out / "leaderboard.json").read_text())["suites"]["tiny"]["entries"]}
    assert entries["my_agent.py:MyAgent"]["usage"]["tool_usage"]["zoom"] == 1.0
    assert entries["mine"]["checkpoint_hash"] == checkpoint_hash(ckpt)
    assert all(
        e.checkpoint_hash == checkpoint_hash(ckpt) for e in ResultsStore(out / DB_NAME, readonly=True).episodes(agent="mine")
    )


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.fixture
def earlier(tiny: Path, tmp_path: Path) -> Path:
    """A results folder with finished results, to prove that bad input leaves them intact."""
    return run_benchmark(["no-tool"], str(tiny), out=tmp_path / "earlier", progress=False)


def _fails(capsys: Any, args: list[str], *needles: str) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo-bench: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_input_gives_clear_errors_and_leaves_results_intact(earlier: Path, tiny: Path, tmp_path: Path, capsys: Any) -> None:
    before = digest(earlier)
    run = ["run", "--suite", str(tiny), "--out", str(earlier), "--quiet"]
    _fails(capsys, ["run", "--agents", "oracle", "--suite", "sx", "--out", str(earlier)], "unknown suite 'sx'", "six")
    _fails(capsys, [*run, "--agents", "oracel"], "unknown agent 'oracel'", "oracle", "checkpoint folder")
    _fails(capsys, [*run, "--agents", "no_such_module:Agent"], "cannot import module 'no_such_module'")
    _fails(capsys, [*run, "--agents", "./runs/missing-ckpt"], "no such checkpoint folder")
    empty = tmp_path / "empty-ckpt"
    empty.mkdir()
    _fails(capsys, [*run, "--agents", str(empty)], str(empty), "config.json and model.safetensors")
    broken = tmp_path / "broken-ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    _fails(capsys, [*run, "--agents", str(broken)], "cannot load the checkpoint folder", "not valid JSON")
    _fails(capsys, [*run, "--agents", "oracle", "--episodes", "4"], "other settings", "episodes: 3 there, 4 now")
    _fails(
        capsys,
        ["run", "--agents", "oracle", "--suite", str(tiny), "--out", str(earlier), "--workers", "0"],
        "workers must be a positive integer",
    )
    _fails(capsys, ["report", str(tmp_path / "nowhere")], "no results in", "iapo-bench run")
    assert digest(earlier) == before


@pytest.mark.parametrize("kind", ["newer-schema", "foreign-sqlite", "not-sqlite"])
def test_a_results_db_of_another_schema_is_refused_untouched(kind: str, tiny: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / kind
    out.mkdir()
    db = out / DB_NAME
    if kind == "not-sqlite":
        db.write_text("agent,score\noracle,1.0\n")
    else:
        conn = sqlite3.connect(db)
        if kind == "newer-schema":
            conn.executescript(
                f"CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES ({SCHEMA_VERSION + 1});"
            )
        else:
            conn.executescript("CREATE TABLE runs (id INTEGER); INSERT INTO runs VALUES (1);")
        conn.commit()
        conn.close()
    before = digest(out)
    expected = {
        "newer-schema": f"schema version {SCHEMA_VERSION + 1}",
        "foreign-sqlite": "not an iapo-bench results store",
        "not-sqlite": "not an iapo-bench results store",
    }[kind]
    _fails(
        capsys,
        ["run", "--agents", "oracle", "--suite", str(tiny), "--out", str(out), "--quiet"],
        expected,
        str(db),
        "left untouched",
    )
    _fails(capsys, ["report", str(out)], expected)
    assert digest(out) == before
    with pytest.raises(StoreError):
        ResultsStore(db)


def test_an_unwritable_out_dir_is_a_clear_error(earlier: Path, tiny: Path) -> None:
    before = digest(earlier)
    cmd = bench("run", "--agents", "oracle", "--suite", str(tiny), "--out", str(earlier / "sub"), "--quiet")
    if os.geteuid() == 0:  # root ignores file modes; drop the capability that lets it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file modes cannot be enforced")
        cmd = ["setpriv", "--bounding-set", "-dac_override", "--inh-caps", "-dac_override", "--", *cmd]
    earlier.chmod(0o555)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        proc2 = subprocess.run([*cmd[:-3], "--out", str(earlier), "--quiet"], capture_output=True, text=True, timeout=60)
    finally:
        earlier.chmod(0o755)
    for p in (proc, proc2):
        assert p.returncode == 2, p.stderr
        assert "is not writable" in p.stderr and "choose another --out" in p.stderr, p.stderr
    assert digest(earlier) == before and not (earlier / "sub").exists()


# -- backends -----------------------------------------------------------------------------------------------
def test_ray_backend_gives_the_same_rows_as_local(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    local = run_benchmark(["random", "oracle"], str(tiny), out=tmp_path / "local", progress=False)
    ray_out = run_benchmark(["random", "oracle"], str(tiny), out=tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert rows(ray_out) == rows(local) and numbers(ray_out) == numbers(local)
    with ResultsStore(ray_out / DB_NAME, readonly=True) as store:
        assert {c.backend for c in store.cells()} == {"ray"}


def test_missing_ray_is_a_clear_error(tiny: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(BenchmarkError, match=r"needs Ray.*pip install 'iapo-gym\[ray\]'"):
        run_benchmark(["oracle"], str(tiny), out=tmp_path / "noray", backend="ray", progress=False)


def test_help_teaches_with_examples(capsys: Any) -> None:
    for args in (["--help"], ["run", "--help"], ["report", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(args)
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and "iapo-bench" in text
    assert cli.main(["suites"]) == 0
    assert "six" in capsys.readouterr().out


def test_report_rerenders_identically_elsewhere(earlier: Path, tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["report", str(earlier), "--to", str(tmp_path / "docs")]) == 0
    assert "| `no-tool` |" in capsys.readouterr().out
    assert numbers(tmp_path / "docs") == numbers(earlier)
    assert (tmp_path / "docs" / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
