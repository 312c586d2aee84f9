"""The results store: one SQLite file per output folder, one row per finished episode.

A *cell* is (agent, suite, family, seed). All episodes of a cell are inserted in one transaction, together
with the cell's own row, when the cell is done: a killed run loses at most the cells in flight, never
half a cell. UNIQUE keys on cells and on (cell, episode) make a duplicate impossible even when two runs
share a folder. Only the parent process writes; workers return rows.

Schema version 2 adds each episode's trajectory (table ``trajectories``: the question, accepted answers,
final answer and every step — action, parsed tool and arguments, chosen boxes, tool output, reward terms,
per-decision attribution of the agent and the teacher) and its evidence diagnostics (``episodes``
columns ``evidence_hit`` and ``evidence_read``, see :mod:`iapo_gym.diagnostics`), and each suite
family's env (table ``suite_tasks``), so an episode can be redrawn from the store alone. A version-1
store is migrated in place when it is opened for writing (its rows are kept; their new columns are
NULL: "not recorded"), and read as it is when opened read-only.

Schema version 3 adds ``episodes.scored`` (0 for an item without a published answer, such as CharXiv's test
split: it is stored and shown, and left out of accuracy; NULL in older rows means scored),
``suite_tasks.data`` (JSON: a public data set's scorer and load report: usable items, skips and dropped
metadata by reason, items without evidence or answers), and for served models ``episodes.error`` (why the
agent could not go on: a request that failed for good; such a cell is replayed by the next run),
``episodes.usage`` (JSON: tokens, requests, cost), ``agents.config`` (JSON: the served model's settings, never
its key), the table ``requests`` (every answered request, by the hash of what was asked: a rerun asks nothing
twice) and the table ``judgements`` (an LLM judge's verdict per episode). Older stores are migrated in place.

A file written with another schema version (or that is not a results store at all) is refused with a
clear error and left untouched: it is first opened read-only to check.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from iapo_gym.trajectory import Trajectory

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
"""Versions this code reads; an older one is migrated to :data:`SCHEMA_VERSION` when opened for writing."""
DB_NAME = "results.sqlite"

_V2_TABLES = """
CREATE TABLE suite_tasks (
    suite TEXT NOT NULL, family TEXT NOT NULL,
    env_id TEXT NOT NULL,
    env_kwargs TEXT NOT NULL,            -- JSON: gym.make(env_id, **env_kwargs) replays this family's episodes
    PRIMARY KEY (suite, family)
);
CREATE TABLE trajectories (
    agent TEXT NOT NULL, suite TEXT NOT NULL, family TEXT NOT NULL, seed INTEGER NOT NULL, episode INTEGER NOT NULL,
    question TEXT NOT NULL,
    answers TEXT NOT NULL,               -- JSON list of the accepted answers
    answer TEXT,                         -- the final answer given (the scored one), NULL when the budget ran out
    steps TEXT NOT NULL,                 -- JSON list, one object per step (iapo_gym.trajectory.Step.to_dict)
    PRIMARY KEY (agent, suite, family, seed, episode),
    FOREIGN KEY (agent, suite, family, seed, episode) REFERENCES episodes (agent, suite, family, seed, episode)
);
"""

_V3_COLUMNS = """
ALTER TABLE episodes ADD COLUMN scored INTEGER;
ALTER TABLE episodes ADD COLUMN error TEXT;
ALTER TABLE episodes ADD COLUMN usage TEXT;
ALTER TABLE suite_tasks ADD COLUMN data TEXT;
ALTER TABLE agents ADD COLUMN config TEXT;
CREATE TABLE requests (
    key TEXT PRIMARY KEY,                -- sha256 of (model, generation settings, messages, tools)
    response TEXT NOT NULL,              -- JSON: the answered response
    created TEXT NOT NULL
);
CREATE TABLE judgements (
    agent TEXT NOT NULL, suite TEXT NOT NULL, family TEXT NOT NULL, seed INTEGER NOT NULL, episode INTEGER NOT NULL,
    judge TEXT NOT NULL,                 -- the judge's name (openai:MODEL)
    verdict INTEGER,                     -- 1 correct, 0 wrong, NULL unjudged (the request failed or the reply was unreadable)
    extracted TEXT, error TEXT,
    usage TEXT,                          -- JSON: tokens of the verdict
    PRIMARY KEY (agent, suite, family, seed, episode, judge)
);
"""

_SCHEMA = (
    f"""
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION});
CREATE TABLE suites (
    suite TEXT PRIMARY KEY,
    config TEXT NOT NULL                 -- JSON fingerprint: settings that decide the items (Suite.fingerprint)
);
CREATE TABLE agents (
    agent TEXT PRIMARY KEY,              -- the leaderboard name
    kind TEXT NOT NULL,                  -- name | spec | checkpoint
    source TEXT NOT NULL,                -- registered name, 'module:Class' spec or checkpoint folder
    checkpoint_hash TEXT,
    position INTEGER NOT NULL            -- first-seen order, a stable tie-break
);
CREATE TABLE cells (
    agent TEXT NOT NULL, suite TEXT NOT NULL, family TEXT NOT NULL, seed INTEGER NOT NULL,
    episodes INTEGER NOT NULL,
    wall_time REAL NOT NULL,             -- seconds the worker spent on the cell (env + agent construction included)
    backend TEXT NOT NULL,
    library_version TEXT NOT NULL,
    finished_at TEXT NOT NULL,           -- ISO 8601, UTC
    PRIMARY KEY (agent, suite, family, seed)
);
CREATE TABLE episodes (
    agent TEXT NOT NULL, checkpoint_hash TEXT, suite TEXT NOT NULL, family TEXT NOT NULL, seed INTEGER NOT NULL,
    episode INTEGER NOT NULL,            -- index within the cell
    item INTEGER NOT NULL,               -- scene id (procedural) or item index (data set)
    correct INTEGER NOT NULL,
    reward REAL NOT NULL,
    reward_terms TEXT NOT NULL,          -- JSON {{term: summed value}}
    tool_calls TEXT NOT NULL,            -- JSON {{tool: valid calls}}, the final answer included
    invalid_calls INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    alignment REAL,                      -- attribution alignment with the teacher, when the agent reports one
    wall_time REAL NOT NULL,             -- seconds for this episode
    ocr TEXT NOT NULL,
    evidence_hit INTEGER,                -- a chosen region covered half an evidence box (NULL: no evidence / not recorded)
    evidence_read INTEGER,               -- a tool output held an accepted answer (NULL: not printed / not recorded)
    UNIQUE (agent, suite, family, seed, episode),
    FOREIGN KEY (agent, suite, family, seed) REFERENCES cells (agent, suite, family, seed)
);
"""
    + _V2_TABLES
    + _V3_COLUMNS
)

_MIGRATE = {
    1: """
