"""Run agents × a suite × seeds into a results store, locally (processes) or on Ray, then render the leaderboard.

The unit of work is a *cell*: one agent, one suite, one family, one seed, playing the suite's episodes on
the items :meth:`Suite.items` derives from the seed. :func:`run_cell` is a pure function of its
:class:`CellTask` (the agent is built fresh in the worker and global RNGs are seeded from the cell), so a
cell gives the same rows on any backend, in any order, after any interruption. Workers only compute; the
parent alone writes to SQLite, one transaction per finished cell.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
from iapo_gym.agents import Agent, make_agent, run_episode
from iapo_gym.agents.base import SERVED_PREFIX, VLM_PREFIX, EpisodeResult, is_vlm_folder, run_episode_async
from iapo_gym.agents.checkpoint import checkpoint_hash, folder_hash, load_agent, read_config

import iapo_gym
from iapo_gym.io import recover_dir
from iapo_gym.trajectory import Trajectory, TrajectoryRecorder
from iapo_gym.validation import check_int

from .errors import BenchmarkError
from .judge import judge_suite
from .store import DB_NAME, CellRow, EpisodeRow, RequestCache, ResultsStore, StoreError, check_store
from .suites import Suite, SuiteError, check_seeds, load_suite

if TYPE_CHECKING:
    from iapo_gym.envs.base import ToolVQAEnv
    from iapo_gym.agents.served import OpenAIAgent
    from iapo_gym.envs.real import RealVQAEnv

BACKENDS = ("local", "ray")


# -- agents -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent anywhere: ``kind`` is ``name`` (registered), ``spec`` ('module:Class' or
    'file.py:Class', file paths made absolute) or ``checkpoint`` (a folder for ``load_agent``, which imports a
    class its config names outside ``iapo_gym`` only with ``trust_remote_code``)."""

    label: str
    kind: str
    source: str
    checkpoint_hash: str | None = None
    trust_remote_code: bool = False
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    """Keyword arguments of the agent's constructor (a served model's generation settings)."""
    config: dict[str, Any] | None = field(default=None, hash=False)
    """A served model's settings as stored with the results (``OpenAIAgent.config()``: never its key)."""


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.sep in text or "/" in text


