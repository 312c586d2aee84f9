"""What every training run's config shares: :class:`TrainConfigBase`, the base of the compact track's
:class:`~iapo_gym.agents.trainer.TrainConfig` and the VLM track's :class:`~iapo_gym.agents.vlm.train.VLMTrainConfig`.

The shared fields (the env, the reward, the teacher, the IAPO objective, the learning rate, the seed) and their
checks live here once; each track adds its own fields and checks in its subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import gymnasium as gym

from iapo_gym.objective import IAPOObjective

REWARDS = ("grpo", "iapo")
"""``"grpo"``: outcome + format terms only (the paper's baseline); ``"iapo"``: + the objective's alignment term."""

_C = TypeVar("_C", bound="TrainConfigBase")


@dataclass(kw_only=True)
class TrainConfigBase:
    """The fields and checks every training config has (keyword-only, so subclasses add required fields).

    Args:
        env_id, env_kwargs: the env the rollouts run in (a registered id).
        reward: ``"grpo"`` or ``"iapo"`` (:data:`REWARDS`).
        teacher: the teacher spec of ``reward="iapo"`` (each track has its default).
        preset, iapo: the objective, a :data:`~iapo_gym.objective.PRESETS` name and field overrides
            (``{"lam": 0.3, "form": "credit"}``); ignored for ``reward="grpo"``.
        lr: learning rate (> 0).
        seed: seeds the run.
    """

    env_id: str = "VisualToolVQA-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    reward: str = "iapo"
    teacher: str | None = None
    preset: str = "default"
    iapo: dict[str, Any] = field(default_factory=dict)
    lr: float = 3e-4
    seed: int = 0

    options_name: ClassVar[str] = "training"
    """How :meth:`from_dict`'s error names this config's options."""

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}; got {self.reward!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if self.env_id not in gym.registry:
            raise ValueError(
                f"unknown env id {self.env_id!r}; registered VisualToolVQA ids: "
                + ", ".join(i for i in gym.registry if "VQA" in i)
            )
        if not isinstance(self.iapo, dict):
            raise ValueError(f"iapo must be a mapping of IAPOObjective fields; got {self.iapo!r}")
        known = {f.name for f in fields(IAPOObjective)}
        unknown = sorted(set(self.iapo) - known)
        if unknown:
            raise ValueError(f"unknown IAPO option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        self.objective  # noqa: B018 -- validates the preset and its overrides

    @property
    def objective(self) -> IAPOObjective:
        """The IAPO objective this run optimises (its preset with the ``iapo`` overrides)."""
        return IAPOObjective.preset(self.preset, **self.iapo)

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """The config from a mapping (a saved config, a YAML file); an unknown key is a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.options_name} option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))