ALTER TABLE episodes ADD COLUMN evidence_hit INTEGER;
ALTER TABLE episodes ADD COLUMN evidence_read INTEGER;
"""
    + _V2_TABLES,
    2: _V3_COLUMNS,
}
"""The steps from each version to the next, run in order in one transaction."""


class StoreError(ValueError):
    """A results store that cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class EpisodeRow:
    """One finished episode, as stored."""

    agent: str
    checkpoint_hash: str | None
    suite: str
    family: str
    seed: int
    episode: int
    item: int
    correct: bool
    reward: float
    reward_terms: dict[str, float] = field(hash=False)
    tool_calls: dict[str, int] = field(hash=False)
    invalid_calls: int
    steps: int
    alignment: float | None
    wall_time: float
    ocr: str
    evidence_hit: bool | None = None
    """A chosen region covered half an evidence box (``None``: no evidence boxes, or not recorded)."""
    evidence_read: bool | None = None
    """A tool output held an accepted answer (``None``: the answer is not printed, or not recorded)."""
    scored: bool = True
    """False for an item without a published answer: stored, not counted in accuracy."""
    error: str | None = None
    """Why a served agent could not go on (the episode ended there and counts as wrong)."""
    usage: dict[str, Any] | None = None
    """A served agent's tokens, requests and cost for the episode."""


