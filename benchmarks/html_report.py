"""``leaderboard.html``: the leaderboard as one self-contained web page, drawn from the same data as
``leaderboard.json`` (inline CSS and JS,
inline SVG charts; nothing is fetched when it is viewed). Episode pictures are PNG files beside it, linked relatively.

Per suite: the table (click any column header to sort by it; 95% CIs shown), accuracy per family with
CIs as bars, tool calls per episode by tool, alignment with the teacher where the suite has one, the
evidence hit and read rates, and per agent a few episode pictures per family, linked from its row.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AVERAGE = "average"  # the leaderboard's name for the mean over families
Entry = dict[str, Any]
"""One agent on one suite, as in ``leaderboard.json`` (``suites.<suite>.entries[i]``)."""
Score = dict[str, Any]

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b")
TOOL_COLORS = {"zoom": "#8250df", "ocr": "#1b7c83", "focus": "#bf3989"}
"""Not the agents' colours: a tool's bar must not read as an agent's."""


@dataclass(frozen=True)
class Picture:
    """One episode picture on the page: its path relative to the page, and what it shows."""

    href: str
    family: str
    seed: int
    episode: int
    correct: bool


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def anchor(suite: str, agent: str) -> str:
    """The id of an agent's episode gallery on the page."""
    return "ep-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{suite}-{agent}").strip("-")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _score_cell(s: Score | None, bold: bool = False) -> str:
    if s is None:
        return '<td class="num" data-v="">—</td>'
    body = f'{_pct(s["mean"])}<span class="ci">[{_pct(s["low"])}, {_pct(s["high"])}]</span>'
    mean = s["mean"]
    return f'<td class="num{" avg" if bold else ""}" data-v="{mean:.6f}">{body}</td>'


def _times100(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _num_cell(x: float | None, fmt: str = "{:.2f}") -> str:
    if x is None:
        return '<td class="num" data-v="">—</td>'
    return f'<td class="num" data-v="{x:.6f}">{fmt.format(x)}</td>'


# -- charts (inline SVG) ------------------------------------------------------------------------------------
def accuracy_svg(families: Sequence[str], entries: Sequence[Entry], colors: dict[str, str]) -> str:
    """Grouped bars: accuracy per family (and the average) per agent, with 95% CI whiskers."""
    groups = [*families, AVERAGE]
    n = max(1, len(entries))
    bar, gap = 16, 26
    gw = n * bar + gap
    left, top, h = 44, 12, 200
    width = left + len(groups) * gw + 10
    out = [
        f'<svg class="chart" width="{width}" height="{top + h + 28}" viewBox="0 0 {width} {top + h + 28}" role="img" '
        f'aria-label="accuracy per family">'
    ]
    for v in range(0, 101, 20):
        y = top + h - h * v / 100
        out.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{v}</text>'
        )
    for g, fam in enumerate(groups):
        x0 = left + g * gw + gap / 2
        for i, e in enumerate(entries):
            s = e["average"] if fam == AVERAGE else e["accuracy"].get(fam)
            if s is None:
                continue
            x = x0 + i * bar
            y = top + h - h * s["mean"]
            lo, hi = top + h - h * s["low"], top + h - h * s["high"]
            agent, n_eps = e["agent"], s["episodes"]
            tip = f"{agent} · {fam}: {_pct(s['mean'])}% [{_pct(s['low'])}, {_pct(s['high'])}], {n_eps} episodes"
            out.append(
                f'<g><title>{_e(tip)}</title><rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2}" height="{top + h - y:.1f}" '
                f'fill="{colors[agent]}"{" class=avgbar" if fam == AVERAGE else ""}/>'
                f'<line x1="{x + (bar - 2) / 2:.1f}" x2="{x + (bar - 2) / 2:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" class="whisker"/>'
                f'<line x1="{x + 2:.1f}" x2="{x + bar - 4:.1f}" y1="{hi:.1f}" y2="{hi:.1f}" class="whisker"/>'
                f'<line x1="{x + 2:.1f}" x2="{x + bar - 4:.1f}" y1="{lo:.1f}" y2="{lo:.1f}" class="whisker"/></g>'
            )
        label = "average" if fam == AVERAGE else fam
        out.append(
            f'<text x="{x0 + n * bar / 2:.1f}" y="{top + h + 16}" class="label{" bold" if fam == AVERAGE else ""}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    out.append(
        f'<text x="{left - 30}" y="{top + h / 2}" class="tick" transform="rotate(-90 {left - 30} {top + h / 2})" '
        f'text-anchor="middle">accuracy %</text>'
    )
    out.append("</svg>")
    return "".join(out)


