"""The public test sets end to end on fixtures in their published formats: every set loads with its manifest's
item count, a tiny VLM plays each set with the set's tools in its chat, and `iapo-bench run --suite paper-six
--data-dir DIR` gives one column per set with its data report."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from iapo_gym.agents import make_agent, run_episode
from iapo_gym.agents.vlm.tiny import build_tiny_vlm
from iapo_gym.benchmarks import cli
from iapo_gym.benchmarks.fixtures import SETS, build_fixtures
from iapo_gym.envs.public import DATASETS, PAPER_SIX

import iapo_gym  # noqa: F401


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixtures(tmp_path_factory.mktemp("public") / "data", items=3)


def test_every_set_loads_every_item_of_its_file(data_dir: Path) -> None:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert set(SETS) == set(DATASETS)
    for name in SETS:
        env = gym.make("RealVQA-v0", dataset=name, data_dir=str(data_dir))
        report = env.unwrapped.report
        split_file = DATASETS[name].files[DATASETS[name].default_split]
        assert report["usable"] == manifest["sets"][name]["files"][split_file], name
        assert report["skipped"] == {} and report["metadata_dropped"] == {}, name
        obs, info = env.reset(seed=0)
        assert obs["image"].shape == (128, 128, 3) and info["scene"].image.shape[:2] != (128, 128)


@pytest.mark.parametrize("name", SETS)
def test_a_tiny_vlm_plays_each_set_with_the_items_tools_in_its_chat(
    data_dir: Path, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp() / "tiny-qwen3-public"
    if not folder.exists():
        build_tiny_vlm(folder, family="qwen3_vl")
    vlm = make_agent(f"vlm:{folder}", device="cpu", max_new_tokens=8)
    env = gym.make("RealVQA-v0", dataset=name, data_dir=str(data_dir), view_size=112, budget=2, ocr="scene")
    for item in range(len(env.unwrapped.items)):
        obs, info = env.reset(options={"scene_id": item})
        prompt = vlm.vlm.render(vlm.dialogue(obs, info))
        labels = [r.label for r in info["scene"].layout]
        if labels:  # the item's labels are the allowed values of focus, as ReFocus's prompt lists them
            assert '"name": "focus"' in prompt and all(json.dumps(lab) in prompt for lab in labels)
            break
        assert '"name": "focus"' not in prompt  # no label boxes: zoom and ocr only
    result = run_episode(env, vlm, seed=0, options={"scene_id": 0})
    assert result.family == name and 1 <= result.steps <= 2


def test_paper_six_runs_end_to_end_with_one_column_per_set(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    assert (
        cli.main(
            [
                "run",
                "--agents",
                "oracle",
                "no-tool",
                "random",
                "--suite",
                "paper-six",
                "--data-dir",
                str(data_dir),
                "--episodes",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    board = json.loads((out / "leaderboard.json").read_text())["suites"]["paper-six"]
    assert board["families"] == list(PAPER_SIX)
    assert {e["agent"] for e in board["entries"]} == {"oracle", "no-tool", "random"}
    assert all(set(e["accuracy"]) == set(PAPER_SIX) for e in board["entries"])
    manifest = json.loads((data_dir / "manifest.json").read_text())["sets"]
    usable = [manifest[s]["files"][DATASETS[s].files[DATASETS[s].default_split]] for s in PAPER_SIX]
    assert [board["data"][s]["usable"] for s in PAPER_SIX] == usable
    assert board["data"]["vtabfact"]["scorer"] == "vtabfact" and board["data"]["charxiv"]["scorer"] == "charxiv"
    page = (out / "leaderboard.md").read_text()
    assert "| refocus-hbar | `refocus-chart` | 3 | 0 |" in page and "--data-dir DATA_DIR" in page


def test_a_suite_of_public_sets_without_data_dir_says_what_to_give(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["run", "--agents", "no-tool", "--suite", "paper-six", "--out", str(tmp_path / "x")]) == 2
    assert "give --data-dir DIR" in capsys.readouterr().err
