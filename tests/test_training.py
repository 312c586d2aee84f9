"""The group trainer, the compact agent, checkpoints, the agent registry and iapo-train."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.agents import evaluate_agent, make_agent
from iapo_gym.agents.cli import main as train_main
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.policy_gradient import group_advantages
from iapo_gym.agents.trainer import TrainConfig

TINY = dict(
    env_id="VisualToolVQA-HBar-v0",
    questions=2,
    group_size=3,
    eval_every=100,
    eval_episodes=2,
    minibatch=16,
    epochs=1,
    policy={"width": 8, "hidden": 32, "view_size": 64},
)


def params(agent: CompactAgent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])


@pytest.mark.parametrize("reward", ["grpo", "iapo"])
def test_tiny_run_changes_parameters_with_finite_loss(reward: str) -> None:
    # the loss on every decision (not only successful rollouts), so each update measures an alignment
    agent = CompactAgent(train={**TINY, "reward": reward, "updates": 2, "iapo": {"weighting": "all"}})
    before = params(agent).clone()
    history = agent.learn(progress=False)
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    assert not torch.equal(before, params(agent))
    if reward == "iapo":
        assert all(r["alignment"] > 0 and r["alignment_decisions"] > 0 for r in history)
    else:
        assert "alignment" not in history[0]


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_an_update_attributes_each_decision_once_and_logs_that_alignment(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (loss form) logs the divergences its loss measured, with no extra pass; the paper preset
    (reward form) attributes every decision once, before the update, and logs those."""
    from iapo_gym.agents.trainer import GroupTrainer

    config = TrainConfig(
        **{**TINY, "reward": "iapo", "preset": preset, "iapo": {"weighting": "all"} if preset == "default" else {}}
    )
    trainer = GroupTrainer(config)
    calls: list[tuple[int, bool]] = []
    seen: list[torch.Tensor] = []
    attribution, compare = trainer.policy.attribution, trainer.objective.compare

    def counted(batch, actions, *args, create_graph=False, **kw):  # type: ignore[no-untyped-def]
        calls.append((len(actions), create_graph))
        return attribution(batch, actions, *args, create_graph=create_graph, **kw)

    def kept(*args, **kw):  # type: ignore[no-untyped-def]
        out = compare(*args, **kw)
        seen.append(out.detach())
        return out

    monkeypatch.setattr(trainer.policy, "attribution", counted)
    object.__setattr__(trainer.objective, "compare", kept)  # this trainer's own (frozen) objective instance
    row = trainer.step()
    decisions = int(row["alignment_decisions"])
    assert sum(n for n, _ in calls) == decisions > 0  # one epoch (TINY): each decision attributed once
    assert all(graph == (preset == "default") for _, graph in calls)
    assert row["alignment"] == pytest.approx(float(torch.cat(seen).mean()), rel=1e-5) and row["alignment"] > 0


def test_an_update_logs_the_policy_and_alignment_gradient_norms_it_clipped() -> None:
    """One minibatch: the logged norms are those of the policy's part (what the same update with no alignment
    sees), of the alignment's and of their sum (law of cosines with the logged cosine)."""
    import copy

    from iapo_gym.agents.trainer import GroupTrainer

    torch.manual_seed(0)
    config = TrainConfig(**{**TINY, "minibatch": 10_000, "reward": "iapo", "iapo": {"weighting": "all"}})
    trainer = GroupTrainer(config)
    ro = trainer.collect()
    adv = torch.linspace(-1.0, 1.0, len(ro.actions))
    plain = copy.deepcopy(trainer)
    row = trainer.optimise(ro, adv, lam=1.0)
    alone = plain.optimise(ro, adv, lam=0.0)  # the same update without the alignment loss
    p, a, total, cos = (row[k] for k in ("grad_norm_policy", "grad_norm_alignment", "grad_norm", "grad_cos"))
    assert p == pytest.approx(alone["grad_norm"], rel=1e-4) and alone["grad_norm_policy"] == alone["grad_norm"]
    assert a > 0 and -1.0 <= cos <= 1.0
    assert total**2 == pytest.approx(p**2 + a**2 + 2 * p * a * cos, rel=1e-3)
    assert "grad_norm_alignment" not in alone and "grad_cos" not in alone


