"""Structured-action and token-observation wrappers: spaces, round trips, oracle moves, SB3 training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import iapo_gym  # noqa: F401  (registers the env ids)
from iapo_gym.text import encode as encode_text
from iapo_gym.toolcall import ToolCall, parse_tool_call
from iapo_gym.vocab import ANSWER_VOCAB
from iapo_gym.wrappers import (
    COMPONENTS,
    StructuredActionWrapper,
    TokenObservationWrapper,
    make_sb3_env,
)


def _structured(family: str = "HBar", **kwargs: object) -> StructuredActionWrapper:
    return StructuredActionWrapper(gym.make(f"VisualToolVQA-{family}-v0", **kwargs))


def test_action_space_layout() -> None:
    env = _structured()
    assert env.components == COMPONENTS
    assert env.component_sizes == (4, 256, 5, 4, len(env.focus_labels), 2, len(ANSWER_VOCAB))
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert tuple(env.action_space.nvec) == env.component_sizes
    assert env.describe()["answer"] == len(ANSWER_VOCAB)


def test_render_every_tool() -> None:
    env = _structured()
    zoom = parse_tool_call(env.action(np.array([0, 0, 0, 0, 0, 0, 0])))
    assert zoom == ToolCall("zoom", {"box": [0.0, 0.0, 0.0625, 0.0625]})
    # a large box at the bottom-right cell is shifted back inside the image, keeping its size
    ocr = parse_tool_call(env.action(np.array([1, 255, 3, 0, 0, 0, 0])))
    assert ocr == ToolCall("ocr", {"box": [0.5, 0.5, 1.0, 1.0]})
    focus = parse_tool_call(env.action(np.array([2, 7, 1, 2, 3, 1, 9])))
    assert focus == ToolCall("focus", {"axis": "bars", "labels": [env.focus_labels[3]], "mode": "mask"})
    answer = parse_tool_call(env.action(np.array([3, 0, 0, 0, 0, 0, 5])))
    assert answer == ToolCall("answer", {"text": ANSWER_VOCAB[5]})


def test_random_actions_are_valid_calls() -> None:
    env = _structured()
    env.action_space.seed(0)
    for _ in range(200):
        call = parse_tool_call(env.action(env.action_space.sample()))
        if "box" in call.args:
            x0, y0, x1, y1 = call.args["box"]
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0


def test_encode_round_trips() -> None:
    env = _structured()
    rng = np.random.default_rng(0)
    for _ in range(100):
        a = rng.integers(0, env.action_space.nvec)
        call = parse_tool_call(env.action(a))
        b = env.encode(call)
        # the rendered call is reproduced exactly (ignored components may differ)
        assert parse_tool_call(env.action(b)) == call
    assert env.encode("<answer>Yes</answer>")[6] == ANSWER_VOCAB.index("true")
    assert env.encode('<tool_call>{"name": "focus", "arguments": {"axis": "rows", "labels": ["ada"]}}</tool_call>')[4] == (
        env.focus_labels.index("Ada")
    )


@pytest.mark.parametrize("family", ["HBar", "VBar"])
def test_oracle_moves_are_expressible(family: str) -> None:
    """Each evidence box, encoded and rendered back, still OCRs to the evidence value; the answer scores 1."""
    env = _structured(family, difficulty=1)
    readable = total = 0
    for scene_id in range(50):
        _, info = env.reset(options={"scene_id": scene_id})
        scene = info["scene"]
        for region in scene.evidence:
            a = env.encode(ToolCall("ocr", {"box": list(region.box)}))
            rendered = parse_tool_call(env.action(a)).args["box"]
            # the rendered box covers the evidence box
            assert rendered[0] <= region.box[0] + 1e-9 and rendered[2] >= region.box[2] - 1e-9
            assert rendered[1] <= region.box[1] + 1e-9 and rendered[3] >= region.box[3] - 1e-9
            obs, _, _, _, _ = env.step(a)
            total += 1
            readable += region.value in obs["tool_output"].split()
        a = env.encode(ToolCall("answer", {"text": scene.answers[0]}))
        _, reward, terminated, _, info = env.step(a)
        assert terminated and info["correct"] and reward == 1.0, (scene.question, scene.answers, env.action(a))
    assert readable == total, f"{family}: {readable}/{total} evidence values legible after encoding"


def test_token_observations() -> None:
    env = TokenObservationWrapper(_structured(), question_length=32, output_length=48, vocab_size=4096)
    space = env.observation_space
    assert space["question"] == gym.spaces.Box(0, 4095, (32,), np.int64)
    assert space["tool_output"] == gym.spaces.Box(0, 4095, (48,), np.int64)
    assert isinstance(space["budget"], gym.spaces.Discrete)
    assert space["image"].dtype == np.uint8 and space["image"].shape[-1] == 3
    obs, info = env.reset(seed=3)
    assert obs in space
    np.testing.assert_array_equal(obs["question"], encode_text(info["scene"].question, 32, 4096))
    assert obs["question"].any() and not obs["tool_output"].any()  # no tool output before any call


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # wrapped on purpose
def test_check_env_on_stacked_wrappers() -> None:
    env = make_sb3_env("VisualToolVQA-HBar-v0", view_size=64)
    check_env(env, skip_render_check=True)


def test_bad_arguments_raise_clear_errors() -> None:
    env = _structured()
    with pytest.raises(ValueError, match="answer vocabulary"):
        env.encode(ToolCall("answer", {"text": "definitely not an answer"}))
    with pytest.raises(ValueError, match="grid"):
        StructuredActionWrapper(env.env, grid=-1)
    with pytest.raises(ValueError, match="sizes"):
        StructuredActionWrapper(env.env, sizes=(0.5, 1.5))
    with pytest.raises(ValueError, match="unknown tool"):
        env.encode(ToolCall("rotate", {}))
    with pytest.raises(ValueError, match="'size'"):
        env.action(np.array([0, 0, 5, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="7 integers"):
        env.action(np.array([0, 0]))
    with pytest.raises(ValueError, match="vocab_size"):
        TokenObservationWrapper(env, vocab_size=1)


def test_ppo_learns_on_wrapped_family() -> None:
    torch = pytest.importorskip("torch")
    sb3 = pytest.importorskip("stable_baselines3")
    torch.set_num_threads(1)  # the test machine's cores are shared
    env = make_sb3_env("VisualToolVQA-VBar-v0", view_size=64)
    model = sb3.PPO("MultiInputPolicy", env, n_steps=512, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(2048)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=np.int64))
    parse_tool_call(env.get_wrapper_attr("action")(action))  # renders to a well-formed tool call
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs in env.observation_space
