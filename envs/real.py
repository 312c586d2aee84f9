"""The field's public test sets as tool-VQA environments: ``gym.make("RealVQA-v0", dataset=..., data_dir=...)``."""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

from iapo_gym.scene import Box, Program, Region, Scene
from iapo_gym.scoring import get_scorer
from iapo_gym.tools import get_tool
from iapo_gym.tools.builtin import FOCUS_AXES

from .base import ToolVQAEnv
from .images import MAX_PIXELS, decode_image, load_image
from .public import DATASETS, Band, LoadedSet, RealItem, load_dataset, public_set

REAL_TOOLS = ("zoom", "ocr", "focus", "answer")
FOCUS_INSET = 2
"""ReFocus's edit tools stay 2 px inside each published band (``int(x1 * W + 2) .. int(x2 * W - 2)``)."""
QUESTION_LENGTH = 1024
"""Characters of a real question kept in the observation (CharXiv's are long)."""


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def named_bands(question: str, bands: Sequence[Band]) -> list[Band]:
    """The bands whose label the question names: the label appears in the question as whole words (case and
    spacing ignored). A label inside a longer named label of the same axis ("York" in "New York") is not
    counted; header rows are not evidence."""
    q = _norm(question)
    found = []
    for band in bands:
        label = _norm(band.label)
        if band.header or not label:
            continue
        if re.search(rf"(?<![\w]){re.escape(label)}(?![\w])", q):
            found.append(band)
    return [
        b
        for b in found
        if not any(
            o is not b and o.axis == b.axis and _norm(b.label) in _norm(o.label) and len(o.label) > len(b.label) for o in found
        )
    ]


def evidence_regions(question: str, bands: Sequence[Band]) -> tuple[Region, ...]:
    """Where the answer lies: the bands of the labels the question names; on a table where it names both a
    row and a column, their intersecting cells."""
    named = named_bands(question, bands)
    rows = [b for b in named if b.axis == "rows"]
    cols = [b for b in named if b.axis == "columns"]
    if rows and cols:
        return tuple(Region("cell", _intersect(r.box, c.box), label=f"{r.label} / {c.label}") for r in rows for c in cols)
    return tuple(Region(FOCUS_AXES[b.axis], b.box, label=b.label) for b in named)


