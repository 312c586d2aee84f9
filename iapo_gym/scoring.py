"""Deterministic answer scorers that follow the published scoring rules of the six test sets, as far as rules can.

The published pipelines grade with an LLM judge (ReFocus and CharXiv ask GPT-4o; VTool-R1 asks a served judge
and falls back to a rule). The scorers here turn each judge prompt's stated rules and few-shot examples into
rules; an LLM judge can be layered on top later. Every scorer first takes the final answer out of the model's
output with :func:`extract_answer`, and treats ``|||`` (or ``||``, ``|``) separated answers as lists whose
order does not matter. ``score`` returns a bool; an item without a ground truth (CharXiv's test split has
``answer: null``) cannot be decided, and :func:`score_or_none` returns ``None`` for it.

Sources: ReFocus ``src/chart_data.py`` (judge prompts), VTool-R1 ``examples/reward_function/refocus.py``
(``similarity_score``) and ``eval/gpt_score_results.py`` (exact match), CharXiv ``src/constants.py``
(``REASONING_GRADING_INST``) and ``src/reasoning_utils.py`` (``get_number_instruction``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Protocol, runtime_checkable

from .answers import is_correct, normalize_answer
from .toolcall import parse_tool_call

__all__ = [
    "SCORERS",
    "RuleScorer",
    "Scorer",
    "closeness",
    "extract_answer",
    "get_scorer",
    "read_number",
    "register_scorer",
    "score_or_none",
    "scorer_accepts",
]

_FINAL = re.compile(r"final\s+answer\s*:", re.IGNORECASE)
_CALL_START = re.compile(r'<answer>|<tool_call>|\{\s*"(?:tool|name)"')
_PIPES = re.compile(r"\s*\|{1,3}\s*")
_PIPES_OR_COMMAS = re.compile(r"\s*(?:\|{1,3}|,(?!\d{3}(?:\D|$)))\s*")  # "1,234" is a number, not a list
_NUM = re.compile(
    r"(?P<s1>[-+])?\s*(?:[$€£¥₹]\s*)?(?P<s2>[-+])?"
    r"(?P<m>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*(?:e|[x×*]\s*10\s*\^)\s*(?P<e>[-+]?\d{1,4})|\s*\^\s*\{?(?P<p>[-+]?\d{1,4})\}?)?"
    r"\s*(?P<pct>%|percent)?(?:\s*[a-zµ°][^\s\d]*)?"
)
_TRUE = {"true", "yes", "entailed", "entailment", "supported", "correct", "1"}
_FALSE = {"false", "no", "refuted", "not entailed", "unsupported", "incorrect", "0"}
_VTOOL_MIN_CLOSENESS = 0.95


def extract_answer(text: str) -> str:
    """The final answer in a model's output; never raises.

    An ``answer`` tool call is unwrapped first (``<answer>..</answer>``, ``{"tool": "answer", "args": {"text":
    ..}}``, ``<tool_call>{"name": "answer", "arguments": {"text": ..}}</tool_call>``; the last one wins, parsed
    by :func:`iapo_gym.toolcall.parse_tool_call`). Then ReFocus's ``FINAL ANSWER: .. TERMINATE`` is taken from
    the result: the last occurrence, up to ``TERMINATE`` or the end of its line (the next line when the marker
    ends its own), dropping a sentence's closing period as VTool-R1's regex does. Otherwise the stripped text.
    """
    try:
        s = text if isinstance(text, str) else ("" if text is None else str(text))
        for start in [m.start() for m in _CALL_START.finditer(s)][-8:][::-1]:  # last call first
            try:
                call = parse_tool_call(s[start:])
            except Exception:
                continue
            if call.name == "answer":
                value = call.args.get("text", "")
                s = "" if value is None else str(value)
                break
        finals = list(_FINAL.finditer(s))
        if finals:
            line = s[finals[-1].end() :].lstrip().split("\n", 1)[0]
            return line.split("TERMINATE", 1)[0].strip().rstrip(". ")
        return s.strip()
    except Exception:  # the contract is "never raises"; an unforeseen input scores as an empty answer
        return ""


def read_number(text: str) -> list[Decimal]:
    """The values a numeric answer may mean, or ``[]`` when ``text`` is not a number.

    Accepts thousands separators (``1,234``), a sign (``-``, ``−``), a currency symbol (``$ € £ ¥ ₹``), one
    trailing unit word (``180 meters``; scale words such as ``million`` are ignored, not applied), scientific
    forms (``1.5e3``, ``1.5 x 10^3``, ``10^-2``) and percentages: ``3%`` means 3 or 0.03 (ReFocus's judge
    accepts ``69%`` for 69 and ``3%`` for 0.03). Values keep their written decimal places.
    """
    m = _NUM.fullmatch(text.strip().lower().replace("\u2212", "-").rstrip(". "))
    if not m or (m["p"] is not None and m["m"] != "10"):  # "10^-2" is a power of ten; "2^3" is not read
        return []
    neg = "-" if "-" in (m["s1"] or "") + (m["s2"] or "") else ""
    # built from strings (and shifted through the tuple form) so that no context precision rounds the value
    value = Decimal(f"{neg}1E{m['p']}" if m["p"] else f"{neg}{m['m'].replace(',', '')}E{m['e'] or 0}")
    if not m["pct"]:
        return [value]
    t = value.as_tuple()
    return [value, Decimal((t.sign, t.digits, int(t.exponent) - 2))]


def closeness(a: float, b: float) -> float:
    """VTool-R1's ``similarity_score`` as published: 1 if equal, 0 if either is 0, else
    ``1 - |a - b| / max(|a|, |b|)``."""
    if a == b:
        return 1.0
    if a == 0 or b == 0:
        return 0.0
    return 1 - abs(a - b) / max(abs(a), abs(b))


def _rounds_to(pred: Decimal, answer: Decimal) -> bool:
    """True when ``pred`` rounded half-up to ``answer``'s decimal places equals ``answer`` (1.541 -> 1.54)."""
    try:
        with localcontext() as ctx:
            ctx.prec = 200
            quantum = Decimal((0, (1,), int(answer.as_tuple().exponent)))
            return pred.quantize(quantum, ROUND_HALF_UP) == answer
    except (ArithmeticError, ValueError):
        return False


