"""The oracle agent: privileged knowledge of *where* the evidence is, but it must *read* it through the tools.

It OCRs (or, for colours, zooms into) each evidence region, then derives the answer with the scene's
program. With ``use_tools=False`` it reads the same regions off the glance image instead, which shows how
much the tools are needed. This is the ceiling of the leaderboard, not a learner.

On a real data set's item (program ``open``: the item does not say how the answer follows from what the
evidence shows) it reads each evidence region (the whole image when the question names no label), then
answers the first of a fixed list of candidates that the set's scorer accepts: each reading, its lines, words
and numbers, the labels read (and those of the largest and smallest values), and the differences, sums,
ratios, extremes and threshold counts of the numbers read (see :func:`candidates`).
The answers are used only to choose among what the tools returned, so the oracle is right exactly when the
answer is readable through the tools (plainly or by one such operation): the ceiling of the tool pipeline
on real pixels. A yes/no or true/false answer counts only when something was read at the evidence.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from iapo_gym.answers import to_number
from iapo_gym.scene import Region, Scene, pad_box, solve
from iapo_gym.scoring import scorer_accepts
from iapo_gym.toolcall import ToolCall
from iapo_gym.tools import SceneOCR
from iapo_gym.vocab import COLORS

_COLOR_NAMES = list(COLORS)
_COLOR_RGB = np.array(list(COLORS.values()), dtype=np.float32)


def read_color(image: np.ndarray) -> str:
    """Name of the most saturated colour patch in ``image`` (background white/grey/black padding ignored)."""
    px = image.reshape(-1, 3).astype(np.float32)
    sat = px.max(axis=1) - px.min(axis=1)
    dark = px.max(axis=1) < 60
    if sat.max() < 40 and dark.sum() > 0:
        strong = px[dark]
    else:
        strong = px[sat >= max(40.0, 0.7 * sat.max())]
    if len(strong) == 0:
        strong = px
    mean = strong.mean(axis=0)
    return _COLOR_NAMES[int(np.argmin(((_COLOR_RGB - mean) ** 2).sum(axis=1)))]


_ERROR = re.compile(r"^error:")


class OracleAgent:
    """Reads each evidence region with a tool call, then answers (see module docstring)."""

    name = "oracle"

    def __init__(self, use_tools: bool = True, margin: float = 0.0) -> None:
        """``margin``: how much (normalised) each region read is grown on every side."""
        self.use_tools = use_tools
        self.margin = margin
        self.reset()

    def reset(self) -> None:
        self._scene: Scene | None = None
        self._readings: list[str | None] = []
        self._pending: Region | None = None

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        scene: Scene = info["scene"]
        if scene is not self._scene:
            self.reset()
            self._scene = scene
        if self._pending is not None:  # the last step read this region
            self._readings.append(self._reading(self._pending, observation))
            self._pending = None
        if not self.use_tools:
            self._readings = [self._glance_reading(scene, r, observation) for r in scene.evidence]
        elif len(self._readings) < len(self._targets(scene)):
            region = self._targets(scene)[len(self._readings)]
            self._pending = region
            tool = "zoom" if scene.program.op == "color" else "ocr"
            box = pad_box(region.box, self.margin) if self.margin else region.box
            return ToolCall(tool, {"box": list(box)}).to_json()
        answer: str | None
        if scene.program.op == "open":
            answer = open_answer(scene, self._readings)
        else:
            answer = solve(scene.program, self._readings, [r.label for r in scene.evidence])
        return ToolCall("answer", {"text": answer if answer is not None else "0"}).to_json()

    @staticmethod
    def _targets(scene: Scene) -> tuple[Region, ...]:
        """The regions to read: the evidence, or the whole image for an open item without evidence."""
        if scene.evidence or scene.program.op != "open":
            return scene.evidence
        return (Region("image", (0.0, 0.0, 1.0, 1.0)),)

    def _reading(self, region: Region, observation: dict[str, Any]) -> str | None:
        assert self._scene is not None
        if self._scene.program.op == "color":
            return read_color(observation["crop"])
        text = str(observation["tool_output"])
        if _ERROR.match(text) or text == "(no legible text)":
            return None
        return text

    def _glance_reading(self, scene: Scene, region: Region, observation: dict[str, Any]) -> str | None:
        glance = observation["image"]
        if scene.program.op == "color":
            v = glance.shape[0]
            s = v / max(scene.width, scene.height)
            x0, y0, x1, y1 = (int(round(c * scene.width * s)) for c in region.box)
            return read_color(glance[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)])
        scale = glance.shape[0] / max(scene.width, scene.height)
        words = SceneOCR().visible(scene.texts, region.box, scale)
        return " ".join(w.text for w in words) or None


_BINARY = ("yes", "no", "true", "false", "1", "0")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{round(value, 4):g}"


PAIRED_NUMBERS = 12
"""Numbers (the first read) whose pairwise differences, sums and ratios are candidates."""


def candidates(readings: list[str | None], labels: list[str], binary: bool = True, question: str = "") -> list[str]:
    """What an open item's answer may be, given the texts read at its evidence (see the module docstring),
    in a fixed order: readings, lines, words, labels, the labels of the largest and smallest values read,
    derived values (differences, sums, ratios, mean, extremes, and how many values lie above or below each
    number of the ``question``), and (with ``binary``, when something was read) yes/no/true/false/1/0."""
    texts = [r for r in readings if r]
    out: list[str] = list(texts)
    lines = [ln.strip() for t in texts for ln in t.splitlines() if ln.strip()]
    words = [w.strip(".,:;()") for ln in lines for w in ln.split()]
    out += lines + [w for w in words if w]
    nums = [n for n in (to_number(w) for w in words) if n is not None]
    out += labels
    # "Label 42.5" lines (a bar's label and its value, a table row): the labels, and those of the extremes
    pairs = [
        (" ".join(w for w in ln.split() if to_number(w) is None), v)
        for ln in lines
        for v in [next((n for n in map(to_number, reversed(ln.split())) if n is not None), None)]
        if v is not None
    ]
    pairs = [(lab, v) for lab, v in pairs if lab]
    out += [lab for lab, _ in pairs]
    if pairs:
        out += [max(pairs, key=lambda p: p[1])[0], min(pairs, key=lambda p: p[1])[0]]
    paired = nums[:PAIRED_NUMBERS]
    for i, a in enumerate(paired):
        for b in paired[i + 1 :]:
            out += [_fmt(a - b), _fmt(b - a), _fmt(a + b)]
            if b:
                out.append(_fmt(a / b))
            if a:
                out.append(_fmt(b / a))
    if nums:
        out += [_fmt(sum(nums)), _fmt(sum(nums) / len(nums)), _fmt(max(nums)), _fmt(min(nums))]
        for t in (n for n in map(to_number, question.replace("?", " ").split()) if n is not None):
            out += [str(sum(v > t for v in nums)), str(sum(v < t for v in nums))]
    if texts and binary:
        out += list(_BINARY)
    return list(dict.fromkeys(out))


def open_answer(scene: Scene, readings: list[str | None]) -> str:
    """The first candidate the scene's scorer accepts (else the first reading, or ``"0"``)."""
    found = candidates(
        readings, [r.label for r in scene.evidence if r.label], binary=bool(scene.evidence), question=scene.question
    )
    if scene.answers and scene.scorer is not None:
        for cand in found:
            if scorer_accepts(scene.scorer, cand, scene.answers, scene.meta.get("context")):
                return cand
    return found[0] if found else "0"