def test_clip_apart_steps_with_each_part_clipped_to_one_and_their_sum_unclipped() -> None:
    from iapo_gym.agents.trainer import GroupTrainer

    torch.manual_seed(0)
    iapo = {"weighting": "all", "lam": 1000.0}  # an alignment gradient far above a norm of 1
    trainer = GroupTrainer(TrainConfig(**{**TINY, "minibatch": 10_000, "reward": "iapo", "clip_apart": True, "iapo": iapo}))
    ro = trainer.collect()
    stepped: list[list[torch.Tensor]] = []
    step = trainer.optimizer.step

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        stepped.append([p.grad.clone() for p in trainer.policy.parameters() if p.grad is not None])
        return step(*args, **kw)

    trainer.optimizer.step = spy  # type: ignore[method-assign]
    row = trainer.optimise(ro, torch.linspace(-1.0, 1.0, len(ro.actions)), lam=1000.0)
    applied = float(torch.nn.utils.get_total_norm(stepped[0]))
    p = min(1.0, row["grad_norm_policy"])  # the policy's part, clipped on its own; the alignment's: to 1
    assert row["grad_norm_alignment"] > 10 and applied == pytest.approx(row["grad_norm"], rel=1e-4)
    assert applied == pytest.approx((1 + p**2 + 2 * p * row["grad_cos"]) ** 0.5, rel=1e-3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-5, 5)), min_size=1, max_size=30))
def test_group_advantages_are_zero_mean_per_group(pairs: list[tuple[int, float]]) -> None:
    groups = torch.tensor([g for g, _ in pairs])
    adv = group_advantages(torch.tensor([r for _, r in pairs]), groups)
    for g in groups.unique():
        assert abs(float(adv[groups == g].mean())) < 1e-4


def test_resuming_continues_the_same_run(tmp_path: Path) -> None:
    straight = CompactAgent(train={**TINY, "reward": "iapo", "updates": 3})
    straight.learn(progress=False)
    first = CompactAgent(train={**TINY, "reward": "iapo", "updates": 3})
    first.learn(progress=False, updates=1)  # stop after one update, as if interrupted
    first.train_config.updates = 3
    first.trainer.config.updates = 3
    first.save(tmp_path / "ckpt")
    resumed = CompactAgent.load_checkpoint(tmp_path / "ckpt")
    resumed.learn(progress=False)
    assert torch.equal(params(straight), params(resumed))
    assert [r["loss"] for r in straight.trainer.history] == pytest.approx([r["loss"] for r in resumed.trainer.history])


