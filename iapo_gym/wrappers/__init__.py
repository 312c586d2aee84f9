"""Wrappers: structured (MultiDiscrete) actions and token-id observations for array-based RL libraries."""

from .structured import (
    COMPONENTS,
    DEFAULT_SIZES,
    FOCUS_LABELS,
    ActionCodec,
    StructuredActionWrapper,
)
from .teacher import TeacherAttributionWrapper
from .tokens import TokenObservationWrapper, make_sb3_env

__all__ = [
    "ActionCodec",
    "COMPONENTS",
    "DEFAULT_SIZES",
    "FOCUS_LABELS",
    "StructuredActionWrapper",
    "TeacherAttributionWrapper",
    "TokenObservationWrapper",
    "make_sb3_env",
]
