"""A checkpoint save killed at any point of the folder swap leaves the old or the new checkpoint loadable."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from iapo_gym.agents.checkpoint import read_checkpoint, write_checkpoint

from iapo_gym import io
from iapo_gym.io import atomic_write_dir, recover_dir, swap_siblings


class Killed(BaseException):
    """Stands for SIGKILL: raised by a patched file-system call, caught by nothing in the code under test."""


def _kill_at(monkeypatch: pytest.MonkeyPatch, k: int) -> list[str]:
    """Make the ``k``-th file-system operation of interest (rename, fsync, rmtree; counted from 0) raise
    :class:`Killed` instead of running; returns the log of the operations that ran."""
    log: list[str] = []

    def wrap(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def patched(*args: object, **kwargs: object) -> object:
            if len(log) == k:
                raise Killed(name)
            log.append(name)
            return fn(*args, **kwargs)

        return patched

    monkeypatch.setattr(io.os, "rename", wrap("rename", os.rename))
    monkeypatch.setattr(io.os, "replace", wrap("replace", os.replace))
    monkeypatch.setattr(io.os, "fsync", wrap("fsync", os.fsync))
    monkeypatch.setattr(io.shutil, "rmtree", wrap("rmtree", shutil.rmtree))
    return log


def _save(path: Path, version: int) -> Path:
    return write_checkpoint(
        path, {"agent_class": "iapo_gym.agents.simple:RandomAgent", "version": version}, {"w": torch.full((4,), float(version))}
    )


def _count_operations(tmp_path: Path) -> int:
    path = _save(tmp_path / "probe", 1)
    with pytest.MonkeyPatch.context() as mp:
        log = _kill_at(mp, 10**9)
        _save(path, 2)
    return len(log)


def test_a_save_killed_at_each_step_of_the_swap_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    steps = _count_operations(tmp_path)
    assert steps >= 6  # fsyncs of the files and folders, the renames, the removal of the old folder
    for k in range(steps + 1):
        path = tmp_path / f"k{k}" / "ckpt"
        _save(path, 1)
        with pytest.MonkeyPatch.context() as mp:
            _kill_at(mp, k)
            try:
                _save(path, 2)
                killed = False
            except Killed:
                killed = True
        assert killed == (k < steps)
        config, tensors = read_checkpoint(path)  # recovers a half-done swap
        assert config["version"] in (1, 2), k
        assert torch.equal(tensors["w"], torch.full((4,), float(config["version"])))
        if not killed:
            assert config["version"] == 2
        _save(path, 3)  # and the next save works from whatever the kill left
        assert read_checkpoint(path)[0]["version"] == 3
        # no swap sibling is left; a killed write's private temporary may be (as any kill of a writer leaves)
        assert {p.name for p in path.parent.iterdir() if not p.name.endswith(".tmp")} == {"ckpt"}, k


def test_recovery_prefers_the_whole_new_folder_then_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "d"
    new, old = swap_siblings(path)
    # a kill after "move the old folder aside": no folder at the path, both siblings whole
    atomic_write_dir(old, lambda p: (p / "f").write_text("old"))
    atomic_write_dir(new, lambda p: (p / "f").write_text("new"))
    assert recover_dir(path) == path and (path / "f").read_text() == "new" and not new.exists()
    # only the old one (say the new one was never renamed to its fixed name): it is moved back
    shutil.rmtree(path)
    assert recover_dir(path) == path and (path / "f").read_text() == "old" and not old.exists()
    assert recover_dir(tmp_path / "never") == tmp_path / "never"  # nothing to recover: nothing changes


def test_a_failing_fill_leaves_the_old_folder_and_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_dir(tmp_path / "d", lambda p: (p / "f").write_text("old"))

    def broken(p: Path) -> None:
        (p / "f").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_dir(path, broken)
    assert (path / "f").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["d"]
