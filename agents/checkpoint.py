"""Checkpoints: a folder with ``config.json`` (which names the agent class) and ``model.safetensors``.

Written atomically (a temporary folder renamed into place; a save killed half-way is recovered on loading);
loading never unpickles anything, and imports no class that the config names unless it is inside
``iapo_gym``, a registered agent, or the caller opts in with ``trust_remote_code=True``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iapo_gym.io import atomic_write_dir, recover_dir
from iapo_gym.specs import check_env_id, check_trusted, load_class
from iapo_gym.teachers import check_teacher_spec

from .base import Agent, registered_specs

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def write_checkpoint(path: str | os.PathLike[str], config: dict[str, Any], tensors: dict[str, Any]) -> Path:
    """Write ``config`` (JSON-safe, with ``"agent_class": "module:Class"``) and ``tensors`` to the folder ``path``.

    The folder appears whole or not at all: files go to a temporary sibling first, which is then renamed.
    """
    from safetensors.torch import save_file

    if "agent_class" not in config:
        raise ValueError("checkpoint config needs 'agent_class' ('module:Class' of the agent that loads it)")

    def fill(tmp: Path) -> None:
        # clones: safetensors refuses tensors that share memory (e.g. SB3 policies alias their extractors)
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    return atomic_write_dir(path, fill)


def check_config(config: Mapping[str, Any], where: str, *, trust_remote_code: bool = False) -> None:
    """Refuse a saved config that names code to run (at any depth: ``agent_class``, a ``teacher`` spec, an
    ``env_id`` with a module part) outside ``iapo_gym`` and the registered agents, unless the caller opts in.
    Reads strings only: nothing is imported."""
    for key, value in config.items():
        here = f"{where} {key!r}"
        if isinstance(value, Mapping):
            check_config(value, where, trust_remote_code=trust_remote_code)
        elif key == "agent_class":
            check_trusted(
                str(value), where=here, what="agent class", trust_remote_code=trust_remote_code, allowed=registered_specs()
            )
        elif key == "teacher" and isinstance(value, str):
            check_teacher_spec(value, where=here, trust_remote_code=trust_remote_code)
        elif key == "env_id":
            check_env_id(value, where=here, trust_remote_code=trust_remote_code)


def read_config(path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> dict[str, Any]:
    """The checked ``config.json`` of a checkpoint folder (see :func:`check_config`); a missing or corrupt
    one is a clear ValueError. A save killed half-way is recovered first (:func:`~iapo_gym.io.recover_dir`)."""
    path = recover_dir(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{path} is not a checkpoint: it needs {CONFIG} and {WEIGHTS}")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"checkpoint {path}: {CONFIG} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "agent_class" not in config:
        raise ValueError(f"checkpoint {path}: {CONFIG} must be an object with 'agent_class'")
    check_config(config, f"checkpoint {path}: {CONFIG}", trust_remote_code=trust_remote_code)
    return config


def read_checkpoint(path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, tensors)`` of a checkpoint folder; a missing, truncated or corrupt one is a clear ValueError,
    and a config naming code outside ``iapo_gym`` is refused unless ``trust_remote_code`` (see :func:`check_config`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(path, trust_remote_code=trust_remote_code)
    path = recover_dir(path)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: {WEIGHTS} is truncated or corrupt ({exc})") from None
    return config, tensors


def checkpoint_hash(path: str | os.PathLike[str]) -> str:
    """Short SHA-256 of a checkpoint's weights and config (identifies it on leaderboards)."""
    path = recover_dir(path)
    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        with open(path / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def folder_hash(path: str | os.PathLike[str]) -> str:
    """Short SHA-256 of a model folder's ``config.json`` and every ``*.safetensors`` file in it (a Hugging
    Face folder may shard its weights): identifies a VLM on leaderboards."""
    path = Path(path)
    h = hashlib.sha256()
    for f in [path / CONFIG, *sorted(path.glob("*.safetensors"))]:
        if f.is_file():
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]


def load_agent(path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> Agent:
    """The agent saved in a checkpoint folder: ``config["agent_class"]`` is imported and its
    ``load_checkpoint(path)`` called.

    The config is checked before anything is imported: a class outside ``iapo_gym`` that is not a
    registered agent (a ``file.py:Class`` someone put in a downloaded checkpoint) is refused with a
    :class:`~iapo_gym.specs.UntrustedCodeError` unless ``trust_remote_code=True``.
    """
    path = recover_dir(path)
    if (path / "iapo_vlm.json").is_file() and not (path / WEIGHTS).is_file():
        from .vlm import (
            VLMAgent,  # a LoRA save holds only the adapter and the agent's settings
        )

        return VLMAgent.load_checkpoint(path)
    config = read_config(path, trust_remote_code=trust_remote_code)
    cls = load_class(str(config["agent_class"]))
    loader = getattr(cls, "load_checkpoint", None)
    if loader is None:
        raise ValueError(f"checkpoint {path}: {config['agent_class']} has no load_checkpoint(path) classmethod")
    try:
        takes_trust = "trust_remote_code" in inspect.signature(loader).parameters
    except (TypeError, ValueError):
        takes_trust = False
    return loader(path, trust_remote_code=trust_remote_code) if takes_trust else loader(path)
