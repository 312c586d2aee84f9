"""IAPO on TRL: the pieces TRL's ``GRPOTrainer`` needs to train a VLM in the ``VisualToolVQA`` envs.

- :func:`environment_class` (``environment_factory``): one class per env id whose public methods are the env's
  tools (every public method of an environment becomes a tool in TRL; helpers start with ``_``). A tool
  call steps the env; an image result comes back as ``[{"type": "image", "image": PIL}, {"type": "text",
  ...}]``, so the crop reaches the next generation *and* the training forward pass. ``reset`` draws the
  row's scene (``scene_id``).
- :func:`build_dataset`: rows of an env's split (glance image, question, scene id, split) as a
  conversational dataset (``prompt`` + ``images``).
- :func:`outcome_reward`, :func:`format_reward`: TRL reward functions receiving ``environments``
  (``get_reward()`` cannot see the completion text, and a final ``<answer>...</answer>`` reply is not a
  tool call: the reward function hands it to the env, which scores it as any answer).
- IAPO from the one objective (:class:`~iapo_gym.objective.IAPOObjective`): the ``"reward"`` form (the
  ``"paper"`` preset) as the reward function :class:`IAPOReward` (``-`` mean divergence of a rollout's
  decisions; ``reward_weights`` carries λ and TRL normalises within the group, which is exactly
  ``normalise(outcome - λ · penalty)``), and the ``"loss"`` form (the ``"default"`` preset) through
  :class:`IAPOGRPOTrainer`, which adds ``objective.loss(...)`` to TRL's loss, the student's attribution
  (gradient x input over the input embeddings) built with ``create_graph=True``; with the objective's
  ``outside`` weight each decision's term also carries the absolute penalty on the image attribution where the
  teacher puts none (``outside_mass``; over embeddings, so ``pixel_baseline`` applies to the reward form's
  attribution only). The student's attribution is of its generated tool-call tokens; the teacher is a second
  VLM teacher-forced on the same chat.

The ``"credit"`` form (per-decision advantages) is not offered on TRL: TRL gives one advantage per
completion, and a multi-turn completion holds all the episode's decisions (see :data:`TRL_FORMS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import torch

from iapo_gym.objective import IAPOObjective
from iapo_gym.scene import as_box
from iapo_gym.toolcall import ToolCallError, parse_tool_call

from .attribution import VLMAttributionConfig, attribute_decision, differentiable_attribution, layout_of
from .chat import tool_function
from .model import VLM
from .prompt import DEFAULT_SYSTEM, Dialogue, Turn, clean, source_hw_of

if TYPE_CHECKING:
    from iapo_gym.envs.base import ToolVQAEnv

TRL_FORMS = ("reward", "loss")
"""Objective forms the TRL track runs. ``"credit"`` needs one advantage per decision; TRL has one per
completion (all of an episode's turns), so it stays on the compact trainer."""


# -- the environment ------------------------------------------------------------------------------------------
@dataclass
class Result:
    """What one tool call returned (kept for the decisions' chats)."""

    tool: str
    text: str
    crop: np.ndarray | None
    view_box: tuple[float, float, float, float]
    error: str | None


class VQAToolEnvironment:
    """An ``environment_factory`` environment over one ``VisualToolVQA`` env (see the module doc).

    Subclasses made by :func:`environment_class` add one method per tool; each runs :meth:`_call`.
    """

    env_id: ClassVar[str] = "VisualToolVQA-v0"
    env_kwargs: ClassVar[dict[str, Any]] = {}
    system: ClassVar[str] = DEFAULT_SYSTEM
    _tools: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._envs: dict[str, gym.Env] = {}
        self._env: gym.Env | None = None
        self._start()

    def _start(self) -> None:
        self._dialogue: Dialogue | None = None
        self._results: list[Result] = []
        self._terms = {"outcome": 0.0, "format": 0.0}
        self._done = False
        self._finished = False
        self._correct = False
        self._completion: list[Mapping[str, Any]] | None = None

    def _make(self, split: str) -> gym.Env:
        if split not in self._envs:
            self._envs[split] = gym.make(self.env_id, **{**self.env_kwargs, "split": split})
        return self._envs[split]

    def reset(self, scene_id: int | None = None, split: str | None = None, **row: Any) -> None:
        """Start the episode of the row's scene (the prompt already holds its glance and question)."""
        self._start()
        self._env = self._make(str(split or self.env_kwargs.get("split", "train")))
        options = None if scene_id is None else {"scene_id": int(scene_id)}
        obs, info = self._env.reset(options=options)
        tools = tuple(cast("ToolVQAEnv", self._env.unwrapped).tools)
        self._dialogue = Dialogue(obs["image"], str(obs["question"]), [], tools, self.system, source_hw_of(info))
        return None

    def _step(self, action: str) -> dict[str, Any]:
        assert self._env is not None, "reset() first"
        _, _, term, trunc, info = self._env.step(action)
        for k in self._terms:
            self._terms[k] += float(info["reward_terms"].get(k, 0.0))
        if term or trunc:
            self._done, self._correct = True, bool(info.get("correct", False))
        return info

    def _call(self, name: str, arguments: dict[str, Any]) -> str | list[dict[str, Any]]:
        """Run one tool call in the env; the crop (if any) as image content, else the text."""
        if self._done:
            return "error: the episode is over (an answer was given or the tool budget is spent)"
        info = self._step(json.dumps({"tool": name, "args": arguments}))
        assert self._env is not None  # _step asserted it
        obs = cast("ToolVQAEnv", self._env.unwrapped)._obs()
        text = str(obs["tool_output"])
        error = info.get("error")
        crop = None
        box = as_box(obs["view_box"])
        if not error and name != "answer" and box[2] > box[0] and box[3] > box[1]:
            crop = np.asarray(obs["crop"]).copy()
        self._results.append(Result(name, text, crop, box, error))
        if crop is None:
            return text
        from PIL import Image

        return [{"type": "image", "image": Image.fromarray(crop)}, {"type": "text", "text": text}]

    def _finish(self, completion: Sequence[Mapping[str, Any]]) -> None:
        """Score the episode once: a final reply that is not a tool call goes to the env as the action (an
        ``<answer>...</answer>`` is scored as any answer; anything else is a malformed call)."""
        if self._finished:
            return
        self._finished = True
        self._completion = list(completion)
        if self._done or not completion:
            return
        last = completion[-1]
        if last.get("role") == "assistant" and not last.get("tool_calls"):
            self._step(_text(last.get("content")))

    def _decisions(self, completion: Sequence[Mapping[str, Any]]) -> list[tuple[Dialogue, str, str]]:
        """``(chat, action text, tool)`` of each assistant turn of the rollout, the chat being everything
        before it (glance, question, earlier turns with their results)."""
        assert self._dialogue is not None
        out: list[tuple[Dialogue, str, str]] = []
        dialogue = self._dialogue.copy()
        results = list(self._results)
        for i, msg in enumerate(completion):
            if msg.get("role") != "assistant":
                continue
            action = assistant_text(msg)
            out.append((dialogue.copy(), action, _tool_of(action)))
            for j, tool_msg in enumerate(completion[i + 1 :]):
                if tool_msg.get("role") != "tool":
                    break
                text = _text(tool_msg.get("content"))
                res = next((r for r in results if r.text == text), None)
                if res is not None:
                    results.remove(res)
                dialogue.turns.append(
                    Turn(
                        action if j == 0 else None,
                        clean(text),
                        None if res is None else res.crop,
                        (0.0, 0.0, 0.0, 0.0) if res is None else res.view_box,
                        None if res is None else res.tool,
                    )
                )
        return out


def environment_class(
    env_id: str = "VisualToolVQA-v0", env_kwargs: Mapping[str, Any] | None = None, system: str = DEFAULT_SYSTEM
) -> type[VQAToolEnvironment]:
    """An ``environment_factory`` class for ``env_id``: its tools (the env's ``tools``, from the tool
    registry) become its public methods, with the registry's descriptions and argument schemas."""
    if env_id not in gym.registry:
        raise ValueError(
            f"unknown env id {env_id!r}; registered VisualToolVQA ids: " + ", ".join(i for i in gym.registry if "VQA" in i)
        )
    kwargs = {"view_size": 448, **dict(env_kwargs or {})}
    probe = gym.make(env_id, **kwargs)
    tools = tuple(cast("ToolVQAEnv", probe.unwrapped).tools)
    probe.close()
    body: dict[str, Any] = {"env_id": env_id, "env_kwargs": kwargs, "system": system, "_tools": tools}
    body.update({name: _bound_tool(name) for name in tools})
    return type(f"{env_id.split('-')[1] if '-' in env_id else 'VQA'}ToolEnvironment", (VQAToolEnvironment,), body)


def _bound_tool(name: str) -> Any:
    """The tool method ``name`` for an environment class (dispatching to ``self._call``)."""
    fn = tool_function(name)  # the signature, hints and docstring TRL turns into the tool definition

    def method(self: VQAToolEnvironment, **arguments: Any) -> Any:
        return self._call(name, arguments)

    for attr in ("__name__", "__qualname__", "__signature__", "__annotations__", "__doc__"):
        setattr(method, attr, getattr(fn, attr))
    return method


def assistant_text(msg: Mapping[str, Any]) -> str:
    """An assistant message as the text the chat template renders for it (content, then each tool call as
    ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``)."""
    parts = [_text(msg.get("content"))] if _text(msg.get("content")) else []
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        args_json = args if isinstance(args, str) else json.dumps(args)
        parts.append(f'<tool_call>\n{{"name": "{fn.get("name")}", "arguments": {args_json}}}\n</tool_call>')
    return "\n".join(parts)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping) and "text" in c)


