"""Trajectories in the store, evidence diagnostics, episode pictures (drawn from the store alone), the
migration of a version-1 store, and the leaderboard page in a real headless Chromium."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from iapo_gym.answers import is_correct
from iapo_gym.benchmarks import cli
from iapo_gym.benchmarks.browser import chromium, find_chromium
from iapo_gym.benchmarks.episodes import EpisodeNotFound, draw_stored_episode, find_episode, load_recording
from iapo_gym.benchmarks.runner import run_benchmark
from iapo_gym.benchmarks.store import DB_NAME, SCHEMA_VERSION, ResultsStore
from iapo_gym.diagnostics import evidence_hit, evidence_read, text_contains_answer
from iapo_gym.scene import Program, Region, Scene, TextItem
from iapo_gym.toolcall import parse_tool_call
from iapo_gym.trajectory import Step, Trajectory
from iapo_gym.viz import draw_episode, figure_data, render_episode
from iapo_gym.wrappers import TeacherAttributionWrapper

V1_STORE = Path(__file__).parent / "data" / "results-v1.sqlite"
"""Written by the version-1 code (before trajectories): agents oracle and no-tool, suite tiny-v1."""
V1_SUITE = "name: tiny-v1\nseeds: [0]\nepisodes: 2\nfamilies: [HBar, TableFact]\n"
TEACHER_SUITE = "name: tiny-teacher\nseeds: [0]\nepisodes: 2\ndifficulty: 0\nteacher: oracle\nfamilies: [HBar, TableQA]\n"

LOGGING_AGENT = '''
import json, os

class Logger:
    """Zooms into the top-left quarter, OCRs the first evidence box, answers what OCR returned; logs each action."""

    def __init__(self):
        self.t = 0

    def reset(self):
        self.t = 0

    def act(self, observation, info):
        self.t += 1
        if self.t == 1:
            action = json.dumps({"tool": "zoom", "args": {"box": [0.0, 0.0, 0.5, 0.5]}})
        elif self.t == 2:
            action = json.dumps({"tool": "ocr", "args": {"box": list(info["scene"].evidence[0].box)}})
        else:
            action = "<answer>" + observation["tool_output"] + "</answer>"
        with open(os.environ["IAPO_TEST_ACTION_LOG"], "a") as f:
            f.write(json.dumps({"scene": info["scene_id"], "action": action}) + "\\n")
        return action
'''


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small run on a suite with the oracle teacher: the logging agent, the untrained iapo agent, random."""
    tmp = tmp_path_factory.mktemp("teacher-run")
    (tmp / "suite.yaml").write_text(TEACHER_SUITE)
    (tmp / "logger.py").write_text(LOGGING_AGENT)
    log = tmp / "actions.jsonl"
    old = os.environ.get("IAPO_TEST_ACTION_LOG")
    os.environ["IAPO_TEST_ACTION_LOG"] = str(log)
    try:
        out = run_benchmark(
            [f"logger={tmp / 'logger.py'}:Logger", "iapo", "random", "no-tool"],
            str(tmp / "suite.yaml"),
            out=tmp / "out",
            progress=False,
        )
    finally:
        if old is None:
            os.environ.pop("IAPO_TEST_ACTION_LOG")
        else:
            os.environ["IAPO_TEST_ACTION_LOG"] = old
    sent: dict[int, list[str]] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        sent.setdefault(rec["scene"], []).append(rec["action"])
    return {"out": out, "sent": sent}


# -- diagnostics --------------------------------------------------------------------------------------------
def _scene(answers: tuple[str, ...] = ("1000",), texts: tuple[str, ...] = ("Sales", "1,000.0")) -> Scene:
    return Scene(
        "T",
        np.zeros((100, 100, 3), np.uint8),
        "q?",
        answers,
        (Region("bar", (0.2, 0.2, 0.4, 0.4), "a", "1000"),),
        Program("read"),
        texts=tuple(TextItem(t, (0.0, 0.0, 0.1, 0.1), 9.0) for t in texts),
    )


