"""Does IAPO learn better than its sparse baseline? A paired comparison at equal env steps.

Run (the figures in ``docs/learning/``)::

    python -m iapo_gym.benchmarks.learning --out docs/learning --seeds 0 1 2 3 4 --jobs 2

Design:

- **Starting points** (``--starts``): each seed's policy is behaviour-cloned from the oracle first, from a
  ``weak`` start (100 oracle episodes, 12 epochs) and a ``strong`` one (2,000 episodes, 30 epochs: about five
  CPU-minutes, and above 0.6 average test accuracy). Every method of a seed starts from the
  *same* warm start (a paired design: differences between methods are not differences between starts).
- **Methods** (``--methods``, :data:`METHODS`): ``grpo`` (sparse outcome reward), ``paper`` (the paper's
  preset: IG, block-level KL, reward form), ``default`` (the library's ``iapo``), and ablations that each
  change one thing of the default (form, granularity, weighting, λ, teacher).
- **Task**: the six headline families at difficulty 0, equal env steps (``--steps``), test accuracy of
  the greedy policy on the same ``--eval-episodes`` test items per family.
- **Conditions** (``--condition``, :data:`CONDITIONS`): ``iid`` (the test split of the training
  distribution), ``shift`` (trained where a marker points at the asked bar or row, tested where it points
  at another: :mod:`iapo_gym.envs.shortcuts`; the in-distribution figures beside) and ``sim2real`` (trained on
  the procedural families, tested on every item of public-format sets under ``--data-dir``). One command per
  condition, each with its own ``--out``::

      python -m iapo_gym.benchmarks.learning --condition shift --out docs/learning/shift --starts weak strong --jobs 2
      iapo-bench fixtures --out runs/fixtures24 --items 24
      python -m iapo_gym.benchmarks.learning --condition sim2real --data-dir runs/fixtures24 --out docs/learning/sim2real

  ``--style random`` trains on randomly styled scenes, ``--copy-slots 48`` gives the policy a copy pointer.
- **Per family**: accuracy, the evidence hit rate (a zoom/OCR/focus region covering half an evidence box),
  the read rate (a tool output holding an accepted answer) and the accuracy given a read
  (:mod:`iapo_gym.diagnostics`), so a method's effect on *looking* and on *reading* is visible.

Every finished run is appended to ``runs.jsonl`` at once; a rerun skips what is there (resumable). The
behaviour-cloned starts are kept under ``--out``/``warm/`` (compact-agent checkpoints), so methods added by a later
invocation start from the same weights as the ones already run (the pairing holds across invocations).
Writes ``summary.json`` (``{"<start>": {"<method>": {"<seed>": accuracy}}}`` plus seconds per update and
the paired differences), ``table.md``, ``curves.png`` and ``differences.png`` (each method's paired
difference to GRPO with its CI) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch
from iapo_gym.agents.base import evaluate_episodes
from iapo_gym.agents.compact import CompactConfig, CompactPolicy
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.imitation import imitate_oracle
from iapo_gym.agents.trainer import GroupTrainer, TrainConfig

from iapo_gym import HEADLINE_FAMILIES
from iapo_gym.envs.families import FAMILY_ENVS
from iapo_gym.envs.shortcuts import PLACES
from iapo_gym.envs.public import DATASETS
from iapo_gym.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from iapo_gym.scene import Region, Scene
from iapo_gym.trajectory import Trajectory, TrajectoryRecorder
from iapo_gym.viz import figure_png

if TYPE_CHECKING:
    from iapo_gym.envs.base import ToolVQAEnv

STARTS = {"weak": 100, "strong": 2000}
"""Starting point -> oracle episodes behaviour-cloned before RL."""
WARM_EPOCHS = {"weak": 12, "strong": 30}
"""Starting point -> epochs of behaviour cloning over those episodes."""

OUTSIDE = {"outside": 0.1, "grid": 32, "pixel_baseline": "white", "method": "integrated_gradients"}
"""The objective fields of the ``outside`` methods (added to the default's)."""
METHODS: dict[str, dict[str, Any]] = {
    "grpo": {"reward": "grpo"},
    "paper": {"reward": "iapo", "preset": "paper"},
    "default": {"reward": "iapo", "preset": "default"},
    # both held near the behaviour-cloned start by a KL to it (GRPO's reference term)
    "grpo-kl": {"reward": "grpo", "kl_coef": 0.1},
    "default-kl": {"reward": "iapo", "preset": "default", "kl_coef": 0.1},
    # both with a 10x entropy bonus (the trainer's is 0.001): does keeping the policy exploring let the outcome
    # reward keep teaching (a weak start's groups stop disagreeing as its entropy falls)? Measured (weak start,
    # seed 0): too much for either, the entropy runs away and both end at 0 accuracy (docs/results.md)
    "grpo-ent": {"reward": "grpo", "ent_coef": 0.01},
    "default-ent": {"reward": "iapo", "preset": "default", "ent_coef": 0.01},
    # ablations: one change to the default each
    "credit": {"reward": "iapo", "iapo": {"form": "credit", "lam": 0.5}},
    "reward-form": {"reward": "iapo", "iapo": {"form": "reward", "lam": 0.5}},
    "loss-blocks": {"reward": "iapo", "iapo": {"granularity": "blocks"}},
    "loss-kl": {"reward": "iapo", "iapo": {"divergence": "kl"}},
    "loss-everywhere": {"reward": "iapo", "iapo": {"weighting": "all"}},
    # the loss only where the outcome has something to say: decisions with a positive advantage (a success in a
    # group that also failed; none in a group whose rollouts all agree, as DAPO drops such groups)
    "loss-advantage": {"reward": "iapo", "iapo": {"weighting": "advantage"}},
    # the default's loss, but no step of it in an update whose advantages are all 0 (GRPO's steps there are
    # its entropy bonus alone: do they keep a weak start exploring?). Measured: its entropy stays up, it still
    # finds no bar from the weak start (docs/results.md, "Why a weak start's IAPO run stops learning")
    "loss-signal": {"reward": "iapo", "iapo": {"weighting": "signal"}},
    # the default with the policy's and the alignment's gradients each clipped to a norm of 1 (not their sum):
    # does the alignment's share of one clipped step starve a weak start's rare successes? Measured: no, it
    # finds no bar either (docs/results.md, "Why a weak start's IAPO run stops learning")
    "default-clip-apart": {"reward": "iapo", "preset": "default", "clip_apart": True},
    "loss-tools-only": {"reward": "iapo", "iapo": {"decisions": "tools"}},
    "lam-0.2": {"reward": "iapo", "iapo": {"lam": 0.2}},
    "lam-5": {"reward": "iapo", "iapo": {"lam": 5.0}},
    "model-teacher": {"reward": "iapo", "teacher": "model:{teacher}"},
    # the compared image grid: the teacher's map at a resolution that can say where (default 4 cells a side)
    "grid-8": {"reward": "iapo", "iapo": {"grid": 8}},
    "grid-16": {"reward": "iapo", "iapo": {"grid": 16}},
    "grid-32": {"reward": "iapo", "iapo": {"grid": 32}},
    # the teacher's looking-phase map on what finds the evidence (the coloured bar, the named label), not on it
    "default-locators": {"reward": "iapo", "teacher": "oracle:locators"},
    # an absolute penalty on the student's attribution where the teacher puts none (Ross et al.'s form), on a
    # grid fine enough to tell the evidence from its neighbours, from a white baseline (black ink counts), by
    # integrated gradients (a confident decision's input gradient saturates: it cannot see a cue it follows)
    "outside": {"reward": "iapo", "iapo": OUTSIDE},
    "outside-locators": {"reward": "iapo", "teacher": "oracle:locators", "iapo": OUTSIDE},
    "outside-locators-0.5": {"reward": "iapo", "teacher": "oracle:locators", "iapo": {**OUTSIDE, "outside": 0.5}},
    "outside-gxi": {"reward": "iapo", "teacher": "oracle:locators", "iapo": {**OUTSIDE, "method": "gradient_x_input"}},
}
"""Method name -> :class:`TrainConfig` fields. ``{teacher}`` is the model teacher's checkpoint folder."""

SHORTCUT_FAMILIES = tuple(f for f in HEADLINE_FAMILIES if FAMILY_ENVS[f].offers_shortcut)
"""The headline families that can plant the shortcut marker (:mod:`iapo_gym.envs.shortcuts`)."""
REAL_SETS = tuple(DATASETS)
"""The sim-to-real test sets by default: the paper's six and VTool-R1's two (their public formats)."""
REAL_EPISODES_SEED = 777
"""Generator of the fixed test items (the same for every method, seed and invocation)."""


@dataclass(frozen=True)
class TestSet:
    """One column of the results: an env and the kwargs of its test items."""

    name: str
    env_id: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Condition:
    """In-distribution: train on the six headline families, test on their test split.

    A condition says what the policy trains on (:meth:`train_kwargs`), what it is tested on (:meth:`tests`)
    and, where those differ, the test items drawn like the training ones (:meth:`iid_tests`). ``settings``
    holds the run's options (``difficulty``, ``cue_rate``, ``style``, ``data_dir``)."""

    name: str = "iid"
    description: str = "in-distribution: test items drawn like the training ones"
    families: tuple[str, ...] = tuple(HEADLINE_FAMILIES)

    def train_kwargs(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Env kwargs of the training distribution (the warm start's and RL's)."""
        style = settings.get("style", "fixed")
        return {
            "task": list(self.families),
            "difficulty": settings["difficulty"],
            **({"style": style} if style != "fixed" else {}),
        }

    def _procedural(self, settings: dict[str, Any], **extra: Any) -> list[TestSet]:
        kw = {k: v for k, v in self.train_kwargs(settings).items() if k != "task"}
        return [TestSet(f, f"VisualToolVQA-{f}-v0", {**kw, **extra, "split": "test"}) for f in self.families]

    def tests(self, settings: dict[str, Any]) -> list[TestSet]:
        """This condition's test items, one :class:`TestSet` per column."""
        return self._procedural(settings)

    def iid_tests(self, settings: dict[str, Any]) -> list[TestSet] | None:
        """Test items drawn like the training ones, where :meth:`tests` are not (``None``: they are)."""
        return None

    def curve_kwargs(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Kwargs (over the training env's) of the mixture whose test accuracy the curves follow."""
        return {}

    def tag(self, settings: dict[str, Any]) -> str:
        """What sets this condition's warm start apart in its checkpoint's name."""
        style = settings.get("style", "fixed")
        return "" if style == "fixed" else f"-style{style}"


@dataclass(frozen=True)
class ShortcutShift(Condition):
    """Shortcut-shifted: trained where a marker points at the asked bar or row (in a share ``cue_rate`` of
    the scenes), tested where it points at another one; the in-distribution test keeps the training cue."""

    name: str = "shift"
    description: str = (
        "shortcut-shifted: trained with a marker on the asked bar or row (at the cue rate), tested with it on another one"
    )
    families: tuple[str, ...] = SHORTCUT_FAMILIES

    @staticmethod
    def place_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
        """The env's ``shortcut_place`` where the settings move the marker off its default place."""
        place = settings.get("cue_place", SETTING_DEFAULTS["cue_place"])
        return {"shortcut_place": place} if place != SETTING_DEFAULTS["cue_place"] else {}

    def train_kwargs(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            **super().train_kwargs(settings),
            "shortcut": float(settings.get("cue_rate", 1.0)),
            **self.place_kwargs(settings),
        }

    def tests(self, settings: dict[str, Any]) -> list[TestSet]:
        return self._procedural(settings, shortcut=0.0, shortcut_shift=True)

    def iid_tests(self, settings: dict[str, Any]) -> list[TestSet] | None:
        return self._procedural(settings)

    def curve_kwargs(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"shortcut": 0.0, "shortcut_shift": True, **self.place_kwargs(settings)}

    def tag(self, settings: dict[str, Any]) -> str:
        at = "".join(f"-at-{place}" for place in self.place_kwargs(settings).values())
        return f"-shortcut{float(settings.get('cue_rate', 1.0)):g}{at}" + super().tag(settings)


@dataclass(frozen=True)
class SimToReal(Condition):
    """Sim-to-real: trained on the procedural headline families, tested on charts and tables in the public
    test sets' formats (every item of each set under ``data_dir``: ``iapo-bench fixtures`` builds some);
    the in-distribution test is the procedural test split."""

    name: str = "sim2real"
    description: str = "sim-to-real: trained on the procedural families, tested on real-format sets under --data-dir"

    def tests(self, settings: dict[str, Any]) -> list[TestSet]:
        data_dir = settings.get("data_dir")
        if not data_dir:
            raise ValueError("the sim2real condition needs --data-dir (a folder of public-format sets, e.g. iapo-bench fixtures)")
        return [TestSet(name, "RealVQA-v0", {"dataset": name, "data_dir": str(data_dir)}) for name in settings["real_sets"]]

    def iid_tests(self, settings: dict[str, Any]) -> list[TestSet] | None:
        return self._procedural(settings)


CONDITIONS: dict[str, Condition] = {c.name: c for c in (Condition(), ShortcutShift(), SimToReal())}
"""``--condition`` -> :class:`Condition`."""


def _followed_decoy(scene: Scene, trajectory: Trajectory) -> bool | None:
    """Whether a region the agent chose is centred on the item a misleading shortcut marker points at
    (``None``: no misleading marker in this scene)."""
    decoy = scene.meta.get("decoy")
    if not isinstance(decoy, Region):
        return None
    x0, y0, x1, y1 = decoy.box
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for step in trajectory.steps for b in step.boxes]
    return any(x0 <= x <= x1 and y0 <= y <= y1 for x, y in centres)


def evaluate(
    policy: CompactPolicy, tests: Sequence[TestSet] | None = None, episodes: int = 50
) -> dict[str, dict[str, list[Any]]]:
    """Per test set (default: the headline families' test splits at difficulty 0): correct, evidence hit and
    read (True/False/None, :mod:`iapo_gym.diagnostics`) and, where a shortcut marker misleads, whether the
    agent looked where it points (``decoy``), for the greedy policy on fixed test items: ``episodes`` drawn
    from the split, or every item of a set that has no more."""
    tests = tests if tests is not None else Condition()._procedural({"difficulty": 0})
    agent = CompactAgent(policy, greedy=True)
    out: dict[str, dict[str, list[Any]]] = {}
    for test in tests:
        env = gym.make(test.env_id, **{**test.kwargs, "view_size": policy.config.view_size})
        lo, hi = cast("ToolVQAEnv", env.unwrapped).scene_id_range()
        rng = np.random.default_rng(REAL_EPISODES_SEED)
        if hi - lo <= episodes:
            ids = list(range(lo, hi))
        elif hi - lo < 1 << 20:  # a data set: distinct items
            ids = sorted(int(i) for i in rng.choice(np.arange(lo, hi), size=episodes, replace=False))
        else:
            ids = [int(s) for s in rng.integers(lo, hi, size=episodes)]
        rec: dict[str, list[Any]] = {"correct": [], "hit": [], "read": [], "decoy": []}
        recorder = TrajectoryRecorder(env)
        for _ in evaluate_episodes(agent, recorder, scene_ids=ids):
            t = recorder.trajectory
            rec["correct"].append(bool(t.correct))
            rec["hit"].append(t.evidence_hit)
            rec["read"].append(t.evidence_read)
            scene = cast("ToolVQAEnv", env.unwrapped).scene
            rec["decoy"].append(None if scene is None else _followed_decoy(scene, t))
        out[test.name] = rec
    return out


def _warm(
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any],
    epochs: int,
    cache: Path | None = None,
    tag: str = "",
    copy_slots: int = 0,
) -> CompactPolicy:
    """The behaviour-cloned start of a seed, cloned from oracle episodes of the training distribution
    ``env_kwargs`` (a policy that can copy answers with ``copy_slots``); kept as a compact-agent checkpoint
    under ``cache`` (if given) and reloaded by a rerun, so that methods added later start from the very same
    weights as the ones already run."""
    torch.manual_seed(seed)
    policy = CompactPolicy(CompactConfig(copy_slots=copy_slots))
    difficulty = env_kwargs["difficulty"]
    tag += f"-copy{copy_slots}" if copy_slots else ""
    path = None if cache is None else cache / f"bc-{episodes}ep-{epochs}epochs-d{difficulty}{tag}-seed{seed}"
    if path is not None and path.exists():
        return CompactAgent.load_checkpoint(path).policy
    imitate_oracle(policy, "VisualToolVQA-v0", episodes, env_kwargs, epochs=epochs, data_seed=10_000 + 7919 * seed, seed=seed)
    if path is not None:
        CompactAgent(policy).save(path)
    return policy


SETTING_DEFAULTS: dict[str, Any] = {"cue_place": "value"}
"""Row settings added after runs were kept: a row without one was made with this value."""


def _row_settings(args: dict[str, Any]) -> dict[str, Any]:
    """The options that make runs comparable: one ``--out`` holds runs of one set of them."""
    keys = ("condition", "difficulty", "cue_rate", "cue_place", "style", "copy_slots", "data_dir", "steps")
    return {k: args.get(k, SETTING_DEFAULTS.get(k)) for k in keys}


def _settings_differ(theirs: dict[str, Any], mine: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``key -> (theirs, mine)`` for each row setting that differs (a missing one read as its default)."""
    out = {}
    for k, v in mine.items():
        there = theirs.get(k, SETTING_DEFAULTS.get(k))
        if there != v:
            out[k] = (there, v)
    return out


def method_config(
    name: str,
    env_kwargs: dict[str, Any],
    steps: int,
    seed: int,
    teacher: str | None = None,
    eval_every: int = 10**6,
    eval_episodes: int = 8,
) -> TrainConfig:
    """The training config of method ``name`` (:data:`METHODS`) on ``env_kwargs`` for ``steps`` env steps
    (``teacher``: the model-teacher checkpoint of the ``model-teacher`` method)."""
    fields = json.loads(json.dumps(METHODS[name]).replace("{teacher}", str(teacher or "")))
    return TrainConfig(
        env_id="VisualToolVQA-v0",
        env_kwargs=env_kwargs,
        updates=10**6,
        max_env_steps=steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        seed=seed,
        **fields,
    )


def run_cell(start: str, seed: int, methods: Sequence[str], args: dict[str, Any]) -> list[dict[str, Any]]:
    """One (start, seed): the shared warm start, then every method from a copy of it."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    episodes = args.get("start_episodes", STARTS)[start]
    epochs = args.get("warm_epochs", WARM_EPOCHS)[start]
    cache = Path(args["warm_cache"]) if args.get("warm_cache") else None
    condition = CONDITIONS[args.get("condition", "iid")]
    train_kwargs = condition.train_kwargs(args)
    copy_slots = int(args.get("copy_slots", 0))
    warm = _warm(episodes, seed, train_kwargs, epochs, cache, tag=condition.tag(args), copy_slots=copy_slots)
    warm_s = time.perf_counter() - t0
    tests, iid_tests = condition.tests(args), condition.iid_tests(args)

    def finals(policy: CompactPolicy) -> dict[str, Any]:
        """The final test accuracy on the condition's test items and, where they differ, on the training distribution's."""
        out = {"final": evaluate(policy, tests, args["eval_episodes"])}
        if iid_tests is not None:
            out["final_iid"] = evaluate(policy, iid_tests, args["eval_episodes"])
        return out

    rows = [
        {
            "start": start,
            "seed": seed,
            "method": "warm start",
            "condition": condition.name,
            "settings": _row_settings(args),
            "warm_start_s": warm_s,
            "episodes": episodes,
            "epochs": epochs,
            **finals(warm),
            "history": [],
        }
    ]
    for name in methods:
        cfg = method_config(
            name, train_kwargs, args["steps"], seed, args.get("teacher"), args["eval_every"], args["curve_episodes"]
        )
        trainer = GroupTrainer(cfg, copy.deepcopy(warm))
        # the curves follow the condition's test items (the trainer's default: the training distribution's)
        curve = {**train_kwargs, **condition.curve_kwargs(args), "view_size": trainer.policy.config.view_size, "split": "test"}
        trainer.eval_env = gym.make(cfg.env_id, **curve)
        history = trainer.train(progress=False)
        rows.append(
            {
                "start": start,
                "seed": seed,
                "method": name,
                "condition": condition.name,
                "settings": _row_settings(args),
                "config": cfg.objective.to_dict() if cfg.reward == "iapo" else {},
                **finals(trainer.policy),
                "history": history,
                "update_s": float(np.mean([r["update_s"] for r in history])),
            }
        )
    return rows


# -- statistics -------------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], n_boot: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI."""
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return float(arr[0]), float(arr[0]), float(arr[0])
    boots = np.random.default_rng(seed).choice(arr, size=(n_boot, len(arr)), replace=True).mean(axis=1)
    return float(arr.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def average(row: dict[str, Any], key: str = "final") -> float:
    """A run's average test accuracy over the families (each family weighs the same): on the condition's
    test items (``final``) or on test items drawn like the training ones (``final_iid``, where they differ)."""
    return float(np.mean([np.mean(f["correct"]) for f in row[key].values()]))


def _paired(per: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Each method's paired difference to GRPO over the seeds both have, with its 95% CI."""
    out: dict[str, Any] = {}
    base = per.get("grpo", {})
    for method, accs in per.items():
        seeds = sorted(set(base) & set(accs))
        if method == "grpo" or not seeds:
            continue
        m, lo, hi = mean_ci([accs[s] - base[s] for s in seeds])
        out[method] = {"difference": m, "ci": [lo, hi], "seeds": len(seeds)}
    return out


def steps_to_reach(history: list[dict[str, Any]], target: float) -> float | None:
    """First env-step count at which the evaluated (test) accuracy reaches ``target``."""
    for r in history:
        if "eval_accuracy" in r and r["eval_accuracy"] >= target:
            return float(r["env_steps"])
    return None


def curve_area(history: list[dict[str, Any]]) -> float | None:
    """The area under a run's test-accuracy curve over its env steps, divided by the steps it spans: the
    run's mean test accuracy while it learned (``None`` with fewer than two evaluations)."""
    points = [(float(r["env_steps"]), float(r["eval_accuracy"])) for r in history if "eval_accuracy" in r]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    x, y = np.array(points).T
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def _rate(values: list[Any]) -> float | None:
    known = [bool(v) for v in values if v is not None]
    return float(np.mean(known)) if known else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json``: per start and method, per-seed average accuracy, s/update, paired differences."""
    out: dict[str, Any] = {}
    for start in dict.fromkeys(r["start"] for r in rows):
        sel = [r for r in rows if r["start"] == start]
        per: dict[str, Any] = {}
        for method in dict.fromkeys(r["method"] for r in sel):
            per[method] = {str(r["seed"]): average(r) for r in sel if r["method"] == method}
        out[start] = per
    timing: dict[str, float] = {}
    for method in dict.fromkeys(r["method"] for r in rows if "update_s" in r):
        timing[method] = float(np.mean([r["update_s"] for r in rows if r["method"] == method and "update_s" in r]))
    paired = {start: _paired(per) for start, per in out.items()}
    areas = {
        start: {
            method: {
                str(r["seed"]): a
                for r in rows
                if (r["start"], r["method"]) == (start, method) and (a := curve_area(r["history"])) is not None
            }
            for method in per
        }
        for start, per in out.items()
    }
    summary = {**out, "s_per_update": timing, "paired_difference_vs_grpo": paired, "curve_area": areas}
    if any("final_iid" in r for r in rows):  # a shifted condition: the training distribution's test items too
        iid = {
            start: {
                method: {str(r["seed"]): average(r, "final_iid") for r in rows if (r["start"], r["method"]) == (start, method)}
                for method in per
            }
            for start, per in out.items()
        }
        summary["in_distribution"] = iid
        summary["in_distribution_paired_difference_vs_grpo"] = {start: _paired(per) for start, per in iid.items()}
    return summary


def report(rows: list[dict[str, Any]], steps: int, summary: dict[str, Any]) -> str:
    """The Markdown table: per start, per method, per family accuracy, hit / read / acc|read, average
    (``summary``: :func:`summarise` of the same rows)."""
    lines = []
    for start in dict.fromkeys(r["start"] for r in rows):
        sel = [r for r in rows if r["start"] == start]
        methods = list(dict.fromkeys(r["method"] for r in sel))
        grpo_final = np.mean(list(summary[start].get("grpo", {"": np.nan}).values()))
        warm = next((r for r in sel if r["method"] == "warm start"), {})
        cloned = f"{warm.get('episodes', STARTS.get(start, '?'))} oracle episodes" + (
            f" x {warm['epochs']} epochs" if "epochs" in warm else ""
        )
        families = list(sel[0]["final"])
        shifted = "in_distribution" in summary
        decoys = any(d is not None for r in sel for f in r["final"].values() for d in f.get("decoy", []))
        lines += [
            f"\n### start: {start} ({cloned} behaviour-cloned), {steps} env steps\n",
            "| method | "
            + " | ".join(families)
            + " | average [95% CI over seeds] | vs grpo (paired) [95% CI] | "
            + ("in-distribution average | vs grpo (paired) | " if shifted else "")
            + "s/update | area under the curve | env steps to GRPO's final |",
            "|---|" + "---|" * (len(families) + 5 + 2 * shifted),
        ]

        def paired_cell(key: str, method: str) -> str:
            pd = summary[key].get(start, {}).get(method)
            return f"{pd['difference']:+.3f} [{pd['ci'][0]:+.3f}, {pd['ci'][1]:+.3f}]" if pd else ""

        for method in methods:
            runs = [r for r in sel if r["method"] == method]
            cells = [f"{np.mean([np.mean(r['final'][f]['correct']) for r in runs]):.2f}" for f in families]
            m, lo, hi = mean_ci([average(r) for r in runs])
            diff = paired_cell("paired_difference_vs_grpo", method)
            if shifted:
                im, ilo, ihi = mean_ci([average(r, "final_iid") for r in runs])
                diff += f" | {im:.3f} [{ilo:.3f}, {ihi:.3f}] | " + paired_cell(
                    "in_distribution_paired_difference_vs_grpo", method
                )
            speed = f"{summary['s_per_update'][method]:.2f}" if method in summary["s_per_update"] else ""
            reach = (
                ""
                if method in ("warm start", "grpo")
                else ", ".join("never" if (s := steps_to_reach(r["history"], grpo_final)) is None else str(int(s)) for r in runs)
            )
            areas = [a for r in runs if (a := curve_area(r["history"])) is not None]
            area = f"{np.mean(areas):.3f}" if areas else ""
            lines.append(
                f"| {method} | " + " | ".join(cells) + f" | {m:.3f} [{lo:.3f}, {hi:.3f}] | {diff} | {speed} | {area} | {reach} |"
            )
        lines += [
            "",
            "Looking and reading (pooled over seeds): hit / read / accuracy given a read"
            + (" / looked where the misleading marker points" if decoys else "")
            + ", per family",
            "",
            "| method | " + " | ".join(families) + " |",
            "|---|" + "---|" * len(families),
        ]
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        for method in methods:
            runs = [r for r in sel if r["method"] == method]
            cells = []
            for f in families:
                hit = _rate([h for r in runs for h in r["final"][f]["hit"]])
                read = _rate([x for r in runs for x in r["final"][f]["read"]])
                given = [c for r in runs for c, x in zip(r["final"][f]["correct"], r["final"][f]["read"]) if x]
                cell = f"{fmt(hit)} / {fmt(read)} / {fmt(float(np.mean(given)) if given else None)}"
                if decoys:
                    cell += f" / {fmt(_rate([d for r in runs for d in r['final'][f].get('decoy', [])]))}"
                cells.append(cell)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += _dynamics(sel, methods)
    return "\n".join(lines).strip() + "\n"


DYNAMICS = {
    "advantage_abs": "mean \\|advantage\\|",
    "no_signal": "updates with no signal",
    "entropy": "entropy",
    "grad_norm_policy": "policy-gradient norm",
    "grad_norm_alignment": "alignment-gradient norm",
    "grad_cos": "cosine",
}


def _phase(history: list[dict[str, Any]], key: str, last: bool) -> float | None:
    """The mean of a logged key over the first (or last) fifth of a run's env steps; ``no_signal``: the share
    of those updates whose advantages were all 0 (every group agreed: nothing to learn from)."""
    if not history:
        return None
    end = float(history[-1]["env_steps"])
    part = [h for h in history if (h["env_steps"] > 0.8 * end if last else h["env_steps"] <= 0.2 * end)]
    if key == "no_signal":
        values = [float(h["advantage_abs"] < 1e-9) for h in part if "advantage_abs" in h]
    else:
        values = [float(h[key]) for h in part if key in h and np.isfinite(h[key])]
    return float(np.mean(values)) if values else None


def _dynamics(runs: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """The learning-signal table: per method, mean over seeds of what the trainer logged, first fifth of the
    env steps -> last fifth (the keys some run has)."""
    keys = [k for k in DYNAMICS if any(_phase(r["history"], k, False) is not None for r in runs)]
    if not keys:
        return []
    lines = [
        "",
        "Learning signal and gradients (mean over seeds; first fifth of the env steps -> last fifth; gradient "
        "norms before clipping to 1, the cosine between the policy's and the alignment's)",
        "",
        "| method | " + " | ".join(DYNAMICS[k] for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for method in methods:
        sel = [r for r in runs if r["method"] == method and r["history"]]
        if not sel:
            continue
        cells = []
        for k in keys:
            ends = [[v for r in sel if (v := _phase(r["history"], k, last)) is not None] for last in (False, True)]
            cells.append(" -> ".join(f"{np.mean(e):.3f}" for e in ends) if all(ends) else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


SMOOTH = 25  # updates in the running mean of the per-update curves


def _running_mean(points: list[tuple[float, float]], window: int) -> list[tuple[float, float]]:
    """``(x, y)`` points as a running mean of ``window`` of them (fewer where there are fewer), each at the
    x of its last point."""
    w = max(1, min(window, len(points)))
    ys = np.convolve([y for _, y in points], np.ones(w) / w, "valid")
    return [(x, float(y)) for (x, _), y in zip(points[w - 1 :], ys)]


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = list(dict.fromkeys(r["start"] for r in rows))
    panels = [
        ("eval_accuracy", "test accuracy (greedy, mixture)"),
        ("tool_calls", "tool calls per episode (zoom+ocr+focus)"),
        ("alignment", "alignment: divergence to the teacher"),
        ("advantage_abs", "learning signal: mean |advantage|"),
    ]
    if any("entropy" in h for r in rows for h in r["history"]):  # logged since the trainer logs it
        panels.append(("entropy", "policy entropy on its own decisions"))
    fig, axes = plt.subplots(len(starts), len(panels), figsize=(5.2 * len(panels), 4 * len(starts)), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "warm start"))
    pairs = plt.cm.tab20.colors  # type: ignore[attr-defined]  # a ListedColormap; the stub: Colormap
    palette = pairs[0::2] + pairs[1::2]  # ten distinct hues first, then their light shades
    colors = {m: palette[k % len(palette)] for k, m in enumerate(methods)}  # any number of methods
    for row_axes, start in zip(axes, starts):
        for method in methods:
            runs = [r for r in rows if r["start"] == start and r["method"] == method]
            if not runs:
                continue
            for k, (key, title) in enumerate(panels):
                curves = []
                for r in runs:
                    pts = [
                        (
                            h["env_steps"],
                            h.get("calls_zoom", 0) + h.get("calls_ocr", 0) + h.get("calls_focus", 0)
                            if key == "tool_calls"
                            else h.get(key),
                        )
                        for h in r["history"]
                    ]
                    pts = [(x, y) for x, y in pts if y is not None and np.isfinite(y)]
                    if pts and key != "eval_accuracy":  # per-update values: a running mean
                        pts = _running_mean(pts, SMOOTH)
                    if pts:
                        curves.append(pts)
                if not curves:
                    continue
                grid = np.linspace(max(p[0][0] for p in curves), min(p[-1][0] for p in curves), 40)  # no extrapolation
                ys = np.array([np.interp(grid, [x for x, _ in p], [y for _, y in p]) for p in curves])
                ax = row_axes[k]
                ax.plot(grid, ys.mean(0), color=colors[method], label=method)
                if len(ys) > 1:
                    ax.fill_between(grid, ys.min(0), ys.max(0), color=colors[method], alpha=0.12)
                ax.set_title(f"{start} start: {title}", fontsize=10)
                ax.set_xlabel("env steps")
        row_axes[0].legend(fontsize=8)
    condition = CONDITIONS[str(rows[0].get("condition", "iid"))]
    tested = {"iid": "six headline families", "shift": "five bar and table families, the shortcut marker misleading"}
    fig.suptitle(
        f"IAPO vs GRPO, test: {tested.get(condition.name, 'the procedural mixture')} (difficulty "
        f"{rows[0].get('settings', {}).get('difficulty', 0)}); lines: mean over seeds, bands: min-max; "
        f"per-update curves: running mean of {SMOOTH} updates"
    )
    fig.tight_layout()
    png = figure_png(fig, dpi=90)
    plt.close(fig)
    return atomic_write_bytes(out / "curves.png", png)


def plot_differences(summary: dict[str, Any], out: Path) -> Path:
    """``differences.png``: per start, each method's paired difference to GRPO (mean and 95% CI over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = summary["paired_difference_vs_grpo"]
    starts = [s for s in paired if paired[s]] or ["(none)"]
    height = max(2.5, 0.45 * max((len(paired.get(s, {})) for s in starts), default=1) + 1.2)
    fig, axes = plt.subplots(1, len(starts), figsize=(6.5 * len(starts), height), squeeze=False)
    for ax, start in zip(axes[0], starts):
        items = list(paired.get(start, {}).items())
        for k, (method, d) in enumerate(items):
            lo, hi = d["ci"]
            color = "tab:gray" if d["seeds"] < 2 else "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray"
            ax.errorbar(
                d["difference"], k, xerr=[[d["difference"] - lo], [hi - d["difference"]]], fmt="o", color=color, capsize=3
            )
        ax.set_yticks(range(len(items)), [f"{m} (n={d['seeds']})" for m, d in items], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.invert_yaxis()
        ax.set_xlabel("average test accuracy minus GRPO's (paired per seed)")
        ax.set_title(f"{start} start", fontsize=10)
    fig.suptitle(
        "Paired difference to GRPO, 95% bootstrap CI over seeds\n(green: CI above 0, red: below; grey with one seed)", fontsize=10
    )
    fig.tight_layout()
    png = figure_png(fig, dpi=90)
    plt.close(fig)
    return atomic_write_bytes(out / "differences.png", png)


def load_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_all(rows: list[dict[str, Any]], out: Path, steps: int) -> str:
    summary = summarise(rows)
    atomic_write_json(out / "summary.json", summary)
    table = report(rows, steps, summary)
    atomic_write_text(out / "table.md", table)
    plot(rows, out)
    plot_differences(summary, out)
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/learning"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--starts", nargs="+", default=list(STARTS), choices=list(STARTS))
    p.add_argument(
        "--methods",
        nargs="*",
        default=["grpo", "paper", "default"],
        choices=list(METHODS),
        help="methods to train from each warm start (none: evaluate the warm starts only)",
    )
    p.add_argument("--steps", type=int, default=6000, help="env steps per run")
    p.add_argument("--difficulty", type=int, default=0)
    p.add_argument(
        "--condition",
        default="iid",
        choices=list(CONDITIONS),
        help="test condition: " + "; ".join(f"{c.name}: {c.description}" for c in CONDITIONS.values()),
    )
    p.add_argument(
        "--cue-rate", type=float, default=1.0, help="shift: share of training scenes whose marker points at the asked item"
    )
    p.add_argument(
        "--cue-place",
        default="value",
        choices=list(PLACES),
        help="shift: where the marker goes: beside the printed value (the evidence) or beside the item's name",
    )
    p.add_argument("--data-dir", type=Path, help="sim2real: folder of public-format test sets (iapo-bench fixtures builds some)")
    p.add_argument(
        "--real-sets",
        nargs="+",
        default=list(REAL_SETS),
        help="sim2real: the sets under --data-dir to test on (default: %(default)s)",
    )
    p.add_argument("--style", default="fixed", choices=["fixed", "random"], help="rendering of the training scenes")
    p.add_argument(
        "--copy-slots",
        type=int,
        default=0,
        help="tool-output tokens the policy may copy as its answer (0: a closed answer vocabulary)",
    )
    p.add_argument(
        "--warm-epochs",
        nargs=2,
        type=int,
        metavar=("WEAK", "STRONG"),
        default=list(WARM_EPOCHS.values()),
        help="epochs of behaviour cloning of the weak and strong starts (default: 12 30)",
    )
    p.add_argument("--eval-episodes", type=int, default=50, help="test items per family for the final accuracy")
    p.add_argument("--eval-every", type=int, default=10, help="updates between test-accuracy points of the curves")
    p.add_argument("--curve-episodes", type=int, default=48, help="test items (mixture) per curve point")
    p.add_argument("--teacher", help="model-teacher checkpoint for the model-teacher method (iapo-train --agent teacher)")
    p.add_argument("--jobs", type=int, default=1, help="(start, seed) cells run in parallel processes")
    p.add_argument(
        "--start-episodes",
        nargs=2,
        type=int,
        metavar=("WEAK", "STRONG"),
        default=list(STARTS.values()),
        help="oracle episodes of the weak and strong starts (default: 100 2000)",
    )
    args = p.parse_args(argv)
    if "model-teacher" in args.methods and not args.teacher:
        p.error("--methods model-teacher needs --teacher PATH (train one with: iapo-train --agent teacher --out PATH)")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    rows = load_runs(log)
    other = sorted({str(r.get("condition", "iid")) for r in rows} - {args.condition})
    if other:
        p.error(f"{log} holds runs of condition {', '.join(other)}; give each --condition its own --out")
    done = {(r["start"], r["seed"], r["method"]) for r in rows}
    todo = [(s, seed, [m for m in args.methods if (s, seed, m) not in done]) for s in args.starts for seed in args.seeds]
    todo = [t for t in todo if t[2] or (t[0], t[1], "warm start") not in done]
    keys = (
        "steps",
        "difficulty",
        "eval_episodes",
        "eval_every",
        "curve_episodes",
        "teacher",
        "condition",
        "cue_rate",
        "cue_place",
    )
    settings = {k: getattr(args, k) for k in (*keys, "style", "copy_slots", "real_sets")}
    settings["data_dir"] = str(args.data_dir) if args.data_dir else None
    if args.condition == "sim2real" and not args.data_dir:
        p.error("--condition sim2real needs --data-dir (build test sets with: iapo-bench fixtures --out DIR)")
    mine = _row_settings(settings)
    clash = next((d for r in rows if "settings" in r and (d := _settings_differ(r["settings"], mine))), None)
    if clash is not None:
        diff = ", ".join(f"{k}: {there!r} there, {here!r} here" for k, (there, here) in clash.items())
        p.error(f"{log} holds runs made with other settings ({diff}); give these settings their own --out")
    settings["start_episodes"] = dict(zip(STARTS, args.start_episodes))
    settings["warm_epochs"] = dict(zip(STARTS, args.warm_epochs))
    settings["warm_cache"] = str(args.out / "warm")
    from tqdm.auto import tqdm

    def keep(cell_rows: list[dict[str, Any]]) -> None:
        new = [r for r in cell_rows if (r["start"], r["seed"], r["method"]) not in done]
        rows.extend(new)
        done.update((r["start"], r["seed"], r["method"]) for r in new)
        atomic_write_text(log, "".join(json.dumps(r) + "\n" for r in rows))  # each finished cell kept at once
        write_all(rows, args.out, args.steps)

    bar = tqdm(total=len(todo), desc="(start, seed) cells")
    if args.jobs <= 1:
        for s, seed, methods in todo:
            keep(run_cell(s, seed, methods, settings))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_cell, s, seed, methods, settings) for s, seed, methods in todo]
            for fut in as_completed(futures):
                keep(fut.result())
                bar.update()
    bar.close()
    if not rows:
        raise SystemExit("nothing to report: no runs finished")
    print(write_all(rows, args.out, args.steps))
    print(f"figures in {args.out}/ (summary.json, table.md, curves.png, differences.png)")


if __name__ == "__main__":
    main()