def _tool_of(action: str) -> str:
    try:
        return parse_tool_call(action).name
    except ToolCallError:
        return "invalid"


# -- the dataset --------------------------------------------------------------------------------------------------
def build_dataset(
    env_id: str = "VisualToolVQA-v0",
    n: int = 64,
    split: str = "train",
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    system: str = DEFAULT_SYSTEM,
) -> Any:
    """A ``datasets.Dataset`` of ``n`` scenes of ``env_id``'s ``split``: ``prompt`` (system message; user
    message with the glance and the question), ``images`` (the glance), ``scene_id`` and ``split``."""
    from datasets import Dataset
    from PIL import Image

    if n < 1:
        raise ValueError(f"the dataset needs n >= 1 scenes; got {n}")
    env = gym.make(env_id, **{"view_size": 448, **dict(env_kwargs or {}), "split": split})
    lo, hi = cast("ToolVQAEnv", env.unwrapped).scene_id_range()
    ids = np.random.default_rng(seed).integers(lo, hi, size=n)
    rows: dict[str, list[Any]] = {"prompt": [], "images": [], "scene_id": [], "split": []}
    for sid in ids:
        obs, _ = env.reset(options={"scene_id": int(sid)})
        rows["prompt"].append(
            [
                {"role": "system", "content": [{"type": "text", "text": clean(system)}]},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": clean(str(obs["question"]))}]},
            ]
        )
        rows["images"].append([Image.fromarray(obs["image"])])
        rows["scene_id"].append(int(sid))
        rows["split"].append(split)
    env.close()
    return Dataset.from_dict(rows)