def tools_svg(entries: Sequence[Entry], colors: dict[str, str]) -> str:
    """Stacked horizontal bars: valid tool calls per episode by tool (the final answer excluded)."""
    tools = sorted({t for e in entries for t in e["usage"]["tool_usage"] if t != "answer"})
    if not tools:
        return '<p class="note">No tool calls.</p>'
    total = max([sum(v for t, v in e["usage"]["tool_usage"].items() if t != "answer") for e in entries] + [1e-9])
    left, row, w = 110, 24, 320
    height = 24 + row * len(entries)
    out = [
        f'<svg class="chart" width="{left + w + 60}" height="{height}" viewBox="0 0 {left + w + 60} {height}" role="img" '
        f'aria-label="tool calls per episode">'
    ]
    x: float = left
    for t in tools:  # legend
        out.append(
            f'<rect x="{x}" y="2" width="10" height="10" fill="{TOOL_COLORS.get(t, "#999")}"/>'
            f'<text x="{x + 14}" y="11" class="tick">{_e(t)}</text>'
        )
        x += 16 + 8 * len(t) + 16
    for i, e in enumerate(entries):
        y = 20 + i * row
        agent = e["agent"]
        out.append(f'<text x="{left - 8}" y="{y + 13}" class="label" text-anchor="end">{_e(agent)}</text>')
        x = float(left)
        for t in tools:
            v = e["usage"]["tool_usage"].get(t, 0.0)
            if v <= 0:
                continue
            bw = w * v / total
            out.append(
                f"<g><title>{_e(agent + f': {v:.2f} {t} calls per episode')}</title>"
                f'<rect x="{x:.1f}" y="{y + 2}" width="{bw:.1f}" height="{row - 6}" fill="{TOOL_COLORS.get(t, "#999")}"/></g>'
            )
            x += bw
        calls = e["usage"]["tool_calls_per_episode"]
        out.append(f'<text x="{x + 6:.1f}" y="{y + 13}" class="tick">{calls:.2f}</text>')
    out.append("</svg>")
    return "".join(out)


# -- the page -----------------------------------------------------------------------------------------------
def _table(
    suite: str, info: dict[str, Any], entries: Sequence[Entry], colors: dict[str, str], pictures: dict[str, list[Picture]]
) -> str:
    fams = info["families"]
    teacher = bool(info["config"].get("teacher")) or any(e["usage"]["alignment"] is not None for e in entries)
    head = ["#", "agent", "average", *fams, "tool calls / ep", "invalid %"]
    head += ["alignment ↓"] if teacher else []
    head += ["hit %", "read %", "episodes / s"]
    tips = {
        "average": "mean accuracy over the suite's families, 95% CI in brackets",
        "alignment ↓": "divergence between the agent's and the teacher's attribution (lower: closer)",
        "hit %": "evidence hit: episodes where a zoom/ocr/focus region covered at least half of an evidence box",
        "read %": "evidence read: episodes where a tool output contained an accepted answer (of those whose answer is printed)",
        "invalid %": "malformed calls over all calls",
        "tool calls / ep": "valid tool calls per episode, the answer excluded (by tool: the chart below)",
    }
    th = "".join(
        f'<th title="{_e(tips.get(h, "click to sort"))}"{" class=num" if i >= 2 else ""}>{_e(h)}</th>' for i, h in enumerate(head)
    )
    rows = []
    for rank, e in enumerate(entries, start=1):
        agent, use = e["agent"], e["usage"]
        name = _e(agent)
        partial = (
            f' <span class="note">({e["cells"]}/{e["cells_expected"]} cells)</span>' if e["cells"] < e["cells_expected"] else ""
        )
        n_pics = len(pictures.get(agent, []))
        link = f'<a class="eplink" href="#{anchor(suite, agent)}">▸ {n_pics} episode pictures</a>' if n_pics else ""
        cells = [
            f'<td class="num" data-v="{rank}">{rank}</td>',
            f'<td data-v="{name}"><span class="swatch" style="background:{colors[agent]}"></span>'
            f'<span class="agent">{name}</span>{partial}{link}</td>',
            _score_cell(e["average"], bold=True),
            *[_score_cell(e["accuracy"].get(f)) for f in fams],
            _num_cell(use["tool_calls_per_episode"]),
            _num_cell(use["invalid_call_rate"] * 100, "{:.1f}"),
        ]
        if teacher:
            cells.append(_num_cell(use["alignment"], "{:.3f}"))
        cells += [
            _num_cell(_times100(use.get("evidence_hit_rate")), "{:.0f}"),
            _num_cell(_times100(use.get("evidence_read_rate")), "{:.0f}"),
            _num_cell(use["episodes_per_s"], "{:.0f}"),
        ]
        rows.append(f'<tr data-agent="{name}">' + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="board" data-suite="{_e(suite)}"><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _legend(entries: Sequence[Entry], colors: dict[str, str]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><span class="swatch" style="background:{colors[e["agent"]]}"></span>{_e(e["agent"])}</span>' for e in entries
        )
        + "</div>"
    )


