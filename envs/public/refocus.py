"""ReFocus's test sets (zeyofu/ReFocus_Code, data from the ``ReFocus/ReFocus_Data`` release).

Charts: ``data/chartQA_h_bar_wbb.json`` and ``data/chartQA_v_bar_wbb.json``, each ``{id: example}`` with
``query``, ``answer``, ``figure_path`` and the label bands ``x_values`` + ``x_bboxes``, ``y_values`` +
``y_bboxes`` (``figure_bbox``, ``x_intervals``, ``y_intervals`` and other keys are tolerated). A horizontal-bar
chart's bar labels are ``y_values`` (full-width bands), a vertical-bar chart's ``x_values`` (bands from the
plot's top down to the tick labels).

Tables: ``data/tablevqa_wbb.json`` (VWTQ), ``data/tablevqa-vwtq_syn_wbb.json`` (VWTQ_syn) and
``data/tablevqa-vtabfact_wbb.json`` (VTabFact): ``query``, ``answer``, ``figure_path``, ``column_headers`` +
``columns_bbox`` and ``row_starters`` + ``rows_bbox`` (aligned lists; ``row_starters[0]`` is the header row;
both empty where ReFocus's detector failed), ``table_bbox``, ``text_html_table``.

Every bbox is ``{"x1", "y1", "x2", "y2"}`` in fractions of the image (pixel boxes are detected and converted).
``figure_path`` is relative to the folder that holds ``data/`` (ReFocus runs from its repository root); it
is also looked up relative to ``data_dir`` and to the JSON file's own folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .items import Band, LoadedSet, RealItem, answers_field, bands, id_map, image_info, read_json, text_field

_EXAMPLE = '{"<id>": {"query": ..., "answer": ..., "figure_path": ..., "x_values": [...], "x_bboxes": [...]}}'
CHART_AXES = (("x_values", "x_values", "x_bboxes"), ("y_values", "y_values", "y_bboxes"))
TABLE_AXES = (("columns", "column_headers", "columns_bbox"), ("rows", "row_starters", "rows_bbox"))


def resolve_image(figure_path: str, roots: Sequence[Path]) -> Path:
    """The first of ``root / figure_path`` that exists (else the first candidate, reported missing later)."""
    candidates = [root / figure_path for root in roots]
    return next((c for c in candidates if c.is_file()), candidates[0])


def load(
    path: Path,
    name: str,
    data_dir: Path,
    axes: tuple[tuple[str, str, str], ...],
    *,
    max_pixels: int,
    sep: str = "|||",
    scorer_context: Mapping[str, Any] | None = None,
) -> LoadedSet:
    """Read one ReFocus ``*_wbb.json`` file: ``axes`` lists ``(axis, labels key, boxes key)``; the first row of
    a ``rows`` axis is the table's header (never masked by ``focus``)."""
    records = id_map(read_json(path), path, _EXAMPLE)
    roots = [path.parent.parent, data_dir, path.parent]
    out = LoadedSet(name, str(path))
    for item_id, record in records.items():
        where = f"{path.name}, item {item_id!r}"
        out.add(_item(record, item_id, where, roots, axes, max_pixels, sep, scorer_context or {}), where)
    return out


def _item(
    record: Any,
    item_id: str,
    where: str,
    roots: list[Path],
    axes: tuple[tuple[str, str, str], ...],
    max_pixels: int,
    sep: str,
    context: Mapping[str, Any],
) -> RealItem | str:
    if not isinstance(record, dict):
        return "record is not a JSON object"
    question = text_field(record, "query")
    if question is None:
        return "no 'query'"
    figure = text_field(record, "figure_path")
    if figure is None:
        return "no 'figure_path'"
    image = resolve_image(figure, roots)
    size = image_info(image, where, max_pixels)
    if isinstance(size, str):
        return size
    notes: list[str] = []
    found: list[Band] = []
    for axis, labels_key, boxes_key in axes:
        axis_bands = bands(axis, record.get(labels_key) or [], record.get(boxes_key) or [], size, notes)
        if axis == "rows" and axis_bands:
            axis_bands[0] = Band(axis, axis_bands[0].label, axis_bands[0].box, header=True)
        found += axis_bands
    return RealItem(
        id=str(item_id),
        question=question,
        answers=answers_field(record.get("answer"), sep),
        image=str(image),
        size=size,
        bands=tuple(found),
        context=dict(context),
        notes=tuple(notes),
        where=where,
    )


__all__ = ["CHART_AXES", "TABLE_AXES", "load", "resolve_image"]
