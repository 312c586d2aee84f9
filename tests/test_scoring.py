"""Scorers for the published test sets: answer extraction, the per-set rules, lists, null answers, registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iapo_gym.scoring import (
    SCORERS,
    RuleScorer,
    Scorer,
    closeness,
    extract_answer,
    get_scorer,
    read_number,
    register_scorer,
    score_or_none,
)

NAMES = ["exact", "relaxed", "refocus-chart", "refocus-table", "vtool-r1", "charxiv", "vtabfact"]
ZOOM = '<tool_call>{"name": "zoom", "arguments": {"box": [0, 0, 0.5, 0.5]}}</tool_call>'

# (scorer, prediction, accepted answer, context, verdict)
CASES: list[tuple[str, str, str, dict[str, Any] | None, bool]] = [
    # answer extraction: FINAL ANSWER .. TERMINATE (ReFocus), <answer>, tool calls, last occurrence wins
    (
        "exact",
        "ANSWER: The title is Customer Information. FINAL ANSWER: Customer Information. TERMINATE",
        "customer information",
        None,
        True,
    ),
    ("exact", "FINAL ANSWER: 3 TERMINATE ... on reflection FINAL ANSWER: 4", "4", None, True),
    ("exact", "FINAL ANSWER: 3 TERMINATE ... on reflection FINAL ANSWER: 4", "3", None, False),
    ("exact", "FINAL ANSWER: 5\nThe run TERMINATEs here", "5", None, True),
    ("exact", "FINAL ANSWER:\n5\nTERMINATE", "5", None, True),
    ("exact", "<think>the bar reads 12</think><answer>12</answer>", "12", None, True),
    ("exact", '{"tool": "answer", "args": {"text": "Lamb"}}', "lamb", None, True),
    ("exact", '<tool_call>{"name": "answer", "arguments": {"text": "Lamb"}}</tool_call>', "lamb", None, True),
    ("exact", ZOOM + " then <answer>7</answer>", "7", None, True),
    ("exact", ZOOM + " FINAL ANSWER: 7. TERMINATE", "7", None, True),
    ("exact", ZOOM, "7", None, False),
    # exact and relaxed
    ("exact", "The Answer.", "answer", None, True),
    ("exact", "1.541", "1.54", None, False),
    ("exact", "b|||a", "a|||b", None, True),
    ("relaxed", "104", "100", None, True),
    ("relaxed", "106", "100", None, False),
    # ReFocus chart judge's few-shot examples, and what they imply
    ("refocus-chart", "ANSWER: 69%. FINAL ANSWER: 69%. TERMINATE", "69", None, True),
    ("refocus-chart", "FINAL ANSWER: 3%. TERMINATE", "0.03", None, True),
    ("refocus-chart", "FINAL ANSWER: 1.541. TERMINATE", "1.54", None, True),
    ("refocus-chart", "FINAL ANSWER: 180 Meters TERMINATE", "80 Meters", None, False),
    ("refocus-chart", "69", "69%", None, True),
    ("refocus-chart", "0.03", "3%", None, True),
    ("refocus-chart", "0.69", "69", None, False),
    ("refocus-chart", "70", "69", None, False),
    ("refocus-chart", "1.6", "1.54", None, False),
    ("refocus-chart", "1.5", "1.54", None, False),  # less precise than the answer
    ("refocus-chart", "1.545", "1.54", None, False),  # half-up: 1.55
    ("refocus-chart", "1,234", "1234", None, True),
    ("refocus-chart", "$100,000", "100000", None, True),
    ("refocus-chart", "80 meters", "80", None, True),
    ("refocus-chart", "€ 12.50", "12.5", None, True),
    ("refocus-chart", "-3.2", "-3.2", None, True),
    ("refocus-chart", "\u22123.2", "-3.2", None, True),
    ("refocus-chart", "3.2", "-3.2", None, False),
    ("refocus-chart", "<answer>0.57</answer>", "0.57", None, True),
    ("refocus-chart", "  LAMB. ", "Lamb", None, True),
    ("refocus-chart", "Corn", "Lamb", None, False),
    # ReFocus table prompt: multiple answers as A||B; text case/whitespace/punctuation-insensitive
    ("refocus-table", "FINAL ANSWER: Alice Smith||Bob Johnson. TERMINATE", "Bob Johnson|||Alice Smith", None, True),
    ("refocus-table", "Bob Johnson, Alice Smith", "Alice Smith|||Bob Johnson", None, True),
    ("refocus-table", "Alice Smith", "Alice Smith|||Bob Johnson", None, False),
    ("refocus-table", "Alice Smith||Bob Johnson||Carol", "Alice Smith|||Bob Johnson", None, False),
    ("refocus-table", "  customer   INFORMATION! ", "Customer Information", None, True),
    ("refocus-table", "FINAL ANSWER: 364,263. TERMINATE", "364263", None, True),
    ("refocus-table", "Paris France", "Paris, France", None, True),
    ("refocus-table", "12.5%", "12.5", None, True),
    ("refocus-table", "13", "12.5", None, False),
    # VTool-R1 fallback: closeness for float()-parsable numbers, exact (case-insensitive) strings, ||| lists
    ("vtool-r1", "FINAL ANSWER: 97. TERMINATE", "100", None, True),  # closeness 0.97
    ("vtool-r1", "90", "100", None, False),  # closeness 0.90
    ("vtool-r1", "-5", "-5.1", None, True),
    ("vtool-r1", "5", "-5", None, False),
    ("vtool-r1", "0", "0.01", None, False),  # either side 0 -> closeness 0
    ("vtool-r1", "1,234", "1234", None, False),  # as published: float("1,234") fails, so strings compare
    ("vtool-r1", "Cherry||Pear||Apple", "apple|||pear|||cherry", None, True),
    ("vtool-r1", "Cherry||Pear", "apple|||pear|||cherry", None, False),
    ("vtool-r1", "Lamb!", "Lamb", None, False),
    # CharXiv, per inst_category
    ("charxiv", "1.541", "1.54", {"inst_category": 4}, True),
    ("charxiv", "FINAL ANSWER: 1.5 TERMINATE", "1.54", {"inst_category": 4}, False),
    ("charxiv", "2", "2.0", {"inst_category": 4}, True),
    ("charxiv", "0.34", "0.3", {"inst_category": "4"}, True),
    ("charxiv", "0.35", "0.3", {"inst_category": "4"}, False),  # half-up: 0.4
    ("charxiv", "1.541", "1.54", {"inst_category": 3}, False),  # 3: exactly equal in value
    ("charxiv", "1.5e3", "1500", {"inst_category": 3}, True),
    ("charxiv", "10^-2", "0.01", {"inst_category": 3}, True),
    ("charxiv", "0.012", "0.01", {"inst_category": 3}, False),
    ("charxiv", "b", "(b)", {"inst_category": 1}, True),
    ("charxiv", "P55762", "P56962", {"inst_category": 1}, False),
    ("charxiv", "beta, Alpha", "alpha, beta", {"inst_category": 1}, True),
    ("charxiv", "increasing then decreasing", "Increasing then decreasing", {"inst_category": 2}, True),
    ("charxiv", "increasing", "increasing then decreasing", {"inst_category": 2}, False),
    ("charxiv", "[50, 100]", "[50, 100]", {"inst_category": 2}, True),
    ("charxiv", "1500", "1.5e3", None, True),
    # VTabFact: true/false/yes/no/entailed/refuted unified
    ("vtabfact", "FINAL ANSWER: Yes. TERMINATE", "true", None, True),
    ("vtabfact", "no", "false", None, True),
    ("vtabfact", "Refuted", "false", None, True),
    ("vtabfact", "entailed", "1", None, True),
    ("vtabfact", "<answer>False</answer>", "no", None, True),
    ("vtabfact", "true", "false", None, False),
    ("vtabfact", "not entailed", "True", None, False),
]


@pytest.mark.parametrize(("name", "prediction", "answer", "context", "verdict"), CASES)
def test_published_forms(name: str, prediction: str, answer: str, context: dict[str, Any] | None, verdict: bool) -> None:
    assert get_scorer(name).score(prediction, [answer], context=context) is verdict


def test_any_accepted_answer_counts() -> None:
    assert get_scorer("exact").score("grey", ["blue", "gray"])
    assert not get_scorer("exact").score("red", ["blue", "gray"])
    assert get_scorer("exact").score("blue", "blue")  # a bare string is one answer, not its characters


def test_null_answers_cannot_be_decided() -> None:
    assert score_or_none("charxiv", "42", None) is None
    assert score_or_none("charxiv", "42", []) is None
    assert score_or_none("charxiv", "42", [None]) is None
    assert score_or_none(get_scorer("charxiv"), "42", ["42"], {"inst_category": 3}) is True
    assert score_or_none("charxiv", "41", ["42"]) is False
    assert get_scorer("charxiv").score("42", []) is False


def test_registry() -> None:
    assert set(NAMES) <= set(SCORERS)
    for name in NAMES:
        scorer = get_scorer(name)
        assert isinstance(scorer, Scorer) and scorer.name == name
        assert scorer.description and "\n" not in scorer.description
    with pytest.raises(ValueError, match=r"unknown scorer 'refocus'; known: .*charxiv.*refocus-chart.*vtabfact"):
        get_scorer("refocus")
    with pytest.raises(ValueError, match="already registered"):
        register_scorer(RuleScorer("exact", "dup", lambda p, a, c: True))
    custom = register_scorer(RuleScorer("test-always", "always right", lambda p, a, c: True))
    try:
        assert get_scorer("test-always") is custom and custom.score("x", ["y"])
    finally:
        del SCORERS["test-always"]


def test_numbers_and_closeness() -> None:
    assert read_number("3%") == [Decimal(3), Decimal("0.03")]
    assert read_number("-$1,234.5 USD") == [Decimal("-1234.5")]
    assert read_number("1.5 x 10^3") == [Decimal(1500)]
    assert read_number("2019-2020") == [] and read_number("1,2345") == [] and read_number("abc") == []
    assert closeness(97, 100) == pytest.approx(0.97) and closeness(0, 1) == 0.0 and closeness(0, 0) == 1.0


FRAGMENTS = [
    "FINAL ANSWER:",
    "TERMINATE",
    "<answer>",
    "</answer>",
    "<tool_call>",
    "</tool_call>",
    "{",
    "}",
    '"tool"',
    '"name"',
    '"answer"',
    '"args":',
    '"arguments":',
    '{"text":',
    "\n",
    ":",
    ",",
    '"',
    "|||",
]
WRAPS: list[Callable[[str], str]] = [
    lambda a: a,
    lambda a: f"ANSWER: see above. FINAL ANSWER: {a} TERMINATE",
    lambda a: f"FINAL ANSWER: 1 TERMINATE\nwait, FINAL ANSWER: {a}\nthat is all",
    lambda a: f"<think>zoom first</think><answer>{a}</answer>",
    lambda a: "I answer " + json.dumps({"tool": "answer", "args": {"text": a}}),
    lambda a: "<tool_call>" + json.dumps({"name": "answer", "arguments": {"text": a}}) + "</tool_call>",
    lambda a: ZOOM + "\n<answer>" + a + "</answer>",
]
ANSWER_TEXT = st.text(alphabet="abcxyzABC0123456789 .,%$-", max_size=12).filter(lambda s: s.strip(" ."))
"""Non-blank: "FINAL ANSWER:" with an empty line after it takes the next line."""
CONTEXTS = st.sampled_from([None, {"inst_category": 1}, {"inst_category": 2}, {"inst_category": 3}, {"inst_category": 4}])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4))).map("".join)))
def test_extract_answer_never_raises(text: str) -> None:
    assert isinstance(extract_answer(text), str)


@settings(max_examples=150, deadline=None)
@given(ANSWER_TEXT, st.sampled_from(range(len(WRAPS))), st.sampled_from(NAMES), CONTEXTS)
def test_wrapped_correct_answer_scores(answer: str, wrap: int, name: str, context: dict[str, Any] | None) -> None:
    assert get_scorer(name).score(WRAPS[wrap](answer), [answer], context=context)


@settings(max_examples=100, deadline=None)
@given(st.text().filter(lambda s: "<" not in s and "final answer" not in s.lower()), st.sampled_from(NAMES))
def test_any_text_in_a_tool_call_scores(answer: str, name: str) -> None:
    assert get_scorer(name).score(WRAPS[5](answer), [answer])


ITEMS = st.lists(st.text(alphabet="abc019 .,%", min_size=1, max_size=5), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(ITEMS, st.randoms(use_true_random=False), st.sampled_from(NAMES), st.sampled_from(["|||", "||"]))
def test_lists_in_any_order(items: list[str], rnd: Any, name: str, sep: str) -> None:
    shuffled = rnd.sample(items, len(items))
    assert get_scorer(name).score(sep.join(shuffled), ["|||".join(items)])


@settings(max_examples=150, deadline=None)
@given(ITEMS, ITEMS, st.randoms(use_true_random=False), st.sampled_from(NAMES), CONTEXTS)
def test_verdict_symmetric_in_list_order(
    pred: list[str], gold: list[str], rnd: Any, name: str, context: dict[str, Any] | None
) -> None:
    scorer = get_scorer(name)
    before = scorer.score("||".join(pred), ["|||".join(gold)], context=context)
    after = scorer.score("||".join(rnd.sample(pred, len(pred))), ["|||".join(rnd.sample(gold, len(gold)))], context=context)
    assert before == after
