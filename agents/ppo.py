"""``ppo``: stable-baselines3 PPO on the structured-action + token-observation wrappers, behind the agent
protocol. Weights are saved as safetensors (no SB3 zip, so loading never unpickles anything)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import read_checkpoint, write_checkpoint

AGENT_CLASS = "iapo_gym.agents.ppo:PPOAgent"


class PPOAgent:
    """PPO (``MultiInputPolicy``) trained on ``env_id`` through :func:`iapo_gym.wrappers.make_sb3_env`."""

    name = "ppo"

    def __init__(
        self,
        env_id: str = "VisualToolVQA-HBar-v0",
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        n_steps: int = 256,
        batch_size: int = 64,
        deterministic: bool = True,
    ) -> None:
        from stable_baselines3 import PPO

        from iapo_gym.wrappers import make_sb3_env

        self.env_id, self.env_kwargs, self.seed = env_id, dict(env_kwargs or {}), seed
        self.hparams: dict[str, Any] = {"n_steps": n_steps, "batch_size": batch_size}
        self.env = make_sb3_env(env_id, **self.env_kwargs)
        self.model = PPO("MultiInputPolicy", self.env, seed=seed, verbose=0, device="cpu", **self.hparams)
        self.deterministic = deterministic
        self._codec, self._tokens = self._find_wrappers()

    def _find_wrappers(self) -> tuple[Any, Any]:
        from iapo_gym.wrappers import StructuredActionWrapper, TokenObservationWrapper

        codec = tokens = None
        env: Any = self.env
        while env is not None:
            if isinstance(env, StructuredActionWrapper):
                codec = env.codec
            if isinstance(env, TokenObservationWrapper):
                tokens = env
            env = getattr(env, "env", None)
        assert codec is not None and tokens is not None
        return codec, tokens

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        obs = self._tokens.observation(observation)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return self._codec.decode(np.asarray(action, dtype=np.int64)).to_json()

    def learn(self, total_timesteps: int = 2048, progress: bool = False) -> PPOAgent:
        if total_timesteps < 1:
            raise ValueError(f"total_timesteps must be positive; got {total_timesteps}")
        self.model.learn(total_timesteps=total_timesteps, progress_bar=progress)
        return self

    def save(self, path: str | os.PathLike[str]) -> Path:
        config = {
            "agent_class": AGENT_CLASS,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            **self.hparams,
        }
        return write_checkpoint(path, config, dict(self.model.policy.state_dict()))

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> PPOAgent:
        """The agent saved at ``path`` (an env id with a module part is refused unless ``trust_remote_code``)."""
        config, tensors = read_checkpoint(path, trust_remote_code=trust_remote_code)
        agent = cls(
            config["env_id"],
            config.get("env_kwargs"),
            config.get("seed", 0),
            config.get("n_steps", 256),
            config.get("batch_size", 64),
        )
        try:
            agent.model.policy.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()})
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {path} does not match this PPO policy: {exc}") from None
        return agent

    def load(self, path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> PPOAgent:
        self.model = self.load_checkpoint(path, trust_remote_code=trust_remote_code).model
        return self
