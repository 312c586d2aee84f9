"""DatasetVQAEnv: JSONL loading and validation, lazy image decoding, the easy-VQA adapter, export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from iapo_gym.envs.dataset import (
    DatasetRecord,
    DatasetVQAEnv,
    easy_vqa_records,
    load_image,
    load_jsonl,
    write_jsonl,
)

import iapo_gym  # noqa: F401  (registers DatasetVQA-v0)

ANSWER = '{"tool": "answer", "args": {"text": "%s"}}'


def _png(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return str(path)


def _write(path: Path, lines: list[object]) -> Path:
    """Lines given as dicts are JSON-encoded; strings are written verbatim (for bad JSON and blank lines)."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    red = np.zeros((40, 60, 3), np.uint8)
    red[:, :, 2] = 255  # BGR on disk: pure red
    _png(tmp_path / "imgs" / "red.png", red)
    _png(tmp_path / "imgs" / "gray.png", np.full((30, 30), 90, np.uint8))
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent: composited over white
    _png(tmp_path / "imgs" / "clear.png", rgba)
    return tmp_path


def _good(image: str = "imgs/red.png", **extra: object) -> dict[str, object]:
    return {"image": image, "question": "What colour is the image?", "answers": ["red", "crimson"], **extra}


def test_valid_file_loads_and_episode_runs(data_dir: Path) -> None:
    path = _write(
        data_dir / "records.jsonl",
        [
            _good(evidence=[[0.1, 0.2, 0.5, 0.6]], family="Colours", id="q1"),
            "",  # blank lines are skipped
            {"image": "imgs/gray.png", "question": "Is it gray?", "answers": ["yes"]},
            {"image": str(data_dir / "imgs" / "clear.png"), "question": "Empty?", "answers": ["yes"]},
        ],
    )
    env = DatasetVQAEnv(path, ocr="scene", view_size=32)
    assert env.scene_id_range() == (0, 3)
    assert env.records[0].extra == {"id": "q1"} and env.records[0].where.endswith("line 1")
    assert env.records[1].where.endswith("line 3")

    obs, info = env.reset(seed=0, options={"scene_id": 0})
    scene = info["scene"]
    assert info["family"] == "Colours" and scene.meta["index"] == 0
    assert scene.image.shape == (40, 60, 3) and tuple(scene.image[0, 0]) == (255, 0, 0)  # BGR -> RGB
    assert [r.kind for r in scene.evidence] == ["evidence"] and scene.evidence[0].box == (0.1, 0.2, 0.5, 0.6)
    assert scene.program.op == "read" and scene.texts == () and scene.key_tokens == ()
    assert obs["question"] == "What colour is the image?" and obs["image"].shape == (32, 32, 3)

    obs, reward, terminated, truncated, info = env.step('{"tool": "zoom", "args": {"box": [0.1, 0.2, 0.5, 0.6]}}')
    assert info["error"] is None and obs["crop"].any() and not terminated
    obs, reward, terminated, truncated, info = env.step(ANSWER % "Crimson")
    assert reward == 1.0 and terminated and info["correct"]

    _, info = env.reset(options={"scene_id": 1})
    assert info["family"] == "Dataset" and tuple(info["scene"].image[0, 0]) == (90, 90, 90)  # gray -> RGB
    _, info = env.reset(options={"scene_id": 2})
    assert tuple(info["scene"].image[0, 0]) == (255, 255, 255)  # transparent -> white
    _, reward, *_ = env.step(ANSWER % "no")
    assert reward == 0.0

    with pytest.raises(ValueError, match=r"scene_id.*\[0, 3\)"):
        env.reset(options={"scene_id": 3})


