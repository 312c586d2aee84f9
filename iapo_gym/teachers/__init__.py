"""Teachers: where the attribution of a good decision lies. The core has the protocol, the registry and the
oracle; the trained-model (``model:PATH``) and VLM (``vlm:PATH``) teachers live in the agents layer and
register themselves as entry points (see :mod:`iapo_gym.teachers.base`)."""

from .base import ENTRY_POINT_GROUP, Teacher, check_teacher_spec, make_teacher, register_teacher
from .oracle import OracleTeacher

register_teacher("oracle", lambda arg: OracleTeacher(look_at=arg or "evidence"), overwrite=True)

__all__ = ["ENTRY_POINT_GROUP", "OracleTeacher", "Teacher", "check_teacher_spec", "make_teacher", "register_teacher"]
