"""A real data set as a tool-VQA environment: JSONL records of image + question + answers, and easy-VQA.

A JSONL file holds one record per line::

    {"image": "imgs/0001.png", "question": "What is the total?", "answers": ["42", "forty-two"],
     "evidence": [[0.61, 0.20, 0.74, 0.26]], "family": "Receipts", "id": "r-0001"}

``image`` is a path relative to the JSONL file's folder (absolute paths are allowed); ``evidence`` (optional)
lists the boxes the answer depends on, normalised ``[x0, y0, x1, y1]`` in ``[0, 1]`` of the image;
``family`` (optional, default ``"Dataset"``) names the group results are reported by. Any other keys are
kept in :attr:`DatasetRecord.extra` and written back by :func:`write_jsonl`. Blank lines are skipped.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from iapo_gym.io import atomic_write_text
from iapo_gym.scene import Box, Program, Region, Scene, as_box

from .base import ToolVQAEnv
from .images import load_image

DEFAULT_FAMILY = "Dataset"
EASY_VQA_FAMILY = "EasyVQA"
SOURCES = ("easy-vqa",)
"""Built-in data sets that need no file (``DatasetVQAEnv(source=...)``)."""

_RESERVED = ("image", "question", "answers", "evidence", "family")
_EXAMPLE = '{"image": "images/0001.png", "question": "What is shown?", "answers": ["a cat"]}'


@dataclass(frozen=True)
class DatasetRecord:
    """One VQA item of a data set.

    ``image`` is an absolute path; ``evidence`` normalised boxes ``(x0, y0, x1, y1)`` the answer depends on
    (may be empty); ``extra`` the record's other JSON keys (ids and the like); ``where`` says where the
    record came from (``"data.jsonl, line 3"``) for error messages, and is not part of equality.
    """

    image: str
    question: str
    answers: tuple[str, ...]
    evidence: tuple[Box, ...] = ()
    family: str = DEFAULT_FAMILY
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    where: str = field(default="", compare=False)


# -- validation ---------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(obj: Any) -> str | None:
    """What is wrong with a raw JSON record (``None`` if nothing); the image file is checked separately."""
    if not isinstance(obj, dict):
        return f"expected a JSON object like {_EXAMPLE}; got a {type(obj).__name__}"
    for key in ("image", "question"):
        if key not in obj:
            return f"missing field {key!r}; each record needs 'image', 'question' and 'answers', like {_EXAMPLE}"
        if not isinstance(obj[key], str) or not obj[key].strip():
            return f"field {key!r} must be a non-empty string; got {obj[key]!r}"
    if "answers" not in obj:
        return f"missing field 'answers'; each record needs 'image', 'question' and 'answers', like {_EXAMPLE}"
    answers = obj["answers"]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        return f'field \'answers\' must be a non-empty list of non-empty strings, like ["42", "forty-two"]; got {answers!r}'
    if "family" in obj and (not isinstance(obj["family"], str) or not obj["family"].strip()):
        return f"field 'family' must be a non-empty string (a name to report results by); got {obj['family']!r}"
    evidence = obj.get("evidence", [])
    if not isinstance(evidence, list):
        return f"field 'evidence' must be a list of boxes [[x0, y0, x1, y1], ...]; got {evidence!r}"
    for k, box in enumerate(evidence):
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            return f"evidence box {k} must be 4 numbers [x0, y0, x1, y1]; got {box!r}"
        x0, y0, x1, y1 = box
        if not all(0.0 <= v <= 1.0 for v in box):
            return f"evidence box {k} must be normalised to [0, 1] of the image size; got {box!r}"
        if not (x0 < x1 and y0 < y1):
            return f"evidence box {k} must have x0 < x1 and y0 < y1; got {box!r}"
    return None


def _to_record(obj: dict[str, Any], image: str, where: str) -> DatasetRecord:
    return DatasetRecord(
        image=image,
        question=obj["question"],
        answers=tuple(obj["answers"]),
        evidence=tuple(as_box(box) for box in obj.get("evidence", [])),
        family=obj.get("family", DEFAULT_FAMILY),
        extra={k: v for k, v in obj.items() if k not in _RESERVED},
        where=where,
    )


def load_jsonl(path: str | os.PathLike[str]) -> list[DatasetRecord]:
    """Read and validate every record of a JSONL file (images are checked to exist, not decoded).

    Raises ``ValueError`` naming the file, the 1-based line number, what is wrong and what would be right.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"dataset file not found: {path!r}; expected a JSONL file with one record per line like {_EXAMPLE}")
    folder = os.path.dirname(os.path.abspath(path))
    records: list[DatasetRecord] = []
    with open(path, "rb") as f:  # bytes, so a bad encoding is reported with its line like any other error
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}, line {lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); expected one JSON object per line like {_EXAMPLE}"
                ) from None
            problem = _record_problem(obj)
            if problem is not None:
                raise ValueError(f"{where}: {problem}")
            image = os.path.normpath(os.path.join(folder, obj["image"]))  # join keeps absolute paths as they are
            if not os.path.isfile(image):
                raise ValueError(
                    f"{where}: image file not found: {image!r} (relative image paths are resolved against the "
                    f"JSONL file's folder {folder!r})"
                )
            records.append(_to_record(obj, image, where))
    if not records:
        raise ValueError(f"{path}: no records; expected one JSON object per line like {_EXAMPLE}")
    return records


