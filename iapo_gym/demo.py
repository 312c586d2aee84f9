"""Moved: the ``iapo-demo`` job is :mod:`iapo_gym.benchmarks.demo` (it trains agents and runs benchmarks,
the two top layers). This name forwards there for one release, with a DeprecationWarning; the core does not
import those layers, it resolves the entry-point string when a name is asked for.
"""

from __future__ import annotations

from .specs import moved

__all__ = ["SCALES", "main", "run_demo"]
__getattr__ = moved(__name__, "iapo_gym.benchmarks.demo", __all__)
