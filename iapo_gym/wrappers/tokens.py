"""Token-id observations, and :func:`make_sb3_env`: an env that array-based RL libraries train on unchanged.

stable-baselines3 (and most array-based RL code) cannot store or encode ``Text`` spaces.
:class:`TokenObservationWrapper` turns every ``Text`` key of the observation (``question``,
``tool_output``) into a fixed-length int64 array of hashed word ids (:func:`iapo_gym.text.encode`);
images, ``view_box`` and ``budget`` pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..text import OUTPUT_LENGTH, QUERY_LENGTH, VOCAB_SIZE, encode
from ..validation import check_int
from .structured import StructuredActionWrapper


class TokenObservationWrapper(gym.ObservationWrapper[dict[str, Any], Any, dict[str, Any]], gym.utils.RecordConstructorArgs):
    """Replace the ``Text`` observation keys with ``Box(0, vocab_size - 1, (L,), int64)`` token ids.

    ``question`` gets ``question_length`` ids and ``tool_output`` (and any other ``Text`` key)
    ``output_length``; id 0 is padding, words past the length are cut.
    """

    def __init__(
        self,
        env: gym.Env[dict[str, Any], Any],
        question_length: int = QUERY_LENGTH,
        output_length: int = OUTPUT_LENGTH,
        vocab_size: int = VOCAB_SIZE,
    ) -> None:
        # recorded so that env.spec (and check_env, which rebuilds the env from it) can recreate the stack
        gym.utils.RecordConstructorArgs.__init__(
            self, question_length=question_length, output_length=output_length, vocab_size=vocab_size
        )
        gym.ObservationWrapper.__init__(self, env)
        self.question_length = check_int("question_length", question_length)
        self.output_length = check_int("output_length", output_length)
        # token ids live in [1, vocab_size) with 0 for padding, so at least 2 ids are needed
        self.vocab_size = check_int("vocab_size", vocab_size, 2)
        space = env.observation_space
        if not isinstance(space, spaces.Dict):
            raise ValueError(f"env: TokenObservationWrapper needs a Dict observation space; got {type(space).__name__}")
        self.lengths: dict[str, int] = {
            key: self.question_length if key == "question" else self.output_length
            for key, sub in space.spaces.items()
            if isinstance(sub, spaces.Text)
        }
        self.observation_space = spaces.Dict(
            {
                key: spaces.Box(0, self.vocab_size - 1, (self.lengths[key],), np.int64) if key in self.lengths else sub
                for key, sub in space.spaces.items()
            }
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        out = dict(observation)
        for key, length in self.lengths.items():
            out[key] = encode(str(observation[key]), length, self.vocab_size)
        return out


def make_sb3_env(
    env_id: str,
    *,
    action_kwargs: dict[str, Any] | None = None,
    token_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env[dict[str, Any], np.ndarray]:
    """``gym.make(env_id, **env_kwargs)`` with :class:`StructuredActionWrapper` (``action_kwargs``) and
    :class:`TokenObservationWrapper` (``token_kwargs``) on top: ready for ``PPO("MultiInputPolicy", env)``.

    Example: ``make_sb3_env("VisualToolVQA-HBar-v0", view_size=64)``.
    """
    env = gym.make(env_id, **env_kwargs)
    env = StructuredActionWrapper(env, **(action_kwargs or {}))
    return TokenObservationWrapper(env, **(token_kwargs or {}))
