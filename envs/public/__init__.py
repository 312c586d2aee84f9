"""The field's public test sets, read from a local copy in their published layout.

:data:`DATASETS` is the one table of names (the ``dataset=`` of ``gym.make("RealVQA-v0", ...)``): for each,
the published file per split (found under ``data_dir`` by that path, see :func:`~.items.find_file`), the
reader, and the scorer of :mod:`iapo_gym.scoring` that follows the set's published rules.
:func:`load_dataset` reads and validates one set (cached per process while the file is unchanged).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..images import MAX_PIXELS
from . import charxiv, refocus, vtool_r1
from .items import AXES, Band, DataError, LoadedSet, RealItem, find_file


@dataclass(frozen=True)
class PublicSet:
    """One public test set: its published files per split, the reader and the scorer."""

    name: str
    title: str
    files: dict[str, str]
    """split -> the published file's path relative to the data folder."""
    default_split: str
    scorer: str
    source: str
    """Where the data comes from (for messages and the README)."""
    read: Callable[[Path, str, Path, int], LoadedSet]


def _refocus(axes: tuple[tuple[str, str, str], ...]) -> Callable[[Path, str, Path, int], LoadedSet]:
    return lambda path, name, data_dir, max_pixels: refocus.load(path, name, data_dir, axes, max_pixels=max_pixels)


def _vtool(path: Path, name: str, data_dir: Path, max_pixels: int) -> LoadedSet:
    return vtool_r1.load(path, name, data_dir, max_pixels=max_pixels)


def _charxiv(path: Path, name: str, data_dir: Path, max_pixels: int) -> LoadedSet:
    return charxiv.load(path, name, data_dir, max_pixels=max_pixels)


_REFOCUS = "ReFocus (zeyofu/ReFocus_Code; data: huggingface.co/datasets/ReFocus/ReFocus_Data), unpacked so that data/ holds the JSON files"
_VTOOL = "VTool-R1 (VTool-R1/VTool-R1: datasets/ as its preprocess scripts write it)"
DATASETS: dict[str, PublicSet] = {
    s.name: s
    for s in (
        PublicSet(
            "refocus-hbar",
            "ReFocus horizontal bars (ChartQA)",
            {"test": "data/chartQA_h_bar_wbb.json"},
            "test",
            "refocus-chart",
            _REFOCUS,
            _refocus(refocus.CHART_AXES),
        ),
        PublicSet(
            "refocus-vbar",
            "ReFocus vertical bars (ChartQA)",
            {"test": "data/chartQA_v_bar_wbb.json"},
            "test",
            "refocus-chart",
            _REFOCUS,
            _refocus(refocus.CHART_AXES),
        ),
        PublicSet(
            "vwtq",
            "VWTQ (TableVQA-Bench)",
            {"test": "data/tablevqa_wbb.json"},
            "test",
            "refocus-table",
            _REFOCUS,
            _refocus(refocus.TABLE_AXES),
        ),
        PublicSet(
            "vwtq-syn",
            "VWTQ_syn (TableVQA-Bench)",
            {"test": "data/tablevqa-vwtq_syn_wbb.json"},
            "test",
            "refocus-table",
            _REFOCUS,
            _refocus(refocus.TABLE_AXES),
        ),
        PublicSet(
            "vtabfact",
            "VTabFact (TableVQA-Bench)",
            {"test": "data/tablevqa-vtabfact_wbb.json"},
            "test",
            "vtabfact",
            _REFOCUS,
            _refocus(refocus.TABLE_AXES),
        ),
        PublicSet(
            "charxiv",
            "CharXiv reasoning",
            {"val": "data/reasoning_val.json", "test": "data/reasoning_test.json"},
            "val",
            "charxiv",
            "CharXiv (princeton-nlp/CharXiv: data/ and images/ of the repository)",
            _charxiv,
        ),
        PublicSet(
            "vtool-r1-charts",
            "VTool-R1 charts (ChartQA bars)",
            {s: f"datasets/{s}_full.parquet" for s in ("train", "val", "test")},
            "test",
            "vtool-r1",
            _VTOOL,
            _vtool,
        ),
        PublicSet(
            "vtool-r1-tables",
            "VTool-R1 tables (mixed ReFocus tables)",
            {s: f"datasets/table_{s}.parquet" for s in ("train", "test")},
            "test",
            "vtool-r1",
            _VTOOL,
            _vtool,
        ),
    )
}
"""The public sets by name **(contract: the names)**."""
PAPER_SIX = ("refocus-hbar", "refocus-vbar", "vwtq", "vwtq-syn", "vtabfact", "charxiv")
"""The six test sets the IAPO paper reports, in its table's order."""

CACHE_SIZE = 8
_LOADED: OrderedDict[tuple[str, str, int, int, int], LoadedSet] = OrderedDict()


def public_set(name: str) -> PublicSet:
    """The set called ``name``; the error lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def dataset_file(name: str, data_dir: str | os.PathLike[str], split: str | None = None) -> tuple[PublicSet, str, Path]:
    """The set, the split (its default when ``None``) and its published file under ``data_dir``."""
    spec = public_set(name)
    split = spec.default_split if split is None else split
    if split not in spec.files:
        raise DataError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(spec.files)}")
    return spec, split, find_file(data_dir, spec.files[split], f"dataset {name!r} ({spec.source})")


def load_dataset(
    name: str, data_dir: str | os.PathLike[str], split: str | None = None, *, max_pixels: int = MAX_PIXELS
) -> LoadedSet:
    """The usable items of set ``name`` (split ``split``, default the set's evaluation split) under
    ``data_dir``, with the skipped items counted by reason. Kept per process (the last :data:`CACHE_SIZE`
    sets) while the file's size and modification time stay the same."""
    spec, split, path = dataset_file(name, data_dir, split)
    stat = path.stat()
    key = (name, str(path.resolve()), stat.st_size, stat.st_mtime_ns, max_pixels)
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = spec.read(path, name, Path(data_dir).expanduser(), max_pixels)
        if not loaded.items:
            reasons = "; ".join(f"{n} x {r}" for r, n in loaded.report["skipped"].items())
            raise DataError(f"{path}: no usable item ({reasons or 'the file is empty'})")
        _LOADED[key] = loaded
        if len(_LOADED) > CACHE_SIZE:
            _LOADED.popitem(last=False)
    else:
        _LOADED.move_to_end(key)
    return loaded


def clear_loaded() -> None:
    """Forget every loaded set (the next :func:`load_dataset` reads its file again)."""
    _LOADED.clear()


__all__ = [
    "AXES",
    "DATASETS",
    "PAPER_SIX",
    "Band",
    "DataError",
    "LoadedSet",
    "PublicSet",
    "RealItem",
    "clear_loaded",
    "dataset_file",
    "load_dataset",
    "public_set",
]
