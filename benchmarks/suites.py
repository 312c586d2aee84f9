"""Benchmark suites: YAML files naming task families (or a data set), fixed seeds and env settings.

A suite file (``benchmarks/suites/<name>.yaml``, or any path) looks like::

    name: six                       # optional; defaults to the file name without .yaml
    description: The six headline families at test-split scene ids.
    seeds: [0, 1, 2]                # the published seed list; `iapo-bench run --seeds` may override it
    episodes: 20                    # episodes per seed per family
    difficulty: 1                   # 0 easy, 1 default, 2 hard
    ocr: scene                      # OCR backend: scene or easyocr
    view_size: 128                  # pixels of the agent's glance and crop images
    budget: 6                       # optional: tool calls per episode (default: the env's own)
    teacher: oracle                 # optional: a teacher spec; agents that can attribute report alignment
    alignment: {divergence: kl, over: blocks}   # with a teacher: the one alignment measure of every agent
    families: [HBar, VBar, SciChart, TableQA, TableSynth, TableFact]

or, instead of ``families``, a data set served by ``DatasetVQA-v0``::

    dataset: {source: easy-vqa, split: test}          # or {path: my_data.jsonl, family: MyData}

or public test sets read from a local copy by ``RealVQA-v0`` (``iapo-bench run ... --data-dir DIR``), one
column each; ``NAME:SPLIT`` picks a split other than the set's evaluation split::

    datasets: [refocus-hbar, refocus-vbar, vwtq, vwtq-syn, vtabfact, charxiv]
    episodes: all                   # every usable item of each set, per seed

The items of a cell (one family, one seed) are a pure function of the seed and the family's *name*
(:meth:`Suite.items`), so every run, machine and backend plays the same items, and a family plays the
same items in every suite that contains it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from iapo_gym.envs.public import DATASETS
from iapo_gym.registration import FAMILIES
from iapo_gym.specs import UntrustedCodeError
from iapo_gym.teachers import check_teacher_spec
from iapo_gym.tools import OCR_BACKENDS
from iapo_gym.attribution.metrics import DIVERGENCES
from iapo_gym.trajectory import ALIGNMENT_OVER
from iapo_gym.validation import check_int

SUITES_DIR = Path(__file__).resolve().parent / "suites"
"""Where the built-in suites live (installed as package data)."""
ITEMS_VERSION = 1
"""Version of the item-derivation rule; part of a suite's fingerprint, so a changed rule never mixes results."""
DATASET_SOURCES = ("easy-vqa",)
SMALL_RANGE = 1 << 24
"""Id ranges up to this size (data sets) are shuffled whole, so a cell never repeats an item; larger ones
(procedural scene ids) are sampled, where a repeat is astronomically unlikely and is redrawn anyway."""

_KEYS = (
    "name",
    "description",
    "seeds",
    "episodes",
    "difficulty",
    "ocr",
    "view_size",
    "budget",
    "families",
    "dataset",
    "datasets",
    "teacher",
    "alignment",
)
_DATASET_KEYS = ("source", "split", "path", "family")


class SuiteError(ValueError):
    """A suite that does not exist or does not validate; the message says what would be right."""


