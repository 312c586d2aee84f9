"""Table families: question answering over a rendered table (VWTQ-like), over larger synthetic tables
(VWTQ_syn-like), and fact checking of a statement about a table (VTabFact-like).

A table is a grid: a header row of column labels, a first column of row labels and integer cells 0..99,
all in small type, so a cell is legible only in a zoom onto a small part of the canvas. At difficulty 0
one cell has a bright background (:data:`HIGHLIGHT`) and the question asks about "the highlighted cell",
which a glance finds; reading it still needs the tools.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iapo_gym.scene import Box, Program, Region, Scene, TextItem, pad_box
from iapo_gym.vocab import COLUMN_LABELS, ROW_LABELS

from .base import ToolVQAEnv
from .render import MEDIUM, SMALL
from .shortcuts import marker_box
from .style import FIXED, Style

TABLEQA_SIZES = {0: (4, 3), 1: (6, 4), 2: (8, 5)}
"""(rows, value columns) per difficulty for :class:`TableQAEnv`."""
TABLESYNTH_SIZES = {0: (10, 6), 1: (14, 7), 2: (18, 8)}
TABLEFACT_SIZES = {0: (5, 3), 1: (8, 4), 2: (12, 6)}
_EVIDENCE_MARGIN = 0.006
_MIN_ROW_PX = 20
"""A value's text box is 11 px high and its evidence box adds ~6 px each side; rows at least 20 px apart
keep a neighbouring row's value wholly outside it (the OCR would take a word >= 60 % inside)."""
_CELL_PAD_PX = 8
_STRIPE_FILL = (244, 245, 248)
HIGHLIGHT = (255, 230, 0)
"""Background of the highlighted cell at difficulty 0: a saturated yellow, plain in the 128 px glance, on
which the black value stays legible in a zoom."""
EASY_ROW_PX = {"TableQA": (30, 38), "TableSynth": (26, 32), "TableFact": (30, 36)}
"""Row heights at difficulty 0: taller than at 1 and 2, so the highlighted cell is >= 3 glance pixels high."""


@dataclass
class Table:
    """A drawn table: its labels and values, one evidence region per cell, and its row/column layout."""

    rows: list[str]
    columns: list[str]
    values: np.ndarray
    """int array (rows, columns)."""
    cells: list[list[Region]]
    """``cells[i][j]``: the padded text box of the value in row ``i``, column ``j``."""
    layout: tuple[Region, ...]
    texts: tuple[TextItem, ...]
    image: np.ndarray
    highlight_box: Box | None = None
    """The highlighted cell's rectangle (normalised), when one was asked for."""
    marker_slots: tuple[tuple[int, int, int, int, str], ...] = ()
    """Where the shortcut marker of each row would go (:mod:`envs.shortcuts`): left of the table, pointing at it."""

    def row_of(self, region: Region) -> int:
        """The row holding this cell region."""
        return next(i for i, row in enumerate(self.cells) if region in row)

    def shortcut_meta(self, row: int) -> dict[str, object]:
        """The scene meta that offers the shortcut cue, the asked item being ``row``."""
        # a row is named at its left end: the marker left of the table is beside the name in both places
        return {"marker_slots": self.marker_slots, "marker_label_slots": self.marker_slots, "marker_target": row}


