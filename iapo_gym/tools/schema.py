"""A fast validity check for the small JSON-schema subset that tool parameters use.

:func:`~iapo_gym.tools.base.check_args` runs on every env step; a ``jsonschema`` validator takes tens of
microseconds for a box of four numbers, a compiled plain-Python check about one. :func:`compile_check`
turns a schema into a function that answers exactly what ``Draft202012Validator(schema).is_valid`` would,
for schemas made only of the keywords below and instances made only of plain JSON values (``dict``,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None``). Anything else (another keyword, a bool schema,
a numpy scalar in the instance) is left to ``jsonschema``: the schema compiles to ``None``, or the check
returns ``None``. Error messages are always ``jsonschema``'s, built only when a call is invalid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
"""A compiled schema: ``True`` when the instance is valid; raises :class:`_Unknown` on a non-plain value."""

ANNOTATIONS = frozenset({"description", "default", "title", "examples", "$comment", "deprecated", "readOnly", "writeOnly"})
"""Keywords that never make an instance invalid."""
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
_TYPES: dict[str, frozenset[type]] = {  # jsonschema's draft 2020-12 type checker, on plain values
    "array": frozenset({list}),
    "boolean": frozenset({bool}),
    "integer": frozenset({int}),
    "null": frozenset({type(None)}),
    "number": frozenset({int, float}),
    "object": frozenset({dict}),
    "string": frozenset({str}),
}
"""Python types of each JSON type; ``integer`` also takes a float with an integral value."""
_KEYWORDS = frozenset({"type", "minimum", "maximum", "minItems", "maxItems", "enum", "items", "properties", "required"})


class _Unknown(Exception):
    """An instance value that is not plain JSON: the compiled check does not decide it."""


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _compile(schema: Any) -> Check | None:  # noqa: C901  (one test per keyword)
    """One function per schema node (a call per value checked: a box of 4 numbers is 5 calls)."""
    if type(schema) is not dict or any(k not in _KEYWORDS and k not in ANNOTATIONS for k in schema):
        return None
    names = schema.get("type")
    names = [names] if type(names) is str else names
    if names is not None and (type(names) is not list or not names or any(n not in _TYPES for n in names)):
        return None
    types = frozenset().union(*(_TYPES[n] for n in names)) if names is not None else None
    integral_floats = names is not None and "integer" in names
    lo, hi = schema.get("minimum"), schema.get("maximum")
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")
    enum, required = schema.get("enum"), schema.get("required")
    if any(v is not None and not _number(v) for v in (lo, hi)):
        return None
    if any(v is not None and type(v) is not int for v in (min_items, max_items)):
        return None
    if any(v is not None and (type(v) is not list or any(type(e) is not str for e in v)) for v in (enum, required)):
        return None  # enum: of strings only (jsonschema's equality of other values has its own rules)
    allowed = frozenset(enum) if enum is not None else None
    item = _compile(schema["items"]) if "items" in schema else None
    if "items" in schema and item is None:
        return None
    props_schema = schema.get("properties")
    if props_schema is not None and type(props_schema) is not dict:
        return None
    compiled = {n: _compile(sub) for n, sub in (props_schema or {}).items()}
    props = {n: c for n, c in compiled.items() if c is not None}
    if len(props) != len(compiled):
        return None

    def check(x: Any) -> bool:
        t = type(x)
        if t not in _PLAIN:
            raise _Unknown
        if types is not None and t not in types and not (integral_floats and t is float and x.is_integer()):
            return False
        if allowed is not None and (t is not str or x not in allowed):
            return False
        if t is int or t is float:
            return not ((lo is not None and x < lo) or (hi is not None and x > hi))
        if t is list:
            if (min_items is not None and len(x) < min_items) or (max_items is not None and len(x) > max_items):
                return False
            if item is not None:
                for v in x:
                    if not item(v):
                        return False
            return True
        if t is dict:
            if required is not None:
                for n in required:
                    if n not in x:
                        return False
            for n, c in props.items():
                if n in x and not c(x[n]):
                    return False
        return True

    return check


def compile_check(schema: Any) -> Callable[[Any], bool | None] | None:
    """``schema`` compiled to ``check(instance) -> bool | None``: whether the instance is valid (what
    ``Draft202012Validator(schema).is_valid`` says), or ``None`` when the instance holds a value that is not
    plain JSON. ``None`` for a schema using a keyword outside this module's subset."""
    check = _compile(schema)
    if check is None:
        return None

    def is_valid(instance: Any) -> bool | None:
        try:
            return check(instance)
        except _Unknown:
            return None

    return is_valid


__all__ = ["compile_check"]
