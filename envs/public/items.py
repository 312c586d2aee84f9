"""What every public test set becomes: :class:`RealItem` s, the skips with their reasons, and the checks that
turn a published record into an item (bounding boxes in either unit, the ``"none"`` sentinel, NaN, ...).

A loader reads one published file and returns a :class:`LoadedSet`. File-level faults (a missing or
non-UTF-8 file, invalid JSON, duplicate ids, a missing column) raise :class:`DataError` naming the file and
what would be right. Item-level faults never stop a benchmark and are never silent: an item that cannot be
played (no question, a missing, unreadable or oversized image) is *skipped* with its reason; an item whose
label metadata is unusable (empty or length-mismatched lists, NaN, boxes outside the image or inverted) is
kept without those labels and the reason is *noted*. Both are counted per reason in :attr:`LoadedSet.report`,
which the leaderboard shows.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iapo_gym.scene import Box

from ..images import MAX_PIXELS, check_pixels, image_size

AXES = ("columns", "rows", "x_values", "y_values")
"""The label axes of ReFocus's edit tools (``focus_on_<axis>_with_<mode>``)."""
EDGE_SLACK = 0.02
"""Boxes may overshoot the image by this fraction of a side (detector jitter); they are clipped. Beyond: noted."""


class DataError(ValueError):
    """A published file that cannot be read as its format; the message names the file and what would be right."""


@dataclass(frozen=True)
class Band:
    """One labelled band of an item's image: a bar's label band, a table row or column (ReFocus's bbox maps).
    ``header`` marks a table's header row."""

    axis: str
    label: str
    box: Box
    header: bool = False


@dataclass(frozen=True)
class RealItem:
    """One item of a public test set, validated.

    ``image`` is a file path, or ``None`` when the image is held as encoded bytes in ``image_bytes`` (a
    parquet row); ``size`` is ``(width, height)`` from its header. ``answers`` is empty when the set
    publishes none (CharXiv's test split): the item runs and is scored as unavailable. ``bands`` are the
    item's labels per axis in normalised boxes; ``context`` is what the set's scorer needs besides the
    answers (CharXiv's ``inst_category``); ``notes`` say which metadata was dropped and why.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    image: str | None
    size: tuple[int, int]
    bands: tuple[Band, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()
    where: str = ""
    image_bytes: bytes | None = field(default=None, repr=False, hash=False)

    def axes(self) -> tuple[str, ...]:
        """The axes this item has labels on, in :data:`AXES` order."""
        have = {b.axis for b in self.bands}
        return tuple(a for a in AXES if a in have)


@dataclass
class LoadedSet:
    """The usable items of one published file, with what was skipped or dropped and why."""

    name: str
    source: str
    items: list[RealItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(where, reason)`` of each item that cannot be played."""

    def add(self, item: RealItem | str, where: str) -> None:
        """Keep a usable item, or record the reason (a string) it was skipped."""
        if isinstance(item, str):
            self.skipped.append((where, item))
        else:
            self.items.append(item)

    @property
    def report(self) -> dict[str, Any]:
        """JSON-safe counts: usable items, skips and dropped metadata per reason (with a few skipped items
        named), items without a published answer."""
        noted = Counter(note for item in self.items for note in item.notes)
        return {
            "source": self.source,
            "usable": len(self.items),
            "skipped": dict(sorted(Counter(r for _, r in self.skipped).items())),
            "skipped_examples": [f"{w}: {r}" for w, r in self.skipped[:5]],
            "metadata_dropped": dict(sorted(noted.items())),
            "unscored": sum(1 for it in self.items if not it.answers),
        }


# -- files --------------------------------------------------------------------------------------------------
def read_json(path: Path) -> Any:
    """A JSON file, refusing a non-UTF-8 file and duplicate keys (a later duplicate would silently win)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); the published files are UTF-8") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                raise DataError(f"{path}: duplicate id or key {key!r}; each item id must appear once")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def id_map(obj: Any, path: Path, example: str) -> dict[str, Any]:
    """A published ``{id: record}`` object, checked to be one."""
    if not isinstance(obj, dict) or not obj:
        raise DataError(
            f"{path}: expected a non-empty JSON object mapping item ids to records like {example}; got {type(obj).__name__}"
        )
    return obj


def find_file(data_dir: str | os.PathLike[str], relpath: str, what: str) -> Path:
    """The published file ``relpath`` (e.g. ``data/chartQA_h_bar_wbb.json``) under ``data_dir``: at that path,
    or anywhere below (up to four folders deep) at a path ending in it, so an unpacked repository folder
    works too. Raises :class:`DataError` when it is absent or found twice."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data_dir {str(root)!r} is not a folder; give the folder you unpacked {what} into")
    direct = root / relpath
    if direct.is_file():
        return direct
    name = Path(relpath).name
    found = [
        p for depth in range(1, 5) for p in root.glob("/".join(["*"] * depth) + "/" + relpath) if p.is_file() and p.name == name
    ]
    if len(found) > 1:
        listed = ", ".join(str(p) for p in sorted(found)[:4])
        raise DataError(f"{relpath} found {len(found)} times under {root} ({listed}); point data_dir at the one to use")
    if not found:
        raise DataError(
            f"{what}: no {relpath} under {root}; expected {direct} (the published layout, see the README "
            f"section 'Public test sets')"
        )
    return found[0]


