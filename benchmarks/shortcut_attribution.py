"""Does the alignment term see the shortcut? The teacher-student divergence of a policy's first decision on
marked training scenes, next to the very same scenes without the marker.

Run (after the learning benchmark's shift condition has cached its warm starts)::

    python -m iapo_gym.benchmarks.shortcut_attribution \\
        --checkpoints docs/learning/shift/warm/bc-2000ep-30epochs-d0-shortcut1-seed{0,1,2,3,4} \\
        --out docs/learning/shift

For each checkpoint, family and scene id of the training split: the scene with the marker on the asked item
(``shortcut=1`` at ``--cue-place``, what training shows) and without it (``shortcut=0``: the same pixels but the marker's).
The policy's greedy first decision on the marked scene (where it looks) is attributed in both scenes (from
each ``--pixel-baselines``: black, captum's default, and white, a blank page), and compared with the oracle teacher's attribution of that decision, exactly as the IAPO loss compares them
(:meth:`~iapo_gym.objective.IAPOObjective.compare`), at each comparison grid and granularity. Per scene:

- **reliance**: log-probability of that decision with the marker minus without it (nats; > 0: the marker
  drives it), and whether the greedy decision changes when the marker goes;
- **divergence** with and without the marker. If the alignment loss penalised following the marker, the
  marked scenes would be *further* from the teacher than the clean ones, more so the more a decision relies
  on the marker;
- **where the image mass is**: the student's (and teacher's) share of image attribution on the cells that
  an evidence box touches and on the marker's own cells (those its slot touches outside the evidence's;
  none where the grid is too coarse to tell them apart), and the student's share of the question block;
- **raw mass outside the teacher's cells** (not normalised: what the objective's absolute ``outside`` penalty
  weighs, :meth:`~iapo_gym.objective.IAPOObjective.outside_mass`), with and without the marker, and the raw
  mass on the marker's own cells. ``--method integrated_gradients`` attributes by integrated gradients from
  the baseline instead of gradient x input: a confident decision's input gradient saturates, so its local
  attribution can miss a cue whose removal costs nats.

``--teacher`` compares with another registered teacher (a user's, by name). ``--train METHOD`` (a learning
benchmark method) then trains each checkpoint with that method on the same training distribution for
``--train-steps`` env steps (the k-th checkpoint with seed k) and measures again: does the update remove the
reliance its loss penalises, or only the divergence? Writes
``shortcut_attribution.{md,json,png}`` (and every scene's figures with ``--per-scene``); differences come
with 95% bootstrap CIs over scenes (pooled over checkpoints).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from iapo_gym.agents.compact import CompactPolicy, observations_to_batch
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.trainer import GroupTrainer
from iapo_gym.benchmarks.learning import CONDITIONS, METHODS, SHORTCUT_FAMILIES, mean_ci, method_config
from iapo_gym.envs.families import FAMILY_ENVS
from iapo_gym.envs.shortcuts import PLACES

from iapo_gym.attribution import PIXEL_BASELINES, cells_of_box
from iapo_gym.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from iapo_gym.objective import GRANULARITIES, IAPOObjective
from iapo_gym.teachers import make_teacher
from iapo_gym.viz import figure_png
from iapo_gym.wrappers import TeacherAttributionWrapper

FIRST_SCENE = 1000
"""First training-split scene id looked at (the scene ids are ``FIRST_SCENE, FIRST_SCENE + 1, ...``)."""


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties broken by order; ``nan`` for fewer than 3 points or a constant)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _env(family: str, rate: float, grid: int, policy: CompactPolicy, place: str, teacher: str) -> gym.Env:
    pc = policy.config
    base = gym.make(f"VisualToolVQA-{family}-v0", difficulty=0, shortcut=rate, shortcut_place=place)
    return TeacherAttributionWrapper(
        base, teacher=teacher, grid=grid, coef=0.0, query_length=pc.question_length, output_length=pc.output_length
    )


def measure_scenes(
    policy: CompactPolicy,
    family: str,
    scene_ids: Sequence[int],
    grids: Sequence[int],
    granularities: Sequence[str],
    pixel_baselines: Sequence[str] = ("black",),
    place: str = "value",
    teacher: str = "oracle",
    method: str = "gradient_x_input",
) -> list[dict[str, Any]]:
    """One row per scene id: reliance on the marker, and per pixel baseline of the student's attribution
    (by ``method``), grid and granularity the divergence and image shares with and without it (see the module
    docstring); keys ``"div/<baseline>/<grid>/<granularity>/<marked|clean>"``,
    ``"student_evidence/<baseline>/<grid>/<tag>"``, ``"student_outside/<baseline>/<grid>/<tag>"`` (raw)..."""
    rows: list[dict[str, Any]] = []
    envs = {g: (_env(family, 1.0, g, policy, place, teacher), _env(family, 0.0, g, policy, place, teacher)) for g in grids}
    for sid in scene_ids:
        # every grid's env pair is reset to the scene (the teacher's grid differs, the observations do not)
        obs = [(m.reset(options={"scene_id": int(sid)})[0], c.reset(options={"scene_id": int(sid)})[0]) for m, c in envs.values()]
        b_m, b_c = (observations_to_batch([o], policy.config) for o in obs[0])
        with torch.no_grad():  # the decision and its reliance on the marker, once per scene
            action = policy.sample(b_m, greedy=True)
            lp_m, _ = policy.log_prob(b_m, action)
            lp_c, _ = policy.log_prob(b_c, action)
            action_c = policy.sample(b_c, greedy=True)
        row: dict[str, Any] = {
            "scene_id": int(sid),
            "call": policy.to_calls(action, [obs[0][0]])[0],
            "reliance": float(lp_m - lp_c),
            "changes_without_marker": bool(not torch.equal(action, action_c)),
        }
        for g, (marked_env, clean_env) in envs.items():
            scene = marked_env.unwrapped.scene  # type: ignore[attr-defined]
            if scene.meta["shortcut"]["marked"] != scene.meta["shortcut"]["target"]:
                raise RuntimeError(f"scene {sid}: the training split at shortcut=1 must mark the asked item")
            h, w = scene.image.shape[:2]
            x0, y0, x1, y1 = scene.meta["shortcut"]["box"]
            # cells any evidence box touches, and the cells the marker's slot touches outside those
            evidence = (np.sum([cells_of_box(r.box, g) for r in scene.evidence], axis=0) > 0).astype(float)
            marker_only = (cells_of_box((x0 / w, y0 / h, x1 / w, y1 / h), g) > 0) * (1.0 - evidence)
            objective = IAPOObjective(grid=g)  # the default's comparison at this grid (each granularity below)
            layout = objective.layout(policy.config.question_length, policy.config.output_length)
            img = layout.slice("image")
            for tag, env, batch in (("marked", marked_env, b_m), ("clean", clean_env, b_c)):
                _, _, _, _, info = env.step(row["call"])
                t_vec = torch.tensor(np.asarray(info["teacher_attribution"].values), dtype=torch.float32)
                t_img = t_vec[img].numpy() / max(float(t_vec[img].sum()), 1e-12)
                row[f"teacher_evidence/{g}/{tag}"] = float(t_img @ evidence)
                row[f"teacher_marker/{g}/{tag}"] = float(t_img @ marker_only)
                for base in pixel_baselines:
                    student = policy.attribution(batch, action, [(h, w)], g, method, pixel_baseline=base)[0].detach()
                    for gran in granularities:
                        div = IAPOObjective(grid=g, granularity=gran).compare(t_vec, student, layout)
                        row[f"div/{base}/{g}/{gran}/{tag}"] = float(div)
                    s_img = student[img].numpy() / max(float(student[img].sum()), 1e-12)
                    row[f"student_evidence/{base}/{g}/{tag}"] = float(s_img @ evidence)
                    row[f"student_marker/{base}/{g}/{tag}"] = float(s_img @ marker_only)
                    query = student[layout.slice("query")].sum() / student.sum().clamp_min(1e-12)
                    row[f"student_query/{base}/{g}/{tag}"] = float(query)
                    # raw, as the absolute penalty sees them (IAPOObjective.outside_mass)
                    row[f"student_outside/{base}/{g}/{tag}"] = float(objective.outside_mass(t_vec, student, layout))
                    row[f"student_marker_raw/{base}/{g}/{tag}"] = float(student[img].numpy() @ marker_only)
        rows.append(row)
    return rows


def summarise(
    rows: Sequence[dict[str, Any]],
    grids: Sequence[int],
    granularities: Sequence[str],
    pixel_baselines: Sequence[str] = ("black",),
) -> dict[str, Any]:
    """Means with 95% CIs over the rows (scenes) of one family: ``["grids"][grid][baseline]``."""
    rel = [r["reliance"] for r in rows]
    out: dict[str, Any] = {
        "scenes": len(rows),
        "reliance": mean_ci(rel),
        "changes_without_marker": float(np.mean([r["changes_without_marker"] for r in rows])),
        "grids": {},
    }
    for g in grids:
        out["grids"][str(g)] = {}
        for base in pixel_baselines:
            per: dict[str, Any] = {}
            for gran in granularities:
                m = [r[f"div/{base}/{g}/{gran}/marked"] for r in rows]
                c = [r[f"div/{base}/{g}/{gran}/clean"] for r in rows]
                per[gran] = {
                    "marked": float(np.mean(m)),
                    "clean": float(np.mean(c)),
                    "marked_minus_clean": mean_ci(np.subtract(m, c).tolist()),
                    "spearman_reliance_vs_marked_minus_clean": spearman(rel, np.subtract(m, c).tolist()),
                }
            m = [r[f"student_outside/{base}/{g}/marked"] for r in rows]
            c = [r[f"student_outside/{base}/{g}/clean"] for r in rows]
            per["outside_marked_minus_clean"] = mean_ci(np.subtract(m, c).tolist())
            per["spearman_reliance_vs_outside_marked_minus_clean"] = spearman(rel, np.subtract(m, c).tolist())
            per["spearman_reliance_vs_marker_raw"] = spearman(rel, [r[f"student_marker_raw/{base}/{g}/marked"] for r in rows])
            keys = ("student_evidence", "student_marker", "student_query", "student_outside", "student_marker_raw")
            for key in (*keys, "teacher_evidence", "teacher_marker"):
                at = f"{base}/{g}" if key.startswith("student") else str(g)
                per[key] = {tag: float(np.mean([r[f"{key}/{at}/{tag}"] for r in rows])) for tag in ("marked", "clean")}
            out["grids"][str(g)][base] = per
    return out


def _fmt(ci: Sequence[float]) -> str:
    return f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}]"


def table(summary: dict[str, Any], granularities: Sequence[str]) -> str:
    lines = [
        f"Divergence (the IAPO loss's own comparison) of the policy's first decision from the teacher's ({summary['teacher']}), on "
        "training scenes with the marker on the asked item and on the same scenes without it; a marker the loss "
        "penalised would make *marked* larger than *clean*; the same for the student's raw image attribution outside "
        "the teacher's cells (what the absolute `outside` penalty weighs). Student's attribution: "
        f"{summary.get('method', 'gradient_x_input')}. Means over scenes, 95% bootstrap CIs.",
        "",
    ]
    for fam, s in summary["families"].items():
        r = s["reliance"]
        lines += [
            f"### {fam}: {s['scenes']} scenes; reliance on the marker {r[0]:.2f} nats [{r[1]:.2f}, {r[2]:.2f}], "
            f"greedy decision changes without it in {100 * s['changes_without_marker']:.0f}%",
            "",
            "| grid | student's pixel baseline | "
            + " | ".join(f"{g}: marked / clean / difference [95% CI] / rank corr. with reliance" for g in granularities)
            + " | student's image share on the evidence (marked / clean) | on the marker's own cells | teacher's on the evidence | student's question share "
            + "| student's raw image mass outside the teacher's cells (marked / clean) / rank corr. of the difference with reliance "
            + "| raw on the marker's own cells / rank corr. with reliance |",
            "|---|---|" + "---|" * (len(granularities) + 6),
        ]
        for g, by_base in s["grids"].items():
            for base, per in by_base.items():
                cells = [
                    f"{per[gran]['marked']:.3f} / {per[gran]['clean']:.3f} / {_fmt(per[gran]['marked_minus_clean'])} / "
                    f"{per[gran]['spearman_reliance_vs_marked_minus_clean']:+.2f}"
                    for gran in granularities
                ]
                share = lambda k, per=per: f"{per[k]['marked']:.3f} / {per[k]['clean']:.3f}"  # noqa: E731
                lines.append(
                    f"| {g} | {base} | "
                    + " | ".join(cells)
                    + f" | {share('student_evidence')} | {share('student_marker')} | {per['teacher_evidence']['marked']:.3f} | {share('student_query')} "
                    + f"| {share('student_outside')} / {per['spearman_reliance_vs_outside_marked_minus_clean']:+.2f} "
                    + f"| {per['student_marker_raw']['marked']:.3f} / {per['spearman_reliance_vs_marker_raw']:+.2f} |"
                )
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], granularity: str) -> bytes:
    """Per family and pixel baseline: divergence with and without the marker against the grid, the
    student's image share on the evidence and on the marker's own cells, and its raw image mass outside the
    teacher's cells (what the ``outside`` penalty weighs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f, b) for f, s in summary["families"].items() for b in next(iter(s["grids"].values()))]
    fig, axes = plt.subplots(3, len(panels), figsize=(4.4 * len(panels), 9.6), squeeze=False)
    for k, (fam, base) in enumerate(panels):
        per = {int(g): v[base] for g, v in summary["families"][fam]["grids"].items()}
        x = np.arange(len(per))
        for j, (tag, color) in enumerate((("marked", "tab:red"), ("clean", "tab:blue"))):
            axes[0][k].bar(x + (j - 0.5) * 0.38, [v[granularity][tag] for v in per.values()], 0.38, color=color, label=tag)
            for key, hatch in (("student_evidence", None), ("student_marker", "//")):
                axes[1][k].bar(
                    x + (j - 0.5) * 0.38,
                    [v[key][tag] for v in per.values()],
                    0.38,
                    bottom=0 if hatch is None else [v["student_evidence"][tag] for v in per.values()],
                    color=color,
                    alpha=1.0 if hatch is None else 0.35,
                    hatch=hatch,
                    label=f"{tag}: {'evidence' if hatch is None else 'marker'}",
                )
            axes[2][k].bar(x + (j - 0.5) * 0.38, [v["student_outside"][tag] for v in per.values()], 0.38, color=color, label=tag)
        for ax in axes[:, k]:
            ax.set_xticks(x, [f"{g}x{g}" for g in per])
        axes[0][k].set_title(f"{fam}, {base} baseline: divergence ({granularity})", fontsize=9)
        axes[1][k].set_title(f"{fam}, {base}: student's image share", fontsize=9)
        axes[2][k].set_title(f"{fam}, {base}: raw mass outside the teacher's cells", fontsize=9)
        axes[2][k].set_xlabel("comparison grid")
        axes[2][k].legend(fontsize=7)
        axes[1][k].set_ylim(0, 1)
        axes[0][k].legend(fontsize=7)
        axes[1][k].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Marker on the asked item (red) vs the same scene without it (blue): first decision, training scenes\n"
        f"student's attribution: {summary.get('method', 'gradient_x_input')}",
        fontsize=10,
    )
    fig.tight_layout()
    png = figure_png(fig, dpi=90)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="compact-agent checkpoints (warm starts)")
    p.add_argument("--families", nargs="+", default=["HBar", "VBar"], choices=list(SHORTCUT_FAMILIES))
    p.add_argument("--scenes", type=int, default=40, help="training scenes per family and checkpoint")
    p.add_argument("--grids", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--granularities", nargs="+", default=["within", "blocks"], choices=list(GRANULARITIES))
    p.add_argument(
        "--pixel-baselines",
        nargs="+",
        default=["black", "white"],
        choices=list(PIXEL_BASELINES),
        help="the student's image baselines",
    )
    p.add_argument("--cue-place", default="value", choices=list(PLACES), help="where the marker goes (the checkpoints' training)")
    p.add_argument("--teacher", default="oracle", help="the teacher compared with (a registered teacher name)")
    p.add_argument(
        "--method",
        default="gradient_x_input",
        choices=["gradient_x_input", "integrated_gradients"],
        help="the student's attribution method (integrated gradients: 8 steps)",
    )
    p.add_argument("--train", choices=list(METHODS), help="also measure after training each checkpoint with this method")
    p.add_argument("--train-steps", type=int, default=6000, help="env steps of that training")
    p.add_argument(
        "--per-scene", action="store_true", help="also write every scene's figures (shortcut_attribution_scenes.jsonl)"
    )
    p.add_argument("--out", type=Path, default=Path("docs/learning/shift"))
    args = p.parse_args(argv)
    if args.scenes < 1 or any(g < 1 for g in args.grids):
        p.error("--scenes and --grids must be >= 1")
    for path in args.checkpoints:
        if not path.exists():
            p.error(
                f"--checkpoints: {path} does not exist (the learning benchmark's shift condition caches its warm starts under <out>/warm)"
            )
    for fam in args.families:
        if not FAMILY_ENVS[fam].offers_shortcut:
            p.error(f"--families: {fam} has no shortcut marker")
    try:
        make_teacher(args.teacher)
    except ValueError as e:
        p.error(f"--teacher: {e}")
    torch.set_num_threads(1)
    rows: dict[str, list[dict[str, Any]]] = {f: [] for f in args.families}
    ids = range(FIRST_SCENE, FIRST_SCENE + args.scenes)
    from tqdm import tqdm

    after: dict[str, list[dict[str, Any]]] = {f: [] for f in args.families}
    measure = (args.grids, args.granularities, args.pixel_baselines, args.cue_place, args.teacher, args.method)
    for k, path in enumerate(tqdm(args.checkpoints, desc="checkpoints")):
        policy = CompactAgent.load_checkpoint(path).policy
        for fam in args.families:
            rows[fam] += [{"checkpoint": path.name, **r} for r in measure_scenes(policy, fam, ids, *measure)]
        if args.train:
            train = CONDITIONS["shift"].train_kwargs({"difficulty": 0, "cue_rate": 1.0, "cue_place": args.cue_place})
            trainer = GroupTrainer(method_config(args.train, train, args.train_steps, k), policy)
            trainer.train(progress=False)
            for fam in args.families:
                after[fam] += [{"checkpoint": path.name, **r} for r in measure_scenes(trainer.policy, fam, ids, *measure)]
    summarised = lambda rs: {f: summarise(r, args.grids, args.granularities, args.pixel_baselines) for f, r in rs.items()}  # noqa: E731
    summary: dict[str, Any] = {
        "checkpoints": [p.name for p in args.checkpoints],
        "cue_place": args.cue_place,
        "teacher": args.teacher,
        "method": args.method,
        "families": summarised(rows),
    }
    if args.train:
        summary["after"] = {"method": args.train, "env_steps": args.train_steps, "families": summarised(after)}
    md = table(summary, args.granularities)
    if args.train:
        md += f"\n## After training each checkpoint with {args.train} for {args.train_steps} env steps\n\n"
        md += table({**summary, "families": summary["after"]["families"]}, args.granularities)
    atomic_write_text(args.out / "shortcut_attribution.md", md)
    atomic_write_json(args.out / "shortcut_attribution.json", summary)
    if args.per_scene:
        lines = "".join(json.dumps({"family": f, **r}) + "\n" for f, rs in rows.items() for r in rs)
        atomic_write_text(args.out / "shortcut_attribution_scenes.jsonl", lines)
    atomic_write_bytes(args.out / "shortcut_attribution.png", plot(summary, args.granularities[0]))
    print(md)
    return summary


if __name__ == "__main__":
    main()
