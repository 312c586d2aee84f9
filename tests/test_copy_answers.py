"""Answers outside the answer vocabulary: the codec's copy slots and the compact policy's pointer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.agents.compact import CompactConfig, CompactPolicy, observations_to_batch, token_kinds
from iapo_gym.agents.imitation import imitate_oracle
from iapo_gym.text import tokenize
from iapo_gym.vocab import ANSWER_VOCAB
from iapo_gym.wrappers import ActionCodec

TOOLS = ("zoom", "ocr", "answer")
words = st.one_of(
    st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,5}(\.[0-9]{1,3})?", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=12), st.data())
def test_an_answer_that_is_a_token_of_the_tool_output_round_trips_through_a_copy(output: list[str], data: st.DataObject) -> None:
    codec = ActionCodec(TOOLS, copy_slots=16)
    text = " ".join(output)
    tokens = tokenize(text)
    k = data.draw(st.integers(0, min(len(tokens), 16) - 1))
    action = codec.encode(json.dumps({"tool": "answer", "args": {"text": tokens[k]}}), text, prefer_copy=True)
    assert action[6] >= len(codec.answers)  # a copy slot
    assert tokens[action[6] - len(codec.answers)] == tokens[k]  # the first occurrence of that token
    assert codec.decode(action, text).args == {"text": tokens[k]}


def test_the_vocabulary_wins_unless_copies_are_preferred_and_errors_name_what_is_missing() -> None:
    codec = ActionCodec(TOOLS, copy_slots=8)
    assert codec.component_sizes[-1] == len(ANSWER_VOCAB) + 8
    assert codec.encode("<answer>12</answer>", "Sales 12")[6] == ANSWER_VOCAB.index("12")
    assert codec.encode("<answer>12</answer>", "Sales 12", prefer_copy=True)[6] == len(ANSWER_VOCAB) + 1
    assert codec.encode("<answer>34.5</answer>", "Sales 34.5")[6] == len(ANSWER_VOCAB) + 1
    with pytest.raises(ValueError, match="nor a token of the tool output's first 8"):
        codec.encode("<answer>34.5</answer>", "Sales 12")
    with pytest.raises(ValueError, match="pass tool_output"):
        codec.decode(np.array([2, 0, 0, 0, 0, 0, len(ANSWER_VOCAB)]))
    assert codec.decode(np.array([2, 0, 0, 0, 0, 0, len(ANSWER_VOCAB) + 7]), "only two").args == {"text": ""}
    closed = ActionCodec(TOOLS)  # no copy slots: today's closed vocabulary
    with pytest.raises(ValueError, match="is not in the answer vocabulary"):
        closed.encode("<answer>34.5</answer>", "Sales 34.5")
    with pytest.raises(ValueError, match="copy_slots must be"):
        ActionCodec(TOOLS, copy_slots=-1)
    with pytest.raises(ValueError, match="copy_slots must be at most output_length"):
        CompactConfig(copy_slots=49)


def test_token_kinds_tell_numbers_words_and_punctuation_apart() -> None:
    kinds = token_kinds("Sales 34.5 , -7", 6)
    assert kinds[:4, :4].tolist() == [[0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]]
    assert kinds[4:].sum() == 0 and kinds[1, 4] == pytest.approx(1 / 6)


def test_a_compact_agent_answers_a_value_outside_its_training_vocabulary_by_copying_it() -> None:
    """Cloned on procedural charts and tables (integer values 0..99 only), the policy answers "73.25" — a
    token it never saw, with no id of its own — by pointing at it in the tool output."""
    torch.manual_seed(0)
    policy = CompactPolicy(CompactConfig(copy_slots=48))
    imitate_oracle(policy, "VisualToolVQA-v0", 60, {"task": ["HBar", "TableQA"], "difficulty": 0}, epochs=8, data_seed=1)
    assert "73.25" not in ANSWER_VOCAB
    base = {
        "image": np.zeros((128, 128, 3), np.uint8),
        "crop": np.zeros((128, 128, 3), np.uint8),
        "question": "What is the value of the red bar?",
        "view_box": np.array([0.5, 0.5, 0.6, 0.6], np.float32),
        "budget": 5,
    }
    for output in ("73.25", "Germany 73.25"):
        obs = dict(base, tool_output=output)
        with torch.no_grad():
            action = policy.sample(observations_to_batch([obs], policy.config), greedy=True)
        action[0, 0] = policy.codec.tools.index("answer")  # read off the answer component
        assert policy.to_calls(action, [obs]) == ['{"tool": "answer", "args": {"text": "73.25"}}']
