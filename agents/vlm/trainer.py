"""Group-relative training of the VLM agent: GRPO (outcome + format reward) and IAPO (outcome minus
``lam`` times the divergence between the teacher's and the student's attribution of each decision).

One :meth:`VLMTrainer.step`:

1. draws ``questions`` training questions (seeded scenes); for each, plays ``group_size`` rollouts with the
   sampling policy, batched over all rollouts: whole episodes (``rollout="episode"``, the default; every
   decision of a trajectory shares its return) or only the first decision (``rollout="first"``, its step
   reward);
2. scores every decision: ``grpo``: the trajectory's return (``outcome`` + ``format`` terms);
   ``iapo``: that minus ``lam * D(teacher || student)``, where the student attribution is the policy's own
   (:func:`~iapo_gym.agents.vlm.attribution.attribute_decision`) and the teacher's is computed on the same
   context and action; ``D`` is KL by default, over blocks by default;
3. normalises rewards within each question's group (:func:`~iapo_gym.agents.objectives.group_advantages`);
4. takes one optimiser step on the token-level clipped surrogate
   (:func:`~iapo_gym.agents.objectives.clipped_surrogate`) plus ``beta`` times the k3 KL to the frozen
   reference policy (:func:`~iapo_gym.agents.objectives.kl_to_reference`).

:func:`train_vlm` wraps it: loads the model, runs ``steps`` steps, writes the learning curves (CSV, PNG) and
the checkpoint into ``out``.
"""

from __future__ import annotations

import copy
import csv
import inspect
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from iapo_gym.attribution import Attribution
from iapo_gym.attribution import divergence as get_divergence

from ..objectives import clipped_surrogate, group_advantages, kl_to_reference
from .agent import VLMAgent
from .attribution import VLMAttributionConfig, attribute_decision
from .prompt import Dialogue, DialogueTracker

REWARDS = ("grpo", "iapo")
ROLLOUTS = ("episode", "first")


@dataclass
class Decision:
    """One sampled decision: its context, action, and what the env and the attributions said."""

    question: int
    trajectory: int
    dialogue: Dialogue
    observation: dict[str, Any]
    info: dict[str, Any]
    action: str
    action_ids: list[int]
    step_reward: float = 0.0
    tool: str | None = None
    error: str | None = None
    reward: float = 0.0
    divergence: float = float("nan")
    student: Attribution | None = None
    teacher: Attribution | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def block_vectors(teacher: Attribution, student: Attribution) -> tuple[np.ndarray, np.ndarray]:
    """Both attributions pooled to blocks over the union of their block names (a block one side lacks
    has zero mass there), so teachers with other layouts (e.g. no ``context`` block) still compare."""
    tb, sb = teacher.blocks(), student.blocks()
    names = list(dict.fromkeys([*sb, *tb]))
    return np.array([tb.get(n, 0.0) for n in names]), np.array([sb.get(n, 0.0) for n in names])


def attribution_divergence(teacher: Attribution, student: Attribution, name: str = "kl",
                           granularity: str = "blocks") -> float:
    """``D(teacher || student)`` at ``"blocks"`` (default) or ``"components"`` granularity."""
    fn = get_divergence(name)
    if granularity == "blocks":
        t, s = block_vectors(teacher, student)
        return float(fn(t, s))
    if granularity == "components":
        return float(fn(teacher, student))
    raise ValueError(f"granularity must be 'blocks' or 'components'; got {granularity!r}")


def make_teacher(spec: Any, attribution: VLMAttributionConfig, device: str | None, dtype: Any) -> Any:
    """``None``, ``"vlm:PATH"`` (a :class:`~iapo_gym.teachers.vlm.VLMTeacher` on the student's device, with
    the student's attribution settings), another spec of :func:`iapo_gym.teachers.make_teacher`
    (``"oracle"``, ``"model:PATH"``, ``"module:Class"``), or a teacher object
    (``attribute(observation, info, layout, action)``)."""
    if spec is None or not isinstance(spec, str):
        if spec is not None and not callable(getattr(spec, "attribute", None)):
            raise TypeError(f"teacher {spec!r} needs a method attribute(observation, info, layout, action) -> Attribution")
        return spec
    if spec.startswith("vlm:"):
        from iapo_gym.teachers.vlm import VLMTeacher

        path = spec[len("vlm:"):]
        if not path:
            raise ValueError("teacher 'vlm:PATH' needs the local folder of the teacher model after 'vlm:'")
        return VLMTeacher(path, device=device, dtype=dtype, attribution=attribution)
    from iapo_gym.teachers import make_teacher as make_shared_teacher

    return make_shared_teacher(spec)