@dataclass(frozen=True)
class Task:
    """One column of a suite: the family label results are reported under, and how to make its env."""

    family: str
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Suite:
    """A validated suite (see the module docstring for the YAML form)."""

    name: str
    description: str
    seeds: tuple[int, ...]
    episodes: int | None
    """Episodes per seed per family; ``None`` (``episodes: all``): every item of a data set."""
    difficulty: int
    ocr: str
    view_size: int
    tasks: tuple[Task, ...]
    budget: int | None = None
    dataset: dict[str, Any] | None = field(default=None, hash=False)
    path: str = ""
    teacher: str | None = None
    datasets: tuple[str, ...] = ()
    """Public test sets (``RealVQA-v0``) this suite reads from ``--data-dir``."""
    alignment: dict[str, str] | None = field(default=None, hash=False)
    """With a teacher: how the alignment column is measured, the same for every agent
    (:meth:`~iapo_gym.trajectory.Trajectory.alignment`: ``divergence`` and ``over``); default KL over blocks."""

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(t.family for t in self.tasks)

    def task(self, family: str) -> Task:
        for t in self.tasks:
            if t.family == family:
                return t
        raise SuiteError(f"suite {self.name!r} has no family {family!r}; it has {', '.join(self.families)}")

    def with_episodes(self, episodes: int | None) -> Suite:
        """This suite with ``episodes`` per seed per family (``None``: unchanged)."""
        if episodes is None:
            return self
        _check_int("episodes", episodes, 1, where="--episodes")
        return replace(self, episodes=int(episodes))

    def with_data_dir(self, data_dir: str | os.PathLike[str] | None) -> Suite:
        """This suite reading its public data sets from ``data_dir`` (``--data-dir``); a suite without data
        sets is returned as it is. Raises :class:`SuiteError` when the suite needs a folder and none is given."""
        if not self.datasets:
            return self
        if data_dir is None:
            raise SuiteError(
                f"suite {self.name!r} reads local copies of public test sets ({', '.join(self.datasets)}): "
                f"give --data-dir DIR (data_dir=), the folder you unpacked them into (see the README, "
                f"'Public test sets')"
            )
        folder = Path(data_dir).expanduser().resolve()
        if not folder.is_dir():
            raise SuiteError(f"--data-dir {str(data_dir)!r} is not a folder; give the folder you unpacked the data sets into")
        tasks = tuple(replace(t, env_kwargs={**t.env_kwargs, "data_dir": str(folder)}) for t in self.tasks)
        return replace(self, tasks=tasks)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides which items are played and how (not the seeds: more seeds only add cells).

        Stored with the results: a rerun into the same folder with other settings is refused instead of
        silently mixing two benchmarks under one name.
        """
        return {
            "items_version": ITEMS_VERSION,
            "episodes": self.episodes,
            "difficulty": self.difficulty,
            "ocr": self.ocr,
            "view_size": self.view_size,
            "budget": self.budget,
            "families": list(self.families),
            "dataset": self.dataset,
            **({"datasets": list(self.datasets)} if self.datasets else {}),
            **({"teacher": self.teacher, "alignment": self.alignment} if self.teacher else {}),
        }

    def items(self, family: str, seed: int, id_range: tuple[int, int]) -> list[int]:
        """The item (scene) ids of cell (``family``, ``seed``): ``episodes`` distinct ids in ``id_range`` (all of
        them, shuffled, when ``episodes`` is ``None``).

        A NumPy generator seeded with ``(seed, crc32(family))`` draws them; both rules keep the first ``k``
        items of a longer cell equal to a shorter cell's, so adding episodes only adds items.
        """
        lo, hi = id_range
        n = hi - lo
        episodes = n if self.episodes is None else self.episodes
        if n < episodes:
            raise SuiteError(f"suite {self.name!r}: family {family!r} has only {n} items; episodes is {self.episodes}")
        rng = np.random.default_rng([int(seed), zlib.crc32(family.encode("utf-8"))])
        if n <= SMALL_RANGE:
            return [lo + int(i) for i in rng.permutation(n)[:episodes]]
        out: list[int] = []
        seen: set[int] = set()
        while len(out) < episodes:
            item = int(rng.integers(lo, hi))
            if item not in seen:
                seen.add(item)
                out.append(item)
        return out


# -- loading ------------------------------------------------------------------------------------------------
def builtin_suites() -> tuple[str, ...]:
    """Names of the suites shipped with the package."""
    return tuple(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))


def suite_path(name_or_path: str | Path) -> Path:
    """The YAML file of a built-in suite name, or the given path; a clear :class:`SuiteError` otherwise."""
    text = str(name_or_path)
    builtin = SUITES_DIR / f"{text}.yaml"
    if "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml")) and builtin.is_file():
        return builtin
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text.endswith((".yaml", ".yml")) or "/" in text:
        raise SuiteError(
            f"suite file not found: {text!r}; give a built-in suite ({', '.join(builtin_suites())}) or an existing .yaml file"
        )
    raise SuiteError(
        f"unknown suite {text!r}; built-in suites: {', '.join(builtin_suites())}; or give a path to a suite .yaml file"
    )


def load_suite(suite: str | Path | Suite, *, trust_remote_code: bool = False) -> Suite:
    """A built-in suite by name, or a suite YAML file by path, validated (see the module docstring).

    A ``teacher`` naming a class outside ``iapo_gym`` is refused unless ``trust_remote_code=True``."""
    if isinstance(suite, Suite):
        return suite
    path = suite_path(suite)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite file {path}: not valid YAML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite file {path}: cannot read it ({exc})") from None
    return parse_suite(raw, path, trust_remote_code=trust_remote_code)


def parse_suite(raw: Any, path: Path, *, trust_remote_code: bool = False) -> Suite:
    """Validate the parsed YAML of a suite file; every error names the file, the key and what would be right.
    Nothing the file names is imported (see :func:`~iapo_gym.teachers.check_teacher_spec`)."""
    where = f"suite file {path}"
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expected a mapping with keys like seeds, episodes, families; got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(_KEYS))
    if unknown:
        raise SuiteError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(_KEYS)}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\\n"):
        raise SuiteError(f"{where}: 'name' must be a one-line string without slashes; got {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(f"{where}: 'description' must be a string; got {description!r}")
    for key in ("seeds", "episodes"):
        if key not in raw:
            raise SuiteError(f"{where}: missing key {key!r} (for example seeds: [0, 1, 2] and episodes: 20)")
    seeds = check_seeds(raw["seeds"], where=f"{where}: 'seeds'")
    episodes = None if raw["episodes"] == "all" else _check_int("episodes", raw["episodes"], 1, where=where)
    difficulty = _check_int("difficulty", raw.get("difficulty", 1), 0, 2, where=where)
    view_size = _check_int("view_size", raw.get("view_size", 128), 16, where=where)
    budget = raw.get("budget")
    if budget is not None:
        budget = _check_int("budget", budget, 1, where=where)
    ocr = raw.get("ocr", "scene")
    if ocr not in OCR_BACKENDS:
        raise SuiteError(f"{where}: 'ocr' must be one of {', '.join(OCR_BACKENDS)}; got {ocr!r}")
    common: dict[str, Any] = {"difficulty": difficulty, "ocr": ocr, "view_size": view_size}
    if budget is not None:
        common["budget"] = budget
    teacher = raw.get("teacher")
    if teacher is not None and (not isinstance(teacher, str) or not teacher.strip()):
        raise SuiteError(f"{where}: 'teacher' must be a teacher spec such as oracle or model:PATH; got {teacher!r}")
    if teacher is not None:
        try:
            check_teacher_spec(teacher, where=f"{where}: 'teacher'", trust_remote_code=trust_remote_code)
        except UntrustedCodeError as exc:
            raise SuiteError(str(exc)) from None

    alignment = _alignment(raw.get("alignment"), teacher, where)
    given = [k for k in ("families", "dataset", "datasets") if k in raw]
    if len(given) != 1:
        raise SuiteError(
            f"{where}: give exactly one of 'families' (a list like [HBar, TableQA]), 'dataset' "
            f"(like {{source: easy-vqa, split: test}}) or 'datasets' (public sets like [refocus-hbar, charxiv])"
        )
    if episodes is None and "datasets" not in raw:
        raise SuiteError(f"{where}: 'episodes: all' applies to public data sets ('datasets'); give a number of episodes")
    dataset: dict[str, Any] | None = None
    datasets: tuple[str, ...] = ()
    if "datasets" in raw:
        datasets, tasks = _real_tasks(raw["datasets"], common, where)
    elif "families" in raw:
        fams = raw["families"]
        if not isinstance(fams, list) or not fams:
            raise SuiteError(
                f"{where}: 'families' must be a non-empty list of family names from {', '.join(FAMILIES)}; got {fams!r}"
            )
        for fam in fams:
            if fam not in FAMILIES:
                raise SuiteError(f"{where}: unknown family {fam!r}; known: {', '.join(FAMILIES)}")
        if len(set(fams)) != len(fams):
            raise SuiteError(f"{where}: 'families' lists a family twice: {fams!r}")
        tasks = tuple(Task(f, f"VisualToolVQA-{f}-v0", {"split": "test", **common}) for f in fams)
    else:
        dataset, task = _dataset_task(raw["dataset"], path, common, where)
        tasks = (task,)
    return Suite(
        name=name,
        description=description.strip(),
        seeds=seeds,
        episodes=episodes,
        difficulty=difficulty,
        ocr=ocr,
        view_size=view_size,
        tasks=tasks,
        budget=budget,
        dataset=dataset,
        path=str(path),
        teacher=teacher,
        datasets=datasets,
        alignment=alignment,
    )


DEFAULT_ALIGNMENT = {"divergence": "kl", "over": "blocks"}


def _alignment(spec: Any, teacher: str | None, where: str) -> dict[str, str] | None:
    """The suite's alignment measure (``None`` without a teacher), checked."""
    if spec is None:
        return dict(DEFAULT_ALIGNMENT) if teacher else None
    if not teacher:
        raise SuiteError(f"{where}: 'alignment' needs a 'teacher' (it measures agents against the teacher's attribution)")
    if not isinstance(spec, dict) or set(spec) - set(DEFAULT_ALIGNMENT):
        raise SuiteError(f"{where}: 'alignment' must be a mapping like {{divergence: kl, over: blocks}}; got {spec!r}")
    out = {**DEFAULT_ALIGNMENT, **{str(k): str(v) for k, v in spec.items()}}
    if out["divergence"] not in DIVERGENCES:
        raise SuiteError(f"{where}: alignment divergence must be one of {', '.join(DIVERGENCES)}; got {out['divergence']!r}")
    if out["over"] not in ALIGNMENT_OVER:
        raise SuiteError(f"{where}: alignment over must be one of {', '.join(ALIGNMENT_OVER)}; got {out['over']!r}")
    return out


