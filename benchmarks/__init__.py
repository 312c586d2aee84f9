"""Benchmarks: suites (YAML), the runner and results store behind ``iapo-bench``, the leaderboard, env speed.

``run_benchmark(agents, suite, seeds, out, backend="local", workers=1, episodes=None) -> Path`` and
``render_leaderboard(out)`` are the Python API; they are imported lazily, so ``python -m
iapo_gym.benchmarks.env_speed`` stays light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "run_benchmark": "runner",
    "BenchmarkError": "errors",
    "render_leaderboard": "leaderboard",
    "load_suite": "suites",
    "Suite": "suites",
    "SuiteError": "suites",
    "ResultsStore": "store",
    "StoreError": "store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