def test_corrupt_or_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    agent = CompactAgent(train={**TINY, "updates": 1})
    path = agent.save(tmp_path / "ckpt")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        CompactAgent.load_checkpoint(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CompactAgent.load_checkpoint(path)
    with pytest.raises(ValueError, match="is not a checkpoint"):
        CompactAgent.load_checkpoint(tmp_path / "missing")


def test_saved_agent_acts_the_same_after_loading(tmp_path: Path) -> None:
    agent = CompactAgent(train={**TINY, "updates": 1})
    agent.learn(progress=False)
    agent.save(tmp_path / "a")
    loaded = make_agent("iapo_gym.agents.compact_agent:CompactAgent")
    loaded.load(tmp_path / "a")
    env = gym.make("VisualToolVQA-HBar-v0", view_size=64)
    obs, info = env.reset(seed=0)
    assert agent.act(obs, info) == loaded.act(obs, info)


USER_AGENT = """
class AlwaysYes:
    def reset(self):
        pass

    def act(self, observation, info):
        return "<answer>yes</answer>"
"""


def test_user_agent_from_a_file_runs_through_evaluation(tmp_path: Path) -> None:
    path = tmp_path / "my_agent.py"
    path.write_text(USER_AGENT)
    agent = make_agent(f"{path}:AlwaysYes")
    result = evaluate_agent(agent, gym.make("VisualToolVQA-HBar-v0"), n_episodes=10)
    assert result["tool_calls"] == 0 and 0 <= result["accuracy"] <= 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_agent("alphago"), "unknown agent 'alphago'"),
        (lambda: make_agent("nowhere.module:Agent"), "cannot import module"),
        (lambda: TrainConfig(updates=-1), "updates must be a non-negative int"),
        (lambda: TrainConfig(env_id="Missing-v0"), "unknown env id 'Missing-v0'"),
        (lambda: TrainConfig(reward="ppo"), "reward must be one of"),
        (lambda: TrainConfig(group_size=1), "group_size must be >= 2"),
        (lambda: TrainConfig(kl_coef=-0.1), "kl_coef .* must be >= 0"),
        (lambda: TrainConfig.from_dict({"lamda": 1}), "unknown training option 'lamda'"),
        (lambda: TrainConfig(iapo={"divergence": "hellinger"}), "hellinger"),
        (lambda: TrainConfig(iapo={"lamda": 1}), "unknown IAPO option 'lamda'"),
        (lambda: TrainConfig(preset="best"), "unknown IAPO preset 'best'"),
        (lambda: TrainConfig(iapo={"form": "bonus"}), "IAPO form must be one of reward, credit, loss"),
    ],
)
def test_bad_configs_give_clear_errors(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_iapo_train_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "questions: 2\ngroup_size: 2\neval_episodes: 2\nminibatch: 16\nepochs: 1\npolicy: {width: 8, hidden: 32, view_size: 64}\n"
    )
    out = tmp_path / "run"
    assert (
        train_main(
            [
                "--agent",
                "iapo",
                "--config",
                str(cfg),
                "--env",
                "VisualToolVQA-HBar-v0",
                "--updates",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert {"config.json", "model.safetensors", "curves.csv", "curves.png"} <= {p.name for p in out.iterdir()}
    assert train_main(["--agent", "iapo", "--resume", "--updates", "2", "--out", str(out), "--no-progress"]) == 0
    assert "2 updates" in capsys.readouterr().out
    assert train_main(["--agent", "grpo", "--updates", "-3", "--out", str(out)]) == 2
    kl_run = tmp_path / "kl"
    assert (
        train_main(
            [
                "--agent",
                "grpo",
                "--config",
                str(cfg),
                "--env",
                "VisualToolVQA-HBar-v0",
                "--updates",
                "1",
                "--kl-coef",
                "0.1",
                "--out",
                str(kl_run),
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((kl_run / "config.json").read_text())["train"]["kl_coef"] == 0.1


def test_iapo_train_is_a_console_script() -> None:
    result = subprocess.run([Path(sys.executable).parent / "iapo-train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--teacher" in result.stdout


def test_ppo_agent_learns_saves_and_loads(tmp_path: Path) -> None:
    from iapo_gym.agents.ppo import PPOAgent

    agent = PPOAgent("VisualToolVQA-HBar-v0", env_kwargs={"view_size": 64}, n_steps=64, batch_size=32)
    agent.learn(64)
    agent.save(tmp_path / "ppo")
    loaded = PPOAgent.load_checkpoint(tmp_path / "ppo")
    env = gym.make("VisualToolVQA-HBar-v0", view_size=64)
    obs, info = env.reset(seed=1)
    assert agent.act(obs, info) == loaded.act(obs, info)


def test_compact_agent_reports_alignment_where_a_teacher_is_given() -> None:
    from iapo_gym.agents import run_episode

    from iapo_gym.wrappers import TeacherAttributionWrapper

    agent = CompactAgent(train={**TINY, "updates": 1})
    plain = run_episode(gym.make("VisualToolVQA-HBar-v0", view_size=64), agent, seed=0)
    taught = run_episode(TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0", view_size=64)), agent, seed=0)
    assert plain.alignment is None
    assert taught.alignment is not None and 0 < taught.alignment < 20