def _real_tasks(spec: Any, common: dict[str, Any], where: str) -> tuple[tuple[str, ...], tuple[Task, ...]]:
    """One ``RealVQA-v0`` task per public set named ``NAME`` or ``NAME:SPLIT`` (``data_dir`` comes later,
    from :meth:`Suite.with_data_dir`)."""
    if not isinstance(spec, list) or not spec or not all(isinstance(x, str) and x.strip() for x in spec):
        raise SuiteError(
            f"{where}: 'datasets' must be a non-empty list of public set names from {', '.join(DATASETS)}; got {spec!r}"
        )
    if len(set(spec)) != len(spec):
        raise SuiteError(f"{where}: 'datasets' lists a set twice: {spec!r}")
    kwargs = {k: v for k, v in common.items() if k != "difficulty"}
    tasks = []
    for entry in spec:
        name, _, split = entry.partition(":")
        if name not in DATASETS:
            raise SuiteError(f"{where}: unknown public set {name!r}; known: {', '.join(DATASETS)}")
        if split and split not in DATASETS[name].files:
            raise SuiteError(f"{where}: set {name!r} has no split {split!r}; its splits: {', '.join(DATASETS[name].files)}")
        tasks.append(Task(entry, "RealVQA-v0", {"dataset": name, **({"split": split} if split else {}), **kwargs}))
    return tuple(spec), tuple(tasks)