class VLMTrainer:
    """GRPO / IAPO for :class:`~iapo_gym.agents.vlm.agent.VLMAgent` (see the module doc).

    Args:
        agent: the agent to train (in place), or a model folder (then ``agent_kwargs`` build it).
        env_id: a registered env id (``VisualToolVQA-v0``, ``VisualToolVQA-HBar-v0``...).
        env_kwargs: keyword arguments of ``gym.make`` (default ``view_size=448``, ``split="train"``).
        teacher: ``None``, ``"vlm:PATH"``, ``"oracle"`` (or another :func:`iapo_gym.teachers.make_teacher`
            spec) or a teacher object; it is called as ``attribute(observation, info, layout, action)`` with
            the student's layout (and ``dialogue=`` when it takes one).
        reward: ``"iapo"`` (needs a teacher) or ``"grpo"``.
        group_size: rollouts per question (G).
        questions: questions per step.
        lr: AdamW learning rate; ``weight_decay`` too.
        lam: weight of the attribution divergence; a callable ``lam(step) -> float`` is a schedule.
        divergence: ``"kl"``, ``"js"`` or ``"cosine"``; ``granularity``: ``"blocks"`` or ``"components"``.
        beta: weight of the KL to the frozen reference (0: no reference kept).
        clip: PPO clip range; ``epochs``: optimiser passes over a step's samples (``logp_old`` fixed before
            the first).
        rollout: ``"episode"`` or ``"first"``; ``max_turns``: cap on decisions per episode (default: the
            env's budget).
        temperature, top_p, max_new_tokens: sampling of the rollouts.
        attribution: the student's :class:`VLMAttributionConfig` (or dict) for the IAPO term.
        micro_batch: decisions per forward/backward pass (memory bound); ``grad_clip``: max grad norm.
        seed: seeds the question draw and sampling.
        agent_kwargs: for building the agent from a folder (``device``, ``dtype``, ``lora``...).
    """

    def __init__(
        self,
        agent: VLMAgent | str | os.PathLike[str],
        env_id: str = "VisualToolVQA-v0",
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        teacher: Any = None,
        reward: str = "iapo",
        group_size: int = 4,
        questions: int = 1,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        lam: float | Callable[[int], float] = 1.0,
        divergence: str = "kl",
        granularity: str = "blocks",
        beta: float = 0.04,
        clip: float = 0.2,
        epochs: int = 1,
        rollout: str = "episode",
        max_turns: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int | None = None,
        attribution: VLMAttributionConfig | Mapping[str, Any] | None = None,
        micro_batch: int = 8,
        grad_clip: float | None = 1.0,
        seed: int = 0,
        agent_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}; got {reward!r}")
        if rollout not in ROLLOUTS:
            raise ValueError(f"rollout must be one of {', '.join(ROLLOUTS)}; got {rollout!r}")
        if group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages are relative within a group); got {group_size}")
        self.agent = agent if isinstance(agent, VLMAgent) else VLMAgent(agent, **dict(agent_kwargs or {}))
        self.vlm = self.agent.vlm
        self.env_id = env_id
        self.env_kwargs = {"view_size": 448, "split": "train", **dict(env_kwargs or {})}
        self.attribution = VLMAttributionConfig.of(attribution) if attribution is not None else self.agent.attribution
        self.teacher = make_teacher(teacher, self.attribution, str(self.vlm.device), self.vlm.dtype)
        if reward == "iapo" and self.teacher is None:
            raise ValueError("reward='iapo' needs a teacher (teacher='vlm:PATH' or a teacher object); "
                             "use reward='grpo' to train on the outcome only")
        self.reward, self.group_size, self.questions = reward, int(group_size), int(questions)
        self.lam, self.divergence, self.granularity = lam, divergence, granularity
        get_divergence(divergence)  # fail early on an unknown name
        if granularity not in ("blocks", "components"):
            raise ValueError(f"granularity must be 'blocks' or 'components'; got {granularity!r}")
        self.beta, self.clip, self.epochs = float(beta), float(clip), int(epochs)
        self.rollout, self.max_turns = rollout, max_turns
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.max_new_tokens = int(max_new_tokens or self.agent.max_new_tokens)
        self.micro_batch, self.grad_clip = max(1, int(micro_batch)), grad_clip
        self.rng = np.random.default_rng(seed)
        self.generator_seed = int(seed)
        self.envs = [gym.make(env_id, **self.env_kwargs) for _ in range(self.group_size)]
        params = list(self.vlm.parameters())
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.reference = None
        if self.beta > 0 and not self.vlm.is_lora:
            self.reference = copy.deepcopy(self.vlm.core).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        self.step_count = 0
        self.history: list[dict[str, float]] = []
        self._teacher_takes_dialogue = self.teacher is not None and "dialogue" in inspect.signature(
            self.teacher.attribute).parameters

    # -- rollouts -------------------------------------------------------------------------------------------------
    def _lam(self) -> float:
        return float(self.lam(self.step_count)) if callable(self.lam) else float(self.lam)

    def rollout_group(self, question: int, seed: int) -> tuple[list[Decision], list[dict[str, Any]]]:
        """Play ``group_size`` rollouts of the scene drawn by ``seed``; returns the decisions and per-trajectory
        summaries (return, correct, tool calls)."""
        g = self.group_size
        trackers = [DialogueTracker(self.agent.tools, self.agent.system) for _ in range(g)]
        state = [self.envs[k].reset(seed=seed) for k in range(g)]
        active = list(range(g))
        decisions: list[Decision] = []
        trajs = [{"return": 0.0, "correct": False, "tools": {}, "invalid": 0, "steps": 0} for _ in range(g)]
        budget = int(state[0][0]["budget"])
        turns = 1 if self.rollout == "first" else int(self.max_turns or budget)
        for _ in range(turns):
            if not active:
                break
            dialogues = [trackers[k].observe(*state[k]) for k in active]
            outs = self.vlm.generate(dialogues, max_new_tokens=self.max_new_tokens, do_sample=True,
                                     temperature=self.temperature, top_p=self.top_p)
            still = []
            for k, d, (text, ids) in zip(active, dialogues, outs):
                obs, info = state[k]
                trackers[k].record(text)
                nobs, r, term, trunc, ninfo = self.envs[k].step(text)
                dec = Decision(question, k, d.copy(), obs, info, text, ids, float(r), ninfo.get("tool"),
                               ninfo.get("error"))
                decisions.append(dec)
                t = trajs[k]
                t["return"] += float(r)
                t["steps"] += 1
                if ninfo.get("error"):
                    t["invalid"] += 1
                elif ninfo.get("tool"):
                    t["tools"][ninfo["tool"]] = t["tools"].get(ninfo["tool"], 0) + 1
                if term or trunc:
                    t["correct"] = bool(ninfo.get("correct", False))
                else:
                    still.append(k)
                state[k] = (nobs, ninfo)
            active = still
        for dec in decisions:
            dec.reward = dec.step_reward if self.rollout == "first" else trajs[dec.trajectory]["return"]
        return decisions, trajs

    def score(self, decisions: Sequence[Decision]) -> None:
        """Add the IAPO term to each decision's reward (``reward="iapo"``); records the divergences."""
        if self.reward != "iapo":
            return
        lam = self._lam()
        for dec in decisions:
            dec.student = attribute_decision(self.vlm, dec.dialogue, dec.action, action_ids=dec.action_ids,
                                             config=self.attribution)
            # the Teacher protocol: attribute(observation, info, layout, action); the vlm teacher also reads the
            # student's whole chat
            extra = {"dialogue": dec.dialogue} if self._teacher_takes_dialogue else {}
            dec.teacher = self.teacher.attribute(dec.observation, dec.info, dec.student.layout, dec.action, **extra)
            dec.divergence = attribution_divergence(dec.teacher, dec.student, self.divergence, self.granularity)
            dec.reward = dec.reward - lam * dec.divergence

    # -- update ---------------------------------------------------------------------------------------------------
    def _logprobs(self, decisions: Sequence[Decision], module: Any = None) -> list[torch.Tensor]:
        batch = self.vlm.collate([self.vlm.encode(d.dialogue, action_ids=d.action_ids) for d in decisions])
        return self.vlm.action_logprobs(batch, module=module)

    def update(self, decisions: Sequence[Decision]) -> dict[str, float]:
        """One optimiser step (``epochs`` passes) on the decisions' clipped surrogate + ``beta`` * KL."""
        rewards = torch.tensor([d.reward for d in decisions], dtype=torch.float32)
        groups = torch.tensor([d.question for d in decisions])
        adv = group_advantages(rewards, groups)
        chunks = [list(range(i, min(i + self.micro_batch, len(decisions))))
                  for i in range(0, len(decisions), self.micro_batch)]
        total_tokens = sum(len(d.action_ids) for d in decisions)
        old: list[list[torch.Tensor]] = []
        ref: list[list[torch.Tensor]] = []
        with torch.no_grad():
            for idx in chunks:
                sub = [decisions[i] for i in idx]
                old.append([t.detach() for t in self._logprobs(sub)] if self.epochs > 1 else [])
                if self.beta > 0:
                    if self.vlm.is_lora:
                        with self.vlm.reference() as module:
                            ref.append(self._logprobs(sub, module))
                    else:
                        ref.append(self._logprobs(sub, self.reference))
        stats = {"loss": 0.0, "pg_loss": 0.0, "kl_ref": 0.0}
        self.vlm.model.train()
        try:
            for _ in range(self.epochs):
                self.optimizer.zero_grad(set_to_none=True)
                for c, idx in enumerate(chunks):
                    sub = [decisions[i] for i in idx]
                    logps = self._logprobs(sub)
                    flat = torch.cat(logps)
                    flat_old = torch.cat(old[c]) if old[c] else flat.detach()
                    a = torch.cat([adv[i].expand(len(decisions[i].action_ids)) for i in idx]).to(flat.device)
                    pg = clipped_surrogate(flat, flat_old, a, self.clip)
                    kl = kl_to_reference(flat, torch.cat(ref[c]).to(flat.device)) if self.beta > 0 else flat.new_zeros(())
                    loss = pg + self.beta * kl
                    weight = flat.numel() / max(total_tokens, 1)
                    (loss * weight).backward()
                    stats["loss"] += float(loss.detach()) * weight / self.epochs
                    stats["pg_loss"] += float(pg.detach()) * weight / self.epochs
                    stats["kl_ref"] += float(kl.detach()) * weight / self.epochs
                if self.grad_clip:
                    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(list(self.vlm.parameters()), self.grad_clip))
                self.optimizer.step()
        finally:
            self.vlm.model.eval()
        return stats

    def step(self) -> dict[str, float]:
        """Rollouts, scoring and one update; returns this step's metrics (also appended to ``history``)."""
        t0 = time.perf_counter()
        decisions: list[Decision] = []
        trajs: list[dict[str, Any]] = []
        torch.manual_seed(self.generator_seed + self.step_count)
        for q in range(self.questions):
            seed = int(self.rng.integers(0, 2**31 - 1))
            d, t = self.rollout_group(q, seed)
            decisions += d
            trajs += t
        t1 = time.perf_counter()
        self.score(decisions)
        t2 = time.perf_counter()
        stats = self.update(decisions)
        t3 = time.perf_counter()
        n = len(decisions)
        tool_calls: dict[str, int] = {}
        for t in trajs:
            for k, v in t["tools"].items():
                tool_calls[k] = tool_calls.get(k, 0) + v
        metrics: dict[str, float] = {
            "step": float(self.step_count), "decisions": float(n),
            "reward": float(np.mean([d.reward for d in decisions])),
            "return": float(np.mean([t["return"] for t in trajs])),
            "accuracy": float(np.mean([t["correct"] for t in trajs])),
            "invalid_rate": float(np.mean([d.error is not None for d in decisions])),
            "tool_call_rate": float(np.mean([d.error is None and d.tool not in (None, "answer") for d in decisions])),
            "divergence": float(np.nanmean([d.divergence for d in decisions])) if self.reward == "iapo" else float("nan"),
            "lam": self._lam() if self.reward == "iapo" else 0.0,
            "seconds": t3 - t0, "seconds_rollout": t1 - t0, "seconds_attribution": t2 - t1, "seconds_update": t3 - t2,
            **stats,
        }
        for name in self.agent.tools:
            metrics[f"calls_{name}"] = float(tool_calls.get(name, 0)) / max(len(trajs), 1)
        self.step_count += 1
        self.history.append(metrics)
        self.last_decisions = decisions
        return metrics

    def train(self, steps: int = 1, out: str | os.PathLike[str] | None = None, progress: bool = True) -> list[dict[str, float]]:
        """Run ``steps`` steps; with ``out``, write ``curves.csv`` (+ ``curves.png``) and the checkpoint
        (``out/model``) at the end."""
        for _ in range(int(steps)):
            m = self.step()
            if progress:
                print(f"[vlm {self.reward}] step {int(m['step'])}: loss {m['loss']:.4f} reward {m['reward']:.3f} "
                      f"acc {m['accuracy']:.2f} invalid {m['invalid_rate']:.2f} tool-calls {m['tool_call_rate']:.2f}"
                      + (f" D {m['divergence']:.3f}" if self.reward == "iapo" else "") + f" ({m['seconds']:.1f}s)",
                      flush=True)
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            write_curves(self.history, out)
            self.agent.save(out / "model")
        return self.history


