"""CharXiv's reasoning questions (princeton-nlp/CharXiv, ``data/`` and ``images/`` of its repository).

``data/reasoning_{val,test}.json`` maps ``str(figure_id)`` to ``{figure_id, query, answer, inst_category,
qa_source}``; the image is ``images/{figure_id}.jpg`` beside ``data/``. Test answers are ``null``: those items
run and are scored as unavailable. ``data/image_metadata_{split}.json`` (arXiv category, year, paper), when
present, is kept in each item's context. CharXiv publishes no label boxes, so its items have ``zoom`` and
``ocr`` but no ``focus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..images import MAX_PIXELS
from .items import LoadedSet, RealItem, answers_field, id_map, image_info, read_json, text_field

_EXAMPLE = '{"0": {"figure_id": 0, "query": ..., "answer": ..., "inst_category": 1, "qa_source": 1}}'
CATEGORIES = {1: "Text-in-Chart", 2: "Text-in-General", 3: "Number-in-Chart", 4: "Number-in-General"}


def load(path: Path, name: str, data_dir: Path, *, max_pixels: int = MAX_PIXELS) -> LoadedSet:
    """Read ``reasoning_<split>.json`` and find each figure in ``images/`` beside its ``data/`` folder."""
    records = id_map(read_json(path), path, _EXAMPLE)
    meta_path = path.with_name(path.name.replace("reasoning_", "image_metadata_"))
    metadata = id_map(read_json(meta_path), meta_path, "{}") if meta_path.is_file() else {}
    roots = [path.parent.parent, data_dir]
    out = LoadedSet(name, str(path))
    for item_id, record in records.items():
        where = f"{path.name}, item {item_id!r}"
        out.add(_item(record, item_id, where, roots, metadata, max_pixels), where)
    return out


def _item(record: Any, item_id: str, where: str, roots: list[Path], metadata: dict[str, Any], max_pixels: int) -> RealItem | str:
    if not isinstance(record, dict):
        return "record is not a JSON object"
    question = text_field(record, "query")
    if question is None:
        return "no 'query'"
    figure = text_field(record, "figure_id")
    if figure is None:
        return "no 'figure_id'"
    category = record.get("inst_category")
    if category not in CATEGORIES:
        return "'inst_category' is not 1, 2, 3 or 4"
    image = next(
        (r / "images" / f"{figure}.jpg" for r in roots if (r / "images" / f"{figure}.jpg").is_file()),
        roots[0] / "images" / f"{figure}.jpg",
    )
    size = image_info(image, where, max_pixels)
    if isinstance(size, str):
        return size
    context: dict[str, Any] = {"inst_category": category, "qa_source": record.get("qa_source")}
    extra = metadata.get(item_id)
    if isinstance(extra, dict):
        context.update({k: extra[k] for k in ("category", "year", "paper_id") if k in extra})
    return RealItem(
        id=str(item_id),
        question=question,
        answers=answers_field(record.get("answer")),
        image=str(image),
        size=size,
        context=context,
        where=where,
    )


__all__ = ["CATEGORIES", "load"]
