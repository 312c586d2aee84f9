"""Teachers and the TeacherAttributionWrapper."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from iapo_gym.agents import OracleAgent

from iapo_gym import FAMILIES
from iapo_gym.attribution import Attribution, cells_of_box, layout_for_observation
from iapo_gym.teachers import OracleTeacher, make_teacher
from iapo_gym.text import tokenize
from iapo_gym.wrappers import TeacherAttributionWrapper

from .conftest import PROCEDURAL_IDS


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("grid", [4, 16])
def test_oracle_teacher_puts_image_mass_on_evidence_cells(family: str, grid: int) -> None:
    env = gym.make(f"VisualToolVQA-{family}-v0")
    teacher = OracleTeacher()
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        att = teacher.attribute(obs, info, layout_for_observation(obs, grid))
        evidence = sum(cells_of_box(r.box, grid) for r in info["scene"].evidence) > 0
        image = att.block("image")
        assert image[evidence].sum() >= 0.9 * image.sum() > 0
        assert abs(sum(att.blocks().values()) - 1) < 1e-9


def test_oracle_teacher_moves_to_tool_outputs_once_evidence_is_read() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    obs, info = env.reset(seed=0)
    teacher = OracleTeacher()
    before = teacher.attribute(obs, info, layout_for_observation(obs)).blocks()
    region = info["scene"].evidence[0]
    obs, *_, info = env.step(json.dumps({"tool": "ocr", "args": {"box": list(region.box)}}))
    after = teacher.attribute(obs, info, layout_for_observation(obs)).blocks()
    assert before["tool_outputs"] == 0 and after["tool_outputs"] > 0.4


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_the_locating_oracle_looks_at_what_finds_the_evidence_then_reads_it(difficulty: int) -> None:
    teacher = make_teacher("oracle:locators")
    assert isinstance(teacher, OracleTeacher) and teacher.look_at == "locators"
    for family in ("HBar", "VBar"):
        env = gym.make(f"VisualToolVQA-{family}-v0", difficulty=difficulty)
        for seed in range(6):
            obs, info = env.reset(seed=seed)
            scene = info["scene"]
            layout = layout_for_observation(obs, 16)
            image = teacher.attribute(obs, info, layout).block("image")
            found = sum(cells_of_box(b, 16) for b in scene.meta["locators"]) > 0
            assert image[found].sum() == pytest.approx(image.sum()) and image.sum() > 0
            if difficulty == 0 and scene.meta["cue"] == "colour":
                assert scene.meta["locators"] == (scene.meta["target_box"],)
            elif difficulty == 0:
                assert scene.meta["locators"] == scene.meta["bar_boxes"]
            else:  # the category labels the question names
                assert len(scene.meta["locators"]) == len(scene.evidence)
                for box, region in zip(scene.meta["locators"], scene.evidence):
                    assert any(t.box == box and t.text in region.label for t in scene.texts)
            # once the evidence is read, both oracles attribute alike
            region = scene.evidence[0]
            obs, *_, info = env.step(json.dumps({"tool": "ocr", "args": {"box": list(region.box)}}))
            layout = layout_for_observation(obs, 16)
            assert teacher.attribute(obs, info, layout) == OracleTeacher().attribute(obs, info, layout)
    # a scene without locators keeps the evidence
    obs, info = gym.make("VisualToolVQA-TableQA-v0").reset(seed=0)
    layout = layout_for_observation(obs, 8)
    assert teacher.attribute(obs, info, layout) == OracleTeacher().attribute(obs, info, layout)
    with pytest.raises(ValueError, match="look_at must be one of evidence, locators"):
        make_teacher("oracle:labels")


@pytest.mark.parametrize("env_id", PROCEDURAL_IDS)
def test_wrapper_passes_check_env(env_id: str) -> None:
    env = TeacherAttributionWrapper(gym.make(env_id))
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        check_env(env)


def rollout(env: gym.Env, seed: int) -> list[tuple[float, dict[str, float]]]:
    agent, out = OracleAgent(), []
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        out.append((reward, info["reward_terms"]))
        done = terminated or truncated
    return out


@pytest.mark.parametrize("shaping", ["novel", "potential", "raw"])
def test_wrapper_term_is_deterministic_bounded_and_zero_for_answers(shaping: str) -> None:
    make = lambda: TeacherAttributionWrapper(gym.make("VisualToolVQA-v0"), coef=0.2, shaping=shaping)  # noqa: E731
    a, b = make(), make()
    for seed in range(8):
        ra, rb = rollout(a, seed), rollout(b, seed)
        assert ra == rb
        terms = [t["teacher"] for _, t in ra]
        assert all(-0.2 - 1e-9 <= t <= 0.2 + 1e-9 for t in terms)
        if shaping == "potential":
            assert abs(sum(terms)) < 1e-9  # potential-based: telescopes to phi(end) - phi(start) = 0
        else:
            assert terms[-1] == 0.0  # the oracle's last call is its answer
            assert max(terms[:-1]) > 0  # reading the evidence is rewarded
        if shaping == "novel":
            assert sum(terms) <= 0.2 + 1e-9  # an episode earns at most coef


def test_wrapper_with_coef_zero_gives_attribution_without_computing_the_shaped_term(monkeypatch: pytest.MonkeyPatch) -> None:
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-v0"), coef=0.0)

    def never(*args: object) -> float:
        raise AssertionError("the shaped term was computed with coef=0")

    monkeypatch.setattr(env, "_shaped", never)
    out = rollout(env, 0)
    assert [t["teacher"] for _, t in out] == [0.0] * len(out)
    assert [r for r, _ in out] == [sum(v for k, v in t.items() if k != "teacher") for _, t in out]


def _tiny_zoom_on_the_evidence(shaping: str) -> tuple[TeacherAttributionWrapper, str]:
    """A reset wrapped HBar env and a 0.002-wide zoom at the centre of its evidence (the issue's farming move)."""
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0", budget=12), shaping=shaping)
    _, info = env.reset(seed=3)
    x0, y0, x1, y1 = info["scene"].evidence[0].box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return env, json.dumps({"tool": "zoom", "args": {"box": [cx - 0.001, cy - 0.001, cx + 0.001, cy + 0.001]}})


@pytest.mark.parametrize("shaping", ["novel", "potential"])
def test_repeating_a_call_earns_nothing_the_second_time(shaping: str) -> None:
    env, call = _tiny_zoom_on_the_evidence(shaping)
    terms = [env.step(call)[-1]["reward_terms"]["teacher"] for _ in range(8)]
    assert terms[0] > 0
    assert terms[1:] == [0.0] * 7


def test_the_default_wrapper_cannot_be_farmed_but_raw_shaping_can() -> None:
    def farm(shaping: str) -> float:
        env, call = _tiny_zoom_on_the_evidence(shaping)
        return sum(env.step(call)[-1]["reward_terms"]["teacher"] for _ in range(8))

    assert farm("raw") > 5 * farm(TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0")).shaping)


def test_wrapper_attribution_after_a_step_is_teacher_forced_on_that_action() -> None:
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0"))
    obs, info = env.reset(seed=0)
    *_, after = env.step("<answer>1</answer>")  # an answer with nothing read: the teacher diverges
    expected = OracleTeacher().attribute(obs, info, env.layout(obs), "<answer>1</answer>")
    assert after["teacher_attribution"] == expected
    assert after["teacher_attribution"].layout.query_tokens == tuple(tokenize(obs["question"]))
    assert after["teacher_attribution"].blocks()["tool_outputs"] > 0


def test_wrapper_rewards_looking_at_evidence_over_elsewhere() -> None:
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0"))
    _, info = env.reset(seed=3)
    ev = info["scene"].evidence[0].box
    *_, on = env.step(json.dumps({"tool": "zoom", "args": {"box": list(ev)}}))
    env.reset(seed=3)
    far = [0.0, 0.0, 0.05, 0.05] if ev[0] > 0.5 else [0.95, 0.95, 1.0, 1.0]
    *_, off = env.step(json.dumps({"tool": "zoom", "args": {"box": far}}))
    env.reset(seed=3)
    *_, whole = env.step(json.dumps({"tool": "zoom", "args": {"box": [0, 0, 1, 1]}}))
    assert on["reward_terms"]["teacher"] > 0.05 > abs(whole["reward_terms"]["teacher"])
    assert off["reward_terms"]["teacher"] <= 0


def test_wrapper_round_trips_through_env_spec() -> None:
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0", difficulty=2), teacher="oracle", coef=0.3)
    again = gym.make(env.spec)
    assert isinstance(again, TeacherAttributionWrapper) and again.coef == 0.3
    assert again.unwrapped.difficulty == 2
    o1, i1 = env.reset(seed=5)
    o2, i2 = again.reset(seed=5)
    assert o1["question"] == o2["question"] and i1["teacher_attribution"] == i2["teacher_attribution"]


def test_bad_teacher_specs_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown teacher 'wizard'"):
        make_teacher("wizard")
    with pytest.raises(ValueError, match="needs a checkpoint"):
        make_teacher("model:")
    with pytest.raises(ValueError, match="not a checkpoint"):
        make_teacher("model:/nonexistent/folder")


def test_model_teacher_trains_saves_and_attributes(tmp_path) -> None:
    from iapo_gym.agents.model_teacher import train_model_teacher

    train_model_teacher("VisualToolVQA-HBar-v0", tmp_path / "teacher", episodes=6, epochs=1, width=8, view_size=64)
    teacher = make_teacher(f"model:{tmp_path / 'teacher'}")
    env = gym.make("VisualToolVQA-HBar-v0")
    obs, info = env.reset(seed=0)
    att = teacher.attribute(obs, info, layout_for_observation(obs, 4), action="<answer>12</answer>")
    assert isinstance(att, Attribution) and np.isclose(att.values.sum(), 1.0)
    assert set(att.blocks()) == {"image", "query", "tool_outputs"}


def test_the_model_teacher_sees_its_own_native_view_not_an_upsampled_glance() -> None:
    from iapo_gym.agents.model_teacher import native_view

    small, large = (gym.make("VisualToolVQA-HBar-v0", view_size=v) for v in (64, 128))
    obs_s, info = small.reset(seed=4)
    obs_l, _ = large.reset(seed=4)
    box = list(info["scene"].evidence[0].box)
    call = json.dumps({"tool": "zoom", "args": {"box": box}})
    obs_s, *_, info = small.step(call)
    obs_l, *_ = large.step(call)
    seen = native_view(obs_s, info["scene"], 128)
    assert np.array_equal(seen["image"], obs_l["image"]) and np.array_equal(seen["crop"], obs_l["crop"])
    assert seen["question"] == obs_s["question"]
