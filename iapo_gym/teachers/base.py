"""The teacher protocol and the teacher registry.

A teacher says where the input attribution of a good decision lies: given the observation, the env's info
and a component layout, it returns an :class:`~iapo_gym.attribution.Attribution` in that layout, so the
student's attribution of its own decision can be compared with it component by component or per block.
Teachers are named by a JSON-safe spec: ``"oracle"`` (``"oracle:locators"``: looking at what finds the
evidence, see :class:`~iapo_gym.teachers.OracleTeacher`), ``"model:PATH"`` (a trained teacher checkpoint),
``"vlm:PATH"`` (a local VLM folder), or ``"module:Class"`` / ``"file.py:Class"`` (a user's own class:
imported by :func:`make_teacher` when the user gives it; a spec read from a file passes
:func:`check_teacher_spec` first).

The core registers only its own teacher (``oracle``). Teachers implemented in higher layers or in other
packages register themselves as entry points of the group :data:`ENTRY_POINT_GROUP` (``model`` and ``vlm``
are the agents layer's, declared in this package's ``setup.cfg``); they are listed from the installed
metadata, and imported only when a spec asks for one, so the core never names a module above it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from ..attribution import Attribution, ComponentLayout
from ..specs import check_trusted, load_class


@runtime_checkable
class Teacher(Protocol):
    """What every teacher provides."""

    def attribute(
        self, observation: dict[str, Any], info: dict[str, Any], layout: ComponentLayout, action: str | None = None
    ) -> Attribution:
        """The teacher's attribution for the decision taken at ``observation`` (``action``: the student's
        tool call, for teachers that are teacher-forced on it)."""
        ...


TeacherFactory = Callable[[str], Teacher]
_TEACHERS: dict[str, TeacherFactory | str] = {}
ENTRY_POINT_GROUP = "iapo_gym.teachers"
"""Installed packages name their teachers here: ``prefix = "module:factory"`` (a factory taking the spec's
argument, e.g. the path of ``vlm:PATH``)."""


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, str]:
    """Teachers that installed packages declare as entry points: prefix -> ``"module:factory"`` (not imported)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _known() -> dict[str, TeacherFactory | str]:
    """Every teacher prefix: the installed entry points, then the ones registered in code (which win)."""
    return {**_installed(), **_TEACHERS}


def register_teacher(prefix: str, factory: TeacherFactory | str, *, overwrite: bool = False) -> None:
    """Make specs ``"<prefix>"`` and ``"<prefix>:ARG"`` build a teacher with ``factory(ARG)``.

    ``factory`` is a callable or an entry-point string ``"module:function"`` (as Gymnasium registers env
    classes), imported only when a spec asks for it. Packages declare theirs as entry points instead (see the
    module docstring), which is how the agents layer's ``model`` and ``vlm`` teachers are found.
    """
    if prefix in _TEACHERS and not overwrite:
        raise ValueError(f"a teacher named {prefix!r} is registered already; pass overwrite=True to replace it")
    _TEACHERS[prefix] = factory


def _factory(prefix: str) -> TeacherFactory:
    """The registered factory of ``prefix``, its entry-point string resolved."""
    factory = _known()[prefix]
    return load_class(factory) if isinstance(factory, str) else factory


def make_teacher(spec: str | Teacher) -> Teacher:
    """A teacher from its spec (see the module docstring); a Teacher instance is returned as is."""
    if not isinstance(spec, str):
        if isinstance(spec, Teacher):
            return spec
        raise TypeError(f"teacher must be a spec string or have attribute(observation, info, layout); got {spec!r}")
    prefix, _, arg = spec.partition(":")
    if prefix in _known():
        return _factory(prefix)(arg)
    if arg:  # a user's own teacher class
        teacher = load_class(spec)()
        if not isinstance(teacher, Teacher):
            raise TypeError(f"teacher {spec!r} needs attribute(observation, info, layout, action=None)")
        return teacher
    raise ValueError(f"unknown teacher {spec!r}; known: {', '.join(_known())} (with ':PATH' where needed) or 'module:Class'")


def check_teacher_spec(spec: str, *, where: str, trust_remote_code: bool = False) -> None:
    """Refuse a teacher spec read from a file (``where``) that names a class outside ``iapo_gym`` unless the
    user opts in; registered teachers (``oracle``, ``model:PATH``, ``vlm:PATH``) pass. Imports nothing."""
    prefix, _, arg = spec.partition(":")
    if prefix not in _known() and arg:
        check_trusted(spec, where=where, what="teacher class", trust_remote_code=trust_remote_code)