def _numeric_or_text(numeric: Callable[[Decimal, Decimal], bool]) -> Callable[[str, str], bool]:
    """An item rule: numbers compared with ``numeric`` (any reading of each side), other text normalised."""

    def item(pred: str, answer: str) -> bool:
        ps, as_ = read_number(pred), read_number(answer)
        if ps and as_:
            return any(numeric(p, a) for p in ps for a in as_)
        return normalize_answer(pred) == normalize_answer(answer)

    return item


def _parts(text: str, commas: bool) -> list[str]:
    parts = [p for p in (_PIPES_OR_COMMAS if commas else _PIPES).split(text.strip()) if p]
    return parts or [""]  # only separators: an empty answer


def _match(pred: str, answer: str, item: Callable[[str, str], bool], commas: bool = False) -> bool:
    """``item`` on single answers; on lists the same count and every part matched both ways, in any order."""
    ps, as_ = _parts(pred, commas), _parts(answer, commas)
    if len(ps) == len(as_) == 1:
        return item(ps[0], as_[0])
    if commas and "|" not in pred + answer and item(pred, answer):  # "Paris, France" as one term
        return True
    return len(ps) == len(as_) and all(any(item(p, a) for a in as_) for p in ps) and all(any(item(p, a) for p in ps) for a in as_)


@runtime_checkable
class Scorer(Protocol):
    """What the registry holds: a name, a one-line rule for the leaderboard, and ``score``."""

    @property
    def name(self) -> str:
        """The registry key, e.g. ``"refocus-chart"``."""
        ...

    @property
    def description(self) -> str:
        """One line stating the rule and its tolerance, shown on the leaderboard."""
        ...

    def score(self, prediction: str, answers: Sequence[str], *, context: Mapping[str, Any] | None = None) -> bool:
        """True when the answer in ``prediction`` matches one of the accepted ``answers``."""
        ...


@dataclass(frozen=True)
class RuleScorer:
    """A scorer from a rule ``match(extracted_prediction, answer, context) -> bool`` over one accepted answer."""

    name: str
    description: str
    match: Callable[[str, str, Mapping[str, Any]], bool]

    def score(self, prediction: str, answers: Sequence[str], *, context: Mapping[str, Any] | None = None) -> bool:
        """True when the extracted answer of ``prediction`` matches any accepted answer (False when none)."""
        pred, ctx = extract_answer(prediction), context or {}
        return any(self.match(pred, a, ctx) for a in _accepted(answers))


def _accepted(answers: Sequence[str | None] | str | None) -> list[str]:
    """The accepted answers as strings; ``None`` entries (a null answer) dropped; a bare string is one answer."""
    if isinstance(answers, str):
        return [answers]
    return [str(a) for a in answers or () if a is not None]


