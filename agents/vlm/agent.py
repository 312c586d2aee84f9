"""``VLMAgent``: a Qwen2.5-VL / Qwen3-VL model from a local folder, acting in the ``VisualToolVQA`` envs by
writing tool calls as text (``vlm:PATH`` wherever an agent goes: ``make_agent``, ``iapo-bench run --agents``).

Each decision's chat is rendered by the model family's own chat template with the tools (the same as in TRL
training): the system message (instructions; the tool definitions from the tool registry), the glance
image and the question, then for every earlier call the agent's own message and a tool message with what
came back (the crop as an image, the text, or the env's error message). The raw
generation is the action: the env parses it, and a malformed one comes back as an error in ``tool_output``
that the agent sees in its next turn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from iapo_gym.attribution import Attribution
from iapo_gym.tools import BUILTIN_TOOLS

from ..base import VLM_AGENT
from .attribution import VLMAttributionConfig, attribute_decision
from .model import AGENT_CONFIG, VLM
from .prompt import DEFAULT_SYSTEM, Dialogue, DialogueTracker

AGENT_CLASS = VLM_AGENT  # what a saved folder names as its agent


def split_observations(observations: Any) -> list[dict[str, Any]]:
    """A list of per-env observation dicts from a list, or from a vector env's batched dict."""
    if isinstance(observations, Mapping):
        n = len(observations["question"])
        return [{k: v[i] for k, v in observations.items()} for i in range(n)]
    return [dict(o) for o in observations]


def split_infos(infos: Any, n: int) -> list[dict[str, Any]]:
    if infos is None:
        return [{} for _ in range(n)]
    if isinstance(infos, Mapping):  # a vector env's info dict of arrays (with "_key" masks)
        out: list[dict[str, Any]] = [{} for _ in range(n)]
        for k, v in infos.items():
            if k.startswith("_"):
                continue
            mask = infos.get("_" + k)
            parts = split_infos(v, n) if isinstance(v, Mapping) else v
            for i in range(n):
                if mask is None or bool(mask[i]):
                    out[i][k] = parts[i]
        return out
    return [dict(i or {}) for i in infos]


