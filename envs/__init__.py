"""Environments: the base env, the procedural task families, the mixture and the dataset env."""

from .base import SPLITS, ToolVQAEnv
from .families import FAMILY_ENVS
from .mixture import VisualToolVQAEnv

__all__ = ["FAMILY_ENVS", "SPLITS", "ToolVQAEnv", "VisualToolVQAEnv"]