def draw_table(
    rng: np.random.Generator,
    n_rows: int,
    n_cols: int,
    row_px: tuple[int, int],
    extra_col_px: tuple[int, int],
    highlight: tuple[int, int] | None = None,
    style: Style = FIXED,
) -> Table:
    """Draw a random table of ``n_rows`` x ``n_cols`` values at a random place on the ``style``'s canvas
    (1024x1024 in the fixed style).

    Row heights come from ``row_px`` (inclusive pixel range) and column widths are the widest text plus
    padding plus a draw from ``extra_col_px``: cells are no larger than needed, so a glance cannot read them.
    ``highlight=(i, j)`` fills the background of the cell in row ``i``, value column ``j`` with
    :data:`HIGHLIGHT` (no extra random draws: the table is otherwise the one drawn without it).
    """
    c = style.canvas()
    small = style.text(SMALL)

    def text_width(text: str) -> int:
        return c.text_size(text, small)[0]

    rows = [str(s) for s in rng.choice(ROW_LABELS, size=n_rows, replace=False)]
    columns = [str(s) for s in rng.choice(COLUMN_LABELS, size=n_cols, replace=False)]
    # distinct values within a column: comparisons and differences never tie, lookups are unambiguous
    values = np.stack([rng.choice(100, size=n_rows, replace=False) for _ in range(n_cols)], axis=1).astype(int)

    row_h = int(rng.integers(max(row_px[0], _MIN_ROW_PX), max(row_px[1], _MIN_ROW_PX) + 1))
    row_h = max(row_h, round(1.7 * c.text_size("99", small)[1]))  # room for larger type; a no-op in the fixed style
    head_w = max(text_width(r) for r in rows) + 2 * _CELL_PAD_PX
    head_w += int(rng.integers(extra_col_px[0], extra_col_px[1] + 1))
    col_w = max(max(text_width(s) for s in columns), text_width("99")) + 2 * _CELL_PAD_PX
    col_w += int(rng.integers(extra_col_px[0], extra_col_px[1] + 1))
    width, height = head_w + n_cols * col_w, (n_rows + 1) * row_h
    x0 = int(rng.integers(20, 1024 - width - 20 + 1))
    y0 = int(rng.integers(60, 1024 - height - 20 + 1))
    x0, y0 = min(x0, c.width - width - 20), min(y0, c.height - height - 20)  # no-ops on the fixed 1024 canvas
    x1, y1 = x0 + width, y0 + height
    stripes = bool(rng.integers(2))  # half the tables have zebra rows, as many real ones do

    c.text(f"Table {int(rng.integers(100, 999))}", x0 + width / 2, y0 - 28, style.text(MEDIUM), align="center")
    c.rect(x0, y0, x1, y0 + row_h, style.header_fill)
    if stripes:
        for i in range(1, n_rows, 2):
            c.rect(x0, y0 + (i + 1) * row_h, x1, y0 + (i + 2) * row_h, _STRIPE_FILL)
    col_x = [x0 + head_w + j * col_w for j in range(n_cols)]
    highlight_box = None
    if highlight is not None:
        hi, hj = highlight
        top = y0 + (hi + 1) * row_h
        highlight_box = c.rect(col_x[hj], top, col_x[hj] + col_w, top + row_h, HIGHLIGHT)
    # grid lines: horizontal between rows, vertical between columns, and the outer border
    for k in range(n_rows + 2):
        y = y0 + k * row_h
        c.line((x0, y), (x1, y), style.grid if 0 < k <= n_rows else style.ink)
    for x in [x0, *col_x, x1] if style.column_rules else [x0, x1]:
        c.line((x, y0), (x, y1), style.grid if x0 < x < x1 else style.ink)

    right = style.cell_align == "right"  # numbers right-aligned in their column, as spreadsheets do
    for j, name in enumerate(columns):
        if right:
            c.text(name, col_x[j] + col_w - _CELL_PAD_PX, y0 + row_h / 2, small, align="right")
        else:
            c.text(name, col_x[j] + col_w / 2, y0 + row_h / 2, small, align="center")
    cells: list[list[Region]] = []
    layout: list[Region] = []
    slots = []
    for i, name in enumerate(rows):
        top = y0 + (i + 1) * row_h
        cy = top + row_h / 2
        slots.append(marker_box(x0 - 11, cy, 8, min(9.0, row_h / 2 - 3), "right"))
        c.text(name, x0 + _CELL_PAD_PX, cy, small)
        row_cells = []
        for j, col in enumerate(columns):
            value = str(int(values[i, j]))
            if right:
                item = c.text(value, col_x[j] + col_w - _CELL_PAD_PX, cy, small, align="right")
            else:
                item = c.text(value, col_x[j] + col_w / 2, cy, small, align="center")
            row_cells.append(Region("cell", pad_box(item.box, _EVIDENCE_MARGIN), f"{name} {col}", value))
        cells.append(row_cells)
        layout.append(Region("row", c.unit(x0, top, x1, top + row_h), name))
    for j, col in enumerate(columns):
        layout.append(Region("column", c.unit(col_x[j], y0, col_x[j] + col_w, y1), col))
    return Table(rows, columns, values, cells, tuple(layout), tuple(c.texts), c.final_image(), highlight_box, tuple(slots))