@dataclass(frozen=True)
class Judgement:
    """An LLM judge's verdict on one stored episode: ``verdict`` is ``None`` when it could not be had (the
    request failed for good, or the reply was unreadable): unjudged, never counted as wrong."""

    verdict: bool | None
    extracted: str = ""
    error: str | None = None
    usage: dict[str, Any] | None = None


@dataclass(frozen=True)
class CellRow:
    """One finished cell, as stored."""

    agent: str
    suite: str
    family: str
    seed: int
    episodes: int
    wall_time: float
    backend: str
    library_version: str
    finished_at: str


@dataclass(frozen=True)
class AgentRow:
    agent: str
    kind: str
    source: str
    checkpoint_hash: str | None
    position: int
    config: dict[str, Any] | None = None
    """A served model's settings (model, URL, temperature, ...; never its key)."""


def _uri(path: Path, mode: str) -> str:
    return f"file:{pathname2url(str(path.resolve()))}?mode={mode}"


def _read_mode(path: Path) -> str:
    """``ro``, unless a run killed mid-transaction left a hot journal: then ``rw`` (still without creating),
    because only a writable connection may roll the half-done transaction back, as every reader must first.
    Reading through it changes no committed data."""
    journal = path.with_name(path.name + "-journal")
    if journal.is_file() and journal.stat().st_size > 0 and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return "rw"
    return "ro"


def check_store(path: str | Path) -> None:
    """Raise :class:`StoreError` unless ``path`` is absent, empty, or a store of a version this code reads.

        Read-only: the file is never modified, whatever it holds (a hot journal that a killed run left is rolled
    back, as any SQLite reader does; that restores the last committed state).
    """
    path = Path(path)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return  # new store (an empty file is what a run killed before creating the schema leaves)
    if not path.is_file():
        raise StoreError(f"results store {path} is not a file; move it away or choose another --out folder")
    try:
        conn = sqlite3.connect(_uri(path, _read_mode(path)), uri=True)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open results store {path} ({exc}); check its permissions or choose another --out folder"
        ) from None
    try:
        rows = conn.execute("SELECT version FROM schema_version").fetchall()
    except sqlite3.DatabaseError as exc:
        msg = str(exc)
        if "no such table" in msg:
            raise StoreError(
                f"{path} is a SQLite database but not an iapo-bench results store (it has no schema_version "
                f"table); it was left untouched: move it away or choose another --out folder"
            ) from None
        raise StoreError(
            f"{path} is not an iapo-bench results store ({msg}); it was left untouched: move it away "
            f"or choose another --out folder"
        ) from None
    finally:
        conn.close()
    versions = sorted({int(r[0]) for r in rows})
    if len(versions) != 1 or versions[0] not in READABLE_VERSIONS:
        raise StoreError(
            f"results store {path} has schema version {', '.join(map(str, versions)) or 'none'}; this iapo-gym "
            f"reads versions {', '.join(map(str, READABLE_VERSIONS))}. It was left untouched: open it with the "
            f"iapo-gym version that wrote it, or run into a new --out folder"
        )


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])