def write_curves(history: Sequence[Mapping[str, float]], out: Path) -> None:
    """``curves.csv`` (every metric per step) and, with matplotlib, ``curves.png``."""
    if not history:
        return
    keys = list(dict.fromkeys(k for h in history for k in h))
    tmp = out / ".curves.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for h in history:
            w.writerow({k: h.get(k, "") for k in keys})
    os.replace(tmp, out / "curves.csv")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    panels = [k for k in ("reward", "accuracy", "tool_call_rate", "invalid_rate", "divergence", "loss")
              if any(math.isfinite(h.get(k, float("nan"))) for h in history)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    steps = [h["step"] for h in history]
    for ax, k in zip(axes[0], panels):
        ax.plot(steps, [h.get(k, float("nan")) for h in history])
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / ".curves.png.tmp.png")
    plt.close(fig)
    os.replace(out / ".curves.png.tmp.png", out / "curves.png")


def train_vlm(
    model_path: str | os.PathLike[str],
    env_id: str = "VisualToolVQA-v0",
    teacher: Any = None,
    reward: str = "iapo",
    steps: int = 10,
    group_size: int = 4,
    lr: float = 1e-5,
    out: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    dtype: Any = "auto",
    lora: bool | Mapping[str, Any] | None = None,
    max_new_tokens: int = 128,
    progress: bool = True,
    **kwargs: Any,
) -> VLMAgent:
    """Train a VLM agent with GRPO or IAPO and return it (see :class:`VLMTrainer` for ``kwargs``).

    Args:
        model_path: the student's local checkpoint folder.
        env_id: the env to train on.
        teacher: ``None`` (only with ``reward="grpo"``), ``"vlm:PATH"`` or a teacher object.
        reward: ``"iapo"`` or ``"grpo"``.
        steps: optimiser steps; group_size: rollouts per question; lr: learning rate.
        out: folder for ``curves.csv``, ``curves.png`` and the checkpoint ``model/`` (reload with
            ``VLMAgent.load_checkpoint(out / "model")``).
        device, dtype, lora, max_new_tokens: the agent's (LoRA recommended for real 3B/7B models).
    """
    agent = VLMAgent(model_path, device=device, dtype=dtype, lora=lora, max_new_tokens=max_new_tokens)
    trainer = VLMTrainer(agent, env_id, teacher=teacher, reward=reward, group_size=group_size, lr=lr, **kwargs)
    trainer.train(steps=steps, out=out, progress=progress)
    return agent
