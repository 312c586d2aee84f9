"""One group-based trainer for the compact policy: GRPO (sparse outcome reward) and IAPO (outcome minus the
divergence between the teacher's and the student's input attribution), in one readable loop.

Each update:

1. **Rollouts** — ``questions`` scenes, ``group_size`` episodes each (same scene id within a group).
2. **Rewards** — per episode, the env's terms summed (``outcome`` + ``format``); for IAPO also
   ``attribution = -lam * mean over decisions of divergence(teacher, student)``, where the student's
   attribution is its own log-probability of each decision attributed over its inputs (integrated gradients
   by default) and the teacher's comes from :mod:`iapo_gym.teachers`.
3. **Advantages** — normalised within each group (GRPO), shared by the episode's decisions.
4. **Update** — clipped policy gradient, entropy bonus, optional KL to the initial (reference) policy.
"""

from __future__ import annotations

import copy
import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from iapo_gym.attribution import Attribution, divergence
from iapo_gym.io import atomic_write_bytes, atomic_write_text
from iapo_gym.teachers import make_teacher
from iapo_gym.validation import check_ints

from .compact import Batch, CompactConfig, CompactPolicy, observations_to_batch
from .objectives import clipped_surrogate, group_advantages, kl_to_reference

REWARDS = ("grpo", "iapo")
NORMALISATIONS = ("sum", "separate")
SCHEDULES = ("constant", "linear")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved with every checkpoint). See the module docstring."""

    env_id: str = "VisualToolVQA-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    reward: str = "iapo"
    teacher: str = "oracle"
    lam: float = 0.5
    lam_schedule: str = "constant"
    cold_start: float = 0.0
    attribution_method: str = "integrated_gradients"
    attribution_steps: int = 8
    granularity: str = "blocks"
    divergence: str = "kl"
    normalise: str = "sum"
    grid: int = 4
    updates: int = 50
    max_env_steps: int = 0
    warm_start_episodes: int = 0
    warm_start_epochs: int = 8
    questions: int = 4
    group_size: int = 8
    lr: float = 3e-4
    clip: float = 0.2
    epochs: int = 2
    minibatch: int = 64
    ent_coef: float = 0.001
    kl_coef: float = 0.0
    eval_every: int = 10
    eval_episodes: int = 32
    seed: int = 0
    policy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}; got {self.reward!r}")
        if self.lam_schedule not in SCHEDULES:
            raise ValueError(f"lam_schedule must be one of {', '.join(SCHEDULES)}; got {self.lam_schedule!r}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}; got {self.normalise!r}")
        if self.granularity not in ("blocks", "components"):
            raise ValueError(f"granularity must be 'blocks' or 'components'; got {self.granularity!r}")
        check_ints(self, ("updates", "max_env_steps", "warm_start_episodes", "warm_start_epochs"), 0)
        check_ints(self, ("questions", "group_size", "epochs", "minibatch", "eval_every", "eval_episodes",
                          "attribution_steps", "grid"), 1)
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages are relative within a group); got {self.group_size}")
        if not 0.0 <= self.cold_start <= 1.0:
            raise ValueError(f"cold_start must be a fraction of the updates in [0, 1]; got {self.cold_start!r}")
        if self.lam < 0 or self.lr <= 0:
            raise ValueError(f"lam must be >= 0 and lr > 0; got lam={self.lam!r}, lr={self.lr!r}")
        if self.env_id not in gym.registry:
            raise ValueError(f"unknown env id {self.env_id!r}; registered VisualToolVQA ids: "
                             + ", ".join(i for i in gym.registry if "VQA" in i))
        divergence(self.divergence)  # unknown names fail here, listing the known ones
        CompactConfig(**self.policy)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def lam_at(self, update: int) -> float:
        """λ for an update: 0 for GRPO and during the cold start, then constant or rising linearly to ``lam``."""
        start = int(round(self.cold_start * self.updates))
        if self.reward == "grpo" or update < start:
            return 0.0
        if self.lam_schedule == "linear":
            return self.lam * min(1.0, (update - start + 1) / max(1, self.updates - start))
        return self.lam


@dataclass
class Rollouts:
    """The decisions of one update's episodes."""

    batch: Batch
    actions: torch.Tensor
    logp: torch.Tensor
    episode: torch.Tensor
    source_hw: list[tuple[int, int]]
    teacher: list[Attribution | None]
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
        self.reference = copy.deepcopy(self.policy).eval() if config.kl_coef > 0 else None
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.teacher = make_teacher(config.teacher) if config.reward == "iapo" else None
        self.divergence = divergence(config.divergence)
        self.max_divergence = float(self.divergence([1.0, 0.0], [0.0, 1.0]))  # disjoint supports
        n = config.questions * config.group_size
        kwargs = {"view_size": self.policy.config.view_size, **config.env_kwargs}
        self.envs = [gym.make(config.env_id, **kwargs) for _ in range(n)]
        self.eval_env = gym.make(config.env_id, **{**kwargs, "split": "test"})
        self.rng = np.random.default_rng(config.seed)
        self.sampler = torch.Generator().manual_seed(config.seed)
        self.update = 0
        self.env_steps = 0
        self.history: list[dict[str, float]] = []

    # -- 1. rollouts ---------------------------------------------------------------------------------
    def collect(self) -> Rollouts:
        c, pol = self.config, self.policy
        lo, hi = self.envs[0].unwrapped.scene_id_range()
        scene_ids = self.rng.integers(lo, hi, size=c.questions)
        obs, infos = [], []
        for i, env in enumerate(self.envs):
            o, info = env.reset(options={"scene_id": int(scene_ids[i // c.group_size])})
            obs.append(o)
            infos.append(info)
        n = len(self.envs)
        alive = list(range(n))
        rows: list[Batch] = []
        acts, logps, episode, hw, teacher = [], [], [], [], []
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
            for i, call in zip(alive, pol.to_calls(a)):
                scene = infos[i]["scene"]
                hw.append((scene.height, scene.width))
                if self.teacher is not None:  # teacher-forced on the student's call
                    teacher.append(self.teacher.attribute(obs[i], infos[i], pol.layout(c.grid), call))
                else:
                    teacher.append(None)
                obs[i], _, term, trunc, infos[i] = self.envs[i].step(call)
                steps += 1
                for k, v in infos[i]["reward_terms"].items():
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
        return Rollouts(Batch.cat(rows), torch.cat(acts), torch.cat(logps), torch.tensor(episode), hw, teacher,
                        returns, groups, terms, correct, answered, calls, steps)

    # -- 2. rewards ----------------------------------------------------------------------------------
    def alignment(self, ro: Rollouts) -> np.ndarray:
        """Per decision: divergence(teacher, student) at the configured granularity."""
        return attribution_divergences(self.policy, ro.batch, ro.actions, ro.source_hw, ro.teacher, self.config)

    # -- 3 + 4. advantages and update -----------------------------------------------------------------
    def advantages(self, ro: Rollouts, penalty: np.ndarray | None, lam: float) -> torch.Tensor:
        """Per-episode advantages, normalised within each group.

        ``normalise="sum"`` (the paper's): normalise ``return - lam * penalty``. In a group whose outcomes all
        tie (common while success is rare) this is ``-normalised(penalty)`` whatever ``lam`` is, so the
        attribution term alone then steers the policy. ``"separate"``: ``normalised(return) - lam *
        normalised(penalty)``, which keeps the attribution term ``lam`` times smaller than the outcome's.
        """
        groups = torch.tensor(ro.groups)
        returns = torch.tensor(ro.returns, dtype=torch.float32)
        if penalty is None or lam == 0:
            return group_advantages(returns, groups)
        pen = torch.tensor(penalty, dtype=torch.float32)
        if self.config.normalise == "sum":
            return group_advantages(returns - lam * pen, groups)
        return group_advantages(returns, groups) - lam * group_advantages(pen, groups)

    def optimise(self, ro: Rollouts, adv_episode: torch.Tensor) -> dict[str, float]:
        c, pol = self.config, self.policy
        adv = adv_episode[ro.episode]
        n = len(ro.actions)
        losses = []
        for _ in range(c.epochs):
            order = torch.randperm(n, generator=self.sampler)
            for start in range(0, n, c.minibatch):
                idx = order[start : start + c.minibatch]
                mb = ro.batch.index(idx)
                logp, ent = pol.log_prob(mb, ro.actions[idx])
                loss = clipped_surrogate(logp, ro.logp[idx], adv[idx], c.clip) - c.ent_coef * ent.mean()
                if self.reference is not None:
                    with torch.no_grad():
                        ref, _ = self.reference.log_prob(mb, ro.actions[idx])
                    loss = loss + c.kl_coef * kl_to_reference(logp, ref)
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(pol.parameters(), 1.0)
                self.optimizer.step()
                losses.append(float(loss.detach()))
        return {"loss": float(np.mean(losses)), "advantage_abs": float(adv.abs().mean())}

    def step(self) -> dict[str, float]:
        """One update: rollouts, rewards, advantages, optimisation. Returns the logged row."""
        c = self.config
        t0 = time.perf_counter()
        ro = self.collect()
        lam = c.lam_at(self.update)
        row: dict[str, float] = {"update": self.update + 1, "lam": lam}
        rewards = ro.returns.copy()
        per_episode = None
        if self.teacher is not None:
            t1 = time.perf_counter()
            per_decision = self.alignment(ro)
            row["attribution_s"] = time.perf_counter() - t1
            per_episode = np.array([per_decision[(ro.episode == i).numpy()].mean() for i in range(len(rewards))])
            # an episode that never answered owes the decision the teacher would have made: as far from it
            # as a divergence goes (else endless tool calls that copy the teacher's look are the cheapest)
            per_episode[~ro.answered] = np.maximum(per_episode[~ro.answered], self.max_divergence)
            rewards = rewards - lam * per_episode
            row["alignment"] = float(per_decision.mean())
            row["reward_attribution"] = float((-lam * per_episode).mean())
        row.update(self.optimise(ro, self.advantages(ro, per_episode, lam)))
        self.update += 1
        self.env_steps += ro.steps
        n_ep = len(ro.returns)
        row.update({
            "env_steps": self.env_steps, "accuracy": float(ro.correct.mean()), "reward": float(rewards.mean()),
            "update_s": time.perf_counter() - t0,
        })
        for k in ("outcome", "format"):
            row[f"reward_{k}"] = float(np.mean([t.get(k, 0.0) for t in ro.terms]))
        for tool in (*self.policy.codec.tools, "invalid"):
            row[f"calls_{tool}"] = sum(cl.get(tool, 0) for cl in ro.tool_calls) / n_ep
        return row

    def warm_start(self) -> list[float]:
        """Behaviour cloning on oracle episodes before RL (the supervised cold start)."""
        from .imitation import behaviour_cloning, oracle_dataset

        c = self.config
        data = oracle_dataset(self.policy, c.env_id, c.warm_start_episodes, c.env_kwargs, seed=c.seed)
        return behaviour_cloning(self.policy, data, epochs=c.warm_start_epochs, lr=c.lr, seed=c.seed)

    def evaluate(self, episodes: int | None = None) -> float:
        """Greedy accuracy on fixed test-split scenes (the same items at every evaluation)."""
        from .base import run_episode
        from .compact_agent import CompactAgent

        agent = CompactAgent(self.policy, greedy=True)
        lo, hi = self.eval_env.unwrapped.scene_id_range()
        ids = np.random.default_rng(12345).integers(lo, hi, size=episodes or self.config.eval_episodes)
        return float(np.mean([run_episode(self.eval_env, agent, options={"scene_id": int(s)}).correct for s in ids]))

    def train(self, on_update: Callable[[GroupTrainer, dict[str, float]], None] | None = None,
              progress: bool = True) -> list[dict[str, float]]:
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
            bar.set_postfix(acc=f"{row['accuracy']:.2f}", **({"eval": f"{row['eval_accuracy']:.2f}"} if "eval_accuracy" in row else {}))
            if on_update is not None:
                on_update(self, row)
        bar.close()
        return self.history


def attribution_divergences(policy: CompactPolicy, batch: Batch, actions: torch.Tensor,
                            source_hw: Sequence[tuple[int, int]], teachers: Sequence[Attribution | None],
                            config: TrainConfig) -> np.ndarray:
    """Per decision, ``config.divergence`` between the teacher's attribution and the policy's own attribution
    of its action (``config.attribution_method``), at ``config.granularity``, in each teacher's layout."""
    if any(t is None for t in teachers):
        raise ValueError("every decision needs a teacher attribution to compute its divergence")
    layout = teachers[0].layout  # type: ignore[union-attr]
    kw = {"n_steps": config.attribution_steps} if config.attribution_method == "integrated_gradients" else {}
    scores = policy.attribution(batch, actions, source_hw, layout.grid, config.attribution_method, **kw)
    diverge = divergence(config.divergence)
    return np.array([
        diverge(t.vector(config.granularity), Attribution.from_scores(t.layout, s, allow_uniform=True).vector(config.granularity))
        for s, t in zip(scores, teachers)  # type: ignore[union-attr]
    ])


# -- learning curves ----------------------------------------------------------------------------------
def write_curves(history: list[dict[str, float]], out_dir: str | Path, title: str = "") -> tuple[Path, Path]:
    """``curves.csv`` and ``curves.png`` (accuracy, reward terms, alignment, tool calls per tool)."""
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
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.6))
    panels = [
        ("accuracy", [k for k in ("accuracy", "eval_accuracy") if k in keys]),
        ("reward terms", [k for k in keys if k.startswith("reward")]),
        ("alignment (divergence, lower is better)", [k for k in ("alignment",) if k in keys]),
        ("tool calls per episode", [k for k in keys if k.startswith("calls_")]),
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
    buf2 = io.BytesIO()
    fig.savefig(buf2, format="png", dpi=90)
    plt.close(fig)
    png_path = atomic_write_bytes(out_dir / "curves.png", buf2.getvalue())
    return csv_path, png_path


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