class ResultsStore:
    """The SQLite results store of one output folder (``<out>/results.sqlite``)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        check_store(self.path)
        if readonly:
            if not self.path.is_file() or self.path.stat().st_size == 0:
                raise StoreError(
                    f"no results in {self.path.parent}: {self.path.name} is missing; run `iapo-bench run ... --out {self.path.parent}` first"
                )
            self.conn = sqlite3.connect(_uri(self.path, _read_mode(self.path)), uri=True, timeout=30)
        else:
            try:
                self.conn = sqlite3.connect(self.path, timeout=30)  # waits for another writer instead of failing
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot open results store {self.path} for writing ({exc}); check the folder's permissions"
                ) from None
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
                self._create()
            elif _version(self.conn) < SCHEMA_VERSION:
                self._migrate()
        self.version = _version(self.conn)
        """The schema version of the open file (a read-only version-1 store stays at 1)."""

    def _create(self) -> None:
        try:
            with self._transaction():
                self.conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create results store {self.path} ({exc}); check the folder's permissions") from None

    def _migrate(self) -> None:
        """An older version -> the current one in place, in one transaction: new columns (NULL for the rows
        there) and new tables."""
        old = _version(self.conn)
        steps = "".join(_MIGRATE[v] for v in range(old, SCHEMA_VERSION))
        try:
            with self._transaction():
                self.conn.executescript(f"BEGIN IMMEDIATE;{steps}UPDATE schema_version SET version = {SCHEMA_VERSION};COMMIT;")
        except sqlite3.Error as exc:
            if _version(self.conn) == SCHEMA_VERSION:
                return  # another run sharing the folder migrated it first
            raise StoreError(
                f"cannot migrate results store {self.path} from schema version {old} to {SCHEMA_VERSION} ({exc}); "
                f"it was left as it was: check the file's permissions"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- registration: settings that must agree across reruns into one folder -------------------------------
    def register_suite(self, suite: str, config: dict[str, Any]) -> None:
        """Remember ``suite``'s fingerprint; refuse a rerun of the same suite name with other settings."""
        text = json.dumps(config, sort_keys=True)
        row = self.conn.execute("SELECT config FROM suites WHERE suite = ?", (suite,)).fetchone()
        if row is None:
            with self.conn:
                self.conn.execute("INSERT OR IGNORE INTO suites (suite, config) VALUES (?, ?)", (suite, text))
            return
        if row[0] != text:
            old, new = json.loads(row[0]), config
            diff = ", ".join(
                f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
            )
            raise StoreError(
                f"{self.path} holds results of suite {suite!r} with other settings ({diff}); results with "
                f"different settings are not comparable: run into a new --out folder, or use the same settings"
            )

    def register_tasks(
        self, suite: str, tasks: dict[str, tuple[str, dict[str, Any]]], data: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """Remember how to make each family's env of ``suite`` (family -> (env id, kwargs)), to replay episodes,
        and for a public data set its ``data`` (family -> scorer and load report; the latest run's wins)."""
        data = data or {}
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO suite_tasks (suite, family, env_id, env_kwargs) VALUES (?, ?, ?, ?)",
                [(suite, fam, env_id, json.dumps(kw, sort_keys=True)) for fam, (env_id, kw) in tasks.items()],
            )
            self.conn.executemany(
                "UPDATE suite_tasks SET data = ? WHERE suite = ? AND family = ?",
                [(json.dumps(d, sort_keys=True), suite, fam) for fam, d in data.items()],
            )

    def task_data(self, suite: str) -> dict[str, dict[str, Any]]:
        """family -> the data report registered for ``suite``'s public data sets (empty for procedural ones)."""
        if self.version < 3:
            return {}
        rows = self.conn.execute("SELECT family, data FROM suite_tasks WHERE suite = ? AND data IS NOT NULL", (suite,))
        return {fam: json.loads(d) for fam, d in rows}

    def register_agent(
        self, agent: str, kind: str, source: str, checkpoint_hash: str | None, config: dict[str, Any] | None = None
    ) -> None:
        """Remember an agent (and a served model's settings, ``config``); refuse the same leaderboard name for
        a different checkpoint."""
        row = self.conn.execute("SELECT checkpoint_hash FROM agents WHERE agent = ?", (agent,)).fetchone()
        if row is None:
            with self.conn:
                pos = self.conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM agents").fetchone()[0]
                self.conn.execute(
                    "INSERT OR IGNORE INTO agents (agent, kind, source, checkpoint_hash, position, config) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (agent, kind, source, checkpoint_hash, pos, None if config is None else json.dumps(config, sort_keys=True)),
                )
            return
        if row[0] != checkpoint_hash:
            raise StoreError(
                f"{self.path} already has results for agent {agent!r} from checkpoint {row[0] or '(none)'}; "
                f"{source} has checkpoint hash {checkpoint_hash or '(none)'}. Give it another leaderboard name "
                f"(NAME=PATH) or run into a new --out folder"
            )

    # -- cells ---------------------------------------------------------------------------------------------
    def finished_cells(self) -> set[tuple[str, str, str, int]]:
        """Keys (agent, suite, family, seed) of every finished cell; a cell with an errored episode (a served
        model's request that failed for good) is not finished: the next run replays it."""
        cells = {(a, s, f, int(sd)) for a, s, f, sd in self.conn.execute("SELECT agent, suite, family, seed FROM cells")}
        return cells - self._errored_cells()

    def _errored_cells(self) -> set[tuple[str, str, str, int]]:
        if self.version < 3:
            return set()
        return {
            (a, s, f, int(sd))
            for a, s, f, sd in self.conn.execute(
                "SELECT DISTINCT agent, suite, family, seed FROM episodes WHERE error IS NOT NULL"
            )
        }

    def insert_cell(
        self, cell: CellRow, episodes: Sequence[EpisodeRow], trajectories: Sequence[Trajectory | None] | None = None
    ) -> bool:
        """Insert a finished cell, all its episodes and their trajectories (if given, one per episode, ``None``
        for an episode without one) in one transaction.

        Returns ``False`` (and writes nothing) if the cell is there already: another run sharing the folder
        finished it first.
        """
        if len(episodes) != cell.episodes:
            raise ValueError(
                f"cell {cell.agent}/{cell.suite}/{cell.family}/seed {cell.seed}: {len(episodes)} episodes for {cell.episodes} expected"
            )
        if trajectories is not None and len(trajectories) != len(episodes):
            raise ValueError(
                f"cell {cell.agent}/{cell.suite}/{cell.family}/seed {cell.seed}: {len(trajectories)} trajectories for {len(episodes)} episodes"
            )
        traj = [(e, t) for e, t in zip(episodes, trajectories or ()) if t is not None]
        key = (cell.agent, cell.suite, cell.family, cell.seed)
        try:
            with self.conn:  # one transaction: commit on success, roll back on any error
                if key in self._errored_cells():  # a replay of a cell that errored: it replaces the old rows
                    for table in ("judgements", "trajectories", "episodes", "cells"):
                        self.conn.execute(f"DELETE FROM {table} WHERE agent = ? AND suite = ? AND family = ? AND seed = ?", key)
                self.conn.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(asdict(cell).values()))
                self.conn.executemany(
                    f"INSERT INTO episodes ({', '.join(_EPISODE_COLUMNS)}) VALUES ({', '.join('?' * len(_EPISODE_COLUMNS))})",
                    [
                        (
                            e.agent,
                            e.checkpoint_hash,
                            e.suite,
                            e.family,
                            e.seed,
                            e.episode,
                            e.item,
                            int(e.correct),
                            e.reward,
                            json.dumps(e.reward_terms, sort_keys=True),
                            json.dumps(e.tool_calls, sort_keys=True),
                            e.invalid_calls,
                            e.steps,
                            e.alignment,
                            e.wall_time,
                            e.ocr,
                            _flag(e.evidence_hit),
                            _flag(e.evidence_read),
                            int(e.scored),
                            e.error,
                            None if e.usage is None else json.dumps(e.usage, sort_keys=True),
                        )
                        for e in episodes
                    ],
                )
                self.conn.executemany(
                    "INSERT INTO trajectories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.agent,
                            e.suite,
                            e.family,
                            e.seed,
                            e.episode,
                            t.question,
                            json.dumps(list(t.answers)),
                            t.answer,
                            json.dumps([s.to_dict() for s in t.steps], separators=(",", ":")),
                        )
                        for e, t in traj
                    ],
                )
        except sqlite3.IntegrityError:
            if self.conn.execute(
                "SELECT 1 FROM cells WHERE agent = ? AND suite = ? AND family = ? AND seed = ?",
                (cell.agent, cell.suite, cell.family, cell.seed),
            ).fetchone():
                return False
            raise
        return True

    # -- reading -------------------------------------------------------------------------------------------
    def suites(self) -> dict[str, dict[str, Any]]:
        return {s: json.loads(c) for s, c in self.conn.execute("SELECT suite, config FROM suites ORDER BY suite")}

    def agents(self) -> list[AgentRow]:
        config = "config" if self.version >= 3 else "NULL"
        return [
            AgentRow(r[0], r[1], r[2], r[3], r[4], None if r[5] is None else json.loads(r[5]))
            for r in self.conn.execute(
                f"SELECT agent, kind, source, checkpoint_hash, position, {config} FROM agents ORDER BY position"
            )
        ]

    # -- judgements -----------------------------------------------------------------------------------------
    def insert_judgements(self, judge: str, rows: Sequence[tuple[EpisodeRow, Judgement]]) -> None:
        """Store a judge's verdicts (one transaction); a later verdict of the same judge replaces an earlier one."""
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *_key(e),
                        judge,
                        None if j.verdict is None else int(j.verdict),
                        j.extracted,
                        j.error,
                        None if j.usage is None else json.dumps(j.usage, sort_keys=True),
                    )
                    for e, j in rows
                ],
            )

    def judgements(self, suite: str | None = None) -> dict[tuple[str, str, str, int, int], dict[str, Judgement]]:
        """Episode key -> judge -> its verdict (empty for stores before version 3)."""
        if self.version < 3:
            return {}
        q = "SELECT agent, suite, family, seed, episode, judge, verdict, extracted, error, usage FROM judgements"
        out: dict[tuple[str, str, str, int, int], dict[str, Judgement]] = {}
        for a, s, f, sd, ep, judge, verdict, extracted, error, usage in self.conn.execute(
            q + (" WHERE suite = ?" if suite else ""), (suite,) if suite else ()
        ):
            out.setdefault((a, s, f, int(sd), int(ep)), {})[judge] = Judgement(
                None if verdict is None else bool(verdict), extracted or "", error, None if usage is None else json.loads(usage)
            )
        return out

    def cells(self, suite: str | None = None) -> list[CellRow]:
        q = "SELECT * FROM cells" + (" WHERE suite = ?" if suite else "") + " ORDER BY agent, suite, family, seed"
        return [CellRow(*r) for r in self.conn.execute(q, (suite,) if suite else ())]

    def episodes(self, suite: str | None = None, agent: str | None = None) -> list[EpisodeRow]:
        """Episodes in a deterministic order (agent, suite, family, seed, episode)."""
        where, args = [], []
        for col, val in (("suite", suite), ("agent", agent)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        cols = (
            *_EPISODE_COLUMNS[:-5],
            *(_EPISODE_COLUMNS[-5:-3] if self.version >= 2 else ("NULL", "NULL")),
            *(_EPISODE_COLUMNS[-3:] if self.version >= 3 else ("NULL", "NULL", "NULL")),
        )
        q = (
            f"SELECT {', '.join(cols)} FROM episodes"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY agent, suite, family, seed, episode"
        )
        return [_episode(r) for r in self.conn.execute(q, args)]

    def count(self, table: str) -> int:
        if table not in ("cells", "episodes", "agents", "suites", "trajectories"):
            raise ValueError(f"unknown table {table!r}")
        if table == "trajectories" and self.version < 2:
            return 0
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- trajectories ----------------------------------------------------------------------------------
    def task(self, suite: str, family: str) -> tuple[str, dict[str, Any]] | None:
        """``(env_id, env_kwargs)`` of a suite's family, as run (``None``: not recorded, e.g. a version-1 store)."""
        if self.version < 2:
            return None
        row = self.conn.execute(
            "SELECT env_id, env_kwargs FROM suite_tasks WHERE suite = ? AND family = ?", (suite, family)
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def has_trajectory(self, episode: EpisodeRow) -> bool:
        if self.version < 2:
            return False
        return (
            self.conn.execute(
                "SELECT 1 FROM trajectories WHERE agent = ? AND suite = ? AND family = ? AND seed = ? AND episode = ?",
                _key(episode),
            ).fetchone()
            is not None
        )

    def trajectory(self, episode: EpisodeRow) -> Trajectory | None:
        """The stored trajectory of ``episode`` (``None``: it was run without one, e.g. before schema version 2)."""
        if self.version < 2:
            return None
        row = self.conn.execute(
            "SELECT question, answers, answer, steps FROM trajectories WHERE agent = ? AND suite = ? "
            "AND family = ? AND seed = ? AND episode = ?",
            _key(episode),
        ).fetchone()
        if row is None:
            return None
        question, answers, answer, steps = row
        return Trajectory.from_dict(
            {
                "family": episode.family,
                "scene_id": episode.item,
                "question": question,
                "answers": json.loads(answers),
                "steps": json.loads(steps),
                "answer": answer,
                "correct": episode.correct,
                "evidence_hit": episode.evidence_hit,
                "evidence_read": episode.evidence_read,
            }
        )


_EPISODE_COLUMNS = (
    "agent",
    "checkpoint_hash",
    "suite",
    "family",
    "seed",
    "episode",
    "item",
    "correct",
    "reward",
    "reward_terms",
    "tool_calls",
    "invalid_calls",
    "steps",
    "alignment",
    "wall_time",
    "ocr",
    "evidence_hit",
    "evidence_read",
    "scored",
    "error",
    "usage",
)


def _key(e: EpisodeRow) -> tuple[str, str, str, int, int]:
    return (e.agent, e.suite, e.family, e.seed, e.episode)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _episode(r: Iterable[Any]) -> EpisodeRow:
    (
        agent,
        ckpt,
        suite,
        family,
        seed,
        episode,
        item,
        correct,
        reward,
        terms,
        calls,
        invalid,
        steps,
        align,
        wall,
        ocr,
        hit,
        read,
        scored,
        error,
        usage,
    ) = r
    return EpisodeRow(
        agent,
        ckpt,
        suite,
        family,
        int(seed),
        int(episode),
        int(item),
        bool(correct),
        float(reward),
        json.loads(terms),
        json.loads(calls),
        int(invalid),
        int(steps),
        None if align is None else float(align),
        float(wall),
        ocr,
        None if hit is None else bool(hit),
        None if read is None else bool(read),
        scored is None or bool(scored),
        error,
        None if usage is None else json.loads(usage),
    )


class RequestCache:
    """Answered requests of served models, in the results store's ``requests`` table, on a connection of its own:
    a worker puts each answer as it arrives (committed at once), so a run killed half-way through a cell asks
    nothing twice when it is rerun. ``get`` / ``put`` are the :class:`~iapo_gym.agents.served.ResponseCache`
    protocol; keys are hashes of what was asked (the model, its settings and the messages: never the API key)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self.hits = self.puts = 0

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT response FROM requests WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return dict(json.loads(row[0]))

    def put(self, key: str, response: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO requests VALUES (?, ?, ?)",
                (key, json.dumps(response, sort_keys=True), _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")),
            )
        self.puts += 1

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


__all__ = [
    "DB_NAME",
    "READABLE_VERSIONS",
    "SCHEMA_VERSION",
    "AgentRow",
    "CellRow",
    "EpisodeRow",
    "Judgement",
    "RequestCache",
    "ResultsStore",
    "StoreError",
    "check_store",
]
