"""Checks of user-given settings, with messages that name the setting and what would be right.

:func:`check_int` is the one integer check of the package (constructors, configs, suite files, command-line
options all use it), so every such message reads the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def int_range(minimum: int, maximum: int | None = None, *, numeric: bool = False) -> str:
    """How an integer range reads in a message: ``"a positive integer"``, ``"an integer >= 16"``, ...

    ``numeric=True`` always spells the bounds (``"an integer >= 1"``), as suite files want.
    """
    if maximum is not None:
        return f"an integer between {minimum} and {maximum}"
    if not numeric and minimum in (0, 1):
        return "a non-negative integer" if minimum == 0 else "a positive integer"
    return f"an integer >= {minimum}"


def check_int(
    name: str,
    value: Any,
    minimum: int = 1,
    maximum: int | None = None,
    *,
    hint: str = "",
    numeric: bool = False,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an ``int`` if it is an integer (a numpy integer too, never a bool) in
    ``[minimum, maximum]``; else raise ``error`` naming ``name``, the range and ``hint`` (what it counts:
    ``" (tool calls per episode)"``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        raise error(f"{name} must be {int_range(minimum, maximum, numeric=numeric)}{hint}; got {value!r}")
    return int(value)


def check_ints(owner: Any, names: tuple[str, ...], minimum: int) -> None:
    """Raise ``ValueError`` unless each attribute ``names`` of ``owner`` is an integer >= ``minimum``
    (the message names ``Owner.attribute``); a numpy integer is stored back as a plain ``int`` (JSON-safe)."""
    for name in names:
        object.__setattr__(owner, name, check_int(f"{type(owner).__name__}.{name}", getattr(owner, name), minimum))


__all__ = ["check_int", "check_ints", "int_range"]
