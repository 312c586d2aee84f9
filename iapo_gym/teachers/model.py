"""Moved: the model teacher is :mod:`iapo_gym.agents.model_teacher` (it needs the compact policy, which lives
in the agents layer). This name forwards there for one release, with a DeprecationWarning; the core does
not import the agents layer, it resolves the entry-point string when a name is asked for.
"""

from __future__ import annotations

from ..specs import moved

__all__ = ["ModelTeacher", "load_model_teacher", "native_view", "train_model_teacher"]
__getattr__ = moved(__name__, "iapo_gym.agents.model_teacher", __all__)
