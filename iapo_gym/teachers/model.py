"""The ``model`` teacher: a stronger compact network trained before the student (behaviour cloning of the
oracle, with privileged input: a wider network that sees the image at a higher view resolution), whose
attribution comes from its own gradients."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution, ComponentLayout
from ..scene import Scene
from ..tools.base import ToolContext


def native_view(observation: dict[str, Any], scene: Scene, view_size: int) -> dict[str, Any]:
    """The observation as a model with view size ``view_size`` sees it: the glance and the crop re-drawn
    from the full-resolution scene at that size (not the student's views resized), the texts as they are.

    A ``focus`` edit of the working image is not in ``info``; the teacher then sees the unedited image.
    """
    if observation["image"].shape[0] == view_size:
        return observation
    ctx = ToolContext(scene, scene.image, view_size, None)
    box = tuple(float(v) for v in observation["view_box"])
    crop = ctx.view(box) if box[2] > box[0] and box[3] > box[1] else np.zeros((view_size, view_size, 3), np.uint8)
    return {**observation, "image": ctx.view((0.0, 0.0, 1.0, 1.0)), "crop": crop}


class ModelTeacher:
    """Attribution of a trained compact policy's decision, in the student's layout, computed on the
    teacher's own native input (:func:`native_view`: a privileged, higher-resolution view).

    Teacher-forced: with the student's ``action`` it explains that action's log-probability under the
    teacher; without one, its own greedy action.
    """

    def __init__(self, policy: Any, method: str = "gradient_x_input", n_steps: int = 8) -> None:
        self.policy = policy.eval()
        self.method, self.n_steps = method, n_steps

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> ModelTeacher:
        from iapo_gym.agents.compact_agent import CompactAgent

        return cls(CompactAgent.load_checkpoint(path).policy, **kwargs)

    def attribute(
        self, observation: dict[str, Any], info: dict[str, Any], layout: ComponentLayout, action: str | None = None
    ) -> Attribution:
        from iapo_gym.agents.compact import observations_to_batch

        pol = self.policy
        if (layout.query_length, layout.output_length) != (pol.config.question_length, pol.config.output_length):
            raise ValueError(
                f"layout token slots ({layout.query_length}, {layout.output_length}) differ from the teacher model's "
                f"({pol.config.question_length}, {pol.config.output_length}); train the teacher with the student's lengths"
            )
        batch = observations_to_batch([native_view(observation, info["scene"], pol.config.view_size)], pol.config)
        if action is not None:
            actions = torch.from_numpy(pol.codec.encode(action)).unsqueeze(0)
        else:
            actions = pol.sample(batch, greedy=True)
        scene = info["scene"]
        kw = {"n_steps": self.n_steps} if self.method == "integrated_gradients" else {}
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
) -> Any:
    """Train the teacher network by behaviour cloning of the oracle and save it as a compact-agent checkpoint.

    Returns the trained :class:`~iapo_gym.agents.compact_agent.CompactAgent`.
    """
    from iapo_gym.agents.compact import CompactConfig, CompactPolicy
    from iapo_gym.agents.compact_agent import CompactAgent
    from iapo_gym.agents.imitation import behaviour_cloning, oracle_dataset

    torch.manual_seed(seed)
    policy = CompactPolicy(CompactConfig(width=width, view_size=view_size, hidden=256))
    data = oracle_dataset(policy, env_id, episodes, env_kwargs, seed=seed)
    behaviour_cloning(policy, data, epochs=epochs, seed=seed)
    agent = CompactAgent(policy, train={"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "policy": policy.config_dict(), "seed": seed})
    agent.save(out)
    return agent