def _gallery(suite: str, entries: Sequence[Entry], pictures: dict[str, list[Picture]], colors: dict[str, str]) -> str:
    blocks = []
    for e in entries:
        agent = e["agent"]
        pics = pictures.get(agent, [])
        if not pics:
            continue
        by_family: dict[str, list[Picture]] = {}
        for p in pics:
            by_family.setdefault(p.family, []).append(p)
        rows = []
        for fam, ps in by_family.items():
            thumbs = "".join(
                f'<a class="thumb {"right" if p.correct else "wrong"}" href="{_e(p.href)}" title="open the full picture">'
                f'<img src="{_e(p.href)}" alt="{_e(f"{agent} on {fam}, seed {p.seed}, episode {p.episode}")}" loading="lazy">'
                f"<span>{'✓ right' if p.correct else '✗ wrong'} · seed {p.seed} · ep {p.episode}</span></a>"
                for p in ps
            )
            rows.append(f'<div class="famrow"><div class="famname">{_e(fam)}</div><div class="thumbs">{thumbs}</div></div>')
        blocks.append(
            f'<section class="gallery" id="{anchor(suite, agent)}"><h4><span class="swatch" '
            f'style="background:{colors[agent]}"></span>{_e(agent)}: episodes</h4>{"".join(rows)}</section>'
        )
    if not blocks:
        return ""
    return (
        '<h3>Episodes</h3><p class="note">Each picture: the full image with every tool call\'s region numbered by step, '
        "the crops the agent received with each tool's text, the answer against the accepted answers and, for agents "
        "that attribute their decisions, their attribution maps beside the teacher's. Click one to open it full size. "
        "Redraw any stored episode with <code>iapo-bench show</code>.</p>" + "".join(blocks)
    )


