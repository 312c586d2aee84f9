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


def main_job_commands() -> list[list[str]]:
    """The commands of the README's first bash block after the install step (the part a test can run)."""
    first = blocks("bash")[0].strip()
    steps = [s.strip() for s in first.split("&&")]
    return [shlex.split(s) for s in steps if s.split()[0].startswith("iapo-")]


def test_readme_starts_with_install_and_test_commands() -> None:
    bash = blocks("bash")
    assert "pip install -c constraints.txt" in bash[0]
    assert bash[1].strip() == "pytest -n 2"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\npytest -n 2\n" in ci, ".ci/run must run exactly the README's test command"
    assert main_job_commands(), "the first command must run the main job after installing"


def test_main_job_runs(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", IAPO_SMOKE="1")
    for cmd in main_job_commands():
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