def _dataset_task(spec: Any, path: Path, common: dict[str, Any], where: str) -> tuple[dict[str, Any], Task]:
    if not isinstance(spec, dict):
        raise SuiteError(
            f"{where}: 'dataset' must be a mapping like {{source: easy-vqa, split: test}} or {{path: data.jsonl}}; got {spec!r}"
        )
    unknown = sorted(set(map(str, spec)) - set(_DATASET_KEYS))
    if unknown:
        raise SuiteError(f"{where}: unknown dataset key {unknown[0]!r}; allowed: {', '.join(_DATASET_KEYS)}")
    if ("source" in spec) == ("path" in spec):
        raise SuiteError(
            f"{where}: 'dataset' needs exactly one of 'source' ({', '.join(DATASET_SOURCES)}) or 'path' (a JSONL file)"
        )
    family = spec.get("family")
    if family is not None and (not isinstance(family, str) or not family.strip()):
        raise SuiteError(
            f"{where}: dataset 'family' must be a non-empty string (the column name on the leaderboard); got {family!r}"
        )
    if "source" in spec:
        source, split = spec["source"], spec.get("split", "test")
        if source not in DATASET_SOURCES:
            raise SuiteError(
                f"{where}: unknown dataset source {source!r}; known: {', '.join(DATASET_SOURCES)} (or give path: to a JSONL file)"
            )
        if split not in ("train", "test"):
            raise SuiteError(f"{where}: dataset 'split' must be 'train' or 'test'; got {split!r}")
        kwargs = {"source": source, "split": split, **common}
        family = family or "EasyVQA"
        normalized = {"source": source, "split": split, "family": family}
    else:
        if "split" in spec:
            raise SuiteError(f"{where}: 'split' applies to a dataset source only; for a JSONL file give the test file's path")
        rel = spec["path"]
        if not isinstance(rel, str) or not rel.strip():
            raise SuiteError(f"{where}: dataset 'path' must be a JSONL file path (relative to the suite file); got {rel!r}")
        file = (path.parent / rel).resolve()
        if not file.is_file():
            raise SuiteError(
                f"{where}: dataset file not found: {str(file)!r} (relative paths are resolved against the suite file's folder)"
            )
        kwargs = {"path": str(file), **common}
        family = family or Path(rel).stem
        normalized = {"path": rel, "family": family}
    kwargs.pop("difficulty")  # a data set has no difficulty; the env ignores it, the fingerprint keeps it
    return normalized, Task(family, "DatasetVQA-v0", kwargs)


def _check_int(key: str, value: Any, lo: int, hi: int | None = None, *, where: str) -> int:
    """:func:`~iapo_gym.validation.check_int` for a suite key, raising :class:`SuiteError` that names ``where``."""
    return check_int(f"{where}: {key!r}", value, lo, hi, numeric=True, error=SuiteError)


def check_seeds(seeds: Any, *, where: str = "seeds") -> tuple[int, ...]:
    """A non-empty list of distinct non-negative integer seeds, as a tuple."""
    if not isinstance(seeds, Sequence) or isinstance(seeds, str) or not seeds:
        raise SuiteError(f"{where} must be a non-empty list of non-negative integers like [0, 1, 2]; got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise SuiteError(f"{where} must be non-negative integers like [0, 1, 2]; got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"{where} lists a seed twice: {list(seeds)!r}")
    return tuple(int(s) for s in seeds)


__all__ = [
    "SUITES_DIR",
    "Suite",
    "SuiteError",
    "Task",
    "builtin_suites",
    "check_seeds",
    "load_suite",
    "parse_suite",
    "suite_path",
]