def render_html(board: dict[str, Any], pictures: dict[str, dict[str, list[Picture]]] | None = None) -> str:
    """The page for ``board``, the data of ``leaderboard.json``; ``pictures`` maps suite -> agent -> its
    episode pictures."""
    pictures = pictures or {}
    entries = {suite: info["entries"] for suite, info in board["suites"].items()}
    agents = list(dict.fromkeys(e["agent"] for es in entries.values() for e in es))
    colors = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(agents)}
    nav = " · ".join(f'<a href="#suite-{_e(s)}">{_e(s)}</a>' for s in board["suites"] if entries.get(s))
    sections = []
    for suite, info in board["suites"].items():
        es = entries.get(suite) or []
        if not es:
            continue
        cfg = info["config"]
        episodes = "every usable item" if cfg.get("episodes") is None else f"{cfg.get('episodes')} episodes"
        settings = [
            f"seeds {', '.join(map(str, info['seeds']))}",
            f"{episodes} per seed per family",
            *([] if cfg.get("datasets") else [f"difficulty {cfg.get('difficulty')}"]),
            f"OCR {cfg.get('ocr')}",
            f"view {cfg.get('view_size')} px",
        ]
        if cfg.get("budget"):
            settings.append(f"budget {cfg['budget']}")
        if cfg.get("teacher"):
            settings.append(f"teacher {cfg['teacher']}")
        pics = pictures.get(suite, {})
        sections.append(
            f'<section class="suite" id="suite-{_e(suite)}"><h2>Suite <code>{_e(suite)}</code></h2>'
            + (f"<p>{_e(info['description'])}</p>" if info.get("description") else "")
            + f'<p class="note">{_e(" · ".join(settings))}</p>'
            + _table(suite, info, es, colors, pics)
            + '<div class="charts"><figure><figcaption>Accuracy per family, 95% CI</figcaption>'
            + _legend(es, colors)
            + accuracy_svg(info["families"], es, colors)
            + "</figure><figure><figcaption>Tool calls per episode, by tool</figcaption>"
            + tools_svg(es, colors)
            + "</figure></div>"
            + f'<p class="note">Reproduce: <code>{_e(info["command"])}</code></p>'
            + _extras(info, es, board.get("agents", {}))
            + _gallery(suite, es, pics, colors)
            + "</section>"
        )
    boot = board["bootstrap"]
    return _PAGE.format(
        nav=nav,
        sections="".join(sections),
        css=_CSS,
        js=_JS,
        about=_e(
            f"Accuracy in % with {int(boot['confidence'] * 100)}% confidence intervals from a {boot['method']} "
            f"({boot['replicates']} replicates, seed {boot['seed']}). Click a column header to sort by it; "
            f"click again to reverse. Tool calls exclude the final answer. Evidence hit: a zoom/ocr/focus region covered "
            f"half an evidence box; read: a tool output held an accepted answer (among questions whose answer is "
            f"printed in the image). Alignment: divergence from the teacher's attribution, lower is closer."
        ),
    )


