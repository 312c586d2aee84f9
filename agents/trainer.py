"""One group-based trainer for the compact policy: GRPO (sparse outcome reward) and IAPO (the outcome plus
the alignment of the student's input attribution with a teacher's), in one readable loop.

Each update:

1. **Rollouts** — ``questions`` scenes, ``group_size`` episodes each (same scene id within a group). For
   IAPO the envs are wrapped in :class:`~iapo_gym.wrappers.TeacherAttributionWrapper`, which returns after
   every step the teacher's attribution of the action just taken (teacher-forced, in the layout of the
   observation it was chosen on): the trainer reads it from ``info``, as any other agent would.
2. **Alignment** — per decision, the divergence between that teacher attribution and the policy's own
   attribution of its decision (:class:`~iapo_gym.objective.IAPOObjective`, the one definition): before the
   update for the ``reward`` and ``credit`` forms (it enters the advantages), inside the update for ``loss``.
3. **Advantages** — group-normalised outcome; the objective's ``reward`` and ``credit`` forms put the
   alignment term into them.
4. **Update** — clipped policy gradient, entropy bonus, optional KL to the initial policy, and for the
   ``loss`` form the differentiable alignment loss (the student's attribution built with ``create_graph``);
   the gradient is clipped to a norm of 1 (``clip_apart``: the policy's and the alignment's parts each).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch

from iapo_gym.attribution import ComponentLayout
from iapo_gym.io import atomic_write_bytes, atomic_write_text
from iapo_gym.objective import group_advantages
from iapo_gym.validation import check_ints
from iapo_gym.viz import figure_png
from iapo_gym.wrappers import TeacherAttributionWrapper

from .compact import ObservationBatch, CompactConfig, CompactPolicy, observations_to_batch
from .policy_gradient import clipped_surrogate, kl_to_reference
from .train_config import TrainConfigBase

if TYPE_CHECKING:
    from iapo_gym.envs.base import ToolVQAEnv


@dataclass(kw_only=True)
class TrainConfig(TrainConfigBase):
    """Everything a compact training run depends on (saved with every checkpoint). See the module docstring;
    the shared fields (env, reward, teacher, objective, ``lr``, ``seed``) are :class:`TrainConfigBase`'s."""

    teacher: str = "oracle"
    updates: int = 50
    max_env_steps: int = 0
    warm_start_episodes: int = 0
    warm_start_epochs: int = 10
    questions: int = 4
    group_size: int = 8
    clip: float = 0.2
    epochs: int = 2
    minibatch: int = 64
    ent_coef: float = 0.001
    kl_coef: float = 0.0
    clip_apart: bool = False
    eval_every: int = 10
    eval_episodes: int = 32
    policy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, ("updates", "max_env_steps", "warm_start_episodes", "warm_start_epochs"), 0)
        check_ints(self, ("questions", "group_size", "epochs", "minibatch", "eval_every", "eval_episodes"), 1)
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages are relative within a group); got {self.group_size}")
        if not self.kl_coef >= 0:
            raise ValueError(f"kl_coef (the KL to the starting policy) must be >= 0; got {self.kl_coef!r}")
        CompactConfig(**self.policy)

    def lam_at(self, update: int, env_steps: int = 0) -> float:
        """λ for an update: 0 for GRPO, else the objective's schedule at this point of training (the
        further along of the update count and, with ``max_env_steps``, the env-step budget)."""
        if self.reward == "grpo":
            return 0.0
        progress = update / max(1, self.updates)
        if self.max_env_steps:
            progress = max(progress, env_steps / self.max_env_steps)
        return self.objective.lam_at(min(1.0, progress))


@dataclass
class Rollouts:
    """The decisions of one update's episodes (``D`` decisions of ``E`` episodes)."""

    batch: ObservationBatch
    actions: torch.Tensor
    logp: torch.Tensor
    episode: torch.Tensor
    source_hw: list[tuple[int, int]]
    tools: list[str]
    teacher: torch.Tensor | None
    returns: np.ndarray
    groups: np.ndarray
    terms: list[dict[str, float]]
    correct: np.ndarray
    answered: np.ndarray
    tool_calls: list[dict[str, int]]
    steps: int


