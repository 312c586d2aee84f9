"""Checks of user-given settings, with messages that name the setting and what would be right."""

from __future__ import annotations

from typing import Any


def check_ints(owner: Any, names: tuple[str, ...], minimum: int) -> None:
    """Raise ``ValueError`` unless each attribute ``names`` of ``owner`` is an int >= ``minimum``."""
    kind = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")
    for name in names:
        v = getattr(owner, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{type(owner).__name__}.{name} must be a {kind} int; got {v!r}")