# -- rewards ------------------------------------------------------------------------------------------------------
def _finish_all(completions: Sequence[Any], environments: Sequence[VQAToolEnvironment]) -> None:
    for c, env in zip(completions, environments):
        env._finish(c)


def outcome_reward(
    completions: Sequence[Any], environments: Sequence[VQAToolEnvironment], log_metric: Any = None, **_: Any
) -> list[float]:
    """The env's ``outcome`` term of each rollout (1 for a correct answer); logs tool calls per episode."""
    _finish_all(completions, environments)
    if log_metric is not None:
        counts: dict[str, float] = {}
        for env in environments:
            for r in env._results:
                key = "invalid" if r.error else r.tool
                counts[key] = counts.get(key, 0.0) + 1.0
        for key, v in counts.items():
            log_metric(f"calls_{key}", v / max(len(environments), 1))
    return [float(env._terms["outcome"]) for env in environments]


def format_reward(completions: Sequence[Any], environments: Sequence[VQAToolEnvironment], **_: Any) -> list[float]:
    """The env's ``format`` term of each rollout (``-format_penalty`` per malformed call)."""
    _finish_all(completions, environments)
    return [float(env._terms["format"]) for env in environments]


# -- IAPO ------------------------------------------------------------------------------------------------------------
class Alignment:
    """Student and teacher attributions of a rollout's decisions, compared by the objective.

    Args:
        objective: the IAPO objective (its ``method``/``steps`` set the student's attribution for the
            reward form; the loss form always uses gradient x input, the differentiable one).
        teacher: a teacher with ``attribute(observation, info, layout, action, dialogue=...)`` (a
            :class:`~iapo_gym.agents.vlm.teacher.VLMTeacher`).
        attribution: the comparison layout's settings (``grid`` from the objective; slot counts).
    """

    def __init__(self, objective: IAPOObjective, teacher: Any, attribution: VLMAttributionConfig | None = None) -> None:
        self.objective = objective
        self.teacher = teacher
        base = attribution or VLMAttributionConfig()
        method = objective.method if objective.method in ("integrated_gradients", "gradient_x_input") else "gradient_x_input"
        self.config = VLMAttributionConfig(
            **{
                **base.to_dict(),
                "grid": objective.grid,
                "method": method,
                "n_steps": objective.steps,
                "pixel_baseline": objective.pixel_baseline,
            }
        )
        self.student: VLM | None = None

    def teacher_vector(self, dialogue: Dialogue, action: str, layout: Any) -> np.ndarray:
        return np.asarray(self.teacher.attribute(None, None, layout, action, dialogue=dialogue).values)

    def divergences(self, environment: VQAToolEnvironment, completion: Sequence[Any]) -> list[tuple[float, str]]:
        """``(divergence, tool)`` per decision of one rollout (no gradients)."""
        assert self.student is not None, "bind a student first (Alignment.student = VLM.wrap(...))"
        out = []
        for dialogue, action, tool in environment._decisions(completion):
            s = attribute_decision(self.student, dialogue, action, config=self.config)
            t = self.teacher_vector(dialogue, action, s.layout)
            out.append((float(self.objective.compare(t, s.values, s.layout)), tool))
        return out