class GroupTrainer:
    """Runs :class:`TrainConfig` on a :class:`CompactPolicy`; :meth:`train` is the whole loop."""

    def __init__(self, config: TrainConfig, policy: CompactPolicy | None = None) -> None:
        self.config = config
        if policy is None:
            with torch.random.fork_rng():
                torch.manual_seed(config.seed)
                policy = CompactPolicy(CompactConfig(**config.policy))
        self.policy = policy
        self.objective = config.objective if config.reward == "iapo" else None
        self.reference = copy.deepcopy(self.policy).eval() if config.kl_coef > 0 else None
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        n = config.questions * config.group_size
        kwargs = {"view_size": self.policy.config.view_size, **config.env_kwargs}
        self.envs = [self._wrap(gym.make(config.env_id, **kwargs)) for _ in range(n)]
        self.eval_env = gym.make(config.env_id, **{**kwargs, "split": "test"})
        self.rng = np.random.default_rng(config.seed)
        self.sampler = torch.Generator().manual_seed(config.seed)
        self.update = 0
        self.env_steps = 0
        self.history: list[dict[str, float]] = []

    def _wrap(self, env: gym.Env) -> gym.Env:
        """IAPO reads the teacher from the env side: the wrapper gives each action's teacher attribution in
        the objective's layout (its dense shaped term off: the alignment term is the objective's)."""
        if self.objective is None:
            return env
        pc = self.policy.config
        return TeacherAttributionWrapper(
            env,
            teacher=self.config.teacher,
            grid=self.objective.grid,
            coef=0.0,
            query_length=pc.question_length,
            output_length=pc.output_length,
        )

    # -- 1. rollouts ---------------------------------------------------------------------------------
    def collect(self) -> Rollouts:
        c, pol = self.config, self.policy
        lo, hi = cast("ToolVQAEnv", self.envs[0].unwrapped).scene_id_range()
        scene_ids = self.rng.integers(lo, hi, size=c.questions)
        obs, infos = [], []
        for i, env in enumerate(self.envs):
            o, info = env.reset(options={"scene_id": int(scene_ids[i // c.group_size])})
            obs.append(o)
            infos.append(info)
        n = len(self.envs)
        alive = list(range(n))
        rows: list[ObservationBatch] = []
        acts, logps, episode, hw, tools, teacher = [], [], [], [], [], []
        terms = [dict.fromkeys(("outcome", "format"), 0.0) for _ in range(n)]
        calls: list[dict[str, int]] = [{} for _ in range(n)]
        correct = np.zeros(n, dtype=bool)
        answered = np.zeros(n, dtype=bool)
        done = np.zeros(n, dtype=bool)
        steps = 0
        while alive:
            batch = observations_to_batch([obs[i] for i in alive], pol.config)
            with torch.no_grad():
                a = pol.sample(batch, self.sampler)
                lp, _ = pol.log_prob(batch, a)
            for i, call, tool_index in zip(alive, pol.to_calls(a, [obs[i] for i in alive]), a[:, 0].tolist()):
                scene = infos[i]["scene"]
                hw.append((scene.height, scene.width))
                tools.append(pol.codec.tools[tool_index])
                obs[i], _, term, trunc, infos[i] = self.envs[i].step(call)
                if self.objective is not None:  # the teacher's attribution of the action just taken
                    teacher.append(np.asarray(infos[i]["teacher_attribution"].values))
                steps += 1
                for k, v in infos[i]["reward_terms"].items():
                    if k != "teacher":
                        terms[i][k] = terms[i].get(k, 0.0) + float(v)
                tool = infos[i]["tool"] if not infos[i]["error"] else "invalid"
                calls[i][tool] = calls[i].get(tool, 0) + 1
                if term or trunc:
                    correct[i], done[i], answered[i] = bool(infos[i]["correct"]), True, bool(term)
            rows.append(batch)
            acts.append(a)
            logps.append(lp)
            episode.extend(alive)
            alive = [i for i in alive if not done[i]]
        returns = np.array([sum(t.values()) for t in terms])
        groups = np.repeat(np.arange(c.questions), c.group_size)
        return Rollouts(
            ObservationBatch.cat(rows),
            torch.cat(acts),
            torch.cat(logps),
            torch.tensor(episode),
            hw,
            tools,
            torch.from_numpy(np.stack(teacher)).float() if teacher else None,
            returns,
            groups,
            terms,
            correct,
            answered,
            calls,
            steps,
        )

    # -- 2. alignment --------------------------------------------------------------------------------
    def attributions(
        self, ro: Rollouts, idx: torch.Tensor | None = None, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, ComponentLayout]:
        """Per decision (all, or ``idx``): the teacher's attribution, the policy's own attribution of its
        action (raw scores, differentiable with ``create_graph``) and their layout."""
        obj = self.objective
        if obj is None or ro.teacher is None:
            raise ValueError("attributions need an IAPO objective and teacher attributions (reward='iapo')")
        idx = torch.arange(len(ro.actions)) if idx is None else idx
        hw = [ro.source_hw[int(i)] for i in idx]
        student = self.policy.attribution(
            ro.batch.index(idx),
            ro.actions[idx],
            hw,
            obj.grid,
            obj.method,
            n_steps=obj.steps,
            create_graph=create_graph,
            pixel_baseline=obj.pixel_baseline,
        )
        return ro.teacher[idx], student, obj.layout(self.policy.config.question_length, self.policy.config.output_length)

    def divergences(self, ro: Rollouts, idx: torch.Tensor | None = None, create_graph: bool = False) -> torch.Tensor:
        """Per decision (all, or ``idx``): the objective's divergence between the teacher's attribution and
        the policy's own attribution of its action (differentiable with ``create_graph``)."""
        teacher, student, layout = self.attributions(ro, idx, create_graph)
        assert self.objective is not None  # attributions() refused otherwise
        return self.objective.compare(teacher, student, layout)

    # -- 3 + 4. advantages and update -----------------------------------------------------------------
    def advantages(self, ro: Rollouts, div: torch.Tensor | None, lam: float) -> torch.Tensor:
        """Per-decision advantages (see :meth:`IAPOObjective.advantages`; GRPO: the group-normalised return)."""
        returns, groups = torch.tensor(ro.returns, dtype=torch.float32), torch.tensor(ro.groups)
        if self.objective is None:
            return group_advantages(returns, groups)[ro.episode]
        selected = torch.from_numpy(self.objective.selects(ro.tools))
        return self.objective.advantages(returns, groups, ro.episode, div, selected, lam)

    def optimise(self, ro: Rollouts, adv: torch.Tensor, lam: float) -> dict[str, float]:
        """The clipped policy-gradient epochs (plus, for the ``loss`` form, the alignment loss).

        Under the ``loss`` form the student's attribution of each weighted decision is built here, with
        ``create_graph``, once per epoch (the parameters move between epochs); the first epoch's divergences,
        detached, are the update's logged ``alignment`` (``alignment_decisions`` of them; ``nan`` when the
        loss weighed no decision), and with the objective's ``outside`` penalty their mean ``outside_mass``,
        so no separate pass attributes the decisions only to log them.

        Also logged, as means over the minibatches: ``entropy``, the policy's entropy on the rollouts' decisions
        (summed over the parts the chosen tool uses); ``grad_norm``, the gradient's norm before it is clipped
        to 1; ``grad_norm_policy``, that of the policy's part (surrogate, entropy, KL); and under the loss
        form ``grad_norm_alignment``, that of the alignment loss, and ``grad_cos``, the cosine between the
        two (minibatches that weigh a decision). Where the alignment's dominates, the clipping shrinks the
        policy gradient with it; where the cosine is negative, the two pull the weights apart. With
        ``clip_apart`` each part is clipped to 1 on its own and their sum is not clipped again (``grad_norm``
        is then the sum's norm).
        """
        c, pol, obj = self.config, self.policy, self.objective
        n = len(ro.actions)
        loss_obj = obj if obj is not None and obj.form == "loss" and lam > 0 else None  # the loss form is on
        if loss_obj is not None:
            weights = loss_obj.loss_weights(
                adv, torch.from_numpy(ro.correct)[ro.episode], torch.from_numpy(loss_obj.selects(ro.tools))
            )
        losses: list[float] = []
        entropies: list[float] = []
        norms: dict[str, list[float]] = {"grad_norm": [], "grad_norm_policy": [], "grad_norm_alignment": [], "grad_cos": []}
        first_epoch: list[torch.Tensor] = []  # the divergences the loss measured in the first epoch
        first_outside: list[torch.Tensor] = []  # and the outside masses, when the objective weighs them
        for epoch in range(c.epochs):
            order = torch.randperm(n, generator=self.sampler)
            for start in range(0, n, c.minibatch):
                idx = order[start : start + c.minibatch]
                mb = ro.batch.index(idx)
                logp, ent = pol.log_prob(mb, ro.actions[idx])
                loss = clipped_surrogate(logp, ro.logp[idx], adv[idx], c.clip) - c.ent_coef * ent.mean()
                entropies.append(float(ent.detach().mean()))
                if self.reference is not None:
                    with torch.no_grad():
                        ref, _ = self.reference.log_prob(mb, ro.actions[idx])
                    loss = loss + c.kl_coef * kl_to_reference(logp, ref)
                align = None
                if loss_obj is not None and bool(weights[idx].gt(0).any()):
                    sub = idx[weights[idx] > 0]  # attribute only the decisions the loss weighs
                    teacher, student, layout = self.attributions(ro, sub, create_graph=True)
                    div = loss_obj.compare(teacher, student, layout)
                    term = div
                    if loss_obj.outside > 0:  # the absolute penalty in the cells the teacher calls irrelevant
                        mass = loss_obj.outside_mass(teacher, student, layout)
                        term = div + loss_obj.outside * mass
                        if epoch == 0:
                            first_outside.append(mass.detach())
                    align = loss_obj.loss(term, weights[sub], lam)
                    if epoch == 0:
                        first_epoch.append(div.detach())
                self.optimizer.zero_grad()
                loss.backward()  # the policy's part first, so its gradient norm can be told from the alignment's
                if align is not None:
                    params = list(pol.parameters())
                    policy_grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
                    align.backward()
                    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
                    align_grads = [g - g0 for g, g0 in zip(grads, policy_grads)]
                    norm_p, norm_a = _norm(policy_grads), _norm(align_grads)
                    norms["grad_norm_alignment"].append(norm_a)
                    norms["grad_norm_policy"].append(norm_p)
                    both = norm_p > 0 and norm_a > 0  # the cosine from the two norms just taken (0 where one is 0)
                    norms["grad_cos"].append(_dot(policy_grads, align_grads) / (norm_p * norm_a) if both else 0.0)
                    loss = loss + align.detach()
                    if c.clip_apart:  # each part to a norm of 1 on its own: neither takes the other's share
                        shrink_p, shrink_a = (min(1.0, 1.0 / max(x, 1e-12)) for x in (norm_p, norm_a))
                        for p, g0, ga in zip(params, policy_grads, align_grads):
                            p.grad = g0 * shrink_p + ga * shrink_a
                apart = align is not None and c.clip_apart
                total = float(torch.nn.utils.clip_grad_norm_(pol.parameters(), math.inf if apart else 1.0))  # before clipping
                norms["grad_norm"].append(total)
                if align is None:
                    norms["grad_norm_policy"].append(total)
                self.optimizer.step()
                losses.append(float(loss.detach()))
        out = {"loss": float(np.mean(losses)), "advantage_abs": float(adv.abs().mean()), "entropy": float(np.mean(entropies))}
        out.update({k: float(np.mean(v)) for k, v in norms.items() if v})
        if loss_obj is not None:
            aligned = torch.cat(first_epoch) if first_epoch else torch.zeros(0)
            out["alignment"] = float(aligned.mean()) if len(aligned) else float("nan")
            out["alignment_decisions"] = float(len(aligned))
            if loss_obj.outside > 0:
                outside = torch.cat(first_outside) if first_outside else torch.zeros(0)
                out["outside_mass"] = float(outside.mean()) if len(outside) else float("nan")
        return out

    def step(self) -> dict[str, float]:
        """One update: rollouts, alignment, advantages, optimisation. Returns the logged row.

        The ``reward`` and ``credit`` forms need every decision's divergence before the update (it enters the
        advantages): one attribution pass here, whose mean over the selected decisions is the logged
        ``alignment``. The ``loss`` form attributes inside :meth:`optimise` only, and logs what it measured there.
        """
        c, obj = self.config, self.objective
        t0 = time.perf_counter()
        ro = self.collect()
        lam = c.lam_at(self.update, self.env_steps)
        row: dict[str, float] = {"update": self.update + 1, "lam": lam}
        div = None
        if obj is not None and obj.form != "loss":
            t1 = time.perf_counter()
            div = self.divergences(ro).detach()  # before the update: the advantages need it
            row["attribution_s"] = time.perf_counter() - t1
            sel = obj.selects(ro.tools)
            row["alignment"] = float(div[torch.from_numpy(sel)].mean()) if sel.any() else float("nan")
            row["alignment_decisions"] = float(sel.sum())
        adv = self.advantages(ro, div, lam)
        row.update(self.optimise(ro, adv, lam))
        self.update += 1
        self.env_steps += ro.steps
        n_ep = len(ro.returns)
        row.update(
            {
                "env_steps": self.env_steps,
                "accuracy": float(ro.correct.mean()),
                "reward": float(ro.returns.mean()),
                "update_s": time.perf_counter() - t0,
            }
        )
        for k in ("outcome", "format"):
            row[f"reward_{k}"] = float(np.mean([t.get(k, 0.0) for t in ro.terms]))
        for tool in (*self.policy.codec.tools, "invalid"):
            row[f"calls_{tool}"] = sum(cl.get(tool, 0) for cl in ro.tool_calls) / n_ep
        return row

    def warm_start(self) -> list[float]:
        """Behaviour cloning on oracle episodes before RL (the supervised cold start)."""
        from .imitation import imitate_oracle

        c = self.config
        return imitate_oracle(
            self.policy, c.env_id, c.warm_start_episodes, c.env_kwargs, epochs=c.warm_start_epochs, data_seed=c.seed, seed=c.seed
        )

    def evaluate(self, episodes: int | None = None) -> float:
        """Greedy accuracy on fixed test-split scenes (the same items at every evaluation)."""
        from .base import evaluate_agent

        lo, hi = cast("ToolVQAEnv", self.eval_env.unwrapped).scene_id_range()
        ids = np.random.default_rng(12345).integers(lo, hi, size=episodes or self.config.eval_episodes)
        return evaluate_agent(GreedyPolicyAgent(self.policy), self.eval_env, scene_ids=[int(s) for s in ids])["accuracy"]

    def train(
        self, on_update: Callable[[GroupTrainer, dict[str, float]], None] | None = None, progress: bool = True
    ) -> list[dict[str, float]]:
        """Run the remaining updates (all of them, or the rest after :func:`load_trainer`)."""
        from tqdm.auto import tqdm

        c = self.config
        if self.update == 0 and c.warm_start_episodes and not self.history:
            self.warm_start()
        bar = tqdm(total=c.updates, initial=self.update, disable=not progress, desc=c.reward)
        while self.update < c.updates and not (c.max_env_steps and self.env_steps >= c.max_env_steps):
            row = self.step()
            last = self.update == c.updates or (c.max_env_steps and self.env_steps >= c.max_env_steps)
            if self.update % c.eval_every == 0 or last:
                row["eval_accuracy"] = self.evaluate()
            self.history.append(row)
            bar.update(1)
            bar.set_postfix(
                acc=f"{row['accuracy']:.2f}", **({"eval": f"{row['eval_accuracy']:.2f}"} if "eval_accuracy" in row else {})
            )
            if on_update is not None:
                on_update(self, row)
        bar.close()
        return self.history


class GreedyPolicyAgent:
    """The policy's greedy action behind the agent protocol: what :meth:`GroupTrainer.evaluate` runs (the
    same calls as ``CompactAgent(policy, greedy=True)``, which builds on this module and so is not imported here)."""

    def __init__(self, policy: CompactPolicy) -> None:
        self.policy = policy

    def reset(self) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        return self.policy.act([observation])[0]


def _norm(grads: list[torch.Tensor]) -> float:
    """The L2 norm of a list of gradients, as one vector."""
    return float(torch.nn.utils.get_total_norm(grads))


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The dot product of two lists of gradients, each as one vector."""
    return float(sum((x * y).sum() for x, y in zip(a, b)))


# -- learning curves ----------------------------------------------------------------------------------
def write_curves(history: list[dict[str, float]], out_dir: str | os.PathLike[str], title: str = "") -> tuple[Path, Path]:
    """``curves.csv`` and ``curves.png`` (accuracy, reward terms, alignment, tool calls per tool, gradient norms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    csv_path = atomic_write_text(out_dir / "curves.csv", buf.getvalue())

    x = [r["env_steps"] for r in history]
    fig, axes = plt.subplots(1, 5, figsize=(22, 3.6))
    panels: list[tuple[str, list[str]]] = [
        ("accuracy", [k for k in ("accuracy", "eval_accuracy") if k in keys]),
        ("reward terms", [k for k in keys if k.startswith("reward")]),
        ("alignment (divergence, lower is better)", [k for k in ("alignment",) if k in keys]),
        ("tool calls per episode", [k for k in keys if k.startswith("calls_")]),
        ("gradients: norms before clipping to 1, cosine", [k for k in keys if k.startswith("grad_")]),
    ]
    for ax, (name, series) in zip(axes, panels):
        for k in series:
            pts = [(xi, r[k]) for xi, r in zip(x, history) if k in r]
            if pts:
                ax.plot(*zip(*pts), label=k, marker="o" if k == "eval_accuracy" else None, ms=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("env steps")
        if series:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    png = figure_png(fig, dpi=90)
    plt.close(fig)
    png_path = atomic_write_bytes(out_dir / "curves.png", png)
    return csv_path, png_path


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
