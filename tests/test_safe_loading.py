"""Loading a checkpoint, a suite file or a training config runs no code it names, unless the user opts in.

Every test plants a ``.py`` file that writes a marker file when it is imported, names one of its classes
inside a file, and checks that loading refuses it with a message naming the class and the opt-in, with the
marker absent afterwards; with the opt-in it loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from iapo_gym.agents import base as agents_base
from iapo_gym.agents.checkpoint import check_config, load_agent, read_checkpoint, write_checkpoint
from iapo_gym.agents.cli import main as train_main
from iapo_gym.agents.compact_agent import AGENT_CLASS, CompactAgent
from iapo_gym.benchmarks import cli
from iapo_gym.benchmarks.runner import run_benchmark
from iapo_gym.benchmarks.suites import SuiteError, load_suite

from iapo_gym.specs import UntrustedCodeError, check_trusted, is_package_spec

PLANTED = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")

from iapo_gym.teachers import OracleTeacher


class Planted:
    """An agent a checkpoint may name."""

    def reset(self):
        pass

    def act(self, observation, info):
        return "<answer>0</answer>"

    @classmethod
    def load_checkpoint(cls, path):
        return cls()


class PlantedTeacher(OracleTeacher):
    """A teacher a suite or a training config may name."""
'''

TINY_SUITE = "seeds: [0]\nepisodes: 1\nfamilies: [HBar]\n"
OPT_IN_WORDS = ("trust_remote_code=True", "--trust-remote-code")


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """``(file, marker)``: ``file`` writes ``marker`` when imported."""
    marker = tmp_path / "IMPORTED"
    file = tmp_path / "planted.py"
    file.write_text(PLANTED.format(marker=str(marker)))
    return file, marker


def _refused(exc: BaseException | str, spec: str) -> None:
    text = str(exc)
    assert spec in text, text
    assert all(w in text for w in OPT_IN_WORDS), text


def _checkpoint(path: Path, agent_class: str, **config: Any) -> Path:
    return write_checkpoint(path, {"agent_class": agent_class, **config}, {"w": torch.zeros(2)})


# -- checkpoints --------------------------------------------------------------------------------------------
def test_a_checkpoint_naming_a_file_class_loads_only_with_the_opt_in(planted: tuple[Path, Path], tmp_path: Path) -> None:
    file, marker = planted
    spec = f"{file}:Planted"
    ckpt = _checkpoint(tmp_path / "ckpt", spec)
    with pytest.raises(UntrustedCodeError) as err:
        load_agent(ckpt)
    _refused(err.value, spec)
    with pytest.raises(UntrustedCodeError):
        read_checkpoint(ckpt)
    assert not marker.exists()
    agent = load_agent(ckpt, trust_remote_code=True)
    assert type(agent).__name__ == "Planted" and marker.exists()


def test_a_checkpoint_naming_a_module_outside_the_package_is_refused(
    planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, marker = planted
    monkeypatch.syspath_prepend(str(file.parent))  # `planted` is importable by module name
    ckpt = _checkpoint(tmp_path / "ckpt", "planted:Planted")
    with pytest.raises(UntrustedCodeError) as err:
        load_agent(ckpt)
    _refused(err.value, "planted:Planted")
    assert not marker.exists()


def test_a_registered_agent_class_needs_no_opt_in(
    planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, marker = planted
    monkeypatch.setitem(agents_base._AGENTS, "planted", agents_base._SpecFactory(f"{file}:Planted"))
    relative = Path("..") / file.parent.name / file.name  # another spelling of the same file
    monkeypatch.chdir(tmp_path / ".." / file.parent.name)
    ckpt = _checkpoint(tmp_path / "ckpt", f"{relative}:Planted")
    assert type(load_agent(ckpt)).__name__ == "Planted"  # the user registered it in code


def test_a_saved_training_config_naming_a_teacher_class_is_refused_on_resume(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, marker = planted
    spec = f"{file}:PlantedTeacher"
    out = tmp_path / "run"
    CompactAgent(
        train={
            "env_id": "VisualToolVQA-HBar-v0",
            "teacher": spec,
            "questions": 1,
            "group_size": 2,
            "policy": {"width": 8, "hidden": 16, "view_size": 32},
        }
    ).save(out)
    with pytest.raises(UntrustedCodeError) as err:
        CompactAgent.load_checkpoint(out)
    _refused(err.value, spec)
    assert train_main(["--agent", "iapo", "--resume", "--out", str(out), "--no-progress"]) == 2
    _refused(capsys.readouterr().err, spec)
    assert not marker.exists()
    assert CompactAgent.load_checkpoint(out, trust_remote_code=True).train_config.teacher == spec


def test_env_ids_with_a_module_part_and_nested_classes_are_checked() -> None:
    with pytest.raises(UntrustedCodeError, match="planted:Env-v0"):
        check_config({"agent_class": AGENT_CLASS, "env_id": "planted:Env-v0"}, "config.json")
    with pytest.raises(UntrustedCodeError, match="x.py:T"):
        check_config({"agent_class": AGENT_CLASS, "train": {"teacher": "x.py:T"}}, "config.json")
    check_config({"agent_class": AGENT_CLASS, "train": {"teacher": "model:runs/t", "env_id": "VisualToolVQA-v0"}}, "c")
    assert is_package_spec("iapo_gym.agents.ppo:PPOAgent")
    for spec in ("iapo_gym_evil:X", "iapo_gym/../x.py:X", "iapo_gym..x:X", "os:system", "iapo_gym.x:a b"):
        assert not is_package_spec(spec)
        with pytest.raises(UntrustedCodeError):
            check_trusted(spec, where="here")


def test_iapo_bench_refuses_a_planted_checkpoint_and_runs_it_with_the_opt_in(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, marker = planted
    spec = f"{file}:Planted"
    ckpt = _checkpoint(tmp_path / "ckpt", spec)
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    args = ["run", "--agents", str(ckpt), "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo-bench: error:")
    _refused(err, spec)
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert cli.main([*args, "--trust-remote-code"]) == 0, capsys.readouterr().err
    assert marker.exists()


# -- suite files, training configs, submissions ---------------------------------------------------------------
def test_a_suite_file_naming_a_teacher_class_loads_only_with_the_opt_in(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, marker = planted
    spec = f"{file}:PlantedTeacher"
    suite = tmp_path / "taught.yaml"
    suite.write_text(TINY_SUITE + f"teacher: {json.dumps(spec)}\n")
    with pytest.raises(SuiteError) as err:
        load_suite(suite)
    _refused(err.value, spec)
    args = ["run", "--agents", "no-tool", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]
    assert cli.main(args) == 2
    _refused(capsys.readouterr().err, spec)
    with pytest.raises(SuiteError):
        run_benchmark(["no-tool"], str(suite), out=tmp_path / "api", progress=False)
    assert not marker.exists()
    assert load_suite(suite, trust_remote_code=True).teacher == spec
    out = run_benchmark(["no-tool"], str(suite), out=tmp_path / "api", progress=False, render=False, trust_remote_code=True)
    assert (out / "results.sqlite").is_file() and marker.exists()  # the wrapper built the planted teacher


def test_a_training_config_naming_a_teacher_class_is_refused(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, marker = planted
    spec = f"{file}:PlantedTeacher"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"teacher: {json.dumps(spec)}\nupdates: 0\n")
    assert train_main(["--agent", "iapo", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    _refused(capsys.readouterr().err, spec)
    assert not marker.exists()


def test_reporting_results_and_submissions_that_name_a_file_class_imports_nothing(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, marker = planted
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    assert cli.main(["run", "--agents", f"{file}:Planted", "--suite", str(suite), "--out", str(out), "--quiet"]) == 0
    assert marker.exists()  # named on the command line: the user's own class runs
    marker.unlink()
    assert cli.main(["report", str(out), "--to", str(tmp_path / "board")]) == 0
    submission = tmp_path / "board" / "submissions" / "planted.py_Planted"
    assert (submission / "metadata.yaml").is_file() and str(file) not in (submission / "metadata.yaml").read_text()
    assert not marker.exists()
