"""The ``vlm`` teacher (``make_teacher("vlm:PATH")``): a transformers VLM from a local folder, teacher-forced
on the student's chat and action.

It is implemented with the VLM agent's code, in :mod:`iapo_gym.agents.vlm.teacher`; the core finds it by
the string entry point :data:`ENTRY_POINT` (the core never imports the agents layer), so
``from iapo_gym.teachers.vlm import VLMTeacher`` keeps working.
"""

from __future__ import annotations

import importlib
from typing import Any

ENTRY_POINT = "iapo_gym.agents.vlm.teacher:VLMTeacher"


def teacher_class() -> type:
    """The VLM teacher class (needs the ``vlm`` extra)."""
    module, _, name = ENTRY_POINT.partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    if name == "VLMTeacher":
        return teacher_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
