"""Teachers: where the attribution of a good decision lies (oracle, trained model, VLM)."""

from .base import Teacher, check_teacher_spec, make_teacher, register_teacher
from .oracle import OracleTeacher


def _vlm_teacher(path: str) -> Teacher:
    from .vlm import teacher_class  # the agents layer's VLM teacher, by string entry point ('vlm' extra)

    if not path:
        raise ValueError("the vlm teacher needs a local model folder: 'vlm:PATH'")
    return teacher_class()(path)


register_teacher("oracle", lambda arg: OracleTeacher(), overwrite=True)
register_teacher("model", "iapo_gym.agents.model_teacher:load_model_teacher", overwrite=True)  # needs the agents layer
register_teacher("vlm", _vlm_teacher, overwrite=True)

__all__ = ["OracleTeacher", "Teacher", "check_teacher_spec", "make_teacher", "register_teacher"]