def _image_field(image: str, folder: str) -> str:
    """The image path to store in a JSONL file in ``folder``: relative if the image lies under it (so the
    folder can be moved as a whole), absolute otherwise (a ``../..`` path breaks when the file moves)."""
    image = os.path.abspath(image)
    try:
        if os.path.commonpath([image, folder]) == folder:
            return os.path.relpath(image, folder).replace(os.sep, "/")
    except ValueError:  # different drives on Windows
        pass
    return image


def write_jsonl(records: Iterable[DatasetRecord], path: str | os.PathLike[str]) -> None:
    """Write ``records`` as a JSONL file that :func:`load_jsonl` reads back, atomically (a temporary file in
    the same folder, then ``os.replace``), so an interrupted export never leaves a half-written file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    lines: list[str] = []
    for k, rec in enumerate(records):
        if not isinstance(rec, DatasetRecord):
            raise ValueError(f"write_jsonl: item {k} must be a DatasetRecord; got {type(rec).__name__}")
        obj: dict[str, Any] = dict(rec.extra)  # the reserved keys below win over same-named extras
        obj.update(image=_image_field(rec.image, folder), question=rec.question, answers=list(rec.answers))
        if rec.evidence:
            obj["evidence"] = [list(box) for box in rec.evidence]
        if rec.family != DEFAULT_FAMILY:
            obj["family"] = rec.family
        problem = _record_problem(obj)  # fail before writing anything that load_jsonl would refuse
        if problem is not None:
            raise ValueError(f"write_jsonl: record {k} ({rec.where or rec.image}): {problem}")
        try:
            lines.append(json.dumps(obj, ensure_ascii=False))
        except (TypeError, ValueError) as exc:  # an ``extra`` value JSON cannot hold
            raise ValueError(
                f"write_jsonl: record {k} ({rec.where or rec.image}): {exc}; extra values must be JSON-safe"
            ) from None
    atomic_write_text(path, "".join(line + "\n" for line in lines))


# -- easy-VQA ----------------------------------------------------------------------------------------------
def _shape_box(path: str) -> Box:
    """The box of the one shape in an easy-VQA image. Backgrounds are light pastels (every channel >= 180
    away from the shape's anti-aliased edge) and every shape colour has a channel below 180."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode easy-VQA image {path!r}; reinstall the easy-vqa package")
    ys, xs = np.nonzero(img.min(axis=2) < 180)
    if len(xs) == 0:
        return (0.0, 0.0, 1.0, 1.0)
    h, w = img.shape[:2]
    return (float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h))


@functools.lru_cache(maxsize=2)
def _easy_vqa_records(split: str) -> tuple[DatasetRecord, ...]:
    import easy_vqa

    texts, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths: dict[int, str] = getattr(easy_vqa, f"get_{split}_image_paths")()
    boxes = {image_id: _shape_box(p) for image_id, p in paths.items()}  # ~0.25 ms per image, once per process
    return tuple(
        DatasetRecord(
            image=paths[image_id],
            question=text,
            answers=(answer,),
            evidence=(boxes[image_id],),
            family=EASY_VQA_FAMILY,
            extra={"image_id": int(image_id)},
            where=f"easy-vqa {split} question {k}",
        )
        for k, (text, answer, image_id) in enumerate(zip(texts, answers, image_ids))
    )


def easy_vqa_records(split: str = "train") -> list[DatasetRecord]:
    """The easy-VQA data set (the ``easy-vqa`` package, offline) as records: 64x64 images of one coloured
    shape, questions about its shape and colour, one answer each (13 possible answers). The evidence box is
    the shape's bounding box, found from the pixels. Family ``"EasyVQA"``; ``extra["image_id"]`` is the
    package's image id (several questions share an image)."""
    if split not in ("train", "test"):
        raise ValueError(f"easy-vqa split must be 'train' or 'test'; got {split!r}")
    return list(_easy_vqa_records(split))


