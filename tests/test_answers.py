"""Answer normalisation and matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iapo_gym import is_correct, normalize_answer


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("42", " 42 "),
        ("1,000", "1000"),
        ("12.0", "12"),
        ("50%", "50"),
        ("The Red", "red"),
        ("Yes", "true"),
        ("no", "False"),
        ("grey", "gray"),
        ("Tokyo.", "tokyo"),
        ("-3", "-3.00"),
    ],
)
def test_equivalent_forms_match(a: str, b: str) -> None:
    assert normalize_answer(a) == normalize_answer(b)
    assert is_correct(a, [b])


@pytest.mark.parametrize(("pred", "gold"), [("41", "42"), ("red", "green"), ("true", "false"), ("", "0")])
def test_different_answers_do_not_match(pred: str, gold: str) -> None:
    assert not is_correct(pred, [gold])


def test_relaxed_numeric_tolerance() -> None:
    assert not is_correct("104", ["100"])
    assert is_correct("104", ["100"], relaxed_tolerance=0.05)
    assert not is_correct("106", ["100"], relaxed_tolerance=0.05)
    assert not is_correct("abc", ["100"], relaxed_tolerance=0.05)


def test_any_of_several_answers() -> None:
    assert is_correct("Paris", ["London", "paris"])


@given(st.text(max_size=30))
def test_normalisation_is_idempotent_and_self_matching(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once
    assert is_correct(text, [text])