def _traj(boxes: list[tuple[float, float, float, float]], outputs: list[str]) -> Trajectory:
    steps = tuple(Step("a", "ocr", {}, (b,), o, None, {}) for b, o in zip(boxes, outputs))
    return Trajectory("T", 0, "q?", ("1000",), steps, None, False)


def test_evidence_hit_needs_half_of_an_evidence_box() -> None:
    scene = _scene()
    assert evidence_hit(scene, _traj([(0.2, 0.2, 0.3, 0.4)], [""])) is True  # exactly half
    assert evidence_hit(scene, _traj([(0.2, 0.2, 0.29, 0.4)], [""])) is False  # less than half
    assert evidence_hit(scene, _traj([], [])) is False
    assert evidence_hit(Scene("T", scene.image, "q?", ("x",), (), Program("read")), _traj([(0, 0, 1, 1)], [""])) is None


def test_evidence_read_matches_answers_as_the_env_scores_them() -> None:
    scene = _scene()
    assert evidence_read(scene, _traj([(0, 0, 1, 1)], ["Sales 1,000.0 units"])) is True  # number formats unified
    assert evidence_read(scene, _traj([(0, 0, 1, 1)], ["Sales 100"])) is False
    assert evidence_read(_scene(texts=("Sales",)), _traj([(0, 0, 1, 1)], ["1000"])) is None  # not printed: not readable
    assert text_contains_answer("the New York office", ["new york"]) and not text_contains_answer("York", ["new york"])


# -- trajectories and pictures from the store ----------------------------------------------------------------
def test_stored_trajectory_is_what_the_agent_sent_and_the_picture_states_it(teacher_run: dict[str, Any]) -> None:
    out, sent = teacher_run["out"], teacher_run["sent"]
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        rows = store.episodes(agent="logger")
        assert rows and store.count("trajectories") == len(store.episodes())
        for row in rows:
            traj = store.trajectory(row)
            assert traj is not None
            assert [s.action for s in traj.steps] == sent[row.item]
            boxes_sent = [tuple(parse_tool_call(a).args["box"]) for a in sent[row.item] if '"box"' in a]
            data = figure_data(traj)
            assert [b for _, b in data.boxes] == boxes_sent and [k for k, _ in data.boxes] == [1, 2]
            answer = parse_tool_call(sent[row.item][-1]).args["text"]
            assert data.answer == traj.answer == answer and data.correct == row.correct
            assert is_correct(answer, traj.answers) == row.correct
            assert row.evidence_hit is True and row.evidence_read == row.correct  # the OCR box is the evidence
            assert [s.tool for s in traj.steps] == ["zoom", "ocr", "answer"] and traj.steps[1].output == answer

            # drawn from the store alone: the rectangles on the full image are exactly the boxes sent
            recording = load_recording(store, row)
            assert recording.scene.question == traj.question and recording.crops[0] is not None
            fig = draw_episode(recording)
            full = fig.axes[0]
            h, w = recording.scene.height, recording.scene.width
            drawn = [p for p in full.patches if p.get_gid() == "sent"]  # the regions sent (not the evidence or maps outline)
            got = sorted(
                (
                    round(p.get_x() / w, 6),
                    round(p.get_y() / h, 6),
                    round((p.get_x() + p.get_width()) / w, 6),
                    round((p.get_y() + p.get_height()) / h, 6),
                )
                for p in drawn
            )
            assert got == sorted(tuple(round(v, 6) for v in b) for b in boxes_sent)
            texts = " ".join(t.get_text() for t in fig.texts)
            assert f"answer {answer!r}: {'right' if row.correct else 'wrong'}" in texts


