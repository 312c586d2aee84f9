"""Episode pictures: one episode drawn as a strip, to see what an agent did and where it looked.

Top row: the full image with each tool call's region drawn and numbered by its step, then per step the
crop the agent received (or what the step was: the answer, an invalid call) with the tool's text below.
The header gives the question, the answer against the accepted answers (right or wrong). For a
trajectory with attribution, one column per decision: the agent's attribution over the image cells, the
teacher's beneath it, and the block split (image / question / tool output) of both as bars — so "looks
where the teacher looks" is visible.

:func:`render_episode` plays an episode (env + agent + seed) and draws it; :func:`draw_episode` draws a
recording (e.g. one replayed from the results store, :func:`iapo_gym.trajectory.replay`). No pyplot: the
user's matplotlib backend is left alone. Core layer: the agent is any object with ``act``/``reset`` (and
optionally ``attribute``).
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .io import atomic_write_bytes
from .scene import Box
from .trajectory import DecisionAttribution, Recording, Trajectory, record_episode

BLOCK_LABELS = {
    "image": "image",
    "query": "question",
    "tool_outputs": "tool output",
    "context": "context",
    "tool_defs": "tool defs",
}
RIGHT, WRONG = "#1a7f37", "#cf222e"
AGENT_COLOR, TEACHER_COLOR = "#0969da", "#bf8700"
_TEXT_WIDTH = 30  # characters per line of a tool output under its panel


@dataclass(frozen=True)
class EpisodeFigureData:
    """What the picture states about the episode, derived from the trajectory alone (tests check it)."""

    boxes: list[tuple[int, Box]]
    """``(step number from 1, box)`` for each region drawn on the full image, in step order."""
    answer: str | None
    accepted: tuple[str, ...]
    correct: bool
    decisions: list[int]
    """Step numbers that have an attribution row (agent's and/or teacher's)."""


def figure_data(trajectory: Trajectory) -> EpisodeFigureData:
    """The boxes, the answer and the attribution columns :func:`draw_episode` draws for ``trajectory``."""
    boxes = [(k, b) for k, s in enumerate(trajectory.steps, start=1) for b in s.boxes]
    decisions = [
        k for k, s in enumerate(trajectory.steps, start=1) if s.agent_attribution is not None or s.teacher_attribution is not None
    ]
    return EpisodeFigureData(boxes, trajectory.answer, trajectory.answers, trajectory.correct, decisions)


def _color(step: int) -> str:
    return f"C{(step - 1) % 10}"


def _rect(ax: Any, box: Box, hw: tuple[int, int], color: str, lw: float = 2.0, gid: str = "sent") -> Any:
    """A box outline; ``gid`` says what it is: ``sent`` (a region a call chose), ``evidence`` or ``maps``."""
    from matplotlib.patches import Rectangle

    h, w = hw
    x0, y0, x1, y1 = box
    return ax.add_patch(
        Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h, fill=False, edgecolor=color, linewidth=lw, gid=gid)
    )


def _clean(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _step_title(k: int, step: Any) -> str:
    if step.error:
        return f"{k}. invalid call"
    if step.tool == "answer":
        return f"{k}. answer"
    return f"{k}. {step.tool}"


def maps_region(trajectory: Trajectory, evidence: Sequence[Box] = (), share: float = 0.2, margin: float = 0.04) -> Box:
    """The part of the image the attribution maps show: every cell holding at least ``share`` of its map's
    largest cell, every region sent and every evidence box, padded by ``margin``; the whole image when that
    covers most of it. The evidence is often small on a large canvas: the maps would be unreadable whole."""
    boxes: list[Box] = list(evidence)
    for step in trajectory.steps:
        boxes += list(step.boxes)
        for attr in (step.agent_attribution, step.teacher_attribution):
            if attr is None:
                continue
            cells = attr.cells()
            if cells.max() <= 0:
                continue
            g = attr.grid
            for r, c in zip(*np.nonzero(cells >= share * cells.max())):
                boxes.append((c / g, r / g, (c + 1) / g, (r + 1) / g))
    if not boxes:
        return (0.0, 0.0, 1.0, 1.0)
    x0, y0 = min(b[0] for b in boxes) - margin, min(b[1] for b in boxes) - margin
    x1, y1 = max(b[2] for b in boxes) + margin, max(b[3] for b in boxes) + margin
    side = max(x1 - x0, y1 - y0)  # square, so the maps keep the image's aspect
    if side >= 0.8:
        return (0.0, 0.0, 1.0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, y0 = min(max(cx - side / 2, 0.0), 1.0 - side), min(max(cy - side / 2, 0.0), 1.0 - side)
    return (x0, y0, x0 + side, y0 + side)


def _heatmap(ax: Any, gray: np.ndarray, attr: DecisionAttribution | None, boxes: tuple[Box, ...], who: str, region: Box) -> None:
    _clean(ax)
    h, w = gray.shape
    ax.imshow(gray, cmap="gray", vmin=0, vmax=255, alpha=0.45)
    if attr is None:
        ax.set_title(f"{who}: none", fontsize=8, color="#57606a")
        return
    cells = attr.cells()
    top = float(cells.max())
    level = cells / top if top > 0 else cells
    color = np.array(_rgb(AGENT_COLOR if who == "agent" else TEACHER_COLOR))
    overlay = np.zeros((*level.shape, 4))
    overlay[..., :3] = color
    overlay[..., 3] = 0.85 * np.sqrt(level)  # the strongest cell opaque-ish, faint cells still visible
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")
    for b in boxes:
        _rect(ax, b, (h, w), "#00b8d9", lw=1.4)
    ax.set_xlim(region[0] * w, region[2] * w)
    ax.set_ylim(region[3] * h, region[1] * h)
    ax.set_title(
        f"{who}: {100 * attr.blocks.get('image', 0.0):.0f}% on image",
        fontsize=8,
        color=AGENT_COLOR if who == "agent" else TEACHER_COLOR,
    )


def _rgb(hex_color: str) -> tuple[float, float, float]:
    return int(hex_color[1:3], 16) / 255, int(hex_color[3:5], 16) / 255, int(hex_color[5:7], 16) / 255


def _bars(ax: Any, agent: DecisionAttribution | None, teacher: DecisionAttribution | None, labels: bool) -> None:
    names = [
        b
        for b in ("image", "query", "tool_outputs", "context", "tool_defs")
        if any(a is not None and b in a.blocks for a in (agent, teacher))
    ]
    y = np.arange(len(names))
    for off, attr, color, label in ((-0.2, agent, AGENT_COLOR, "agent"), (0.2, teacher, TEACHER_COLOR, "teacher")):
        if attr is not None:
            ax.barh(y + off, [100 * attr.blocks.get(n, 0.0) for n in names], height=0.38, color=color, label=label)
    ax.set_yticks(y, [BLOCK_LABELS.get(n, n) for n in names] if labels else [], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.tick_params(axis="x", labelsize=6)
    ax.set_xlabel("% of attribution", fontsize=7)
    ax.grid(axis="x", alpha=0.3)


def draw_episode(recording: Recording, title: str | None = None, dpi: int = 100) -> Any:
    """Draw a recorded episode as a strip (see the module docstring); returns a matplotlib ``Figure``.

    Every box, text and answer comes from ``recording.trajectory``; the scene gives the image and
    ``recording.crops`` the images the agent received.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    traj, scene = recording.trajectory, recording.scene
    data = figure_data(traj)
    steps = list(traj.steps)
    n = max(1, len(steps))
    who = [
        w
        for w, field in (("agent", "agent_attribution"), ("teacher", "teacher_attribution"))
        if any(getattr(s, field) is not None for s in steps)
    ]
    heights = [3.0, 0.9] + [2.0] * len(who) + ([1.2] if who else [])
    fig = Figure(figsize=(2.0 * (n + 2) + 0.4, sum(heights) + 1.1), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        len(heights),
        n + 2,
        height_ratios=heights,
        hspace=0.35,
        wspace=0.12,
        left=0.02,
        right=0.99,
        top=1 - 1.0 / (sum(heights) + 1.1),
        bottom=0.03,
    )
    hw = (scene.height, scene.width)

    # header: the question and the answer against the accepted answers
    verdict = "right" if data.correct else "wrong"
    given = "no answer (budget ran out)" if data.answer is None else f"answer {data.answer!r}"
    head = f"Q: {traj.question}"
    fig.text(0.01, 1 - 0.18 / (sum(heights) + 1.1), head, fontsize=11, fontweight="bold", va="top")
    fig.text(
        0.01,
        1 - 0.55 / (sum(heights) + 1.1),
        f"{given}: {verdict}  ·  accepted: {', '.join(map(repr, data.accepted))}",
        fontsize=10,
        va="top",
        color=RIGHT if data.correct else WRONG,
        fontweight="bold",
    )
    if title:
        fig.text(0.99, 1 - 0.18 / (sum(heights) + 1.1), title, fontsize=9, va="top", ha="right", color="#57606a")

    # the full image with every chosen region, numbered by its step
    full = fig.add_subplot(grid[0:2, 0:2])
    _clean(full)
    full.imshow(scene.image)
    full.set_title(f"{traj.family} · scene {traj.scene_id}", fontsize=9)
    full.set_xlabel("boxes: the regions sent, numbered by step; green dashes: the evidence", fontsize=7, color="#57606a")
    evidence = [r.box for r in scene.evidence]
    for box in evidence:
        patch = _rect(full, box, hw, RIGHT, lw=1.2, gid="evidence")
        patch.set_linestyle((0, (2, 1.5)))
    region = maps_region(traj, evidence)
    if who and region != (0.0, 0.0, 1.0, 1.0):
        patch = _rect(full, region, hw, "#8c959f", lw=1.0, gid="maps")
        patch.set_linestyle((0, (4, 3)))
        full.text(region[0] * hw[1], region[1] * hw[0], "maps below", fontsize=7, color="#57606a", va="bottom")
    steps_of: dict[Box, list[int]] = {}  # a region sent at several steps is drawn once, labelled with each step
    for k, box in data.boxes:
        steps_of.setdefault(box, []).append(k)
    for box, ks in steps_of.items():
        _rect(full, box, hw, _color(ks[0]))
        full.text(
            box[0] * hw[1],
            box[1] * hw[0],
            ",".join(dict.fromkeys(map(str, ks))),
            color="white",
            fontsize=8,
            fontweight="bold",
            ha="left",
            va="bottom",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": _color(ks[0]), "edgecolor": "none"},
        )

    gray = np.asarray(scene.image, dtype=np.float64).mean(axis=2)
    crops = list(recording.crops) + [None] * (len(steps) - len(recording.crops))
    for i, (step, crop) in enumerate(zip(steps, crops)):
        k = i + 1
        ax = fig.add_subplot(grid[0, 2 + i])
        _clean(ax)
        color = _color(k) if step.boxes else "#57606a"
        ax.set_title(_step_title(k, step), fontsize=9, color=color, fontweight="bold")
        for side in ax.spines.values():
            side.set_edgecolor(color)
            side.set_linewidth(2 if step.boxes else 1)
        if crop is not None:
            ax.imshow(crop)
        elif step.error:
            ax.text(0.5, 0.5, "invalid", ha="center", va="center", fontsize=11, color=WRONG, transform=ax.transAxes)
        elif step.tool == "answer":
            ax.text(
                0.5,
                0.5,
                textwrap.shorten(str(step.args.get("text", "")), 24, placeholder="…"),
                ha="center",
                va="center",
                fontsize=14,
                fontweight="bold",
                color=RIGHT if data.correct else WRONG,
                transform=ax.transAxes,
            )
        else:
            ax.text(0.5, 0.5, "(no image)", ha="center", va="center", fontsize=9, color="#57606a", transform=ax.transAxes)
        text_ax = fig.add_subplot(grid[1, 2 + i])
        text_ax.axis("off")
        body = step.output or ("" if step.tool == "answer" else "(no text)")
        lines = textwrap.wrap(body, _TEXT_WIDTH, max_lines=6, placeholder=" …")
        text_ax.text(
            0.0,
            1.0,
            "\n".join(lines),
            fontsize=7,
            va="top",
            ha="left",
            family="monospace",
            color=WRONG if step.error else "black",
            transform=text_ax.transAxes,
        )

    if who:
        rows = {w: 2 + j for j, w in enumerate(who)}
        for w, row in rows.items():
            lab = fig.add_subplot(grid[row, 0:2])
            lab.axis("off")
            lab.text(
                0.85,
                0.5,
                f"{w}'s attribution of each\ndecision over image cells\n(darker: more; outlined: the region sent)",
                ha="right",
                va="center",
                fontsize=9,
                transform=lab.transAxes,
                color=AGENT_COLOR if w == "agent" else TEACHER_COLOR,
                fontweight="bold",
            )
        lab = fig.add_subplot(grid[2 + len(who), 0:2])
        lab.axis("off")
        lab.text(
            0.85,
            0.75,
            "block split: share of the attribution\non image / question / tool output",
            ha="right",
            va="center",
            fontsize=9,
            transform=lab.transAxes,
            fontweight="bold",
        )
        for j, w in enumerate(who):
            lab.text(
                0.85 - 0.22 * (len(who) - 1 - j),
                0.25,
                f"■ {w}",
                ha="right",
                va="center",
                fontsize=9,
                transform=lab.transAxes,
                color=AGENT_COLOR if w == "agent" else TEACHER_COLOR,
                fontweight="bold",
            )
        first = True
        for i, step in enumerate(steps):
            if step.agent_attribution is None and step.teacher_attribution is None:
                continue
            for w, row in rows.items():
                _heatmap(fig.add_subplot(grid[row, 2 + i]), gray, getattr(step, f"{w}_attribution"), step.boxes, w, region)
            _bars(fig.add_subplot(grid[2 + len(who), 2 + i]), step.agent_attribution, step.teacher_attribution, labels=first)
            first = False
    return fig