def resolve_agent(text: str, *, trust_remote_code: bool = False, served: dict[str, Any] | None = None) -> AgentSpec:
    """Parse ``[NAME=]AGENT`` where AGENT is a registered name, a checkpoint folder, ``openai:MODEL@URL`` (a
    served model; ``served`` holds its settings), ``module:Class`` or ``path/file.py:Class``; build the agent
    once, so a bad one fails here, before any result is written (a served model is not asked anything).

    A class typed here is the user's and is imported; a class that a checkpoint's config names is imported
    only if it is inside ``iapo_gym`` or registered, or with ``trust_remote_code=True``."""
    label: str | None = None
    head, sep, tail = text.partition("=")
    if sep and head and not any(c in head for c in "/\\:") and tail:
        label, text = head, tail
    if not text:
        raise BenchmarkError(
            "empty agent name; give a built-in name (random, no-tool, oracle), a checkpoint folder or 'module:Class'"
        )
    if text.startswith(SERVED_PREFIX):  # a model behind an OpenAI-compatible API: its settings are stored
        options = dict(served or {})
        agent = _build(AgentSpec(text, "spec", text, options=options), text)
        config = cast("OpenAIAgent", agent).config()
        close = getattr(agent, "close", None)
        if callable(close):
            close()
        return AgentSpec(label or f"{SERVED_PREFIX}{config['model']}", "spec", text, options=options, config=config)
    path = recover_dir(Path(text).expanduser())  # a save killed half-way is finished first
    if text.startswith(VLM_PREFIX) or (path.is_dir() and is_vlm_folder(path)):  # a local VLM folder
        folder = Path(text[len(VLM_PREFIX) :] if text.startswith(VLM_PREFIX) else text).expanduser()
        source = f"{VLM_PREFIX}{folder.resolve()}"
        agent = _build(AgentSpec(source, "spec", source), text)
        spec = AgentSpec(label or f"{VLM_PREFIX}{folder.name}", "spec", source, folder_hash(folder))
    elif path.is_dir():
        try:
            read_config(path, trust_remote_code=trust_remote_code)  # clear errors; imports nothing
            digest = checkpoint_hash(path)
            agent = load_agent(path, trust_remote_code=trust_remote_code)
        except (ValueError, OSError) as exc:
            raise BenchmarkError(f"agent {text!r}: cannot load the checkpoint folder: {exc}") from None
        spec = AgentSpec(label or path.resolve().name, "checkpoint", str(path.resolve()), digest, trust_remote_code)
    elif ":" in text:
        module, _, cls = text.rpartition(":")
        if module.endswith(".py"):  # workers may run elsewhere (another cwd, a Ray worker): make it absolute
            if not Path(module).expanduser().is_file():
                raise BenchmarkError(f"agent {text!r}: no file {module!r}; give 'path/to/file.py:Class' with an existing file")
            source = f"{Path(module).expanduser().resolve()}:{cls}"
            default_label = f"{Path(module).name}:{cls}"
        else:
            source, default_label = text, text
        agent = _build(AgentSpec(default_label, "spec", source), text)
        spec = AgentSpec(label or default_label, "spec", source)
    elif _looks_like_path(text):
        raise BenchmarkError(
            f"agent {text!r}: no such checkpoint folder (a checkpoint is a folder with config.json and model.safetensors)"
        )
    else:
        agent = _build(AgentSpec(text, "name", text), text)
        spec = AgentSpec(label or text, "name", text)
    if not isinstance(agent, Agent):
        raise BenchmarkError(f"agent {text!r} ({type(agent).__name__}) needs act(observation, info) -> str and reset()")
    return spec


def _build(spec: AgentSpec, shown: str | None = None) -> Agent:
    try:
        if spec.kind == "checkpoint":
            return load_agent(spec.source, trust_remote_code=spec.trust_remote_code)
        return make_agent(spec.source, **spec.options)
    except (ValueError, TypeError, ImportError) as exc:
        msg = str(exc)
        if spec.kind == "name" and msg.startswith("unknown agent"):
            msg += ", or a checkpoint folder"
        raise BenchmarkError(f"agent {shown or spec.source!r}: {msg}") from None


def build_agent(spec: AgentSpec) -> Agent:
    """A fresh agent from its spec (in the worker that plays the cell)."""
    return _build(spec)


# -- one cell -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to play one cell; picklable, so it travels to processes and Ray tasks."""

    agent: AgentSpec
    suite: str
    family: str
    seed: int
    env_id: str
    env_kwargs: dict[str, Any] = field(hash=False)
    items: tuple[int, ...] = ()
    backend: str = "local"
    teacher: str | None = None
    store: str | None = None
    """The results store, for a served model's request cache (each answer is stored as it arrives)."""
    alignment: dict[str, str] | None = field(default=None, hash=False)
    """With a teacher: the suite's alignment measure (:meth:`~iapo_gym.trajectory.Trajectory.alignment`)."""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.agent.label, self.suite, self.family, self.seed)


@dataclass
class CellResult:
    cell: CellRow
    episodes: list[EpisodeRow]
    trajectories: list[Trajectory] = field(default_factory=list)
    """One per episode, in order (what each step sent and got back, for drawing it later)."""


_ENVS: dict[tuple[str, str, str | None, int], gym.Env] = {}