def test_gym_make_and_check_env(data_dir: Path) -> None:
    path = _write(data_dir / "small.jsonl", [_good(), {"image": "imgs/gray.png", "question": "Gray?", "answers": ["yes"]}])
    env = gym.make("DatasetVQA-v0", path=str(path), ocr="scene")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.reset(seed=1)[1]["scene_id"] in (0, 1)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"image": "imgs/red.png", "question": "Q?"}, "missing field 'answers'"),
        ('{"image": "imgs/red.png", "question": "Q?", answers: ["x"]}', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_good(answers="red"), "non-empty list of non-empty strings"),
        (_good(question=""), "'question' must be a non-empty string"),
        (_good(evidence=[[0.5, 0.1, 0.4, 0.9]]), "x0 < x1"),
        (_good(evidence=[[0.1, 0.1, 1.2, 0.9]]), "normalised to [0, 1]"),
        (_good(evidence=[[0.1, 0.1, 0.9]]), "4 numbers"),
        (_good(family=3), "'family' must be a non-empty string"),
        (_good(image="imgs/missing.png"), "image file not found"),
    ],
)
def test_bad_record_names_file_and_line(data_dir: Path, line: object, expected: str) -> None:
    path = _write(data_dir / "records.jsonl", [_good(), "", line])  # the bad record is on line 3
    with pytest.raises(ValueError) as err:
        DatasetVQAEnv(path, ocr="scene")
    msg = str(err.value)
    assert "records.jsonl" in msg and "line 3" in msg and expected in msg, msg


def test_empty_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no records"):
        load_jsonl(_write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(ValueError, match="not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="one of path=, source= or records="):
        DatasetVQAEnv(tmp_path / "nope.jsonl", source="easy-vqa")


def test_corrupt_image_fails_at_reset_naming_image_and_line(data_dir: Path) -> None:
    (data_dir / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    path = _write(data_dir / "records.jsonl", [_good(), _good(image="imgs/broken.png")])
    env = DatasetVQAEnv(path, ocr="scene")  # validation does not decode images: construction is cheap
    env.reset(options={"scene_id": 0})
    with pytest.raises(ValueError) as err:
        env.reset(options={"scene_id": 1})
    msg = str(err.value)
    assert "broken.png" in msg and "records.jsonl" in msg and "line 2" in msg, msg


def test_load_image_is_cached_and_read_only(data_dir: Path) -> None:
    path = str(data_dir / "imgs" / "red.png")
    first = load_image(path)
    assert load_image(path) is first and not first.flags.writeable


def test_easy_vqa_adapter_and_episode() -> None:
    records = easy_vqa_records("test")
    assert len(records) > 1000 and all(isinstance(r, DatasetRecord) for r in records[:50])
    rec = records[0]
    assert rec.family == "EasyVQA" and len(rec.answers) == 1 and os.path.isfile(rec.image)
    (box,) = rec.evidence
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1 and box != (0.0, 0.0, 1.0, 1.0)

    env = DatasetVQAEnv(source="easy-vqa", split="test", ocr="scene")
    assert env.scene_id_range() == (0, len(records))
    obs, info = env.reset(seed=3)
    scene = info["scene"]
    assert scene.image.shape == (64, 64, 3) and obs["image"].shape == (128, 128, 3)  # upsampled glance
    assert obs["question"] == scene.question
    obs, reward, terminated, truncated, info = env.step(f"<answer>{scene.answers[0]}</answer>")
    assert reward == 1.0 and terminated and info["family"] == "EasyVQA"

    with pytest.raises(ValueError, match="known: easy-vqa"):
        DatasetVQAEnv(source="vqa-v2")


def test_write_and_load_round_trip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = _png(tmp_path_factory.mktemp("elsewhere") / "far.png", np.zeros((8, 8, 3), np.uint8))
    records = [
        DatasetRecord(
            str(data_dir / "imgs" / "red.png"), "What colour?", ("red", "crimson"), ((0.1, 0.2, 0.3, 0.4),), "Colours", {"id": 7}
        ),
        DatasetRecord(outside, "Anything there?", ("no",)),
    ]
    out = data_dir / "export.jsonl"
    write_jsonl(records, out)
    assert load_jsonl(out) == records
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert stored[0]["image"] == "imgs/red.png" and stored[1]["image"] == outside  # relative only under the folder
    assert not [p for p in os.listdir(data_dir) if p.endswith(".tmp")]  # the temporary file was renamed away

    with pytest.raises(ValueError, match="record 0"):
        write_jsonl([DatasetRecord(outside, "Q?", ())], out)
    assert load_jsonl(out) == records  # a failed export leaves the old file as it was