def score_or_none(
    scorer: Scorer | str,
    prediction: str,
    answers: Sequence[str | None] | None,
    context: Mapping[str, Any] | None = None,
) -> bool | None:
    """``scorer.score(..)``, or ``None`` when there is no accepted answer to compare with (null or empty)."""
    chosen = get_scorer(scorer) if isinstance(scorer, str) else scorer
    accepted = _accepted(answers)
    return chosen.score(prediction, accepted, context=context) if accepted else None


def scorer_accepts(scorer: str, prediction: str, answers: Sequence[str], context: Any = None) -> bool:
    """Whether the scorer named ``scorer`` accepts ``prediction`` among ``answers`` (``context``: the item's
    scoring context, e.g. a scene's ``meta["context"]``; anything but a mapping counts as none)."""
    return bool(get_scorer(scorer).score(prediction, answers, context=context if isinstance(context, Mapping) else None))


SCORERS: dict[str, Scorer] = {}
"""Registered scorers by name."""


def register_scorer(scorer: Scorer, *, replace: bool = False) -> Scorer:
    """Add ``scorer`` under ``scorer.name``; a taken name raises ValueError unless ``replace``."""
    if scorer.name in SCORERS and not replace:
        raise ValueError(f"scorer {scorer.name!r} is already registered; pass replace=True to replace it")
    SCORERS[scorer.name] = scorer
    return scorer


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None


def _vtool_item(pred: str, answer: str) -> bool:
    """VTool-R1's fallback on one item: numbers are what Python's ``float()`` reads (its ``is_number``); strings
    compare lower-cased, as its exact-match eval does (its training reward compares them case-sensitively)."""
    p, a = pred.strip().rstrip(". "), answer.strip().rstrip(". ")
    try:
        return closeness(float(p), float(a)) >= _VTOOL_MIN_CLOSENESS
    except ValueError:
        return p.lower() == a.lower()


def _tabfact_item(pred: str, answer: str) -> bool:
    def label(s: str) -> str:
        n = normalize_answer(s)
        return "true" if n in _TRUE else "false" if n in _FALSE else n

    return label(pred) == label(answer)


_rounded_item, _equal_item = _numeric_or_text(_rounds_to), _numeric_or_text(operator.eq)


def _charxiv(pred: str, answer: str, ctx: Mapping[str, Any]) -> bool:
    """CharXiv's grading rules by ``inst_category`` (1 text-in-chart, 2 text-in-general, 3 number-in-chart, 4
    number-in-general): 4 is asked for the answer's decimal places; 3 must equal in value; 1 may list terms."""
    try:
        category = int(ctx.get("inst_category", 0))
    except (TypeError, ValueError, OverflowError):
        category = 0
    return _match(pred, answer, _rounded_item if category == 4 else _equal_item, commas=category == 1)


for _scorer in (
    RuleScorer(
        "exact",
        "normalised exact match (case, articles, punctuation, number formats); no tolerance",
        lambda p, a, c: _match(p, a, lambda x, y: is_correct(x, [y])),
    ),
    RuleScorer(
        "relaxed",
        "ChartQA relaxed accuracy: numbers within 5% relative error of the answer, else exact",
        lambda p, a, c: _match(p, a, lambda x, y: is_correct(x, [y], relaxed_tolerance=0.05)),
    ),
    RuleScorer(
        "refocus-chart",
        "ReFocus chart rules: a number matches when it rounds (half-up) to the answer's "
        "decimal places (1.541~1.54, 70!~69); 69%~69, 3%~0.03; 1,234, $ and units ignored; text normalised",
        lambda p, a, c: _match(p, a, _rounded_item),
    ),
    RuleScorer(
        "refocus-table",
        "ReFocus table rules: text normalised (case, whitespace, punctuation); numbers as "
        "refocus-chart; |||, || or comma lists as sets",
        lambda p, a, c: _match(p, a, _rounded_item, commas=True),
    ),
    RuleScorer(
        "vtool-r1",
        "VTool-R1 fallback: float()-parsable numbers match when 1-|a-b|/max(|a|,|b|) >= 0.95; "
        "other strings exact, case-insensitive; ||| lists as sets",
        lambda p, a, c: _match(p, a, _vtool_item),
    ),
    RuleScorer(
        "charxiv",
        "CharXiv rules by inst_category: 4 rounds to the answer's decimal places; 3 exact "
        "value (1.5e3=1500); 1 comma-separated terms in any order; text normalised",
        _charxiv,
    ),
    RuleScorer(
        "vtabfact",
        "VTabFact: true/yes/entailed/1 and false/no/refuted/0 unified, else normalised exact",
        lambda p, a, c: _match(p, a, _tabfact_item),
    ),
):
    register_scorer(_scorer)
