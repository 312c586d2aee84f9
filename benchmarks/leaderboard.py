"""The leaderboard: accuracy per family and on average with 95% bootstrap CIs, tool use, invalid calls,
alignment, evidence hit/read rates and speed per agent, rendered from the results store as Markdown, CSV,
JSON, PNG and a self-contained web page (``leaderboard.html``, with episode pictures in ``episodes/``), plus
a ``summary.json`` + ``metadata.yaml`` submission per agent (BALROG's convention).

Confidence intervals: a two-stage (hierarchical) percentile bootstrap. Each replicate resamples the seeds
of a family with replacement, then the items within each drawn seed, and averages; the average's
replicate is the mean of the families' replicates (families have disjoint items, so they are resampled
independently). Resampling both stages counts item noise twice, so the intervals are conservative (wider
than a flat bootstrap over all episodes), never optimistic; in expectation they shrink like
``sqrt((2 - 1/S) / S)`` with ``S`` seeds. The bootstrap generator is seeded from a fixed seed, the suite and the agent, so the same
rows always give the same intervals, and adding an agent does not move the others'.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from iapo_gym.diagnostics import rate
from iapo_gym.io import atomic_write_bytes, atomic_write_dir, atomic_write_json, atomic_write_text

from iapo_gym.viz import draw_episode, figure_png, save_figure

from .episodes import load_recording, pick_episodes, title_of
from .errors import BenchmarkError
from .html_report import Picture, render_html
from .store import DB_NAME, AgentRow, CellRow, EpisodeRow, ResultsStore

BOOTSTRAP_SEED = 20260611
BOOTSTRAP_REPLICATES = 2000
CONFIDENCE = 0.95
AVERAGE = "average"
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png", "leaderboard.html")
PICTURES_PER_FAMILY = 2
"""Episode pictures per agent per family on the web page (the first right and the first wrong episode)."""


@dataclass(frozen=True)
class Score:
    """An accuracy (fraction) with its 95% bootstrap interval and bootstrap standard error."""

    mean: float
    low: float
    high: float
    se: float
    episodes: int
    seeds: int


@dataclass
class Usage:
    """How an agent played: tool calls (the final answer excluded), per-tool calls, invalid calls, speed."""

    episodes: int
    tool_calls_per_episode: float
    tool_usage: dict[str, float]
    invalid_call_rate: float
    alignment: float | None
    mean_reward: float
    episodes_per_s: float
    evidence_hit_rate: float | None = None
    """Share of episodes where a chosen region covered half an evidence box (``None``: none recorded)."""
    evidence_read_rate: float | None = None
    """Share of episodes where a tool output held an accepted answer, among those whose answer is printed."""
    errors: int = 0
    """Episodes a served model could not finish (a request failed for good); they count as wrong."""
    tokens_in: float | None = None
    """A served model's prompt tokens per episode (``None``: not a served model)."""
    tokens_out: float | None = None
    """A served model's completion tokens per episode."""
    cost: float | None = None
    """A served model's cost in USD over these episodes, when prices were given."""
    unscored: int = 0
    """Episodes on items without a published answer (played, not counted in accuracy)."""


@dataclass
class Entry:
    """One agent on one suite."""

    agent: str
    kind: str
    checkpoint_hash: str | None
    ocr: str
    seeds: list[int]
    cells: int
    cells_expected: int
    accuracy: dict[str, Score]
    average: Score
    usage: Usage
    family_usage: dict[str, Usage] = field(default_factory=dict)
    library_version: str = ""
    finished_at: str = ""


