"""Answer normalisation and matching: exact match after normalisation, or relaxed numeric tolerance."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s.\-]")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")
_SYNONYMS = {"yes": "true", "no": "false", "grey": "gray"}


def normalize_answer(text: str) -> str:
    """Lower-case, drop articles and punctuation, unify number formats ("1,000.0" -> "1000", "50%" -> "50")."""
    return _normalize(str(text))


@functools.lru_cache(maxsize=1024)  # a scene's accepted answers are normalised at every answer step
def _normalize(text: str) -> str:
    s = text.strip().lower().replace(",", "")
    s = s.rstrip("%").strip()
    s = _PUNCT.sub(" ", s)
    s = _ARTICLES.sub(" ", s)
    s = " ".join(s.split()).strip(" .")
    if _NUMBER.match(s):
        value = float(s)
        s = str(int(value)) if value.is_integer() else repr(value)
    return _SYNONYMS.get(s, s)


def to_number(text: str) -> float | None:
    """The number a normalised answer states, or ``None``."""
    s = normalize_answer(text)
    return float(s) if _NUMBER.match(s) else None


def is_correct(prediction: str, answers: Iterable[str], relaxed_tolerance: float | None = None) -> bool:
    """True when ``prediction`` matches any accepted answer.

    With ``relaxed_tolerance`` (e.g. 0.05, ChartQA's relaxed accuracy), a numeric prediction within that
    relative error of a numeric answer also counts.
    """
    pred = normalize_answer(prediction)
    for answer in answers:
        if pred == normalize_answer(answer):
            return True
        if relaxed_tolerance is not None:
            p, a = to_number(prediction), to_number(answer)
            if p is not None and a is not None and abs(p - a) <= relaxed_tolerance * max(abs(a), 1e-9):
                return True
    return False
