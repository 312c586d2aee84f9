"""The compact agent: a :class:`~iapo_gym.agents.compact.CompactPolicy` behind the agent protocol, trained
by the group trainer (``iapo`` or ``grpo`` reward), saved as safetensors + JSON."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from iapo_gym.attribution import Attribution, layout_for_observation

from .checkpoint import read_checkpoint, write_checkpoint
from .compact import CompactConfig, CompactPolicy, observations_to_batch
from .trainer import GroupTrainer, TrainConfig, write_curves

AGENT_CLASS = "iapo_gym.agents.compact_agent:CompactAgent"


class CompactAgent:
    """Acts with a compact policy (sampling, or greedy for evaluation); ``learn`` runs the group trainer."""

    def __init__(
        self,
        policy: CompactPolicy | None = None,
        greedy: bool = True,
        seed: int = 0,
        train: TrainConfig | dict[str, Any] | None = None,
    ) -> None:
        self.train_config = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(dict(train or {}))
        if policy is None:
            with torch.random.fork_rng():  # the initial weights depend on the run's seed only
                torch.manual_seed(self.train_config.seed)
                policy = CompactPolicy(CompactConfig(**self.train_config.policy))
        self.policy = policy
        self.greedy = greedy
        self.generator = torch.Generator().manual_seed(seed)
        self.trainer: GroupTrainer | None = None
        self._resume: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None  # trainer state from a checkpoint

    @property
    def name(self) -> str:
        return self.train_config.reward

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        return self.act_batch([observation])[0]

    def act_batch(self, observations: list[dict[str, Any]]) -> list[str]:
        return self.policy.act(observations, self.generator, greedy=self.greedy)

    def attribute(self, observation: dict[str, Any], info: dict[str, Any], action: str) -> Attribution:
        """This policy's attribution of ``action`` at ``observation`` (its IAPO objective's attribution
        method), in the layout of that observation on the objective's grid — the layout in which
        :class:`~iapo_gym.wrappers.TeacherAttributionWrapper` gives the teacher's attribution of the same
        decision. The one call the trainer's alignment, the leaderboard and the episode pictures share."""
        obj, cfg = self.train_config.objective, self.policy.config
        layout = layout_for_observation(observation, obj.grid, cfg.question_length, cfg.output_length)
        scene = info["scene"]
        batch = observations_to_batch([observation], cfg)
        actions = torch.from_numpy(self.policy.encode(action, observation)).unsqueeze(0)
        scores = self.policy.attribution(
            batch,
            actions,
            [(scene.height, scene.width)],
            layout.grid,
            obj.method,
            n_steps=obj.steps,
            pixel_baseline=obj.pixel_baseline,
        )[0]
        return Attribution.from_scores(layout, scores.detach().numpy(), allow_uniform=True)

    def alignment(self, observation: dict[str, Any], info: dict[str, Any], action: str) -> float:
        """The IAPO objective's divergence between ``info["teacher_attribution"]`` — the teacher's attribution
        of ``action``, as the teacher wrapper returns it from the step that took it — and :meth:`attribute`
        of ``action`` at ``observation`` (the observation it was chosen on). The very number the trainer
        computes for that decision (lower is closer)."""
        teacher = info["teacher_attribution"]
        mine = self.attribute(observation, info, action)
        if mine.layout != teacher.layout:
            raise ValueError(
                f"the teacher's attribution has layout {teacher.layout.sizes}, this agent's {mine.layout.sizes}; "
                f"wrap the env with TeacherAttributionWrapper(grid={mine.layout.grid}, query_length="
                f"{mine.layout.query_length}, output_length={mine.layout.output_length})"
            )
        return float(self.train_config.objective.compare(teacher, mine, teacher.layout))

    # -- training ------------------------------------------------------------------------------------
    def learn(
        self, out: str | os.PathLike[str] | None = None, progress: bool = True, checkpoint_every: int = 0, **overrides: Any
    ) -> list[dict[str, float]]:
        """Train with this agent's :class:`TrainConfig` (``overrides`` replace fields); with ``out``, write
        learning curves there and a checkpoint every ``checkpoint_every`` updates and at the end."""
        if overrides:
            self.train_config = TrainConfig.from_dict({**asdict(self.train_config), **overrides})
        if self._resume is not None:
            self.trainer = self._restore_trainer(*self._resume)
            self._resume = None
        if self.trainer is None or self.trainer.config != self.train_config:
            self.trainer = GroupTrainer(self.train_config, self.policy)

        def on_update(trainer: GroupTrainer, row: dict[str, float]) -> None:
            if out is not None and checkpoint_every and trainer.update % checkpoint_every == 0:
                self.save(out)

        history = self.trainer.train(on_update, progress=progress)
        if out is not None:
            self.save(out)
            write_curves(history, out, title=f"{self.train_config.reward} on {self.train_config.env_id}")
        return history

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Checkpoint folder: weights, optimizer and RNG state (safetensors), configs and history (JSON)."""
        tensors = {f"policy.{k}": v for k, v in self.policy.state_dict().items()}
        config: dict[str, Any] = {
            "agent_class": AGENT_CLASS,
            "policy": self.policy.config_dict(),
            "train": asdict(self.train_config),
            "greedy": self.greedy,
        }
        t = self.trainer
        if t is None and self._resume is not None:  # loaded but not trained since: keep the saved state
            config.update({k: v for k, v in self._resume[0].items() if k not in config})
            tensors.update({k: v for k, v in self._resume[1].items() if not k.startswith("policy.")})
        if t is not None:
            opt = t.optimizer.state_dict()
            for idx, state in opt["state"].items():
                for key, value in state.items():
                    tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
            tensors["rng.sampler"] = t.sampler.get_state()
            config.update(
                {
                    "update": t.update,
                    "env_steps": t.env_steps,
                    "history": t.history,
                    "optim_groups": opt["param_groups"],
                    "numpy_rng": t.rng.bit_generator.state,
                }
            )
        return write_checkpoint(path, config, tensors)

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> CompactAgent:
        """The agent saved at ``path``, its trainer restored when the checkpoint holds one (to resume).

        A saved training config that names a teacher class or env module outside ``iapo_gym`` is refused
        unless ``trust_remote_code=True`` (resuming would import it)."""
        config, tensors = read_checkpoint(path, trust_remote_code=trust_remote_code)
        try:
            policy = CompactPolicy(CompactConfig(**config["policy"]))
            state = {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
            policy.load_state_dict(state)
            agent = cls(policy, greedy=bool(config.get("greedy", True)), train=config.get("train"))
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"checkpoint {path} does not match the compact policy: {exc}") from None
        if "update" in config:  # restored when training resumes (building envs is not needed to act)
            agent._resume = (config, tensors)
        return agent

    def _restore_trainer(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> GroupTrainer:
        t = GroupTrainer(self.train_config, self.policy)
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        t.optimizer.load_state_dict({"state": opt_state, "param_groups": config["optim_groups"]})
        t.sampler.set_state(tensors["rng.sampler"])
        t.rng.bit_generator.state = config["numpy_rng"]
        t.update, t.env_steps, t.history = int(config["update"]), int(config["env_steps"]), list(config["history"])
        return t

    @property
    def resumable(self) -> bool:
        """True when this agent holds training state (a trainer, or one saved in the loaded checkpoint)."""
        return self.trainer is not None or self._resume is not None

    def load(self, path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> CompactAgent:
        """Replace this agent's policy (and trainer state) with the checkpoint's."""
        loaded = self.load_checkpoint(path, trust_remote_code=trust_remote_code)
        self.policy, self.train_config, self.trainer = loaded.policy, loaded.train_config, loaded.trainer
        self._resume = loaded._resume
        return self


def make_iapo_agent(**kwargs: Any) -> CompactAgent:
    return CompactAgent(train={"reward": "iapo", **kwargs.pop("train", {})}, **kwargs)


def make_grpo_agent(**kwargs: Any) -> CompactAgent:
    return CompactAgent(train={"reward": "grpo", **kwargs.pop("train", {})}, **kwargs)


__all__ = ["AGENT_CLASS", "CompactAgent", "make_grpo_agent", "make_iapo_agent"]
