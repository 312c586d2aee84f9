"""The one table of environment ids: id -> entry point (string) + JSON-safe default kwargs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

FAMILIES: tuple[str, ...] = ("HBar", "VBar", "SciChart", "TableQA", "TableSynth", "TableFact", "FineDetail", "TextRead")
"""The procedural task families; the first six mirror the paper's six test sets."""
HEADLINE_FAMILIES: tuple[str, ...] = FAMILIES[:6]
MAX_EPISODE_STEPS = 32

ENV_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "VisualToolVQA-v0": ("iapo_gym.envs.mixture:VisualToolVQAEnv", {}),
    **{f"VisualToolVQA-{f}-v0": (f"iapo_gym.envs.families:{f}Env", {}) for f in FAMILIES},
    "DatasetVQA-v0": ("iapo_gym.envs.dataset:DatasetVQAEnv", {}),
    "RealVQA-v0": ("iapo_gym.envs.real:RealVQAEnv", {}),
}


def register_envs() -> None:
    """Register every id in :data:`ENV_TABLE` with Gymnasium (idempotent: ids already there are kept)."""
    for env_id, (entry_point, kwargs) in ENV_TABLE.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=dict(kwargs), max_episode_steps=MAX_EPISODE_STEPS)