# -- the environment ---------------------------------------------------------------------------------------
class DatasetVQAEnv(ToolVQAEnv):
    """Visual question answering with tools over a real data set: a JSONL file, easy-VQA, or given records.

    ## Description
    Each episode shows one data set item: its image, its question; the agent zooms/OCRs and answers as in
    every :class:`ToolVQAEnv`. Exactly one of ``path`` (a JSONL file; format in the module docstring),
    ``source`` (``"easy-vqa"``) or ``records`` (a sequence of :class:`DatasetRecord`) gives the items; with
    none, ``source="easy-vqa"`` (so ``gym.make("DatasetVQA-v0")`` works out of the box). The whole file
    is validated at construction; images are decoded lazily at ``reset`` (and cached, see
    :func:`~iapo_gym.envs.images.load_image`, with its pixel limit), so a corrupt or oversized image raises ``ValueError`` at the ``reset`` that draws it, naming the
    image and the JSONL line.

    Scene ids are item indices, ``[0, number of items)``: ``reset(options={"scene_id": i})`` shows item
    ``i``, and ``reset(seed=...)`` draws one uniformly. The base env's disjoint train/test id ranges do not
    apply: the data set's own split does. ``split`` picks the easy-VQA split and is ignored for a file or
    given records (give the test file instead); ``difficulty`` is ignored.

    The scene has no rendered words (``texts=()``), so the ``scene`` OCR backend reads nothing here: the
    default OCR backend is ``"easyocr"`` (real recognition on the viewed crop). Evidence boxes become
    :class:`~iapo_gym.scene.Region` s of kind ``"evidence"`` (no label or value: the data set does not say
    what they read), the program is ``read`` and there are no key tokens. Small images (easy-VQA's are
    64x64) are upsampled to the view size.

    ## Observation, Action, Reward, Termination, Info
    As :class:`ToolVQAEnv`; ``info["family"]`` is the item's ``family`` (default ``"Dataset"``, easy-VQA
    ``"EasyVQA"``), and ``info["scene"].meta`` holds ``index``, ``where`` (file and line) and ``extra``.
    """

    family = DEFAULT_FAMILY

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        source: str | None = None,
        records: Sequence[DatasetRecord] | None = None,
        split: str = "train",
        ocr: str = "easyocr",
        **kwargs: Any,
    ) -> None:
        super().__init__(split=split, ocr=ocr, **kwargs)  # validates split, ocr and the shared settings
        given = [name for name, value in (("path", path), ("source", source), ("records", records)) if value is not None]
        if len(given) > 1:
            raise ValueError(f"give one of path=, source= or records=; got {' and '.join(given)}")
        if path is not None:
            self.records: tuple[DatasetRecord, ...] = tuple(load_jsonl(path))
            self.source = os.fspath(path)
        elif records is not None:
            bad = next((k for k, r in enumerate(records) if not isinstance(r, DatasetRecord)), None)
            if bad is not None:
                raise ValueError(f"records[{bad}] must be a DatasetRecord; got {type(records[bad]).__name__}")
            if not records:
                raise ValueError("records= is empty; give at least one DatasetRecord")
            self.records, self.source = tuple(records), "records"
        else:
            name = (source or "easy-vqa").lower().replace("_", "-")
            if name not in SOURCES:
                raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)} (or pass path= to a JSONL file)")
            self.records, self.source = tuple(easy_vqa_records(split)), f"{name}:{split}"

    def scene_id_range(self) -> tuple[int, int]:
        return 0, len(self.records)

    def scene_key(self, scene_id: int) -> Hashable | None:
        return None  # a record's image is read from disk, which may change: never cached

    def draw_scene(self, scene_id: int) -> Scene:
        rec = self.records[scene_id]
        try:
            image = load_image(rec.image)
        except ValueError as exc:  # say which record points at the bad image, not only the image
            raise ValueError(f"{rec.where or f'record {scene_id}'}: {exc}") from None
        return Scene(
            family=rec.family,
            image=image,
            question=rec.question,
            answers=rec.answers,
            evidence=tuple(Region("evidence", box) for box in rec.evidence),
            program=Program("read"),
            texts=(),
            key_tokens=(),
            meta={"index": scene_id, "where": rec.where, "image_path": rec.image, "extra": dict(rec.extra)},
        )


__all__ = ["DatasetRecord", "DatasetVQAEnv", "easy_vqa_records", "load_image", "load_jsonl", "write_jsonl"]
