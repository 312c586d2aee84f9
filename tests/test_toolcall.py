"""Tool-call parsing: every accepted form, precise errors, and no other exception for any input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iapo_gym import ToolCall, ToolCallError, parse_box, parse_tool_call


def test_plain_json_form() -> None:
    call = parse_tool_call('{"tool": "zoom", "args": {"box": [0.1, 0.2, 0.3, 0.4]}}')
    assert call == ToolCall("zoom", {"box": [0.1, 0.2, 0.3, 0.4]})


def test_chat_tool_call_form_with_surrounding_text() -> None:
    text = '<think>look closer</think> <tool_call>{"name": "ocr", "arguments": {"box": [0, 0, 1, 1]}}</tool_call>'
    assert parse_tool_call(text) == ToolCall("ocr", {"box": [0, 0, 1, 1]})


def test_answer_form_and_first_call_wins() -> None:
    assert parse_tool_call("<answer> 42 </answer>") == ToolCall("answer", {"text": "42"})
    both = '<answer>7</answer><tool_call>{"name": "zoom", "arguments": {}}</tool_call>'
    assert parse_tool_call(both).name == "answer"


@pytest.mark.parametrize("call", [ToolCall("zoom", {"box": [0.0, 0.5, 0.5, 1.0]}), ToolCall("answer", {"text": "yes"})])
def test_round_trip_json_and_chat(call: ToolCall) -> None:
    assert parse_tool_call(call.to_json()) == call
    assert parse_tool_call(call.to_chat()) == call


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty action"),
        ("zoom please", "expected a tool call"),
        ('{"tool": "zoom", "args": {"box": [0.1, 0.2]', "malformed JSON"),
        ('<tool_call>{"name": "zoom"', "unclosed <tool_call>"),
        ("<answer>12", "unclosed <answer>"),
        ('{"args": {}}', 'needs a string "tool"'),
        ('{"tool": "zoom", "args": [1, 2]}', "must be an object"),
        ("[1, 2, 3]", "expected a tool call"),
    ],
)
def test_errors_are_precise(text: str, message: str) -> None:
    with pytest.raises(ToolCallError, match=message):
        parse_tool_call(text)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([0.1, 0.2, 0.3], "list of 4 numbers"),
        ([0.1, 0.2, 0.3, 1.5], "outside \\[0, 1\\]"),
        ([0.5, 0.2, 0.3, 0.4], "empty"),
        (["a", 0, 1, 1], "finite numbers"),
        ([float("nan"), 0, 1, 1], "finite numbers"),
        ([True, 0, 1, 1], "finite numbers"),
        ("0 0 1 1", "list of 4 numbers"),
    ],
)
def test_bad_boxes(box: object, message: str) -> None:
    with pytest.raises(ToolCallError, match=message):
        parse_box(box)


@given(st.text())
def test_any_string_parses_or_raises_toolcallerror(text: str) -> None:
    try:
        call = parse_tool_call(text)
    except ToolCallError as exc:
        assert str(exc)
    else:
        assert isinstance(call.name, str) and isinstance(call.args, dict)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)


@given(json_values)
def test_any_json_parses_or_raises_toolcallerror(value: object) -> None:
    for text in (json.dumps(value), f"<tool_call>{json.dumps(value)}</tool_call>"):
        try:
            parse_tool_call(text)
        except ToolCallError:
            pass


@given(st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none()), max_size=6))
def test_parse_box_accepts_only_valid_boxes(value: list[object]) -> None:
    try:
        box = parse_box(value)
    except ToolCallError:
        return
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
