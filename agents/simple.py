"""Training-free baseline agents: ``random`` (random valid tool calls) and ``no-tool`` (answers at once)."""

from __future__ import annotations

from typing import Any

import numpy as np

from iapo_gym.toolcall import ToolCall
from iapo_gym.vocab import ANSWER_VOCAB


class RandomAgent:
    """Random zoom/ocr calls on random boxes, answering a random vocabulary word with probability 1/4."""

    name = "random"

    def __init__(self, seed: int = 0, answer_prob: float = 0.25) -> None:
        self.rng = np.random.default_rng(seed)
        self.answer_prob = answer_prob

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        if self.rng.random() < self.answer_prob or int(observation["budget"]) <= 1:
            return ToolCall("answer", {"text": str(self.rng.choice(ANSWER_VOCAB))}).to_json()
        x0, y0 = (float(v) for v in self.rng.uniform(0, 0.8, 2))
        size = float(self.rng.uniform(0.05, 0.2))
        tool = "zoom" if self.rng.random() < 0.5 else "ocr"
        return ToolCall(tool, {"box": [x0, y0, min(1.0, x0 + size), min(1.0, y0 + size)]}).to_json()


class NoToolAgent:
    """Answers immediately with a fixed guess, using no tools: the floor a tool user must beat."""

    name = "no-tool"

    def __init__(self, guess: str = "true") -> None:
        self.guess = guess

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        return ToolCall("answer", {"text": self.guess}).to_json()
