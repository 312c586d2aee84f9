"""Moved: the model teacher is :mod:`iapo_gym.agents.model_teacher` (it needs the compact policy, which lives
in the agents layer). This name forwards there for one release, with a DeprecationWarning; the core does
not import the agents layer, it resolves the registered entry-point string when a name is asked for.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..specs import load_class

MOVED_TO = "iapo_gym.agents.model_teacher"
_NAMES = ("ModelTeacher", "load_model_teacher", "native_view", "train_model_teacher")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"iapo_gym.teachers.model.{name} moved to {MOVED_TO}.{name}; import it from there "
                  "(the old path goes in the next release)", DeprecationWarning, stacklevel=2)
    return load_class(f"{MOVED_TO}:{name}")


__all__ = list(_NAMES)
