"""Each step is computed once: during a benchmark episode on a teacher suite, the action is parsed once per
step (by the env; the teacher wrapper, the oracle teacher and the recorder read ``info["call"]``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from iapo_gym import toolcall
from iapo_gym.benchmarks.runner import run_benchmark

SUITE = "name: once\nseeds: [0]\nepisodes: 3\ndifficulty: 0\nteacher: oracle\nfamilies: [HBar, TableQA]\n"


def test_an_action_is_parsed_once_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = toolcall.parse_tool_call

    def counting(action: str) -> toolcall.ToolCall:
        calls["n"] += 1
        return original(action)

    for name, module in list(sys.modules.items()):  # every module that imported the parser by name
        if name.startswith("iapo_gym") and getattr(module, "parse_tool_call", None) is original:
            monkeypatch.setattr(module, "parse_tool_call", counting)
    (tmp_path / "suite.yaml").write_text(SUITE)
    out = run_benchmark(["oracle", "random"], str(tmp_path / "suite.yaml"), out=tmp_path / "out", progress=False, render=False)
    from iapo_gym.benchmarks.store import DB_NAME, ResultsStore

    with ResultsStore(out / DB_NAME, readonly=True) as store:
        steps = sum(e.steps for e in store.episodes())
    assert steps > 0 and calls["n"] == steps


PAPER_AGENT = """
from iapo_gym.agents.compact_agent import CompactAgent

class Paper(CompactAgent):
    def __init__(self):
        super().__init__(train={"preset": "paper"})
"""


def test_each_decision_is_attributed_once_and_every_agent_is_aligned_by_the_suites_one_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iapo_gym.agents.compact_agent import CompactAgent
    from iapo_gym.benchmarks.store import DB_NAME, ResultsStore

    calls = {"n": 0}
    original = CompactAgent.attribute

    def counting(self: CompactAgent, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CompactAgent, "attribute", counting)
    (tmp_path / "suite.yaml").write_text(SUITE)
    (tmp_path / "paper.py").write_text(PAPER_AGENT)
    out = run_benchmark(
        ["iapo", f"paper={tmp_path / 'paper.py'}:Paper"],
        str(tmp_path / "suite.yaml"),
        out=tmp_path / "out",
        progress=False,
        render=False,
    )
    with ResultsStore(out / DB_NAME, readonly=True) as store:
        episodes = store.episodes()
        trajectories = [store.trajectory(e) for e in episodes]
    assert calls["n"] == sum(e.steps for e in episodes)  # once per decision, by the recorder only
    assert {e.agent for e in episodes} == {"iapo", "paper"}
    for e, t in zip(episodes, trajectories):
        assert t is not None and e.alignment is not None
        assert e.alignment == pytest.approx(t.alignment("kl", "blocks"))  # one measure, whatever the agent's objective


def test_a_run_builds_one_env_per_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning (the scene-id ranges), the teacher wrapper and the cells share one env per family and
    process: none is built only to read a range."""
    import gymnasium as gym
    from iapo_gym.benchmarks import runner

    made: list[str] = []
    original = gym.make

    def counting(env_id: str, **kwargs: object) -> gym.Env:
        made.append(env_id)
        return original(env_id, **kwargs)

    monkeypatch.setattr(runner.gym, "make", counting)
    monkeypatch.setattr(runner, "_ENVS", {})
    (tmp_path / "suite.yaml").write_text(SUITE)
    run_benchmark(["oracle", "random"], str(tmp_path / "suite.yaml"), out=tmp_path / "out", progress=False, render=False)
    assert sorted(made) == ["VisualToolVQA-HBar-v0", "VisualToolVQA-TableQA-v0"], made
