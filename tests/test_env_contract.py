"""The Gymnasium contract of every registered procedural env: checker, determinism, splits, vectorisation,
and bad actions that never raise."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iapo_gym.envs import SPLITS

import iapo_gym

from .conftest import PROCEDURAL_IDS, run_episode


@pytest.mark.parametrize("env_id", PROCEDURAL_IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", PROCEDURAL_IDS)
def test_same_seed_same_observations_and_rollouts(env_id: str, oracle) -> None:
    a, b = gym.make(env_id), gym.make(env_id)
    for seed in (0, 7):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        for key in oa:
            assert np.array_equal(oa[key], ob[key]), key
    info_a, actions_a, ret_a = run_episode(a, oracle, seed=3)
    info_b, actions_b, ret_b = run_episode(b, iapo_gym.agents.OracleAgent(), seed=3)
    assert actions_a == actions_b and ret_a == ret_b and info_a["scene_id"] == info_b["scene_id"]


def test_different_seeds_give_different_items() -> None:
    env = gym.make("VisualToolVQA-v0")
    questions = {env.reset(seed=s)[0]["question"] for s in range(20)}
    assert len(questions) > 15


def test_train_and_test_splits_are_disjoint() -> None:
    (tr_lo, tr_hi), (te_lo, te_hi) = SPLITS["train"], SPLITS["test"]
    assert tr_hi <= te_lo or te_hi <= tr_lo
    train, test = gym.make("VisualToolVQA-v0"), gym.make("VisualToolVQA-v0", split="test")
    for s in range(50):
        assert tr_lo <= train.reset(seed=s)[1]["scene_id"] < tr_hi
        assert te_lo <= test.reset(seed=s)[1]["scene_id"] < te_hi
    with pytest.raises(ValueError, match="scene_id"):
        test.reset(options={"scene_id": tr_lo})


def test_scene_id_option_reproduces_an_item() -> None:
    env = gym.make("VisualToolVQA-v0", split="test")
    obs, info = env.reset(seed=11)
    again, _ = gym.make("VisualToolVQA-v0", split="test").reset(options={"scene_id": info["scene_id"]})
    assert again["question"] == obs["question"] and np.array_equal(again["image"], obs["image"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"difficulty": 5},
        {"split": "val"},
        {"view_size": 4},
        {"budget": 0},
        {"ocr": "tesseract"},
        {"tools": ("zoom", "zom")},
        {"task": "Pie"},
    ],
)
def test_bad_constructor_arguments_are_named(kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name if name != "tools" else "unknown tool 'zom'"):
        gym.make("VisualToolVQA-v0", **kwargs)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_deliver_current_text(mode: str) -> None:
    single = gym.make("VisualToolVQA-v0")
    expected = [single.reset(seed=100 + i)[0]["question"] for i in range(4)]
    vec = gym.make_vec("VisualToolVQA-v0", num_envs=4, vectorization_mode=mode)
    try:
        obs, _ = vec.reset(seed=[100 + i for i in range(4)])
        assert list(obs["question"]) == expected
        assert obs["image"].shape == (4, 128, 128, 3)
        call = json.dumps({"tool": "ocr", "args": {"box": [0.0, 0.0, 1.0, 1.0]}})
        obs, reward, term, trunc, info = vec.step([call] * 4)
        assert list(obs["question"]) == expected
        assert all(t.startswith("(no legible text)") or t for t in obs["tool_output"])
        obs, *_ = vec.step(["<answer>0</answer>"] * 4)  # ends every episode: autoreset on the next step
        obs, *_ = vec.step(["<answer>0</answer>"] * 4)
        assert list(obs["question"]) == expected or obs["question"] != ("",) * 4
        # the text after autoreset is the new episode's, never a stale or empty string
        assert all(q.endswith("?") or q.endswith(".") for q in obs["question"])
    finally:
        vec.close()


def test_malformed_calls_are_reported_not_raised() -> None:
    env = gym.make("VisualToolVQA-HBar-v0", format_penalty=0.25)
    obs, _ = env.reset(seed=0)
    budget = obs["budget"]
    obs, reward, terminated, truncated, info = env.step('{"tool": "zom", "args": {}}')
    assert info["error"] == "unknown tool 'zom'; known: zoom, ocr, focus, answer"
    assert obs["tool_output"] == "error: " + info["error"]
    assert obs["budget"] == budget - 1 and reward == -0.25 and info["reward_terms"]["format"] == -0.25
    assert not terminated and not truncated


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ('{"tool": "zoom", "args": {"box": [0.5, 0.5, 0.2, 0.9]}}', "empty"),
        ('{"tool": "zoom", "args": {"bx": [0, 0, 1, 1]}}', "unexpected argument 'bx'; expected: box"),
        ('{"tool": "ocr", "args": {}}', "missing argument 'box'"),
        ('{"tool": "focus", "args": {"axis": "bars", "labels": ["Nowhere"]}}', "unknown bar label 'Nowhere'; known:"),
        ('{"tool": "focus", "args": {"axis": "rows", "labels": ["Ada"]}}', "this image has no rows"),
        ('{"tool": "focus", "args": {"axis": "bars", "labels": [], "mode": "x"}}', "mode must be one of"),
        ('{"tool": "answer", "args": {"text": [1]}}', "answer text must be"),
    ],
)
def test_bad_arguments_name_what_is_wrong(action: str, message: str) -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    env.reset(seed=0)
    *_, info = env.step(action)
    assert message in info["error"]


def test_budget_truncates_and_answer_terminates() -> None:
    env = gym.make("VisualToolVQA-HBar-v0", budget=2)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step('{"tool": "zoom", "args": {"box": [0, 0, 0.5, 0.5]}}')
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step('{"tool": "zoom", "args": {"box": [0, 0, 0.5, 0.5]}}')
    assert truncated and not terminated
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("<answer>nothing</answer>")
    assert terminated and not truncated and info["reward_terms"] == {"outcome": 0.0, "format": 0.0}


action_texts = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda name, args: json.dumps({"tool": name, "args": args}),
        st.sampled_from(["zoom", "ocr", "focus", "answer", "zom", "", "ZOOM"]),
        st.dictionaries(
            st.sampled_from(["box", "axis", "labels", "mode", "text", "x"]),
            st.one_of(
                st.lists(st.floats(), max_size=5),
                st.text(max_size=5),
                st.integers(),
                st.lists(st.text(max_size=4), max_size=3),
                st.none(),
            ),
            max_size=3,
        ),
    ),
    st.builds(lambda s: f"<tool_call>{s}</tool_call>", st.text(max_size=40)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action_texts, min_size=1, max_size=4))
def test_fuzzed_actions_never_raise(actions: list[str]) -> None:
    env = gym.make("VisualToolVQA-v0", task=["HBar", "VBar"])
    obs, _ = env.reset(seed=1)
    for action in actions:
        before = obs["budget"]
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert obs["budget"] == max(before - 1, 0)
        if info["error"] is not None:
            assert obs["tool_output"].startswith("error: ") and reward == -0.1
        if terminated or truncated:
            obs, _ = env.reset()