class IAPOReward:
    """The objective's ``"reward"`` form as a TRL reward function: ``-`` the mean divergence of a rollout's
    selected decisions (give it weight λ in ``reward_weights``; TRL normalises the sum within the group)."""

    __name__ = "iapo"

    def __init__(self, alignment: Alignment) -> None:
        self.alignment = alignment

    def __call__(
        self, completions: Sequence[Any], environments: Sequence[VQAToolEnvironment], log_metric: Any = None, **_: Any
    ) -> list[float]:
        _finish_all(completions, environments)
        out, all_div = [], []
        for c, env in zip(completions, environments):
            divs = self.alignment.divergences(env, c)
            sel = self.alignment.objective.selects([t for _, t in divs])
            chosen = [d for (d, _), keep in zip(divs, sel) if keep]
            all_div += chosen
            out.append(-float(np.mean(chosen)) if chosen else 0.0)
        if log_metric is not None and all_div:
            log_metric("iapo/divergence", float(np.mean(all_div)))
        return out


def _trainer_base() -> type:
    from trl import GRPOTrainer

    return GRPOTrainer


if TYPE_CHECKING:  # the class below subclasses TRL's GRPOTrainer; this names it for a type checker
    from trl import GRPOTrainer as _GRPOTrainer
else:
    _GRPOTrainer = _trainer_base()