class VLMAgent:
    """A transformers vision-language model as an agent (``act``/``act_batch``/``reset``/``learn``/``save``/``load``).

    Args:
        model: a local checkpoint folder (Qwen2.5-VL / Qwen3-VL; loaded with ``local_files_only``), or a loaded
            :class:`~iapo_gym.agents.vlm.model.VLM`.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when available).
        dtype: ``"auto"`` (bf16 on GPU, fp32 on CPU), ``"bfloat16"``, ``"float16"``, ``"float32"``.
        lora: ``None`` / ``False``, ``True`` (r=16 on the language model's projections) or ``peft.LoraConfig``
            arguments.
        tools: the tools offered in the system prompt (names in the tool registry; the env's ``tools=``).
        system: the instruction text of the system prompt.
        max_new_tokens: generation length cap per decision.
        do_sample, temperature, top_p: sampling (default greedy: evaluation is deterministic).
        attribution: default :class:`~iapo_gym.agents.vlm.attribution.VLMAttributionConfig` (or dict) for
            :meth:`attribute`.
        trust_remote_code, attn_implementation, min_pixels, max_pixels, chat_template: passed to the loader
            (:class:`~iapo_gym.agents.vlm.model.VLM`).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | VLM,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = "auto",
        lora: bool | Mapping[str, Any] | None = None,
        tools: Sequence[str] = BUILTIN_TOOLS,
        system: str = DEFAULT_SYSTEM,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        attribution: VLMAttributionConfig | Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = "sdpa",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        chat_template: str | os.PathLike[str] | None = None,
    ) -> None:
        self._load_kw: dict[str, Any] = {
            "device": device,
            "dtype": dtype,
            "trust_remote_code": trust_remote_code,
            "attn_implementation": attn_implementation,
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "chat_template": chat_template,
        }
        self.vlm = model if isinstance(model, VLM) else VLM(model, lora=lora, **self._load_kw)
        self.tools = tuple(tools)
        self.system = system
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample, self.temperature, self.top_p = bool(do_sample), float(temperature), float(top_p)
        self.attribution = VLMAttributionConfig.of(attribution)
        self._trackers: list[DialogueTracker] = []

    # -- acting ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the episode(s) in progress."""
        for t in self._trackers:
            t.reset()

    def _tracker(self, i: int) -> DialogueTracker:
        while len(self._trackers) <= i:
            self._trackers.append(DialogueTracker(self.tools, self.system))
        return self._trackers[i]

    def dialogue(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None, index: int = 0) -> Dialogue:
        """The chat the next decision is conditioned on (updates the episode's history with ``observation``)."""
        return self._tracker(index).observe(observation, info)

    def generate(self, dialogues: Sequence[Dialogue], **kw: Any) -> list[tuple[str, list[int]]]:
        """Batched generation for ready dialogues: ``(text, token_ids)`` each (keyword arguments override the
        agent's sampling settings)."""
        args: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        args.update(kw)
        return self.vlm.generate(dialogues, **args)

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        """The next action (the model's raw text) for one env."""
        return self.act_batch([observation], [info or {}])[0]

    def act_batch(self, observations: Any, infos: Any = None) -> list[str]:
        """Actions for several envs at once (one batched ``generate``): a list of observation dicts, or a
        vector env's batched observation dict; env ``i`` keeps its own history."""
        obs = split_observations(observations)
        infs = split_infos(infos, len(obs))
        dialogues = [self.dialogue(o, i, index=k) for k, (o, i) in enumerate(zip(obs, infs))]
        texts = [t for t, _ in self.generate(dialogues)]
        for k, text in enumerate(texts):
            self._tracker(k).record(text)
        return texts

    # -- attribution -------------------------------------------------------------------------------------------
    def attribute(
        self,
        observation: Mapping[str, Any] | Dialogue,
        info: Mapping[str, Any] | None = None,
        action: str | None = None,
        *,
        action_ids: Sequence[int] | None = None,
        **config: Any,
    ) -> Attribution:
        """The attribution of ``action`` (its log-probability) over this decision's input.

        ``observation`` may be a :class:`Dialogue` (e.g. from :meth:`dialogue`) or an observation: then the
        agent's current episode history for env 0 is used if it matches, else a one-step context is built.
        Keyword arguments override fields of the agent's attribution config.
        """
        from .prompt import dialogue_from_observation

        if isinstance(observation, Dialogue):
            dialogue = observation
        else:
            tracker = self._tracker(0)
            d = tracker.dialogue
            if d is not None and d.question == str(observation["question"]) and tracker._pending is not None:
                dialogue = d
            else:
                dialogue = dialogue_from_observation(observation, info, tools=self.tools, system=self.system)
        cfg = VLMAttributionConfig(**{**self.attribution.to_dict(), **config})
        return attribute_decision(self.vlm, dialogue, action, action_ids=action_ids, config=cfg)

    # -- learning and persistence ---------------------------------------------------------------------------------
    def learn(self, out: str | os.PathLike[str], env_id: str = "VisualToolVQA-v0", **config: Any) -> VLMAgent:
        """Train with TRL (:func:`~iapo_gym.agents.vlm.train.train_vlm`) from this agent's model folder, write
        the result to ``out`` and load it; ``config`` holds :class:`~iapo_gym.agents.vlm.train.VLMTrainConfig`
        fields (``teacher``, ``reward``, ``max_steps``...)."""
        from .train import VLMTrainConfig, train_vlm

        train_vlm(VLMTrainConfig(model=self.vlm.base_path, out=str(out), env_id=env_id, **config))
        return self.load(out)

    def config(self) -> dict[str, Any]:
        return {
            "agent_class": AGENT_CLASS,
            "tools": list(self.tools),
            "system": self.system,
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "attribution": self.attribution.to_dict(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save with ``save_pretrained`` (safetensors): the weights (or the LoRA adapter), the processor and
        the agent's settings (``iapo_vlm.json``); written atomically."""
        # config.json also names the agent class, so iapo_gym.agents.checkpoint.load_agent(path) finds it
        self.vlm.core.config.agent_class = AGENT_CLASS
        return self.vlm.save(path, extra=self.config())

    def load(self, path: str | os.PathLike[str]) -> VLMAgent:
        """Replace the model with the one saved at ``path`` (same device/dtype); returns ``self``."""
        self.vlm = VLM(path, **self._load_kw)
        self.reset()
        return self

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], **kwargs: Any) -> VLMAgent:
        """An agent from a folder written by :meth:`save` (its settings restored; ``kwargs`` override)."""
        meta_path = Path(path) / AGENT_CONFIG
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        keys = ("tools", "system", "max_new_tokens", "do_sample", "temperature", "top_p", "attribution")
        args = {k: meta[k] for k in keys if k in meta}
        args.update(kwargs)
        return cls(path, **args)
