"""``iapo-train --agent vlm``: GRPO or IAPO for a local VLM on TRL's ``GRPOTrainer`` (one process, or several
under ``accelerate launch``).

    iapo-train --agent vlm --model PATH [--teacher vlm:PATH] --reward grpo|iapo --max-steps N --out DIR

The run writes ``DIR`` as a VLM folder that ``vlm:DIR`` loads (weights or the LoRA adapter, the processor
with its tool-capable chat template, ``iapo_vlm.json``), plus ``curves.csv`` / ``curves.png`` (accuracy,
every reward term, attribution alignment, tool calls per tool: :func:`iapo_gym.agents.trainer.write_curves`)
and ``train_config.json``.

What the home-made VLM trainer did and TRL does too: group rollouts of whole multi-turn episodes with tool
results as images, the clipped surrogate, KL to a reference (``beta``), LoRA, multi-GPU. What it did and
this track does not: the per-decision ``credit`` form (TRL has one advantage per completion; see
:data:`~iapo_gym.agents.vlm.trl.TRL_FORMS`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from iapo_gym.io import atomic_write_text
from iapo_gym.validation import check_ints

from ..train_config import TrainConfigBase


@dataclass(kw_only=True)
class VLMTrainConfig(TrainConfigBase):
    """Everything a VLM training run depends on (saved as ``train_config.json``); the shared fields (env,
    reward, teacher, objective, ``lr``, ``seed``) and their checks are :class:`TrainConfigBase`'s.

    Args:
        model: the student's local folder. teacher: ``"vlm:PATH"`` (needed for ``reward="iapo"``).
        out: the output folder (the trained model; ``vlm:OUT`` loads it).
        reward: ``"grpo"`` (outcome + format) or ``"iapo"`` (+ the objective's alignment term).
        preset, iapo: the objective (:data:`~iapo_gym.objective.PRESETS` name and field overrides):
            ``"default"`` is the loss form, ``"paper"`` the reward form.
        env_id, env_kwargs: the env (default view 448 px, as the VLM track's; ``budget`` caps tool calls).
        max_steps: optimiser steps. num_generations: rollouts per question (G).
        batch_size: rollouts per device per step (a multiple of G / world size, as TRL requires).
        dataset_size: training scenes drawn (seeded). lr: learning rate. beta: KL to the reference.
        max_completion_length: tokens of a whole episode after the prompt, *tool-response image tokens
            included* (too small a value makes TRL roll back tool results after the tool ran).
        temperature: sampling temperature of the rollouts.
        lora: ``False``, ``True`` (r=16) or ``peft.LoraConfig`` fields.
        gradient_checkpointing: for large models.
        chat_template: a tool-capable Jinja template for a family iapo-gym ships none for.
        attribution: comparison-layout settings (``query_length``, ``output_length``...).
        seed: seeds the dataset and TRL.
    """

    options_name: ClassVar[str] = "VLM training"

    model: str
    out: str
    lr: float = 1e-5
    max_steps: int = 10
    num_generations: int = 4
    batch_size: int = 4
    dataset_size: int = 64
    beta: float = 0.0
    max_completion_length: int = 1024
    temperature: float = 1.0
    lora: bool | dict[str, Any] = False
    gradient_checkpointing: bool = False
    chat_template: str | None = None
    attribution: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, ("max_steps", "num_generations", "batch_size", "dataset_size", "max_completion_length"), 1)
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (advantages are relative within a group); got {self.num_generations}")
        if self.reward == "iapo" and not (isinstance(self.teacher, str) and self.teacher.startswith("vlm:")):
            raise ValueError(
                f"reward='iapo' needs a VLM teacher: teacher='vlm:PATH'; got {self.teacher!r} "
                "(use reward='grpo' to train on the outcome only)"
            )
        if self.reward == "iapo" and self.objective.form not in ("reward", "loss"):
            raise ValueError(
                f"the TRL track runs the IAPO forms 'reward' (preset paper) and 'loss' (preset default); "
                f"got form={self.objective.form!r}: per-decision credit needs one advantage per decision, "
                "TRL has one per completion (use the compact trainer for it)"
            )


def _history_row(logs: Mapping[str, float], step: int, episodes: int, env_steps: int) -> dict[str, float]:
    """One learning-curve row from TRL's logged metrics (the names ``write_curves`` plots)."""
    row: dict[str, float] = {"update": float(step), "episodes": float(episodes), "env_steps": float(env_steps)}
    names = {
        "rewards/outcome_reward/mean": "accuracy",
        "rewards/outcome_reward/mean_": "reward_outcome",
        "rewards/format_reward/mean": "reward_format",
        "rewards/iapo/mean": "reward_iapo",
        "reward": "reward",
        "iapo/divergence": "alignment",
        "iapo/alignment_loss": "alignment_loss",
        "iapo/outside_mass": "outside_mass",
        "loss": "loss",
        "grad_norm": "grad_norm",  # the Trainer's, before clipping (the compact trainer's name too)
        "entropy": "entropy",
        "completions/mean_length": "completion_length",
    }
    for k, v in logs.items():
        if k in names:
            row[names[k]] = float(v)
        elif k.startswith("calls_"):
            row[k] = float(v)
    if "accuracy" in row:
        row["reward_outcome"] = row["accuracy"]
    return row


def train_vlm(config: VLMTrainConfig, progress: bool = True, before_train: Any = None) -> Path:
    """Run ``config`` on TRL; returns the output folder (``vlm:<it>`` loads the trained model).

    ``before_train(trainer)`` is called on the built trainer before training (tests script generations
    through it)."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_template

    from ..base import VLM_AGENT as AGENT_CLASS
    from .attribution import VLMAttributionConfig
    from .chat import RESPONSE_PARSERS
    from .model import VLM
    from .teacher import VLMTeacher
    from .trl import Alignment, IAPOGRPOTrainer, build_dataset, environment_class, make_rewards

    c = config
    obj = c.objective
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    student = VLM(c.model, device=device, dtype="auto", lora=c.lora or None, chat_template=c.chat_template)
    tok = student.tokenizer
    if getattr(tok, "response_template", None) is None:  # parse tool calls with the family's parser
        parser = RESPONSE_PARSERS.get(student.family)
        if parser != "qwen3":
            raise ValueError(
                f"{c.model}: no tool-call response parser known for the {student.family!r} family; set "
                "tokenizer.response_template (transformers response parsing) in the model folder"
            )
        tok.response_template = qwen3_template
    env_kwargs = {"view_size": 448, **c.env_kwargs}
    alignment = None
    if c.reward == "iapo":
        attr = VLMAttributionConfig(**c.attribution)
        teacher = VLMTeacher(str(c.teacher)[len("vlm:") :], device=device, attribution=attr)
        alignment = Alignment(obj, teacher, attr)
    rewards = make_rewards(c.reward, alignment)
    dataset = build_dataset(c.env_id, c.dataset_size, "train", env_kwargs, seed=c.seed, system=student_system())
    env_cls = environment_class(c.env_id, env_kwargs)
    history: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="iapo-trl-") as tmp:
        args = GRPOConfig(
            output_dir=tmp,
            max_steps=c.max_steps,
            per_device_train_batch_size=c.batch_size,
            num_generations=c.num_generations,
            learning_rate=c.lr,
            beta=c.beta,
            temperature=c.temperature,
            max_completion_length=c.max_completion_length,
            reward_weights=rewards.weights,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=not cuda,
            bf16=cuda,
            seed=c.seed,
            gradient_checkpointing=c.gradient_checkpointing,
            disable_tqdm=not progress,
            max_tool_calling_iterations=int(env_kwargs.get("budget", 6)),
        )
        kwargs: dict[str, Any] = {
            "model": student.model,
            "processing_class": student.processor,
            "reward_funcs": rewards.funcs,
            "args": args,
            "train_dataset": dataset,
            "environment_factory": env_cls,
        }
        world = int(os.environ.get("WORLD_SIZE", "1"))
        episodes_per_step = c.batch_size * world

        class Curves(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, float] | None = None, **_: Any) -> None:
                if not logs or "loss" not in logs:
                    return
                calls = sum(v for k, v in logs.items() if k.startswith("calls_"))
                prev = history[-1]["env_steps"] if history else 0.0
                history.append(
                    _history_row(
                        logs,
                        state.global_step,
                        state.global_step * episodes_per_step,
                        int(prev + episodes_per_step * (1.0 + calls)),
                    )
                )

        trainer: GRPOTrainer
        if alignment is not None and obj.form == "loss":
            trainer = IAPOGRPOTrainer(**kwargs, alignment=alignment, callbacks=[Curves()])
        else:
            trainer = GRPOTrainer(**kwargs, callbacks=[Curves()])
            if alignment is not None:  # the reward form attributes the policy being trained
                alignment.student = VLM.wrap(
                    trainer.accelerator.unwrap_model(trainer.model),
                    student.processor,
                    source=c.model,
                    base_path=student.base_path,
                )
        if before_train is not None:
            before_train(trainer)
        trainer.train()
        trainer.accelerator.wait_for_everyone()
        out = Path(c.out)
        if trainer.accelerator.is_main_process:
            trained = VLM.wrap(
                trainer.accelerator.unwrap_model(trainer.model), student.processor, source=c.model, base_path=student.base_path
            )
            trained.lora_config = student.lora_config
            trained.core.config.agent_class = AGENT_CLASS
            trained.save(
                out,
                extra={
                    "agent_class": AGENT_CLASS,
                    "trained_with": c.reward,
                    "objective": obj.to_dict() if c.reward == "iapo" else None,
                },
            )
            if history:
                from ..trainer import write_curves

                write_curves(history, out, title=f"VLM {c.reward} ({Path(c.model).name})")
            meta = {**asdict(c), "world_size": trainer.accelerator.num_processes}
            atomic_write_text(out / "train_config.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
        trainer.accelerator.wait_for_everyone()
    return Path(c.out)


def student_system() -> str:
    """The system instructions of training prompts (the agent's default, so benchmarks see the same chat)."""
    from .prompt import DEFAULT_SYSTEM

    return DEFAULT_SYSTEM
