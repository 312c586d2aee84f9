"""The benchmark error, in a module of its own so the runner, the leaderboard and the CLI share it without
importing each other."""

from __future__ import annotations


class BenchmarkError(ValueError):
    """Bad benchmark input (agent, backend, output folder) or a failed cell; the message says what to do."""


__all__ = ["BenchmarkError"]
