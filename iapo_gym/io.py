"""Atomic file writes: nothing a user produced is ever half-written."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary user file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entry to disk (folders: so a rename in them survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root`` itself)."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def swap_siblings(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(new, old)``: the fixed sibling names :func:`atomic_write_dir` uses while it swaps ``path``.

    ``new`` exists only once it is complete (it is renamed there whole); ``old`` is the previous folder,
    moved aside just before ``new`` moves in.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.new"), path.with_name(f".{path.name}.old")


def recover_dir(path: str | os.PathLike[str]) -> Path:
    """Finish or undo a folder swap that :func:`atomic_write_dir` did not complete (the process was killed).

    When ``path`` is missing but its complete ``.new`` sibling exists (the kill came after the old folder
    was moved aside), the new folder is moved in; failing that, the ``.old`` one is moved back. Returns the
    folder to read: ``path``, or the sibling itself when renaming is impossible (a read-only file system).
    """
    path = Path(path)
    if path.exists():
        return path
    for sibling in swap_siblings(path):  # the new folder first: the write had finished
        if sibling.is_dir():
            try:
                os.rename(sibling, path)
                _fsync_path(path.parent)
            except OSError:
                return sibling
            return path
    return path


def atomic_write_dir(path: str | os.PathLike[str], fill: Callable[[Path], None]) -> Path:
    """Create the folder ``path`` whole or not at all, and never leave its path without a complete folder.

    ``fill(tmp)`` writes into a private temporary sibling, which is fsynced and renamed to ``.NAME.new``
    (so that name only ever holds a complete folder). Then an existing folder is renamed to ``.NAME.old``,
    the new one renamed to ``path``, and the old one removed, with the parent folder fsynced after each
    rename. A kill at any point leaves ``path`` holding the old or the new folder, or, between the two
    renames, missing with both siblings complete: :func:`recover_dir` (which every reader calls) moves the
    new one in.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)  # an earlier swap killed half-way: finish it before touching its siblings
    new, old = swap_siblings(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
        fill(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _discard(new)  # a stale one; path is whole here, so nothing needs it
        os.rename(tmp, new)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(path.parent)
    if path.exists():
        _discard(old)
        os.rename(path, old)
        _fsync_path(path.parent)
    os.rename(new, path)
    _fsync_path(path.parent)
    _discard(old)
    for trash in path.parent.glob(f".{glob.escape(path.name)}.*.trash"):  # left by a kill inside a removal
        shutil.rmtree(trash, ignore_errors=True)
    return path


def _discard(folder: Path) -> None:
    """Remove ``folder`` if it exists, renaming it away first, so its name never holds a half-deleted folder."""
    if not folder.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", suffix=".trash", dir=folder.parent))  # .NAME.old.XXX.trash
    os.rename(folder, trash / "x")
    shutil.rmtree(trash, ignore_errors=True)
