"""Checkpoints: a folder with ``config.json`` (which names the agent class) and ``model.safetensors``.

Written atomically (a temporary folder renamed into place); loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from iapo_gym.io import atomic_write_dir

from .base import Agent, load_class

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


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, tensors)`` of a checkpoint folder; a missing, truncated or corrupt one is a clear ValueError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{path} is not a checkpoint: it needs {CONFIG} and {WEIGHTS}")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"checkpoint {path}: {CONFIG} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "agent_class" not in config:
        raise ValueError(f"checkpoint {path}: {CONFIG} must be an object with 'agent_class'")
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: {WEIGHTS} is truncated or corrupt ({exc})") from None
    return config, tensors


def checkpoint_hash(path: str | os.PathLike[str]) -> str:
    """Short SHA-256 of a checkpoint's weights and config (identifies it on leaderboards)."""
    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def load_agent(path: str | os.PathLike[str]) -> Agent:
    """The agent saved in a checkpoint folder: ``config["agent_class"]`` is imported and its ``load(path)`` called."""
    if (Path(path) / "iapo_vlm.json").is_file() and not (Path(path) / WEIGHTS).is_file():
        from .vlm import (
            VLMAgent,  # a LoRA save holds only the adapter and the agent's settings
        )

        return VLMAgent.load_checkpoint(path)
    config, _ = read_checkpoint(path)
    cls = load_class(str(config["agent_class"]))
    loader = getattr(cls, "load_checkpoint", None)
    if loader is None:
        raise ValueError(f"checkpoint {path}: {config['agent_class']} has no load_checkpoint(path) classmethod")
    return loader(path)