def table_question(
    rng: np.random.Generator, table: Table
) -> tuple[str, tuple[str, ...], tuple[Region, ...], Program, tuple[str, ...]]:
    """One of four question kinds about cells of one column: read, difference, sum, comparison.

    Returns ``(question, answers, evidence, program, key_tokens)`` like :func:`envs.charts.bar_question`.
    """
    j = int(rng.integers(len(table.columns)))
    i, k = (int(x) for x in rng.choice(len(table.rows), size=2, replace=False))
    col, a, b = table.columns[j], table.rows[i], table.rows[k]
    va, vb = int(table.values[i, j]), int(table.values[k, j])
    ea, eb = table.cells[i][j], table.cells[k][j]
    kind = int(rng.integers(4))
    if kind == 0:
        return f"What is the {col} of {a}?", (str(va),), (ea,), Program("read"), (col, a)
    if kind == 1:
        return (
            f"What is the {col} of {a} minus the {col} of {b}?",
            (str(va - vb),),
            (ea, eb),
            Program("diff"),
            (col, a, b, "minus"),
        )
    if kind == 2:
        return (
            f"What is the sum of the {col} of {a} and the {col} of {b}?",
            (str(va + vb),),
            (ea, eb),
            Program("sum"),
            (col, a, b, "sum"),
        )
    yes = "yes" if va > vb else "no"
    return (
        f"Is the {col} of {a} larger than the {col} of {b}?",
        (yes,),
        (ea, eb),
        Program("compare"),
        (col, a, b, "larger"),
    )


def _highlight(rng: np.random.Generator, n_rows: int, n_cols: int) -> tuple[int, int]:
    """The cell to highlight at difficulty 0: ``(row, value column)``, uniformly."""
    return int(rng.integers(n_rows)), int(rng.integers(n_cols))


def _qa_scene(
    family: str,
    rng: np.random.Generator,
    difficulty: int,
    size: tuple[int, int],
    row_px: tuple[int, int],
    extra_col_px: tuple[int, int],
    style: Style,
) -> Scene:
    if difficulty == 0:  # "the highlighted cell": found at a glance, read with the tools
        i, j = _highlight(rng, *size)
        table = draw_table(rng, size[0], size[1], EASY_ROW_PX[family], extra_col_px, highlight=(i, j), style=style)
        cell = table.cells[i][j]
        return Scene(
            family,
            table.image,
            "What is the value in the highlighted cell?",
            (cell.value,),
            (cell,),
            Program("read"),
            table.layout,
            table.texts,
            ("highlighted", "cell"),
            meta={"cue": "highlight", "target_box": table.highlight_box, **table.shortcut_meta(i)},
        )
    table = draw_table(rng, size[0], size[1], row_px, extra_col_px, style=style)
    q, answers, evidence, program, keys = table_question(rng, table)
    meta = table.shortcut_meta(table.row_of(evidence[0]))
    return Scene(family, table.image, q, answers, evidence, program, table.layout, table.texts, keys, meta=meta)


class TableQAEnv(ToolVQAEnv):
    """Question answering over a rendered table (like the VWTQ test set).

    ## Description
    A grid table of 4x3/6x4/8x5 integer cells (rows x value columns, difficulty 0/1/2) with a header row of
    column labels and a first column of row labels, placed anywhere on a 1024x1024 canvas in small type.
    Rows and columns are in the layout, so ``focus`` can highlight or mask them.

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its value still needs the
      tools): one cell has a bright yellow background and the question is "What is the value in the
      highlighted cell?". ``scene.meta`` holds ``cue`` (``"highlight"``) and ``target_box`` (the cell).
    - Difficulties 1 and 2: questions name a column and rows, illegible at a glance: read a cell ("What
      is the Score of Ben?"), the difference or sum of two cells in one column, or whether one is larger
      than the other (yes/no).

    ## Style
    ``style="random"`` (:mod:`envs.style`) draws each scene's look from its id: a 1024x1024, 1024x768 or
    768x1024 canvas (white or off-white), a Hershey font face at a jittered size (rows grow to fit it), dark
    text, the header's fill, the rules' grey, vertical rules between columns or none, and values centred or
    right-aligned in their columns. Question, labels and values are those of the fixed style.
    """

    family = "TableQA"
    offers_shortcut = True
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        return _qa_scene("TableQA", rng, difficulty, TABLEQA_SIZES[difficulty], (22, 30), (0, 24), style)