class IAPOGRPOTrainer(_GRPOTrainer):
    """TRL's ``GRPOTrainer`` plus the objective's ``"loss"`` form: after each generation the teacher's
    attribution of every decision is computed (frozen, once); in every loss computation the student's
    attribution of the same decisions is built with ``create_graph=True`` (gradient x input over the input
    embeddings) and ``objective.loss(compare(teacher, student), weights, λ)`` is added to TRL's loss.

    Args:
        alignment: the :class:`Alignment` (objective with ``form="loss"``, teacher).
        **kwargs: ``GRPOTrainer``'s.
    """

    def __init__(self, *args: Any, alignment: Alignment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if alignment.objective.form != "loss":
            raise ValueError(
                f"IAPOGRPOTrainer runs the objective's 'loss' form; got form={alignment.objective.form!r} "
                "(the 'reward' form is the IAPOReward reward function on a plain GRPOTrainer)"
            )
        self.alignment = alignment

    def _student(self) -> VLM:
        if self.alignment.student is None:
            self.alignment.student = VLM.wrap(self.accelerator.unwrap_model(self.model), self.processing_class)
        return self.alignment.student

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        student = self._student()
        cfg = self.alignment.config
        records = []
        environments: list[Any] = self.environments or []  # trl types the attribute by its first value, None
        for env, inp in zip(environments, inputs):
            decisions = env._decisions(env._completion) if env._completion is not None else []
            sel = self.alignment.objective.selects([t for _, _, t in decisions])
            rec = []
            with torch.no_grad():
                for (dialogue, action, _tool), keep in zip(decisions, sel):
                    if not keep:
                        continue
                    enc = student.encode(dialogue, action)
                    layout = layout_of(enc, cfg.grid, cfg.query_length, cfg.output_length)
                    rec.append((dialogue, action, self.alignment.teacher_vector(dialogue, action, layout)))
            records.append({"decisions": rec, "success": bool(env._correct)})
        output["iapo"] = records
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        loss = super()._compute_loss(model, inputs)
        records = inputs.get("iapo") or []
        obj = self.alignment.objective
        lam = obj.lam_at(self.state.global_step / max(1, self.state.max_steps or 1))
        if not records or lam == 0:
            return loss
        student, cfg = self._student(), self.alignment.config
        adv = inputs["advantages"].detach().reshape(len(records), -1)[:, 0].cpu()
        success = torch.tensor([r["success"] for r in records])
        weights = obj.loss_weights(adv, success, None)
        divs, outside, ws = [], [], []
        for rec, w in zip(records, weights.tolist()):
            if w <= 0:
                continue
            for dialogue, action, teacher in rec["decisions"]:
                enc = student.encode(dialogue, action)
                layout = layout_of(enc, cfg.grid, cfg.query_length, cfg.output_length)
                s = differentiable_attribution(student, enc, layout)
                t = torch.as_tensor(teacher, dtype=s.dtype, device=s.device)
                divs.append(obj.compare(t, s, layout))
                if obj.outside > 0:  # the absolute penalty where the teacher puts no image mass
                    outside.append(obj.outside_mass(t, s, layout))
                ws.append(w)
        if not divs:
            self._log_metric("iapo/alignment_loss", 0.0)
            return loss
        div = torch.stack(divs)
        per_decision = div
        if outside:
            mass = torch.stack(outside)
            per_decision = div + obj.outside * mass
            self._log_metric("iapo/outside_mass", float(mass.detach().mean()))
        term = obj.loss(per_decision, torch.tensor(ws, dtype=div.dtype, device=div.device), lam)
        self._log_metric("iapo/divergence", float(div.detach().mean()))
        self._log_metric("iapo/alignment_loss", float(term.detach()))
        return loss + term.to(loss.device)


@dataclass
class Rewards:
    """The reward functions and weights of a run (TRL's ``reward_funcs`` / ``reward_weights``)."""

    funcs: list[Any] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def make_rewards(reward: str, alignment: Alignment | None) -> Rewards:
    """``grpo``: outcome + format. ``iapo`` with the reward form: + :class:`IAPOReward` weighted λ; with the
    loss form the same two (the loss itself is :class:`IAPOGRPOTrainer`'s)."""
    out = Rewards([outcome_reward, format_reward], [1.0, 1.0])
    if reward == "grpo":
        return out
    if alignment is None:
        raise ValueError("reward='iapo' needs a teacher: --teacher vlm:PATH (a local VLM folder)")
    if alignment.objective.form == "reward":
        out.funcs.append(IAPOReward(alignment))
        out.weights.append(float(alignment.objective.lam))
    elif alignment.objective.form != "loss":
        raise ValueError(
            f"the TRL track runs the objective forms {', '.join(TRL_FORMS)}; got "
            f"{alignment.objective.form!r} (per-decision credit needs per-decision advantages, which TRL "
            "does not have: use the compact trainer for it)"
        )
    return out