# -- statistics ---------------------------------------------------------------------------------------------
def _replicates(cells: Sequence[np.ndarray], rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap replicates of a family's accuracy: resample seeds, then items within each seed."""
    per_cell = np.stack([c[rng.integers(0, len(c), (n_boot, len(c)))].mean(axis=1) for c in cells])  # (S, B)
    if len(cells) == 1:
        return per_cell[0]
    pick = rng.integers(0, len(cells), (n_boot, len(cells)))
    return per_cell[pick, np.arange(n_boot)[:, None]].mean(axis=1)


def _score(mean: float, reps: np.ndarray, episodes: int, seeds: int) -> Score:
    alpha = (1.0 - CONFIDENCE) / 2
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    # a percentile interval of a small, skewed sample can miss the estimate by rounding; an interval that
    # excludes its own estimate only confuses, so widen it to include it
    return Score(
        float(mean),
        float(min(low, mean)),
        float(max(high, mean)),
        float(reps.std(ddof=1)) if len(reps) > 1 else 0.0,
        episodes,
        seeds,
    )


def accuracy_scores(
    rows: Sequence[EpisodeRow], families: Sequence[str], rng_key: Sequence[int], n_boot: int = BOOTSTRAP_REPLICATES
) -> tuple[dict[str, Score], Score]:
    """Per-family accuracy scores and the average over the families present (see the module docstring)."""
    rng = np.random.default_rng([BOOTSTRAP_SEED, *rng_key])
    by_cell: dict[tuple[str, int], list[EpisodeRow]] = {}
    for r in rows:
        if r.scored:  # an item without a published answer is played and shown, never counted
            by_cell.setdefault((r.family, r.seed), []).append(r)
    scores: dict[str, Score] = {}
    reps: list[np.ndarray] = []
    for fam in families:
        seeds = sorted(s for f, s in by_cell if f == fam)
        if not seeds:
            continue
        cells = [np.array([e.correct for e in sorted(by_cell[fam, s], key=lambda e: e.episode)], dtype=float) for s in seeds]
        rep = _replicates(cells, rng, n_boot)
        reps.append(rep)
        scores[fam] = _score(float(np.mean([c.mean() for c in cells])), rep, sum(len(c) for c in cells), len(seeds))
    if not scores:  # e.g. only CharXiv's test split, whose answers are not published
        nan = float("nan")
        return {}, Score(nan, nan, nan, 0.0, 0, 0)
    avg = float(np.mean([s.mean for s in scores.values()]))
    seeds_all = len({s for _, s in by_cell})
    return scores, _score(avg, np.mean(reps, axis=0), sum(s.episodes for s in scores.values()), seeds_all)


def usage(rows: Sequence[EpisodeRow]) -> Usage:
    n = len(rows)
    tools = sorted({t for r in rows for t in r.tool_calls})
    steps = sum(r.steps for r in rows)
    aligned = [r.alignment for r in rows if r.alignment is not None]
    wall = sum(r.wall_time for r in rows)
    served = [r.usage for r in rows if r.usage is not None]
    return Usage(
        episodes=n,
        tool_calls_per_episode=sum(v for r in rows for t, v in r.tool_calls.items() if t != "answer") / n,
        tool_usage={t: sum(r.tool_calls.get(t, 0) for r in rows) / n for t in tools},
        invalid_call_rate=sum(r.invalid_calls for r in rows) / steps if steps else 0.0,
        alignment=float(np.mean(aligned)) if aligned else None,
        mean_reward=float(np.mean([r.reward for r in rows])),
        episodes_per_s=n / wall if wall > 0 else float("inf"),
        evidence_hit_rate=rate(r.evidence_hit for r in rows),
        evidence_read_rate=rate(r.evidence_read for r in rows),
        errors=sum(1 for r in rows if r.error),
        tokens_in=_per_episode(served, "prompt_tokens"),
        tokens_out=_per_episode(served, "completion_tokens"),
        cost=sum(float(u["cost"]) for u in served) if served and all(u.get("cost") is not None for u in served) else None,
        unscored=sum(1 for r in rows if not r.scored),
    )


def _per_episode(usages: Sequence[dict[str, Any]], key: str) -> float | None:
    return float(np.mean([float(u.get(key) or 0) for u in usages])) if usages else None


def compute_entries(
    suite: str, families: Sequence[str], episodes: Sequence[EpisodeRow], cells: Sequence[CellRow], agents: Sequence[AgentRow]
) -> list[Entry]:
    """Leaderboard entries of one suite, best average accuracy first (ties: first-registered agent first)."""
    kinds = {a.agent: a for a in agents}
    by_agent: dict[str, list[EpisodeRow]] = {}
    for e in episodes:
        by_agent.setdefault(e.agent, []).append(e)
    entries = []
    for agent, rows in by_agent.items():
        key = (zlib.crc32(suite.encode()), zlib.crc32(agent.encode()))
        acc, avg = accuracy_scores(rows, families, key)
        agent_cells = [c for c in cells if c.agent == agent]
        seeds = sorted({r.seed for r in rows})
        meta = kinds.get(agent)
        entries.append(
            Entry(
                agent=agent,
                kind=meta.kind if meta else "",
                checkpoint_hash=rows[0].checkpoint_hash,
                ocr=", ".join(sorted({r.ocr for r in rows})),
                seeds=seeds,
                cells=len(agent_cells),
                cells_expected=len(families) * len(seeds),
                accuracy=acc,
                average=avg,
                usage=usage(rows),
                family_usage={f: usage([r for r in rows if r.family == f]) for f in families if f in acc},
                library_version=", ".join(sorted({c.library_version for c in agent_cells})),
                finished_at=max((c.finished_at for c in agent_cells), default=""),
            )
        )
    order = {a.agent: a.position for a in agents}
    entries.sort(key=lambda e: (-e.average.mean, order.get(e.agent, 1 << 30), e.agent))
    return entries


# -- rendering ----------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ci(s: Score) -> str:
    return f"{_pct(s.mean)} [{_pct(s.low)}, {_pct(s.high)}]"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if x is None else fmt.format(x)


def _rate(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(board: dict[str, Any], entries: dict[str, list[Entry]]) -> str:
    lines = [
        "# iapo-bench leaderboard",
        "",
        f"Accuracy in % with {int(CONFIDENCE * 100)}% confidence intervals from a two-stage bootstrap over seeds and "
        f"items ({BOOTSTRAP_REPLICATES} replicates, seed {BOOTSTRAP_SEED}); *average* is the mean over the suite's families. "
        "Tool calls per episode exclude the final `answer`; the invalid-call rate is malformed calls over all calls; "
        "episodes/s is one worker's throughput (episode wall time summed); hit %: episodes where a zoom/ocr/focus region "
        "covered half an evidence box; read %: episodes where a tool output held an accepted answer (among those whose "
        "answer is printed in the image). Rendered from the results store by `iapo-bench report`, which also writes "
        "`leaderboard.html` with episode pictures.",
    ]
    for suite, info in board["suites"].items():
        cfg, fams = info["config"], info["families"]
        lines += ["", f"## Suite `{suite}`", ""]
        if info.get("description"):
            lines += [info["description"], ""]
        episodes = "every usable item" if cfg.get("episodes") is None else f"{cfg.get('episodes')} episodes"
        level = "" if cfg.get("datasets") else f"difficulty {cfg.get('difficulty')} · "
        lines += [
            f"Seeds {', '.join(map(str, info['seeds']))} · {episodes} per seed per family · "
            f"{level}OCR `{cfg.get('ocr')}` · view size {cfg.get('view_size')}"
            + (f" · budget {cfg['budget']}" if cfg.get("budget") else ""),
            "",
            f"Reproduce: `{info['command']}`",
            "",
        ]
        head = [
            "#",
            "agent",
            AVERAGE,
            *fams,
            "tool calls/ep",
            "invalid %",
            "alignment",
            "hit %",
            "read %",
            "episodes/s",
            "OCR",
            "checkpoint",
        ]
        lines += [
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---:" if 2 <= i < len(head) - 2 else "---" for i in range(len(head))) + "|",
        ]
        for rank, e in enumerate(entries[suite], start=1):
            name = e.agent + (f" ({e.cells}/{e.cells_expected} cells)" if e.cells < e.cells_expected else "")
            row = [
                str(rank),
                f"`{_md_cell(name)}`",
                f"**{_ci(e.average)}**",
                *[_ci(e.accuracy[f]) if f in e.accuracy else "—" for f in fams],
                f"{e.usage.tool_calls_per_episode:.2f}",
                _pct(e.usage.invalid_call_rate),
                _num(e.usage.alignment, "{:.3f}"),
                _rate(e.usage.evidence_hit_rate),
                _rate(e.usage.evidence_read_rate),
                f"{e.usage.episodes_per_s:.0f}",
                e.ocr,
                f"`{e.checkpoint_hash}`" if e.checkpoint_hash else "—",
            ]
            lines.append("| " + " | ".join(row) + " |")
        tools = sorted({t for e in entries[suite] for t in e.usage.tool_usage})
        if tools:
            lines += [
                "",
                "Calls per episode by tool (valid calls):",
                "",
                "| agent | " + " | ".join(tools) + " |",
                "|---|" + "---:|" * len(tools),
            ]
            for e in entries[suite]:
                lines.append(
                    f"| `{_md_cell(e.agent)}` | " + " | ".join(f"{e.usage.tool_usage.get(t, 0.0):.2f}" for t in tools) + " |"
                )
        served = [e for e in entries[suite] if e.usage.tokens_in is not None]
        if served:
            lines += [
                "",
                "Served models (tokens per episode, cost, episodes that failed for good and count as wrong):",
                "",
                "| agent | model | URL | tokens in/ep | tokens out/ep | cost (USD) | errors |",
                "|---|---|---|---:|---:|---:|---:|",
            ]
            for e in served:
                c = board.get("agents", {}).get(e.agent) or {}
                lines.append(
                    f"| `{_md_cell(e.agent)}` | `{_md_cell(str(c.get('model', '')))}` | {_md_cell(str(c.get('url', '')))} | "
                    f"{e.usage.tokens_in:.0f} | {e.usage.tokens_out:.0f} | {_num(e.usage.cost, '{:.4f}')} | {e.usage.errors} |"
                )
        if info.get("judge"):
            lines += [
                "",
                "LLM judge (the set's published judging rules as a prompt) beside the rule scorer, on the same "
                "episodes; unjudged: the verdict could not be had (never counted as wrong):",
                "",
                judge_table(info["judge"]),
            ]
        if info.get("data"):
            lines += ["", "Data (each set's published file, its scorer, and what it held):", "", data_table(info["data"])]
    return "\n".join(lines) + "\n"


def _reasons(counts: dict[str, int]) -> str:
    return "; ".join(f"{n} {r}" for r, n in counts.items()) or "0"


def judge_summary(
    episodes: Sequence[EpisodeRow], judged: dict[tuple[str, str, str, int, int], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per (agent, judge): episodes judged and unjudged, the judge's accuracy and the rule scorer's on the judged
    episodes (pooled over families and seeds), and how often the two agree."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for e in episodes:
        if not e.scored:
            continue
        for judge, j in judged.get((e.agent, e.suite, e.family, e.seed, e.episode), {}).items():
            t = table.setdefault(
                (e.agent, judge),
                {"agent": e.agent, "judge": judge, "judged": 0, "unjudged": 0, "judge_correct": 0, "rule_correct": 0, "agree": 0},
            )
            if j.verdict is None:
                t["unjudged"] += 1
                continue
            t["judged"] += 1
            t["judge_correct"] += int(j.verdict)
            t["rule_correct"] += int(e.correct)
            t["agree"] += int(j.verdict == e.correct)
    out = []
    for t in table.values():
        n = t["judged"]
        out.append(
            {
                **t,
                "judge_accuracy": t["judge_correct"] / n if n else None,
                "rule_accuracy": t["rule_correct"] / n if n else None,
                "agreement": t["agree"] / n if n else None,
            }
        )
    return out


def judge_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| agent | judge | judged | unjudged | judge accuracy % | rule accuracy % | agreement % |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{_md_cell(r['agent'])}` | `{_md_cell(r['judge'])}` | {r['judged']} | {r['unjudged']} | "
            f"{_rate(r['judge_accuracy'])} | {_rate(r['rule_accuracy'])} | {_rate(r['agreement'])} |"
        )
    return "\n".join(lines)


def data_table(data: dict[str, dict[str, Any]]) -> str:
    """The public data sets of a suite as a Markdown table: scorer, usable items, skips and dropped metadata
    by reason, items whose question names no label (no evidence), items without a published answer."""
    rows = [
        "| set | scorer | usable items | skipped | metadata dropped | no evidence | unscored | file |",
        "|---|---|---:|---|---|---:|---:|---|",
    ]
    for fam, d in data.items():
        rows.append(
            f"| {_md_cell(fam)} | `{d.get('scorer', '')}` | {d.get('usable', 0)} | {_reasons(d.get('skipped', {}))} | "
            f"{_reasons(d.get('metadata_dropped', {}))} | {d.get('no_evidence', 0)} | {d.get('unscored', 0)} | "
            f"`{_md_cell(Path(str(d.get('source', ''))).name)}` |"
        )
    return "\n".join(rows)


_CSV_FIELDS = [
    "suite",
    "agent",
    "family",
    "accuracy",
    "ci_low",
    "ci_high",
    "standard_error",
    "episodes",
    "seeds",
    "tool_calls_per_episode",
    "invalid_call_rate",
    "alignment",
    "mean_reward",
    "episodes_per_s",
    "ocr",
    "checkpoint_hash",
    "evidence_hit_rate",
    "evidence_read_rate",
]


def render_csv(entries: dict[str, list[Entry]]) -> str:
    """Long format: one row per (suite, agent, family), then the agent's ``average`` row; ``calls_<tool>`` columns."""
    tools = sorted({t for es in entries.values() for e in es for t in e.usage.tool_usage})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_FIELDS + [f"calls_{t}" for t in tools])
    for suite, es in entries.items():
        for e in es:
            for fam, score, use in [*((f, s, e.family_usage[f]) for f, s in e.accuracy.items()), (AVERAGE, e.average, e.usage)]:
                w.writerow(
                    [
                        suite,
                        e.agent,
                        fam,
                        f"{score.mean:.6f}",
                        f"{score.low:.6f}",
                        f"{score.high:.6f}",
                        f"{score.se:.6f}",
                        score.episodes,
                        score.seeds,
                        f"{use.tool_calls_per_episode:.6f}",
                        f"{use.invalid_call_rate:.6f}",
                        "" if use.alignment is None else f"{use.alignment:.6f}",
                        f"{use.mean_reward:.6f}",
                        f"{use.episodes_per_s:.1f}",
                        e.ocr,
                        e.checkpoint_hash or "",
                        "" if use.evidence_hit_rate is None else f"{use.evidence_hit_rate:.6f}",
                        "" if use.evidence_read_rate is None else f"{use.evidence_read_rate:.6f}",
                    ]
                    + [f"{use.tool_usage.get(t, 0.0):.6f}" for t in tools]
                )
    return buf.getvalue()


def render_png(board: dict[str, Any], entries: dict[str, list[Entry]]) -> bytes:
    """Bar charts of accuracy with 95% CI whiskers: one panel per family plus the average, one row block per suite."""
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # no pyplot: leaves the user's backend alone
    )
    from matplotlib.figure import Figure, SubFigure

    agents = list(dict.fromkeys(e.agent for es in entries.values() for e in es))
    colors = {a: f"C{i % 10}" for i, a in enumerate(agents)}
    suites = [s for s in board["suites"] if entries[s]]
    layout = [(s, [*board["suites"][s]["families"], AVERAGE]) for s in suites]
    ncols = min(4, max((len(p) for _, p in layout), default=1))
    rows = [-(-len(p) // ncols) for _, p in layout]
    width = max(0.9 * len(agents) + 1.2, 3.2)  # inches per panel
    fig = Figure(figsize=(ncols * width + 0.5, 3.0 * max(sum(rows), 1) + 0.8 * len(suites) + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    subfigs: Iterable[SubFigure] = fig.subfigures(len(suites), 1, height_ratios=rows, squeeze=False)[:, 0] if suites else []
    for sub, (suite, panels), nrow in zip(subfigs, layout, rows):
        sub.suptitle(f"suite {suite}: accuracy (%) with 95% bootstrap CI", fontsize=11, fontweight="bold")
        axes = sub.subplots(nrow, ncols, squeeze=False).ravel()
        by_agent = {e.agent: e for e in entries[suite]}
        for ax, panel in zip(axes, panels):
            names = [a for a in agents if a in by_agent and (panel == AVERAGE or panel in by_agent[a].accuracy)]
            scores = [by_agent[a].average if panel == AVERAGE else by_agent[a].accuracy[panel] for a in names]
            x = np.arange(len(names))
            means = np.array([100 * s.mean for s in scores])
            err = np.array([[100 * (s.mean - s.low) for s in scores], [100 * (s.high - s.mean) for s in scores]])
            ax.bar(
                x,
                means,
                color=[colors[a] for a in names],
                yerr=err if len(names) else None,
                capsize=4,
                edgecolor="black" if panel == AVERAGE else "none",
                linewidth=1.2,
            )
            for xi, m, s in zip(x, means, scores):  # the value just above its whisker, clear of the bar and the line
                ax.text(xi, 100 * s.high + 1.5, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
            ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
            ax.set_ylim(0, 112)
            ax.set_yticks(range(0, 101, 20))
            ax.set_title(
                panel if panel != AVERAGE else "average (over families)",
                fontsize=10,
                fontweight="bold" if panel == AVERAGE else "normal",
            )
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        axes[0].set_ylabel("accuracy (%)")
    return figure_png(fig, bbox_inches="tight")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "agent"


def submission(agent: AgentRow, per_suite: dict[str, Entry], board: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(summary, metadata)`` of one agent for a shared leaderboard, after BALROG's ``summary.json``."""
    suites: dict[str, dict[str, Any]] = {}
    for suite, e in per_suite.items():
        suites[suite] = {
            "accuracy_percentage": 100 * e.average.mean,
            "standard_error": 100 * e.average.se,
            "ci95": [100 * e.average.low, 100 * e.average.high],
            "episodes_played": e.average.episodes,
            "families": {
                f: {
                    "accuracy_percentage": 100 * s.mean,
                    "standard_error": 100 * s.se,
                    "ci95": [100 * s.low, 100 * s.high],
                    "episodes_played": s.episodes,
                }
                for f, s in e.accuracy.items()
            },
            "tool_calls_per_episode": e.usage.tool_calls_per_episode,
            "invalid_call_rate": e.usage.invalid_call_rate,
            "alignment": e.usage.alignment,
        }
    k = len(suites)
    summary = {
        "Final score": float(np.mean([s["accuracy_percentage"] for s in suites.values()])),
        "standard_error": float(np.sqrt(sum(s["standard_error"] ** 2 for s in suites.values())) / k),
        "suites": suites,
        "agent": {"name": agent.agent, "kind": agent.kind, "checkpoint_hash": agent.checkpoint_hash},
    }
    entries = list(per_suite.values())
    metadata = {
        "name": agent.agent,
        "agent": {
            "kind": agent.kind,
            "checkpoint_hash": agent.checkpoint_hash,
            # a file or folder path is private to this machine; a registered name or module spec is not
            **({"spec": agent.source} if agent.kind == "name" or (agent.kind == "spec" and ".py:" not in agent.source) else {}),
        },
        "date": max(e.finished_at for e in entries)[:10],
        "library": "iapo-gym",
        "library_version": ", ".join(sorted({e.library_version for e in entries})),
        "suites": {
            s: {
                "seeds": e.seeds,
                **{k2: board["suites"][s]["config"].get(k2) for k2 in ("episodes", "difficulty", "ocr", "view_size", "budget")},
                "families": board["suites"][s]["families"],
            }
            for s, e in per_suite.items()
        },
        "confidence_intervals": board["bootstrap"],
    }
    return summary, metadata


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def render_leaderboard(
    out: str | os.PathLike[str], to: str | os.PathLike[str] | None = None, pictures: int = PICTURES_PER_FAMILY
) -> Path:
    """Render the leaderboard of the results in ``out`` into ``to`` (default ``out``); returns that folder.

    Writes ``leaderboard.{md,csv,json,png,html}``, ``submissions/<agent>/{summary.json,metadata.yaml}`` and
    ``episodes/`` (up to ``pictures`` episode pictures per agent per family, drawn from the stored
    trajectories, linked from the page), each atomically. Reads the store read-only, so a shared results
    folder can be rendered elsewhere.
    """
    out = Path(out).expanduser()
    target = Path(to).expanduser() if to is not None else out
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        configs, agents, cells_all = store.suites(), store.agents(), store.cells()
        data = {suite: store.task_data(suite) for suite in configs}
        judged = store.judgements()
        episodes_all = store.episodes()
        chosen = _choose_pictures(store, episodes_all, pictures)
    board: dict[str, Any] = {
        "bootstrap": {
            "method": "two-stage percentile bootstrap over seeds, then items",
            "replicates": BOOTSTRAP_REPLICATES,
            "seed": BOOTSTRAP_SEED,
            "confidence": CONFIDENCE,
        },
        "suites": {},
        "agents": {a.agent: a.config for a in agents if a.config},
    }
    entries: dict[str, list[Entry]] = {}
    for suite, cfg in configs.items():
        eps = [e for e in episodes_all if e.suite == suite]
        if not eps:
            continue
        fams = list(cfg.get("families") or []) or sorted({e.family for e in eps})
        entries[suite] = compute_entries(suite, fams, eps, [c for c in cells_all if c.suite == suite], agents)
        board["suites"][suite] = {
            "config": cfg,
            "families": fams,
            "seeds": sorted({e.seed for e in eps}),
            "data": {f: data[suite][f] for f in fams if f in data.get(suite, {})},
            "judge": judge_summary(eps, judged),
            "description": _description(suite, cfg),
            "command": _command(suite, cfg, entries[suite], agents),
            "entries": [_entry_json(e) for e in entries[suite]],
        }
    if not entries:
        raise BenchmarkError(f"no finished cells in {out / DB_NAME} yet; run `iapo-bench run ... --out {out}` first")
    try:
        gallery = _write_pictures(out, target, chosen)
        atomic_write_text(target / "leaderboard.html", render_html(_jsonable(board), gallery))
        atomic_write_text(target / "leaderboard.md", render_markdown(board, entries))
        atomic_write_text(target / "leaderboard.csv", render_csv(entries))
        atomic_write_json(target / "leaderboard.json", _jsonable(board))
        atomic_write_bytes(target / "leaderboard.png", render_png(board, entries))
        for agent in agents:
            per_suite = {s: e for s, es in entries.items() for e in es if e.agent == agent.agent}
            if not per_suite:
                continue
            summary, metadata = submission(agent, per_suite, board)
            folder = target / "submissions" / _safe(agent.agent)
            atomic_write_json(folder / "summary.json", _jsonable(summary))
            atomic_write_text(folder / "metadata.yaml", yaml.safe_dump(_jsonable(metadata), sort_keys=False))
    except OSError as exc:
        raise BenchmarkError(
            f"cannot write the leaderboard into {str(target)!r} ({exc.strerror or exc}); "
            f"choose another folder (iapo-bench report DIR --to FOLDER)"
        ) from None
    return target


def _choose_pictures(store: ResultsStore, episodes: Sequence[EpisodeRow], k: int) -> list[EpisodeRow]:
    """Up to ``k`` episodes with a trajectory per (suite, agent, family): the first right one, the first wrong one..."""
    if k <= 0:
        return []
    cells: dict[tuple[str, str, str], list[EpisodeRow]] = {}
    for e in episodes:
        cells.setdefault((e.suite, e.agent, e.family), []).append(e)
    picks = []
    for rows in cells.values():
        with_traj = [e for e in rows if store.has_trajectory(e)]
        picks += pick_episodes(with_traj, k)
    return picks


def _write_pictures(out: Path, target: Path, chosen: Sequence[EpisodeRow]) -> dict[str, dict[str, list[Picture]]]:
    """Draw the chosen episodes into ``target/episodes/`` (replaced whole); suite -> agent -> pictures."""
    gallery: dict[str, dict[str, list[Picture]]] = {}
    if not chosen:
        return gallery

    def fill(folder: Path) -> None:
        envs: dict[tuple[str, str], Any] = {}
        try:
            with ResultsStore(out / DB_NAME, readonly=True) as store:
                for e in chosen:
                    rel = Path(_safe(e.suite)) / _safe(e.agent) / f"{_safe(e.family)}-seed{e.seed}-ep{e.episode}.png"
                    try:
                        fig = draw_episode(load_recording(store, e, envs), title=title_of(e))
                    except (ValueError, gym.error.Error) as exc:  # one that cannot be redrawn is left off the page
                        print(f"iapo-bench: note: no picture of {title_of(e)} ({exc})", file=sys.stderr)
                        continue
                    save_figure(fig, folder / rel)
                    gallery.setdefault(e.suite, {}).setdefault(e.agent, []).append(
                        Picture(f"episodes/{rel.as_posix()}", e.family, e.seed, e.episode, e.correct)
                    )
        finally:
            for env in envs.values():
                env.close()

    atomic_write_dir(target / "episodes", fill)
    return gallery


def _description(suite: str, config: dict[str, Any]) -> str:
    """The built-in suite's description, if the results are of that suite (the store keeps only the fingerprint)."""
    from .suites import SUITES_DIR, SuiteError, load_suite

    if not (SUITES_DIR / f"{suite}.yaml").is_file():
        return ""
    try:
        builtin = load_suite(suite)
    except SuiteError:
        return ""
    same = {k: v for k, v in builtin.fingerprint().items() if k != "episodes"} == {
        k: v for k, v in config.items() if k != "episodes"
    }
    return builtin.description if same else ""


def _command(suite: str, cfg: dict[str, Any], entries: Sequence[Entry], agents: Sequence[AgentRow]) -> str:
    """The ``iapo-bench run`` command that reproduces a suite's table (local paths shown as placeholders)."""
    rows = {a.agent: a for a in agents}
    specs = []
    for e in sorted(entries, key=lambda e: rows[e.agent].position if e.agent in rows else 1 << 30):
        a = rows.get(e.agent)
        if a is None or a.kind == "name" or (a.kind == "spec" and ".py:" not in a.source):
            source = a.source if a else e.agent
            specs.append(e.agent if source == e.agent else f"{e.agent}={source}")
        else:  # a checkpoint folder or a file: private paths of the machine that ran it
            specs.append(f"{e.agent}=PATH/TO/{'CHECKPOINT' if a.kind == 'checkpoint' else 'FILE.py:Class'}")
    seeds = sorted({s for e in entries for s in e.seeds})
    episodes = f" --episodes {cfg['episodes']}" if cfg.get("episodes") is not None else ""
    data_dir = " --data-dir DATA_DIR" if cfg.get("datasets") else ""
    return (
        f"iapo-bench run --agents {' '.join(specs)} --suite {suite} --seeds {' '.join(map(str, seeds))}"
        f"{episodes}{data_dir} --out DIR"
    )


def _entry_json(e: Entry) -> dict[str, Any]:
    d = asdict(e)
    d["accuracy"] = {f: asdict(s) for f, s in e.accuracy.items()}
    return d


__all__ = [
    "AVERAGE",
    "BOOTSTRAP_REPLICATES",
    "BOOTSTRAP_SEED",
    "Entry",
    "FILES",
    "Score",
    "Usage",
    "accuracy_scores",
    "compute_entries",
    "data_table",
    "judge_summary",
    "judge_table",
    "render_csv",
    "render_leaderboard",
    "render_markdown",
    "render_png",
    "submission",
    "usage",
]
