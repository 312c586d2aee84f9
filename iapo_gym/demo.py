"""Moved: the ``iapo-demo`` job is :mod:`iapo_gym.benchmarks.demo` (it trains agents and runs benchmarks,
the two top layers). This name forwards there for one release, with a DeprecationWarning; the core does not
import those layers, it resolves the entry-point string when a name is asked for.
"""

from __future__ import annotations

import warnings
from typing import Any

from .specs import load_class

MOVED_TO = "iapo_gym.benchmarks.demo"
_NAMES = ("SCALES", "main", "run_demo")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"iapo_gym.demo.{name} moved to {MOVED_TO}.{name}; import it from there "
                  "(the old path goes in the next release)", DeprecationWarning, stacklevel=2)
    return load_class(f"{MOVED_TO}:{name}")


__all__ = list(_NAMES)
