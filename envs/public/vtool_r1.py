"""VTool-R1's data (VTool-R1/VTool-R1, ``datasets/`` as its ``preprocess/*_dataset_creator.py`` write it).

Charts: ``datasets/{train,val,test}_full.parquet``; tables: ``datasets/table_{train,test}.parquet``. Columns
``metadata``, ``figure_id``, ``figure_path``, ``query``, ``prompt``, ``answer``, ``images``. ``images`` holds
the encoded image (a list with one ``bytes`` value, or a ``{"bytes", "path"}`` dict as Hugging Face's
``Image`` feature writes it); ``figure_path`` (relative to VTool-R1's repository root) is the fallback.
``metadata`` is a JSON string (or a struct): for charts ``{"type": "h_bar"|"v_bar", "figure_bbox",
"x_values_bbox", "y_values_bbox"}`` with ``{label: box}`` maps in **pixels**, an empty map written as the
sentinel ``{"x1": "none"}``; for tables ``{"type": "table", "figure_bbox", "columns_bbox", "row_starters"}``
where ``row_starters`` holds the rows' ``{label: box}`` map (header row first), also in pixels. List answers
are joined with ``|||``. Its table split is a random 30% of all three ReFocus table sets, not a benchmark's
own test split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..images import MAX_PIXELS, check_pixels, image_size
from .items import Band, DataError, LoadedSet, RealItem, answers_field, bands, image_info, text_field

COLUMNS = ("metadata", "query", "answer")
CHART_MAPS = (("x_values", "x_values_bbox"), ("y_values", "y_values_bbox"))
TABLE_MAPS = (("columns", "columns_bbox"), ("rows", "row_starters"))


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """The rows of a parquet file as dicts, with a clear error when it is not one or lacks a column."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading parquet files needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r}; VTool-R1's parquets have metadata, figure_id, "
            f"figure_path, query, prompt, answer, images (has: {', '.join(table.column_names)})"
        )
    return table.to_pylist()


def load(path: Path, name: str, data_dir: Path, *, max_pixels: int = MAX_PIXELS) -> LoadedSet:
    """Read one VTool-R1 parquet file (charts or tables; the metadata's ``type`` says which)."""
    rows = read_parquet(path)
    out = LoadedSet(name, str(path))
    roots = [path.parent.parent, data_dir, path.parent]
    seen: set[str] = set()
    for k, row in enumerate(rows):
        item_id = text_field(row, "figure_id") or str(k)
        key = f"{item_id}|{row.get('query')}"
        if key in seen:
            raise DataError(f"{path}: row {k}: duplicate item (figure_id {item_id!r} with the same query)")
        seen.add(key)
        where = f"{path.name}, row {k} (figure_id {item_id!r})"
        out.add(_item(row, f"{k}:{item_id}", where, roots, max_pixels), where)
    return out


def _image(
    row: Mapping[str, Any], where: str, roots: list[Path], max_pixels: int
) -> tuple[str | None, bytes | None, tuple[int, int]] | str:
    """The row's image as (path or None, bytes or None, size), or why it cannot be used."""
    images = row.get("images")
    first = images[0] if isinstance(images, list) and images else images
    if isinstance(first, list) and first:  # Sequence(Sequence(binary)) as some writers nest it
        first = first[0]
    data = first.get("bytes") if isinstance(first, Mapping) else first
    if isinstance(data, (bytes, bytearray)) and data:
        try:
            size = image_size(bytes(data), where)
            check_pixels(*size, max_pixels, where)
        except ValueError as exc:
            return "image too large" if "exceeds" in str(exc) or "too large" in str(exc) else "image unreadable"
        return None, bytes(data), size
    figure = text_field(row, "figure_path")
    if figure is None:
        return "no image bytes and no 'figure_path'"
    path = next((r / figure for r in roots if (r / figure).is_file()), roots[0] / figure)
    info = image_info(path, where, max_pixels)
    return info if isinstance(info, str) else (str(path), None, info)


def _metadata(raw: Any) -> dict[str, Any] | str:
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "metadata is not valid JSON"
    if not isinstance(raw, Mapping):
        return "metadata is not a JSON object"
    return dict(raw)


def _label_map(raw: Any) -> tuple[list[str], list[Any]]:
    """Labels and boxes of a ``{label: box}`` map, without the ``{"x1": "none"}`` sentinel and without the
    ``None`` entries a parquet struct column adds for labels the row lacks."""
    if not isinstance(raw, Mapping):
        return [], []
    pairs = [(str(k), v) for k, v in raw.items() if isinstance(v, (Mapping, list))]
    return [k for k, _ in pairs], [v for _, v in pairs]


def _item(row: Mapping[str, Any], item_id: str, where: str, roots: list[Path], max_pixels: int) -> RealItem | str:
    question = text_field(row, "query")
    if question is None:
        return "no 'query'"
    image = _image(row, where, roots, max_pixels)
    if isinstance(image, str):
        return image
    path, data, size = image
    notes: list[str] = []
    found: list[Band] = []
    meta = _metadata(row.get("metadata"))
    if isinstance(meta, str):
        notes.append(meta)
    else:
        maps = TABLE_MAPS if meta.get("type") == "table" else CHART_MAPS
        for axis, key in maps:
            labels, boxes = _label_map(meta.get(key))
            axis_bands = bands(axis, labels, boxes, size, notes)
            if axis == "rows" and axis_bands:
                axis_bands[0] = Band(axis, axis_bands[0].label, axis_bands[0].box, header=True)
            found += axis_bands
    return RealItem(
        id=item_id,
        question=question,
        answers=answers_field(row.get("answer"), "|||"),
        image=path,
        size=size,
        bands=tuple(found),
        notes=tuple(notes),
        where=where,
        image_bytes=data,
    )


__all__ = ["load", "read_parquet"]