# -- fields -------------------------------------------------------------------------------------------------
def text_field(record: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string field (numbers become text); ``None`` when absent, null or empty."""
    value = record.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and not math.isfinite(value) else format_number(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def answers_field(value: Any, sep: str | None = None) -> tuple[str, ...]:
    """Accepted answers from a published ``answer``: a string (``sep``-joined lists split), a number, a
    list of those; empty for null (no published answer)."""
    if value is None:
        return ()
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, (int, float)):
        return () if isinstance(value, float) and not math.isfinite(value) else (format_number(value),)
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        parts = [answers_field(v) for v in value]
        joined = sep.join(p[0] for p in parts if p) if sep else None
        return (joined,) if joined else tuple(a for p in parts for a in p)
    return ()


def parse_box(raw: Any, unit: str, size: tuple[int, int]) -> Box | str:
    """A published bbox ``{"x1", "y1", "x2", "y2"}`` (or ``[x1, y1, x2, y2]``) as a normalised box, or the
    reason it is unusable. ``unit`` is ``"fraction"`` or ``"pixel"`` (of the image's ``size``)."""
    if isinstance(raw, Mapping):
        if any(isinstance(v, str) and v.strip().lower() == "none" for v in raw.values()):
            return "bbox is the 'none' sentinel"
        values: list[Any] = [raw.get(k) for k in ("x1", "y1", "x2", "y2")]
    elif isinstance(raw, (list, tuple)) and len(raw) == 4:
        values = list(raw)
    else:
        return f"bbox must be {{x1, y1, x2, y2}}; got {str(raw)[:40]}"
    nums: list[float] = []
    for v in values:
        try:
            f = float(v)  # numbers, and numbers written as strings
        except (TypeError, ValueError):
            return f"bbox coordinate {v!r} is not a number"
        if not math.isfinite(f):
            return "bbox has NaN or infinite coordinates"
        nums.append(f)
    x1, y1, x2, y2 = nums
    if unit == "pixel":
        w, h = size
        x1, x2, y1, y2 = x1 / w, x2 / w, y1 / h, y2 / h
    if min(x1, y1) < -EDGE_SLACK or max(x2, y2) > 1 + EDGE_SLACK:
        return "bbox outside the image"
    if not (x1 < x2 and y1 < y2):
        return "bbox inverted or empty"
    return (max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2))


PIXEL_EVIDENCE = 2.0
"""A coordinate above this is a pixel (no fraction of the image comes near it; a 2-pixel box is no label)."""


def box_unit(boxes: Sequence[Any]) -> str:
    """``"pixel"`` when any coordinate of the item's boxes is above :data:`PIXEL_EVIDENCE` (a pixel box where
    fractions are published), else ``"fraction"``: the unit is detected per item, not trusted."""
    for raw in boxes:
        values = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, (list, tuple)) else ()
        for v in values:
            try:
                if float(v) > PIXEL_EVIDENCE:
                    return "pixel"
            except (TypeError, ValueError):
                continue
    return "fraction"


def bands(axis: str, labels: Any, boxes: Any, size: tuple[int, int], notes: list[str], unit: str | None = None) -> list[Band]:
    """One axis's bands from aligned ``labels`` and ``boxes`` lists (ReFocus's ``y_values`` + ``y_bboxes``...).

    Empty lists give no bands (nothing noted: the detector found none); a length mismatch, a non-string
    label or any unusable box drops the axis and notes why (a partial list would mislabel bands)."""
    if not labels and not boxes:
        return []
    if not isinstance(labels, list) or not isinstance(boxes, list):
        notes.append(f"{axis}: labels and boxes must be lists")
        return []
    if len(labels) != len(boxes):
        notes.append(f"{axis}: {len(labels)} labels but {len(boxes)} boxes")
        return []
    unit = unit or box_unit(boxes)
    out: list[Band] = []
    for label, raw in zip(labels, boxes):
        text = text_field({"v": label}, "v")
        if text is None:
            notes.append(f"{axis}: a label is empty or not text")
            return []
        box = parse_box(raw, unit, size)
        if isinstance(box, str):
            notes.append(f"{axis}: {box}")
            return []
        out.append(Band(axis, text, box))
    return out


def image_info(path: Path, where: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int] | str:
    """``(width, height)`` of an item's image file from its header, or why the item cannot be played."""
    if not path.is_file():
        return "image file missing"
    try:
        width, height = image_size(str(path), where)
        check_pixels(width, height, max_pixels, where)
    except ValueError as exc:
        return "image too large" if "exceeds the limit" in str(exc) or "too large" in str(exc) else "image unreadable"
    return width, height


__all__ = [
    "AXES",
    "Band",
    "DataError",
    "LoadedSet",
    "RealItem",
    "answers_field",
    "bands",
    "box_unit",
    "find_file",
    "id_map",
    "image_info",
    "parse_box",
    "read_json",
    "text_field",
]