def figure_png(fig: Any, **savefig: Any) -> bytes:
    """The figure as PNG bytes (``savefig`` options such as ``dpi`` passed on to ``Figure.savefig``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    return buf.getvalue()


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write the figure as a PNG, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"episode pictures are PNG files; give a path ending in .png, not {str(path)!r}")
    return atomic_write_bytes(path, figure_png(fig))


def render_episode(
    env: gym.Env[dict[str, Any], str],
    agent: Any,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    attribution: bool = True,
    title: str | None = None,
) -> Any:
    """Play one episode of ``agent`` in ``env`` and draw it; returns the ``Figure`` (and writes ``out``, a PNG).

    ``agent`` is anything with ``act(observation, info) -> str`` and ``reset()``. With ``attribution`` and an
    agent that has ``attribute(observation, info, action)``, a row of its attribution maps is drawn, beside
    the teacher's when ``env`` is wrapped by :class:`~iapo_gym.wrappers.TeacherAttributionWrapper`.
    """
    recording = record_episode(env, agent, seed, options, attribution=attribution)
    fig = draw_episode(recording, title=title)
    if out is not None:
        save_figure(fig, out)
    return fig


__all__ = ["EpisodeFigureData", "draw_episode", "figure_data", "figure_png", "render_episode", "save_figure"]
