"""The ``model`` teacher: a stronger compact network trained before the student (behaviour cloning of the
oracle, with privileged input: a wider network that sees the image at a higher view resolution), whose
attribution comes from its own gradients.

It needs the compact policy, so it lives in the agents layer; the core teacher registry finds it by the
entry point ``"iapo_gym.agents.model_teacher:load_model_teacher"`` when a spec says ``"model:PATH"``.
(Until 0.1 it was ``iapo_gym.teachers.model``, which still forwards here for one release.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from iapo_gym.attribution import Attribution, ComponentLayout
from iapo_gym.scene import Scene, as_box
from iapo_gym.tools.base import ToolContext

from .compact import CompactConfig, CompactPolicy, observations_to_batch
from .compact_agent import CompactAgent
from .imitation import imitate_oracle


def native_view(observation: dict[str, Any], scene: Scene, view_size: int) -> dict[str, Any]:
    """The observation as a model with view size ``view_size`` sees it: the glance and the crop re-drawn
    from the full-resolution scene at that size (not the student's views resized), the texts as they are.

    A ``focus`` edit of the working image is not in ``info``; the teacher then sees the unedited image.
    """
    if observation["image"].shape[0] == view_size:
        return observation
    ctx = ToolContext(scene, scene.image, view_size, None)
    box = as_box(observation["view_box"])
    crop = ctx.view(box) if box[2] > box[0] and box[3] > box[1] else np.zeros((view_size, view_size, 3), np.uint8)
    return {**observation, "image": ctx.view((0.0, 0.0, 1.0, 1.0)), "crop": crop}


class ModelTeacher:
    """Attribution of a trained compact policy's decision, in the student's layout, computed on the
    teacher's own native input (:func:`native_view`: a privileged, higher-resolution view).

    Teacher-forced: with the student's ``action`` it explains that action's log-probability under the
    teacher; without one, its own greedy action.
    """

    def __init__(self, policy: CompactPolicy, method: str = "gradient_x_input", n_steps: int = 8) -> None:
        self.policy = policy.eval()
        self.method, self.n_steps = method, n_steps

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> ModelTeacher:
        """The teacher whose policy is the compact-agent checkpoint at ``path``."""
        return cls(CompactAgent.load_checkpoint(path).policy, **kwargs)

    def attribute(
        self, observation: dict[str, Any], info: dict[str, Any], layout: ComponentLayout, action: str | None = None
    ) -> Attribution:
        pol = self.policy
        if (layout.query_length, layout.output_length) != (pol.config.question_length, pol.config.output_length):
            raise ValueError(
                f"layout token slots ({layout.query_length}, {layout.output_length}) differ from the teacher model's "
                f"({pol.config.question_length}, {pol.config.output_length}); train the teacher with the student's lengths"
            )
        batch = observations_to_batch([native_view(observation, info["scene"], pol.config.view_size)], pol.config)
        if action is not None:
            actions = torch.from_numpy(pol.encode(action, observation)).unsqueeze(0)
        else:
            actions = pol.sample(batch, greedy=True)
        scene = info["scene"]
        kw: dict[str, Any] = {"n_steps": self.n_steps} if self.method == "integrated_gradients" else {}
        with torch.enable_grad():
            scores = pol.attribution(batch, actions, [(scene.height, scene.width)], layout.grid, self.method, **kw)[0]
        return Attribution.from_scores(layout, scores.detach().numpy(), allow_uniform=True)


def train_model_teacher(
    env_id: str,
    out: str | os.PathLike[str],
    episodes: int = 1000,
    epochs: int = 10,
    width: int = 48,
    view_size: int = 256,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> CompactAgent:
    """Train the teacher network by behaviour cloning of the oracle and save it as a compact-agent checkpoint.

    Returns the trained :class:`~iapo_gym.agents.compact_agent.CompactAgent`; ``model:OUT`` then names the teacher.
    """
    torch.manual_seed(seed)
    policy = CompactPolicy(CompactConfig(width=width, view_size=view_size, hidden=256))
    imitate_oracle(policy, env_id, episodes, env_kwargs, epochs=epochs, data_seed=seed, seed=seed)
    agent = CompactAgent(
        policy, train={"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "policy": policy.config_dict(), "seed": seed}
    )
    agent.save(out)
    return agent


def load_model_teacher(path: str) -> ModelTeacher:
    """The ``model:PATH`` teacher spec's factory (the entry point the core teacher registry names)."""
    if not path:
        raise ValueError(
            "the model teacher needs a checkpoint: 'model:PATH' (train one with `iapo-train --agent teacher --out PATH`)"
        )
    return ModelTeacher.load(path)


__all__ = ["ModelTeacher", "load_model_teacher", "native_view", "train_model_teacher"]
