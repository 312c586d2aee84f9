"""The table families: scenes are well formed, the oracle needs its tools, focus works on table layouts."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import iapo_gym  # noqa: F401  (registers the env ids)
from iapo_gym.agents.oracle import OracleAgent
from iapo_gym.answers import normalize_answer
from iapo_gym.envs.families import FAMILY_ENVS
from iapo_gym.envs.tables import TableFactEnv, TableQAEnv, TableSynthEnv
from iapo_gym.scene import Region, Scene, solve
from iapo_gym.tools import SceneOCR
from iapo_gym.vocab import ANSWER_VOCAB

FAMILIES = (TableQAEnv, TableSynthEnv, TableFactEnv)
SEEDS = range(30)  # the full 200-seed check is a script; tests keep to a fast sample


def _episode(env: gym.Env, agent: OracleAgent, seed: int) -> bool:
    obs, info = env.reset(seed=seed)
    agent.reset()
    while True:
        obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
        if terminated or truncated:
            return bool(info["correct"])


def _cell_texts(scene: Scene, evidence: Region) -> list[str]:
    """Words printed where the evidence's row and column (from the layout) cross."""
    row_label, col_label = evidence.label.split(" ")
    row = next(r for r in scene.layout if r.kind == "row" and r.label == row_label)
    col = next(r for r in scene.layout if r.kind == "column" and r.label == col_label)
    x0, y0 = max(row.box[0], col.box[0]), max(row.box[1], col.box[1])
    x1, y1 = min(row.box[2], col.box[2]), min(row.box[3], col.box[3])
    inside = []
    for t in scene.texts:
        cx, cy = (t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            inside.append(t.text)
    return inside


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_oracle_needs_tools(cls: type, difficulty: int) -> None:
    env = cls(difficulty=difficulty)
    with_tools = np.mean([_episode(env, OracleAgent(), s) for s in SEEDS])
    glance = np.mean([_episode(env, OracleAgent(use_tools=False), s) for s in SEEDS])
    assert with_tools >= 0.95
    assert glance <= 0.2


@pytest.mark.parametrize("cls", FAMILIES)
def test_scenes_are_consistent(cls: type) -> None:
    ocr = SceneOCR()
    for difficulty in (0, 1, 2):
        for seed in range(15):
            scene = cls.generate(np.random.default_rng(seed), difficulty)
            assert scene.family == cls.family
            rows = [r for r in scene.layout if r.kind == "row"]
            cols = [r for r in scene.layout if r.kind == "column"]
            assert rows and cols and len(rows) + len(cols) == len(scene.layout)
            readings = []
            for ev in scene.evidence:
                # the evidence value is the number printed in that row and column of the table
                assert _cell_texts(scene, ev) == [ev.value]
                # and its box catches that number only, not a neighbouring cell's
                assert [t.text for t in ocr.visible(scene.texts, ev.box, 1.0)] == [ev.value]
                readings.append(ev.value)
            assert solve(scene.program, readings, [e.label for e in scene.evidence]) is not None
            assert any(normalize_answer(a) in ANSWER_VOCAB for a in scene.answers)
            for tok in scene.key_tokens:
                assert tok in scene.question
            for ans in scene.answers:
                if ans.lstrip("-").isdigit():
                    assert -100 <= int(ans) <= 200


def test_derived_answers_match_program() -> None:
    for cls in FAMILIES:
        for seed in range(20):
            scene = cls.generate(np.random.default_rng(seed), 1)
            readings = [e.value for e in scene.evidence]
            answer = solve(scene.program, readings, [e.label for e in scene.evidence])
            assert answer in scene.answers


def test_tablefact_is_balanced() -> None:
    truths = [TableFactEnv.generate(np.random.default_rng(s), 1).answers[0] for s in range(200)]
    assert set(truths) == {"true", "false"}
    assert 0.35 <= truths.count("true") / len(truths) <= 0.65


def test_generation_is_deterministic() -> None:
    for cls in FAMILIES:
        a, b = cls.generate(np.random.default_rng(7), 2), cls.generate(np.random.default_rng(7), 2)
        assert a.question == b.question and np.array_equal(a.image, b.image)


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_focus_mask_on_table(cls: type, axis: str) -> None:
    env = cls(difficulty=1)
    obs, info = env.reset(seed=3)
    scene: Scene = info["scene"]
    kind = "row" if axis == "rows" else "column"
    regions = [r for r in scene.layout if r.kind == kind]
    keep = regions[1]
    call = {"tool": "focus", "args": {"axis": axis, "labels": [keep.label], "mode": "mask"}}
    obs2, _, _, _, info2 = env.step(json.dumps(call))
    assert info2["error"] is None
    assert not np.array_equal(obs2["crop"], obs["crop"])
    assert not np.array_equal(obs2["crop"], obs["image"])  # the masked view differs from the glance
    image = env.unwrapped.ctx.image
    x0, y0, x1, y1 = scene.to_pixels(keep.box)
    assert np.array_equal(image[y0:y1, x0:x1], scene.image[y0:y1, x0:x1])  # the kept one is untouched
    for other in regions:
        if other is not keep:
            ox0, oy0, ox1, oy1 = scene.to_pixels(other.box)
            assert (image[oy0:oy1, ox0:ox1] == 255).all()


def test_registered_and_checked() -> None:
    for cls in FAMILIES:
        assert FAMILY_ENVS[cls.family] is cls
        env = gym.make(f"VisualToolVQA-{cls.family}-v0")
        assert isinstance(env.unwrapped, cls)
        env.close()
    check_env(TableQAEnv(), skip_render_check=True)