def _plain_table(caption: str, head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{_e('—' if v is None else v)}</td>" for v in row) + "</tr>" for row in rows)
    return (
        f'<figure class="extra"><figcaption>{_e(caption)}</figcaption><table><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{cells}</tbody></table></figure>"
    )


def _pct_or_none(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.0f}"


def _extras(info: dict[str, Any], entries: list[dict[str, Any]], configs: dict[str, Any]) -> str:
    """The served models' usage, the LLM judge beside the rule scorer, and each public set's data report."""
    out = []
    served = [e for e in entries if e["usage"].get("tokens_in") is not None]
    if served:
        out.append(
            _plain_table(
                "Served models: tokens per episode, cost, episodes that failed for good (counted as wrong)",
                ["agent", "model", "URL", "tokens in/ep", "tokens out/ep", "cost (USD)", "errors"],
                [
                    [
                        e["agent"],
                        (configs.get(e["agent"]) or {}).get("model"),
                        (configs.get(e["agent"]) or {}).get("url"),
                        f"{e['usage']['tokens_in']:.0f}",
                        f"{e['usage']['tokens_out']:.0f}",
                        None if e["usage"].get("cost") is None else f"{e['usage']['cost']:.4f}",
                        e["usage"].get("errors", 0),
                    ]
                    for e in served
                ],
            )
        )
    if info.get("judge"):
        out.append(
            _plain_table(
                "LLM judge (the set's published rules as a prompt) beside the rule scorer, on the same episodes",
                ["agent", "judge", "judged", "unjudged", "judge accuracy %", "rule accuracy %", "agreement %"],
                [
                    [
                        r["agent"],
                        r["judge"],
                        r["judged"],
                        r["unjudged"],
                        _pct_or_none(r["judge_accuracy"]),
                        _pct_or_none(r["rule_accuracy"]),
                        _pct_or_none(r["agreement"]),
                    ]
                    for r in info["judge"]
                ],
            )
        )
    if info.get("data"):

        def reasons(counts: dict[str, int]) -> str:
            return "; ".join(f"{n} {r}" for r, n in counts.items()) or "0"

        out.append(
            _plain_table(
                "Data: each public set's published file, its scorer, and what it held",
                ["set", "scorer", "usable items", "skipped", "metadata dropped", "no evidence", "unscored"],
                [
                    [
                        fam,
                        d.get("scorer"),
                        d.get("usable"),
                        reasons(d.get("skipped", {})),
                        reasons(d.get("metadata_dropped", {})),
                        d.get("no_evidence"),
                        d.get("unscored"),
                    ]
                    for fam, d in info["data"].items()
                ],
            )
        )
    return "".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>iapo-bench leaderboard</title><style>{css}</style></head>
<body><header><h1>iapo-bench leaderboard</h1><nav>{nav}</nav></header>
<main><p class="about">{about}</p>{sections}</main>
<footer>Rendered from the results store by <code>iapo-bench report</code>. Self-contained: no network needed.</footer>
<script>{js}</script></body></html>
"""

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --alt: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 18px 32px 10px; border-bottom: 1px solid var(--line); background: var(--alt); }
header h1 { margin: 0 0 4px; font-size: 22px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 4px; }
main { padding: 8px 24px 32px; max-width: 1500px; }
.about { color: var(--muted); max-width: 1100px; }
h2 { margin: 28px 0 4px; font-size: 19px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { margin: 22px 0 4px; font-size: 16px; }
h4 { margin: 14px 0 6px; font-size: 14px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--alt); padding: 1px 4px;
       border-radius: 4px; }
.note { color: var(--muted); font-size: 12.5px; }
.scroll { overflow-x: auto; }
table.board { border-collapse: collapse; margin: 10px 0 6px; font-size: 13px; white-space: nowrap; }
table.board th { position: sticky; top: 0; background: var(--alt); border-bottom: 2px solid var(--line); padding: 6px 6px;
                 cursor: pointer; user-select: none; text-align: left; font-weight: 600; }
table.board th.num { text-align: right; }
table.board th:hover { color: var(--accent); }
table.board th[aria-sort="ascending"]::after { content: " ▲"; font-size: 10px; }
table.board th[aria-sort="descending"]::after { content: " ▼"; font-size: 10px; }
table.board td { padding: 5px 6px; border-bottom: 1px solid var(--line); }
table.board tbody tr:nth-child(even) { background: #fafbfc; }
table.board tbody tr:hover { background: #eef5ff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.avg { font-weight: 700; }
.ci { display: block; color: var(--muted); font-size: 11px; font-weight: 400; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.agent { font-weight: 600; }
.eplink { display: block; color: var(--accent); text-decoration: none; font-size: 12px; margin-left: 16px; }
.eplink:hover { text-decoration: underline; }
.charts { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; margin-top: 10px; }
figure { margin: 0; }
figcaption { font-weight: 600; font-size: 13px; margin-bottom: 4px; }
.legend { font-size: 12px; margin-bottom: 4px; } .legend > span { margin-right: 12px; white-space: nowrap; }
svg.chart { max-width: 100%; height: auto; font-size: 11px; }
svg .grid { stroke: #e4e8ec; } svg .whisker { stroke: #1f2328; stroke-width: 1.2; }
svg .tick { fill: var(--muted); font-size: 10px; } svg .label { fill: var(--fg); font-size: 11px; }
svg .bold { font-weight: 700; } svg .avgbar { stroke: #1f2328; stroke-width: 1; }
.gallery { border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 10px; margin: 12px 0; }
.gallery:target { border-color: var(--accent); box-shadow: 0 0 0 3px #0969da33; }
.famrow { display: flex; gap: 12px; align-items: flex-start; margin: 6px 0; }
.famname { width: 90px; flex: none; font-weight: 600; padding-top: 4px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumb { display: block; width: 300px; border: 2px solid var(--line); border-radius: 6px; overflow: hidden;
         text-decoration: none; color: var(--fg); background: #fff; }
.thumb img { display: block; width: 100%; height: 130px; object-fit: cover; object-position: left top; }
.thumb span { display: block; padding: 3px 8px; font-size: 12px; }
.thumb.right { border-color: #1a7f37; } .thumb.right span { color: #1a7f37; }
.thumb.wrong { border-color: #cf222e; } .thumb.wrong span { color: #cf222e; }
footer { color: var(--muted); font-size: 12px; padding: 12px 32px 24px; border-top: 1px solid var(--line); }
"""

_JS = """
document.querySelectorAll("table.board").forEach(function (table) {
  var heads = table.querySelectorAll("th");
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var desc = th.getAttribute("aria-sort") !== "descending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp;
        if (x === "" || y === "") { cmp = (x === "") - (y === ""); return cmp; }  /* blanks always last */
        cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return desc ? -cmp : cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

__all__ = ["Picture", "accuracy_svg", "anchor", "render_html", "tools_svg"]
