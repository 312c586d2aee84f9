"""Every snippet in the README runs: the python blocks in order, and the main job's command at small scale."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README.read_text()) if kind == lang]


def test_python_snippets_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, code in enumerate(blocks("python")):
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"README python block {i + 1} failed: {exc!r}\n{code}") from exc


SMALL_SCALE = {
    "iapo-demo": ["--scale", "tiny"],
    "iapo-bench run": ["--episodes", "1", "--seeds", "0", "--quiet"],
    "iapo-train": ["--no-progress"],
}
"""Flags that run a README command at test scale (the same code path, fewer updates and episodes)."""
SMALL_VALUES = {"--updates": "1", "--warm-start": "4"}


def scaled(cmd: str) -> list[str]:
    """A README shell command at test scale: smaller values for SMALL_VALUES flags, SMALL_SCALE flags added."""
    args = shlex.split(cmd, comments=True)
    for i, a in enumerate(args[:-1]):
        if a in SMALL_VALUES:
            args[i + 1] = SMALL_VALUES[a]
    key = " ".join(args[:2]) if " ".join(args[:2]) in SMALL_SCALE else args[0]
    return args + SMALL_SCALE.get(key, [])


def main_job_commands() -> list[list[str]]:
    """The commands of the README's first bash block after the install step (the part a test can run)."""
    first = blocks("bash")[0].strip()
    steps = [s.strip() for s in first.split("&&")]
    return [scaled(s) for s in steps if s.split()[0].startswith("iapo-")]


def tour_commands() -> list[list[str]]:
    """The ``iapo-*`` lines of every later bash block of the README, in order."""
    lines = [ln.strip() for body in blocks("bash")[2:] for ln in body.splitlines()]
    return [scaled(ln) for ln in lines if ln.startswith("iapo-")]


def test_readme_starts_with_install_and_test_commands() -> None:
    bash = blocks("bash")
    assert "pip install -c constraints.txt" in bash[0]
    assert bash[1].strip() == "pytest -n 2"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\npytest -n 2\n" in ci, ".ci/run must run exactly the README's test command"
    assert main_job_commands(), "the first command must run the main job after installing"


def test_main_job_runs(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    for cmd in main_job_commands():
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
        if cmd[0] == "iapo-demo":
            assert "| `oracle` |" in result.stdout and "| `iapo` |" in result.stdout  # the leaderboard is printed


def test_tour_shell_commands_run_in_order(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    commands = tour_commands()
    assert any(c[0] == "iapo-train" for c in commands) and any(c[0] == "iapo-bench" for c in commands)
    for cmd in commands:
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