def test_iapo_agent_picture_shows_its_and_the_teachers_maps(teacher_run: dict[str, Any], tmp_path: Path) -> None:
    out = teacher_run["out"]
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        row = find_episode(store, "iapo", "HBar", 0)
        traj = store.trajectory(row)
        other = store.trajectory(find_episode(store, "random", "HBar", 0))
    assert traj is not None and other is not None
    assert all(s.agent_attribution is not None and s.teacher_attribution is not None for s in traj.steps)
    assert all(s.agent_attribution is None and s.teacher_attribution is not None for s in other.steps)  # random cannot attribute
    a = traj.steps[0].agent_attribution
    assert a is not None and len(a.image) == a.grid**2 and abs(sum(a.blocks.values()) - 1) < 1e-3
    assert abs(sum(a.image) - a.blocks["image"]) < 1e-3
    assert (
        cli.main(["show", str(out), "--agent", "iapo", "--family", "HBar", "--episode", "0", "--out", str(tmp_path / "ep.png")])
        == 0
    )
    assert (tmp_path / "ep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = draw_stored_episode(out, "iapo", "HBar", 0)
    titles = [ax.get_title() for ax in fig.axes]
    n = len(traj.steps)
    assert sum(t.startswith("agent:") for t in titles) == n and sum(t.startswith("teacher:") for t in titles) == n

    # the same picture drawn live from env + agent + seed
    from iapo_gym.agents import make_agent

    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0", difficulty=0, split="test"), teacher="oracle")
    live = render_episode(env, make_agent("iapo"), seed=row.item, options={"scene_id": row.item}, out=tmp_path / "live.png")
    assert sum(ax.get_title().startswith("teacher:") for ax in live.axes) >= 1 and (tmp_path / "live.png").is_file()


def test_show_names_what_is_there_when_asked_for_what_is_not(teacher_run: dict[str, Any], capsys: Any) -> None:
    out = teacher_run["out"]
    for args, needle in (
        (["--agent", "nobody", "--family", "HBar"], "agents there: iapo, logger, no-tool, random"),
        (["--agent", "iapo", "--family", "VBar"], "its families: HBar, TableQA"),
        (["--agent", "iapo", "--family", "HBar", "--episode", "9"], "episodes 0 to 1"),
        (["--agent", "iapo", "--family", "HBar", "--seed", "5"], "seeds: 0"),
    ):
        assert cli.main(["show", str(out), *args, "--out", "x.png"]) == 2
        assert needle in capsys.readouterr().err


# -- migration ---------------------------------------------------------------------------------------------
def test_a_version_1_store_is_read_untouched_then_migrated_in_place_without_losing_a_row(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "old"
    out.mkdir()
    db = out / DB_NAME
    shutil.copy(V1_STORE, db)
    raw = sqlite3.connect(db)
    old_rows = raw.execute("SELECT * FROM episodes ORDER BY agent, family, seed, episode").fetchall()
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == 1 and len(old_rows) == 8
    raw.close()

    # read-only: the report renders (page included) and the file is not changed
    before = _digest(db)
    assert cli.main(["report", str(out)]) == 0
    assert _digest(db) == before
    page = (out / "leaderboard.html").read_text()
    assert "oracle" in page and "no-tool" in page and "TableFact" in page
    assert cli.main(["show", str(out), "--agent", "oracle", "--family", "HBar", "--out", str(tmp_path / "x.png")]) == 2
    assert "no stored trajectory" in capsys.readouterr().err

    # a new run into the folder migrates it in place: every old row is kept, the new agent gets trajectories
    (tmp_path / "tiny-v1.yaml").write_text(V1_SUITE)
    run_benchmark(["random"], str(tmp_path / "tiny-v1.yaml"), out=out, progress=False)
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    kept = raw.execute("SELECT * FROM episodes WHERE agent != 'random' ORDER BY agent, family, seed, episode").fetchall()
    raw.close()
    assert [r[:16] for r in kept] == old_rows and all(r[16:] == (None,) * 5 for r in kept)
    with ResultsStore(db, readonly=True) as store:
        assert len(store.episodes()) == 12 and store.count("trajectories") == 4
        assert all(store.trajectory(e) is None for e in store.episodes() if e.agent != "random")
    assert cli.main(["report", str(out)]) == 0
    page = (out / "leaderboard.html").read_text()
    assert all(a in page for a in ("oracle", "no-tool", "random")) and "episodes/tiny-v1/random/HBar-seed0-ep0.png" in page
    assert (
        cli.main(
            ["show", str(out), "--agent", "random", "--family", "TableFact", "--episode", "1", "--out", str(tmp_path / "new.png")]
        )
        == 0
    )
    with pytest.raises(EpisodeNotFound, match="no stored trajectory"):
        draw_stored_episode(out, "no-tool", "TableFact", 1)


# -- the page in a real browser ----------------------------------------------------------------------------
def _browser_or_skip() -> None:
    if find_chromium() is None:
        if os.environ.get("IAPO_REQUIRE_BROWSER"):
            pytest.fail(
                "IAPO_REQUIRE_BROWSER is set but chromium/chromedriver are missing: apt-get install chromium chromium-driver"
            )
        pytest.skip("no chromium + chromedriver (apt-get install chromium chromium-driver); CI sets IAPO_REQUIRE_BROWSER=1")


def test_leaderboard_page_in_headless_chromium(teacher_run: dict[str, Any]) -> None:
    _browser_or_skip()
    from selenium.webdriver.common.by import By

    out = teacher_run["out"]
    page = (out / "leaderboard.html").resolve()
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing to fetch
    with chromium(1400, 900) as driver:
        driver.get(page.as_uri())
        table = driver.find_element(By.CSS_SELECTOR, "table.board")
        heads = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        assert {"HBar", "TableQA"} <= set(heads)

        def order() -> list[str]:
            return [tr.get_attribute("data-agent") for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        first = order()
        assert sorted(first) == ["iapo", "logger", "no-tool", "random"]
        assert first[0] == "logger"  # the best average comes first
        column = heads.index("tool calls / ep")

        def values() -> list[float]:
            return [
                float(tr.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-v"))
                for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            ]

        header = table.find_elements(By.CSS_SELECTOR, "thead th")[column]
        header.click()
        assert order() != first and values() == sorted(values(), reverse=True)  # most tool calls first (logger has 2)
        assert order()[-1] == "no-tool"
        header.click()
        assert values() == sorted(values()) and order()[0] == "no-tool"

        # an agent's episode link leads to its pictures, and a picture loads
        link = driver.find_element(By.CSS_SELECTOR, 'tr[data-agent="iapo"] a.eplink')
        link.click()
        assert driver.current_url.endswith("#ep-tiny-teacher-iapo")
        gallery = driver.find_element(By.ID, "ep-tiny-teacher-iapo")
        thumbs = gallery.find_elements(By.CSS_SELECTOR, "a.thumb")
        assert {t.find_element(By.TAG_NAME, "img").get_attribute("alt").split(" on ")[1].split(",")[0] for t in thumbs} == {
            "HBar",
            "TableQA",
        }
        thumbs[0].click()
        assert driver.current_url.endswith(".png")
        width = driver.execute_script("var i = document.images[0]; return i && i.complete ? i.naturalWidth : 0;")
        assert width > 0


def test_a_teacher_suite_stores_the_envs_reward_without_shaping(teacher_run: dict[str, Any]) -> None:
    """The suite asks for the teacher's attribution, not for a shaping reward: every stored reward is the
    env's own (outcome + format), with no teacher term in it."""
    with ResultsStore(teacher_run["out"] / DB_NAME, readonly=True) as store:
        episodes = store.episodes()
    assert episodes
    for e in episodes:
        assert e.reward_terms.get("teacher", 0.0) == 0.0
        assert e.reward == pytest.approx(e.reward_terms["outcome"] + e.reward_terms["format"])
