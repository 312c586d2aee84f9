"""``VisualToolVQA-v0``: every episode draws its question from a mixture of task families."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from iapo_gym.scene import Scene

from .base import ToolVQAEnv
from .families import FAMILY_ENVS


class VisualToolVQAEnv(ToolVQAEnv):
    """The mixture of task families (all eight by default; ``task=`` picks one or several).

    ## Description
    Each reset draws a family uniformly from ``task`` (from the scene id's generator, so a scene id always
    gives the same item), then a scene of that family. Everything else is :class:`ToolVQAEnv`.
    """

    family = "mixture"

    def __init__(self, task: str | Sequence[str] | None = None, **kwargs: Any) -> None:
        names = list(FAMILY_ENVS) if task is None else [task] if isinstance(task, str) else list(task)
        unknown = [n for n in names if n not in FAMILY_ENVS]
        if unknown or not names:
            raise ValueError(f"unknown task {unknown[0] if unknown else task!r}; known: {', '.join(FAMILY_ENVS)}")
        self.tasks = tuple(names)
        super().__init__(**kwargs)

    def drawn_families(self) -> dict[str, type[ToolVQAEnv]]:
        return {t: FAMILY_ENVS[t] for t in self.tasks}

    def scene_key(self, scene_id: int) -> Hashable | None:
        return (type(self), self.tasks, self.difficulty, self.split, int(scene_id))

    def draw_scene(self, scene_id: int) -> Scene:
        rng = np.random.default_rng(scene_id)
        family = FAMILY_ENVS[self.tasks[int(rng.integers(len(self.tasks)))]]
        return family.generate(rng, self.difficulty, self.scene_style(scene_id))