def _intersect(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


class RealVQAEnv(ToolVQAEnv):
    """Visual question answering with tools on a local copy of a public test set.

    ## Description
    ``dataset`` is one of :data:`~iapo_gym.envs.public.DATASETS` (``refocus-hbar``, ``refocus-vbar``,
    ``vwtq``, ``vwtq-syn``, ``vtabfact``, ``charxiv``, ``vtool-r1-charts``, ``vtool-r1-tables``); its
    published file is found under ``data_dir`` (the folder you unpacked the data into) by its published
    path, e.g. ``data/chartQA_h_bar_wbb.json``. Each episode shows one usable item; scene ids are item
    indices, ``[0, number of usable items)``. Items that cannot be played are skipped with a reason
    (:attr:`report`); nothing is dropped silently.

    Images keep their size and aspect ratio: the glance and every view letterbox them into the view square,
    and boxes are normalised to the original image. An image above ``max_pixels`` is refused before it is
    decoded (a skip); decoded images are cached within a memory bound.

    ## Tools
    ``zoom`` and ``ocr`` (``easyocr-full`` by default: the items carry no word boxes, and the engine reads the
    region's original pixels), ``answer``, and — on items
    whose metadata has label bands — ``focus``: ReFocus's edits (``highlight``, ``draw``, ``mask``) over the
    named ``columns``, ``rows``, ``x_values`` or ``y_values``, with ReFocus's pixel rule. The item's own
    axes and labels are the allowed values of ``focus``'s JSON schema in ``info["tools"]`` (what a VLM is
    shown); a label the item lacks is refused with the item's labels listed.

    ## Evidence
    The band(s) of the label(s) the question names (a table cell where it names a row and a column): what the
    oracle, the teacher and the hit/read diagnostics use. Items naming no label have none
    (``info["scene"].evidence == ()``).

    ## Reward
    ``outcome`` is 1 when the set's scorer (:mod:`iapo_gym.scoring`, named in :attr:`scorer`) accepts the
    answer. Items without a published answer (CharXiv's test split) run and are not scored:
    ``info["scored"]`` is false and ``outcome`` 0.

    ## Info
    As :class:`ToolVQAEnv`, plus ``tools`` (name -> JSON schema of the tools offered on this item) and
    ``scored``; ``info["scene"].meta`` holds ``dataset``, ``item_id``, ``where`` and ``notes``.
    """

    question_length: ClassVar[int] = QUESTION_LENGTH

    def __init__(
        self,
        dataset: str = "refocus-hbar",
        data_dir: str | os.PathLike[str] | None = None,
        split: str | None = None,
        *,
        ocr: str = "easyocr-full",
        tools: Sequence[str] = REAL_TOOLS,
        max_pixels: int = MAX_PIXELS,
        scorer: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("difficulty", None)  # a data set has no difficulty
        super().__init__(ocr=ocr, tools=tools, **kwargs)
        if data_dir is None:
            raise ValueError(
                f"RealVQA-v0 needs data_dir=: the folder holding a local copy of {dataset!r} ({public_set(dataset).source})"
            )
        spec = public_set(dataset)
        self.dataset = spec.name
        self.scorer = scorer or spec.scorer
        get_scorer(self.scorer)  # an unknown name fails here, with the known ones listed
        self.loaded: LoadedSet = load_dataset(dataset, data_dir, split, max_pixels=max_pixels)
        self.split = split or spec.default_split
        self.family = spec.name
        self.max_pixels = max_pixels
        self._specs: Mapping[str, Mapping[str, Any]] = MappingProxyType({})

    @property
    def items(self) -> list[RealItem]:
        return self.loaded.items

    @property
    def report(self) -> dict[str, Any]:
        """Usable items, skips and dropped metadata per reason, items without an answer, items without evidence."""
        no_evidence = sum(1 for it in self.items if not evidence_regions(it.question, it.bands))
        return {**self.loaded.report, "no_evidence": no_evidence}

    def scene_id_range(self) -> tuple[int, int]:
        return 0, len(self.items)

    def scene_key(self, scene_id: int) -> Hashable | None:
        return ("real", self.loaded.source, id(self.loaded), self.max_pixels, int(scene_id))

    def draw_scene(self, scene_id: int) -> Scene:
        item = self.items[scene_id]
        if item.image_bytes is not None:
            image = decode_image(item.image_bytes, (self.loaded.source, item.id), item.where, max_pixels=self.max_pixels)
        else:
            assert item.image is not None
            try:
                image = load_image(item.image, max_pixels=self.max_pixels)
            except ValueError as exc:  # changed on disk since loading: say which item
                raise ValueError(f"{item.where}: {exc}") from None
        evidence = evidence_regions(item.question, item.bands)
        layout = tuple(Region(FOCUS_AXES[b.axis], b.box, label=b.label, value="header" if b.header else "") for b in item.bands)
        return Scene(
            family=self.family,
            image=image,
            question=item.question,
            answers=item.answers,
            evidence=evidence,
            program=Program("open"),
            layout=layout,
            texts=(),
            key_tokens=tuple(w for r in evidence for w in _norm(r.label).replace("/", " ").split()),
            meta={
                "dataset": self.dataset,
                "item_id": item.id,
                "where": item.where,
                "notes": list(item.notes),
                "context": dict(item.context),
            },
            scorer=self.scorer,
            focus_inset=FOCUS_INSET,
        )

    def tool_specs(self, scene: Scene) -> dict[str, Mapping[str, Any]]:
        """The tools offered on ``scene`` with their JSON schemas: ``focus`` only where the item has labels,
        its ``axis`` and ``labels`` narrowed to the item's own."""
        specs: dict[str, Mapping[str, Any]] = {}
        for name in self.tools:
            params = dict(get_tool(name).parameters)
            if name == "focus":
                axes = [a for a, kind in FOCUS_AXES.items() if any(r.kind == kind for r in scene.layout)]
                if not axes:
                    continue
                labels = list(dict.fromkeys(r.label for r in scene.layout))
                props = dict(params["properties"])
                props["axis"] = {**props["axis"], "enum": axes}
                props["labels"] = {**props["labels"], "items": {"type": "string", "enum": labels}}
                params["properties"] = props
            specs[name] = params
        return specs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        assert self.scene is not None
        self._specs = MappingProxyType(self.tool_specs(self.scene))  # read-only: shared by the episode's infos
        info["tools"] = self._specs
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        out = super().step(action)
        out[-1]["tools"] = self._specs
        return out


__all__ = ["DATASETS", "REAL_TOOLS", "RealVQAEnv", "evidence_regions", "named_bands"]