def _env(env_id: str, kwargs: dict[str, Any], teacher: str | None = None, lane: int = 0) -> gym.Env:
    """One env per (id, settings, teacher, lane) per process: construction (easy-VQA's records, OCR engines,
    teachers) is the slow part; ``lane`` tells apart the envs of concurrent episodes. With a teacher, the env is
    wrapped so each step carries the teacher's attribution of the action taken."""
    key = (env_id, json.dumps(kwargs, sort_keys=True), teacher, lane)
    if key not in _ENVS:
        if teacher:  # the wrapper goes around the same (cached) bare env that planning read its range from
            from iapo_gym.wrappers import TeacherAttributionWrapper

            bare = _env(env_id, kwargs, None, lane)
            _ENVS[key] = TeacherAttributionWrapper(bare, teacher=teacher, coef=0.0)  # attribution only: the env's reward
        else:
            _ENVS[key] = gym.make(env_id, **kwargs)
    return _ENVS[key]


def _seed_globals(task: CellTask) -> None:
    """Seed the global RNGs from the cell, so agents that use them are reproducible too."""
    seed = zlib.crc32(f"{task.agent.label}|{task.suite}|{task.family}|{task.seed}".encode())
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def run_cell(task: CellTask) -> CellResult:
    """Play every episode of one cell and return its rows (no I/O: the parent stores them; a served model's
    answers go to the store's request cache as they arrive).

    A served model (an agent with ``session()``) plays the cell's episodes concurrently, each on its own env,
    at most its ``max_in_flight`` requests at a time; an episode whose request fails for good is returned with
    its error (the next run replays the cell). When every episode of the cell failed so, and for a reason every
    request would meet (no response: the server is down; HTTP 401/403/404: the key, URL or model name), the
    cell fails, which stops the run with that message."""
    t0 = time.perf_counter()
    _seed_globals(task)
    agent = build_agent(task.agent)  # fresh per cell: no state leaks between cells, whatever the schedule
    if callable(getattr(agent, "session", None)):
        rows, trajectories = _play_served(task, agent)
    else:
        env = _env(task.env_id, task.env_kwargs, task.teacher)
        # with a teacher, the agent's own attribution of each decision is recorded beside the teacher's
        attribute = getattr(agent, "attribute", None) if task.teacher else None
        recorder = TrajectoryRecorder(env, attribute=attribute if callable(attribute) else None)
        rows, trajectories = [], []
        for k, item in enumerate(task.items):
            e0 = time.perf_counter()
            # each decision attributed once (by the recorder); the alignment is measured from that record
            result = run_episode(recorder, agent, seed=item, options={"scene_id": item}, align=False)
            trajectory = recorder.trajectory
            trajectories.append(trajectory)
            align = trajectory.alignment(**task.alignment) if task.alignment else None
            rows.append(_row(task, k, item, result, trajectory, time.perf_counter() - e0, align))
    cell = CellRow(
        task.agent.label,
        task.suite,
        task.family,
        task.seed,
        len(rows),
        time.perf_counter() - t0,
        task.backend,
        iapo_gym.__version__,
        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return CellResult(cell, rows, trajectories)


def _row(
    task: CellTask, k: int, item: int, result: EpisodeResult, trajectory: Trajectory, wall: float, alignment: float | None = None
) -> EpisodeRow:
    return EpisodeRow(
        agent=task.agent.label,
        checkpoint_hash=task.agent.checkpoint_hash,
        suite=task.suite,
        family=task.family,
        seed=task.seed,
        episode=k,
        item=int(item),
        correct=bool(result.correct),
        reward=float(result.reward),
        reward_terms={str(n): float(v) for n, v in result.reward_terms.items()},
        tool_calls={str(n): int(v) for n, v in result.tool_calls.items()},
        invalid_calls=int(result.invalid_calls),
        steps=int(result.steps),
        alignment=None if alignment is None else float(alignment),
        wall_time=wall,
        ocr=str(task.env_kwargs.get("ocr", "")),
        evidence_hit=trajectory.evidence_hit,
        evidence_read=trajectory.evidence_read,
        scored=bool(result.scored),
        error=result.error,
        usage=result.usage,
    )


_DOWN = {None, 401, 403, 404}
"""Failures of a served model's request that every request would meet: no HTTP response (the server is down
or unreachable), a refused key, a wrong URL or model name."""


def _play_served(task: CellTask, agent: Any) -> tuple[list[EpisodeRow], list[Trajectory]]:
    """The cell's episodes, concurrently in one event loop (see :func:`run_cell`)."""
    from iapo_gym.agents.served import ServedError

    cache = RequestCache(task.store) if task.store else None
    if cache is not None:
        agent.client.cache = cache
    lanes = max(1, min(len(task.items), int(getattr(agent.client, "max_in_flight", 1))))
    recorders = [TrajectoryRecorder(_env(task.env_id, task.env_kwargs, None, lane)) for lane in range(lanes)]
    results: list[tuple[EpisodeResult, Trajectory, float] | None] = [None] * len(task.items)
    failures: list[BaseException | None] = [None] * len(task.items)
    queue = list(enumerate(task.items))[::-1]

    async def lane(recorder: TrajectoryRecorder) -> None:
        while queue:
            k, item = queue.pop()
            e0 = time.perf_counter()
            session = agent.session()
            result = await run_episode_async(recorder, session, seed=item, options={"scene_id": item}, errors=(ServedError,))
            results[k] = (result, recorder.trajectory, time.perf_counter() - e0)
            failures[k] = getattr(session, "failure", None)

    async def play() -> None:
        try:
            await asyncio.gather(*(lane(r) for r in recorders))
        finally:
            await agent.client.aclose()

    try:
        asyncio.run(play())
    finally:
        if cache is not None:
            cache.close()
    done = [r for r in results if r is not None]
    failed = [r for r, _, _ in done if r.error]
    if done and len(failed) == len(done):
        # the server is down, or refuses every request (key, URL, model name): stop the run. A server that
        # answers this cell's requests with 429/5xx/400 while it answers others is not: its episodes are stored
        # with their errors and the next run replays the cell.
        statuses = {getattr(f, "status", None) for f in failures if f is not None} or {None}
        if statuses <= _DOWN:
            why = "the server did not answer" if statuses == {None} else "the server refused every request"
            raise ServedError(f"every episode of the cell failed; {why}: {failed[0].error}")
    rows = [_row(task, k, item, r, t, wall) for k, (item, (r, t, wall)) in enumerate(zip(task.items, done))]
    return rows, [t for _, t, _ in done]


# -- backends -----------------------------------------------------------------------------------------------
OnDone = Callable[[CellTask, CellResult], None]


def _failed(task: CellTask, exc: BaseException) -> BenchmarkError:
    a, s, f, sd = task.key
    return BenchmarkError(
        f"cell agent={a} suite={s} family={f} seed={sd} failed: {type(exc).__name__}: {exc}. "
        f"Finished cells are saved; rerun the same command to resume"
    )


def _run_local(tasks: Sequence[CellTask], workers: int, on_done: OnDone) -> None:
    if not tasks:
        return
    if workers == 1:  # in-process: no start-up cost, plain tracebacks, and agents registered at run time work
        for task in tasks:
            try:
                result = run_cell(task)
            except Exception as exc:
                raise _failed(task, exc) from exc
            on_done(task, result)
        return
    # spawn, not fork: agents may hold torch threads, which a fork can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future[CellResult], CellTask] = {pool.submit(run_cell, t): t for t in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:
                        raise _failed(task, exc) from exc
                    on_done(task, result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(tasks: Sequence[CellTask], workers: int, on_done: OnDone) -> None:
    if not tasks:
        return
    try:
        import ray
    except ImportError:
        raise BenchmarkError(
            "--backend ray needs Ray, which is not installed: pip install 'iapo-gym[ray]' "
            "(tested with ray==2.60.0), or use --backend local"
        ) from None
    started = False
    if not ray.is_initialized():
        # RAY_ADDRESS (if set) joins an existing cluster; otherwise a local instance with `workers` CPUs
        if os.environ.get("RAY_ADDRESS"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
        pending = {remote.remote(t): t for t in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:
                    for other in pending:
                        ray.cancel(other)
                    raise _failed(task, getattr(exc, "cause", None) or exc) from exc
                on_done(task, result)
    finally:
        if started:
            ray.shutdown()


# -- the run ------------------------------------------------------------------------------------------------
def prepare_out(out: str | os.PathLike[str]) -> Path:
    """Create the output folder and prove it writable before anything runs (a clear error otherwise)."""
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".iapo-bench-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchmarkError(
            f"output folder {str(path)!r} is not writable ({exc.strerror or exc}); choose another --out "
            f"or fix its permissions. Results already there were left untouched"
        ) from None
    db = path / DB_NAME
    if db.exists() and not os.access(db, os.W_OK):
        raise BenchmarkError(
            f"results store {str(db)!r} is read-only; fix its permissions or choose another --out. It was left untouched"
        )
    return path


def plan_cells(suite: Suite, seeds: Sequence[int], agents: Sequence[AgentSpec], backend: str) -> list[CellTask]:
    """Every cell of agents × families × seeds, agents outermost (a partial run finishes whole agents first)."""
    ranges: dict[str, tuple[int, int]] = {}
    for task in suite.tasks:
        try:  # the env the cells of this process play on (built once, kept): its range of scene ids
            env = _env(task.env_id, task.env_kwargs)
        except Exception as exc:  # an env id not registered yet, a missing data file, a bad setting
            raise SuiteError(
                f"suite {suite.name!r}: cannot make env {task.env_id} for family {task.family!r} ({type(exc).__name__}: {exc})"
            ) from None
        ranges[task.family] = cast("ToolVQAEnv", env.unwrapped).scene_id_range()
    items = {(t.family, s): tuple(suite.items(t.family, s, ranges[t.family])) for t in suite.tasks for s in seeds}
    return [
        CellTask(
            a,
            suite.name,
            t.family,
            s,
            t.env_id,
            dict(t.env_kwargs),
            items[t.family, s],
            backend,
            suite.teacher,
            alignment=suite.alignment,
        )
        for a in agents
        for t in suite.tasks
        for s in seeds
    ]


def data_reports(suite: Suite) -> dict[str, dict[str, Any]]:
    """family -> the scorer and load report of each public data set of ``suite`` (usable items, skips and
    dropped metadata by reason, items without evidence or answers): what the leaderboard's data table shows."""
    reports: dict[str, dict[str, Any]] = {}
    for task in suite.tasks:
        if task.env_id != "RealVQA-v0":
            continue
        env = cast("RealVQAEnv", _env(task.env_id, task.env_kwargs).unwrapped)  # the one plan_cells and the cells use
        reports[task.family] = {"scorer": env.scorer, "split": env.split, **env.report}
    return reports


def run_benchmark(
    agents: Sequence[str],
    suite: str | os.PathLike[str] | Suite,
    seeds: Sequence[int] | None = None,
    out: str | os.PathLike[str] = "bench-results",
    backend: str = "local",
    workers: int = 1,
    episodes: int | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    served: dict[str, Any] | None = None,
    judge: str | None = None,
    progress: bool = True,
    render: bool = True,
    trust_remote_code: bool = False,
) -> Path:
    """Run ``agents`` on ``suite`` for ``seeds`` (default: the suite's published seeds) into ``out``.

    A suite of public test sets (``datasets:``, e.g. ``paper-six``) reads them from ``data_dir``, the folder
    holding local copies in their published layout. ``served`` are the settings of every ``openai:MODEL@URL``
    agent (``OpenAIAgent`` keyword arguments: ``temperature``, ``max_tokens``, ``seed``, ``max_in_flight``,
    ``timeout``, ``retries``, ``api_key_env``, ``prices``, ``function_calling``), stored with the results;
    their answered requests are kept in the store, so a rerun asks nothing twice. ``judge`` (an
    ``openai:MODEL@URL`` spec) then scores every stored answer of the suite with the set's published judging
    rules (:mod:`iapo_gym.benchmarks.judge`); the leaderboard shows its accuracy beside the rule scorer's. Finished cells already in ``out`` are skipped, so
    rerunning an interrupted command resumes it. Returns
    the output folder, which holds ``results.sqlite`` and (with ``render``) the leaderboard files. Classes
    named inside files (a checkpoint's ``agent_class``, a suite file's ``teacher``) are imported only when
    they are inside ``iapo_gym`` or registered, unless ``trust_remote_code=True``; nothing is imported to
    find out.
    """
    suite_obj = (
        load_suite(suite if isinstance(suite, Suite) else str(suite), trust_remote_code=trust_remote_code)
        .with_episodes(episodes)
        .with_data_dir(data_dir)
    )
    seed_list = suite_obj.seeds if seeds is None else check_seeds(list(seeds), where="--seeds")
    if backend not in BACKENDS:
        raise BenchmarkError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    check_int("workers", workers, 1, error=BenchmarkError)
    if isinstance(agents, str) or not agents:
        raise BenchmarkError("give at least one agent, as a list: e.g. ['random', 'oracle']")
    specs = [resolve_agent(str(a), trust_remote_code=trust_remote_code, served=served) for a in agents]
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise BenchmarkError(f"agent name {dupes[0]!r} given twice; name them apart with NAME=AGENT")
    extra = [s for s in seed_list if s not in suite_obj.seeds]
    if extra and progress:
        print(
            f"note: seeds {extra} are not in suite {suite_obj.name!r}'s published seeds {list(suite_obj.seeds)}; "
            f"results will not be comparable with published ones",
            file=sys.stderr,
        )
    reports = data_reports(suite_obj)
    out_path = prepare_out(out)
    tasks = [replace(t, store=str((out_path / DB_NAME).resolve())) for t in plan_cells(suite_obj, seed_list, specs, backend)]
    with ResultsStore(out_path / DB_NAME) as store:
        store.register_suite(suite_obj.name, suite_obj.fingerprint())
        store.register_tasks(suite_obj.name, {t.family: (t.env_id, dict(t.env_kwargs)) for t in suite_obj.tasks}, reports)
        for s in specs:
            store.register_agent(s.label, s.kind, s.config["spec"] if s.config else s.source, s.checkpoint_hash, s.config)
        finished = store.finished_cells()
        todo = [t for t in tasks if t.key not in finished]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(tasks),
                initial=len(tasks) - len(todo),
                unit="cell",
                desc=f"iapo-bench {suite_obj.name}",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        n_eps = 0

        def on_done(task: CellTask, result: CellResult) -> None:
            nonlocal n_eps
            store.insert_cell(result.cell, result.episodes, result.trajectories)
            n_eps += len(result.episodes)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{task.agent.label}/{task.family}/seed {task.seed}", refresh=False)

        t0 = time.perf_counter()
        try:
            (_run_ray if backend == "ray" else _run_local)(todo, workers, on_done)
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t0
        if progress:
            rate = f", {n_eps / wall:.0f} episodes/s with {workers} {backend} worker(s)" if n_eps and wall > 0 else ""
            print(
                f"iapo-bench: {len(todo)} cell(s) run, {len(tasks) - len(todo)} already finished; {n_eps} episodes in "
                f"{wall:.1f} s{rate}; results in {out_path / DB_NAME}",
                file=sys.stderr,
            )
    if judge:  # every stored answer of the suite not yet judged by this judge (a rerun resumes)
        judge_options = {
            k: v for k, v in (served or {}).items() if k in ("api_key_env", "timeout", "retries", "backoff", "max_in_flight")
        }
        judge_suite(out_path / DB_NAME, suite_obj.name, judge, progress=progress, **judge_options)
    if render:
        from .leaderboard import render_leaderboard

        render_leaderboard(out_path)
    return out_path


__all__ = [
    "BACKENDS",
    "AgentSpec",
    "BenchmarkError",
    "CellResult",
    "CellTask",
    "build_agent",
    "data_reports",
    "plan_cells",
    "prepare_out",
    "resolve_agent",
    "run_benchmark",
    "run_cell",
    "StoreError",
    "check_store",
]
