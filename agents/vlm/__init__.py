"""The ``vlm`` track: Qwen2.5-VL / Qwen3-VL agents (transformers) that write tool calls as text, their input
attribution, IAPO/GRPO training on TRL, and tiny offline test models.

Needs the ``vlm`` extra (``transformers``, ``tokenizers``, ``peft``, ``trl``) and ``captum``.
Names are imported lazily, so ``import iapo_gym.agents.vlm`` itself is cheap.

- :class:`VLMAgent` (``agent``): ``act``/``act_batch``/``reset``/``attribute``/``learn``/``save``/``load``.
- :class:`VLM` (``model``): loading, encoding with block labels, batched generation, teacher-forced log-probs.
- :func:`attribute_decision`, :class:`VLMAttributionConfig` (``attribution``).
- :class:`VLMTrainConfig`, :func:`train_vlm` (``train``: TRL's GRPOTrainer); the TRL pieces in ``trl``.
- :class:`VLMTeacher` (``teacher``); the chat templates with tools (``chat``).
- :func:`build_tiny_vlm` (``tiny``; also ``python -m iapo_gym.agents.vlm.tiny --out DIR``).
- :class:`Dialogue`, :class:`Turn`, :class:`DialogueTracker` (``prompt``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VLMAgent": "agent",
    "VLM": "model",
    "Encoded": "model",
    "attribute_decision": "attribution",
    "VLMAttributionConfig": "attribution",
    "layout_of": "attribution",
    "patch_grid": "attribution",
    "VLMTrainConfig": "train",
    "train_vlm": "train",
    "VLMTeacher": "teacher",
    "build_tiny_vlm": "tiny",
    "Dialogue": "prompt",
    "Turn": "prompt",
    "DialogueTracker": "prompt",
    "tool_definitions": "prompt",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