class TableSynthEnv(ToolVQAEnv):
    """Question answering over larger, denser synthetic tables (like VWTQ_syn).

    ## Description
    As :class:`TableQAEnv`, with 10x6/14x7/18x8 cells (difficulty 0/1/2), tighter rows and narrower
    columns: finding the right cell among many similar ones is most of the work.

    - Difficulty 0: one cell has a bright yellow background; "What is the value in the highlighted cell?".
    - Difficulties 1 and 2: questions name a column and rows, as in :class:`TableQAEnv`.

    ## Style
    As :class:`TableQAEnv`.
    """

    family = "TableSynth"
    offers_shortcut = True
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        return _qa_scene("TableSynth", rng, difficulty, TABLESYNTH_SIZES[difficulty], (20, 24), (0, 8), style)


class TableFactEnv(ToolVQAEnv):
    """Fact checking of a statement about a table (like VTabFact).

    ## Description
    A table as in :class:`TableQAEnv` (5x3/8x4/12x6 cells at difficulty 0/1/2) and a statement that is
    true half the time. A false claim uses a value found elsewhere in the table or one near the true value,
    so neither a glance nor a guess of plausible numbers decides it. Answers are "true" or "false".

    - Difficulty 0 (the curriculum's first step: the target is found at a glance, its value still needs the
      tools): one cell has a bright yellow background and the statement is "True or false: the highlighted
      cell shows 42.". ``scene.meta`` holds ``cue`` (``"highlight"``) and ``target_box`` (the cell).
    - Difficulties 1 and 2: the statement names the cell by its column and row, illegible at a glance:
      "True or false: the Score of Ben is 42.".

    ## Style
    As :class:`TableQAEnv`.
    """

    family = "TableFact"
    offers_shortcut = True
    offers_style = True

    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        n_rows, n_cols = TABLEFACT_SIZES[difficulty]
        if difficulty == 0:  # "the highlighted cell": found at a glance, read with the tools
            i, j = _highlight(rng, n_rows, n_cols)
            table = draw_table(rng, n_rows, n_cols, EASY_ROW_PX["TableFact"], (0, 16), highlight=(i, j), style=style)
        else:
            table = draw_table(rng, n_rows, n_cols, (22, 28), (0, 16), style=style)
            i, j = int(rng.integers(n_rows)), int(rng.integers(n_cols))
        row, col, true_value = table.rows[i], table.columns[j], int(table.values[i, j])
        claim = true_value
        if rng.random() < 0.5:
            others = sorted({int(v) for v in table.values.ravel()} - {true_value})
            if rng.random() < 0.5 and others:
                claim = int(rng.choice(others))
            else:  # a near miss: the kind of slip a blurry read makes
                near = [v for v in range(true_value - 5, true_value + 6) if v != true_value and 0 <= v <= 99]
                claim = int(rng.choice(near))
        truth = "true" if claim == true_value else "false"
        if difficulty == 0:
            question, keys = f"True or false: the highlighted cell shows {claim}.", ("highlighted", "cell", str(claim))
            meta: dict[str, object] = {"cue": "highlight", "target_box": table.highlight_box}
        else:
            question, keys, meta = f"True or false: the {col} of {row} is {claim}.", (col, row, str(claim)), {}
        meta.update(table.shortcut_meta(i))
        return Scene(
            "TableFact",
            table.image,
            question,
            (truth,),
            (table.cells[i][j],),
            Program("equals", claim=str(claim)),
            table.layout,
            table.texts,
            keys,
            meta=meta,
        )


__all__ = ["TableFactEnv", "TableQAEnv", "TableSynthEnv", "draw_table", "table_question"]
