"""The one IAPO objective (iapo_gym.objective), tested through the paths the trainer, the wrapper and the
leaderboard use: the trainer's teacher sees the question, the loss form moves the attribution, per-decision
credit, bounded advantages in tied groups, the leaderboard's alignment equals the training divergence."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.agents.base import run_episode
from iapo_gym.agents.compact import CompactPolicy, observations_to_batch
from iapo_gym.agents.compact_agent import CompactAgent
from iapo_gym.agents.trainer import GroupTrainer, Rollouts, TrainConfig

from iapo_gym.attribution import Attribution
from iapo_gym.objective import PRESETS, IAPOObjective
from iapo_gym.text import token_id, tokenize
from iapo_gym.wrappers import TeacherAttributionWrapper
from iapo_gym.wrappers.structured import FOCUS_LABELS

TINY = dict(
    env_id="VisualToolVQA-HBar-v0",
    questions=2,
    group_size=3,
    eval_every=100,
    eval_episodes=2,
    minibatch=64,
    epochs=1,
    policy={"width": 8, "hidden": 32, "view_size": 64},
)


def test_the_trainers_teacher_sees_the_question_and_the_tool_outputs() -> None:
    trainer = GroupTrainer(TrainConfig(**{**TINY, "reward": "iapo"}))
    ro = trainer.collect()
    layout = trainer.objective.layout(trainer.policy.config.question_length, trainer.policy.config.output_length)
    query = ro.teacher[:, layout.slice("query")].sum(1)
    assert ro.teacher.shape == (len(ro.actions), layout.size)
    # every decision's teacher attribution puts mass on the question's key tokens (the old trainer gave 0)
    assert bool((query > 0.05).all()), query
    assert torch.allclose(ro.teacher.sum(1), torch.ones(len(ro.actions)), atol=1e-5)


def _one_decision_rollouts(trainer: GroupTrainer, seed: int = 0) -> tuple[Rollouts, dict, dict, str]:
    """One decision of one env, taken the way the leaderboard takes it (wrapped env, agent.act)."""
    env = trainer.envs[0]
    obs, info = env.reset(seed=seed)
    agent = CompactAgent(trainer.policy, greedy=True, train=trainer.config)
    action = agent.act(obs, info)
    _, _, _, _, after = env.step(action)
    batch = observations_to_batch([obs], trainer.policy.config)
    acts = torch.from_numpy(trainer.policy.codec.encode(action)).unsqueeze(0)
    scene = info["scene"]
    ro = Rollouts(
        batch,
        acts,
        torch.zeros(1),
        torch.zeros(1, dtype=torch.long),
        [(scene.height, scene.width)],
        [trainer.policy.codec.tools[int(acts[0, 0])]],
        torch.tensor(after["teacher_attribution"].values, dtype=torch.float32).unsqueeze(0),
        np.zeros(1),
        np.zeros(1, dtype=int),
        [{}],
        np.zeros(1, bool),
        np.zeros(1, bool),
        [{}],
        1,
    )
    return ro, obs, after, action


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_the_leaderboards_alignment_is_the_training_divergence(preset: str) -> None:
    trainer = GroupTrainer(TrainConfig(**{**TINY, "reward": "iapo", "preset": preset}))
    ro, obs, after, action = _one_decision_rollouts(trainer)
    agent = CompactAgent(trainer.policy, greedy=True, train=trainer.config)
    assert agent.alignment(obs, after, action) == pytest.approx(float(trainer.divergences(ro)[0]), rel=1e-5, abs=1e-7)
    # and run_episode (what the benchmark runner records) reports the same numbers, from the wrapper's info
    env = TeacherAttributionWrapper(gym.make("VisualToolVQA-HBar-v0", view_size=64), grid=trainer.objective.grid)
    result = run_episode(env, agent, seed=0)
    assert result.alignment is not None and math.isfinite(result.alignment)


def test_one_loss_form_update_with_a_large_lambda_lowers_the_divergence_on_its_batch() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(**{**TINY, "reward": "iapo", "lr": 3e-3, "iapo": {"form": "loss", "lam": 50.0, "weighting": "all"}})
    trainer = GroupTrainer(cfg)
    ro = trainer.collect()
    before = trainer.divergences(ro).mean()
    for _ in range(3):
        trainer.optimise(ro, torch.zeros(len(ro.actions)), lam=50.0)  # no outcome signal: alignment alone
    after = trainer.divergences(ro).mean()
    assert float(after) < float(before) - 0.01, (float(before), float(after))


def test_per_decision_credit_puts_each_decisions_own_term_in_its_own_advantage() -> None:
    obj = IAPOObjective(form="credit", divergence="js", lam=0.5)
    returns = torch.tensor([1.0, 0.0])  # episode 0 succeeds, episode 1 fails; one group
    groups = torch.tensor([0, 0])
    episode = torch.tensor([0, 0, 1, 1])
    div = torch.tensor([0.0, 0.6, 0.1, 0.1])
    adv = obj.advantages(returns, groups, episode, div, torch.ones(4, dtype=torch.bool), lam=0.5)
    # decisions of the same episode differ by exactly their own terms
    assert float(adv[0] - adv[1]) == pytest.approx(0.5 * float(obj.bounded(div[1]) - obj.bounded(div[0])))
    assert float(adv[2]) == pytest.approx(float(adv[3]))
    # the paper's reward form cannot tell decisions of one episode apart
    paper = PRESETS["paper"].advantages(returns, groups, episode, div, torch.ones(4, dtype=torch.bool), lam=0.5)
    assert float(paper[0]) == float(paper[1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 20), min_size=2, max_size=12),
    st.floats(0.01, 2.0),
    st.sampled_from(["default", "credit-js", "credit-kl"]),
)
def test_a_group_whose_outcomes_tie_gets_advantages_bounded_by_lambda(divs: list[float], lam: float, which: str) -> None:
    obj = {
        "default": PRESETS["default"],
        "credit-js": IAPOObjective(form="credit", divergence="js"),
        "credit-kl": IAPOObjective(form="credit", divergence="kl", cap=2.0),
    }[which]
    n = len(divs)
    adv = obj.advantages(
        torch.zeros(n),
        torch.zeros(n, dtype=torch.long),
        torch.arange(n),
        torch.tensor(divs),
        torch.ones(n, dtype=torch.bool),
        lam,
    )
    assert float(adv.abs().max()) <= lam + 1e-6


def test_the_paper_preset_lets_the_penalty_alone_set_the_scale_in_tied_groups() -> None:
    adv = PRESETS["paper"].advantages(
        torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.arange(3), torch.tensor([0.1, 0.5, 0.9]), None, lam=0.1
    )
    assert float(adv[0]) > float(adv[1]) > float(adv[2]) and float(adv.abs().max()) > 1.0


@pytest.mark.parametrize("granularity", ["blocks", "components", "within"])
@pytest.mark.parametrize("div", ["kl", "js", "cosine"])
def test_compare_is_zero_for_equal_attributions_and_positive_otherwise(granularity: str, div: str) -> None:
    obj = IAPOObjective(granularity=granularity, divergence=div)
    layout = obj.layout(4, 4)
    rng = np.random.default_rng(0)
    t = rng.random(layout.size)
    s = rng.random(layout.size) ** 4
    assert float(obj.compare(t, t, layout)) == pytest.approx(0.0, abs=1e-6)
    assert float(obj.compare(t, s, layout)) > 0
    a = Attribution(layout, t)
    assert float(obj.compare(a, a.values * 3, layout)) == pytest.approx(0.0, abs=1e-6)  # scale-free


def test_within_blocks_ignores_how_many_pixels_or_slots_a_block_has() -> None:
    obj = IAPOObjective(granularity="within", grid=2)
    layout = obj.layout(2, 2)  # image 4 cells, query 2, tool outputs 2
    teacher = np.array([1, 0, 0, 0, 0.5, 0, 0, 0], float)
    same_places_other_shares = np.array([100, 0, 0, 0, 0.001, 0, 0, 0], float)
    assert float(obj.compare(teacher, same_places_other_shares, layout)) == pytest.approx(0.0, abs=1e-6)
    blocks = IAPOObjective(granularity="blocks", grid=2)
    assert float(blocks.compare(teacher, same_places_other_shares, layout)) > 0.1


def test_answers_and_labels_that_used_to_collide_have_ids_of_their_own() -> None:
    pairs = [
        ("3", "39"),
        ("48", "85"),
        ("148", "199"),
        ("bank", "143"),
        ("jun", "b7"),
        ("dan", "loss"),
        ("gamma", "h3"),
        ("c2", "d8"),
    ]
    for a, b in pairs:
        assert token_id(a, 4096) != token_id(b, 4096), (a, b)
    assert tokenize("Loss -5") == ["loss", "-5"]
    # and the policy's copy score picks the answer that was read, not its old twin
    pol = CompactPolicy()
    for read, twin in [("39", "3"), ("85", "48"), ("199", "148")]:
        obs = {
            "image": np.zeros((128, 128, 3), np.uint8),
            "crop": np.zeros((128, 128, 3), np.uint8),
            "question": "What is the value?",
            "tool_output": read,
            "view_box": np.zeros(4, np.float32),
            "budget": 3,
        }
        (g, c, q, o), (qm, om, aux, kinds) = pol.inputs(observations_to_batch([obs], pol.config))
        copy = pol.net._copy(o, om, pol.net.answer_tokens)[0].detach()
        answers = pol.codec.answers
        assert float(copy[answers.index(read)]) > float(copy[answers.index(twin)]) + 1.0
    labels = {token_id(tokenize(x)[0], 4096) for x in FOCUS_LABELS}
    assert len(labels) == len({x.lower() for x in FOCUS_LABELS})


def test_bad_objective_settings_are_clear() -> None:
    with pytest.raises(ValueError, match="IAPO granularity must be one of blocks, components, within"):
        IAPOObjective(granularity="pixels")
    with pytest.raises(ValueError, match="unknown divergence 'emd'"):
        IAPOObjective(divergence="emd")
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        IAPOObjective(lam=-1)
    with pytest.raises(ValueError, match="unknown IAPO preset 'best'"):
        IAPOObjective.preset("best")
    obj = IAPOObjective()
    with pytest.raises(ValueError, match="must both have 44 components"):
        obj.compare(np.ones(5), np.ones(5), obj.layout(4, 24))


def test_cold_start_and_schedule_follow_the_env_step_budget() -> None:
    cfg = TrainConfig(
        **{
            **TINY,
            "reward": "iapo",
            "updates": 10**6,
            "max_env_steps": 1000,
            "iapo": {"cold_start": 0.5, "schedule": "linear", "lam": 2.0},
        }
    )
    assert cfg.lam_at(3, env_steps=400) == 0.0  # still GRPO
    assert 0 < cfg.lam_at(4, env_steps=750) < 2.0  # rising
    assert cfg.lam_at(5, env_steps=1000) == pytest.approx(2.0)
    assert TrainConfig(**{**TINY, "reward": "grpo"}).lam_at(5, 10) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=16, max_size=16),  # float32-exact zeros
    st.lists(st.floats(0.0, 10.0), min_size=16, max_size=16),
    st.floats(0.1, 100.0),
)
def test_outside_mass_is_the_students_raw_image_mass_where_the_teacher_puts_none(
    teacher_img: list[float], student_img: list[float], scale: float
) -> None:
    obj = IAPOObjective(outside=1.0)
    layout = obj.layout(4, 6)
    t = torch.zeros(layout.size)
    t[layout.slice("image")] = torch.tensor(teacher_img)
    t[layout.slice("query")] = 1.0  # token mass never counts
    s = torch.ones(layout.size) * 7.0
    s[layout.slice("image")] = torch.tensor(student_img)
    ti, si = np.array(teacher_img), np.array(student_img)
    expected = float(si[ti <= 0].sum()) if ti.sum() > 0 else 0.0
    assert float(obj.outside_mass(t, s, layout)) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # absolute, not normalised: scaling the student scales it; the divergence does not move
    assert float(obj.outside_mass(t, s * scale, layout)) == pytest.approx(expected * scale, rel=1e-4, abs=1e-5)
    if ti.sum() > 0:
        assert float(obj.compare(t, s * scale, layout)) == pytest.approx(float(obj.compare(t, s, layout)), abs=1e-5)


def test_outside_mass_is_batched_and_differentiable() -> None:
    obj = IAPOObjective(outside=1.0)
    layout = obj.layout(2, 2)
    t = torch.zeros(3, layout.size)
    t[:, 0] = 1.0  # the teacher on the first cell only
    t[2] = 0.0  # a decision whose teacher has no image mass at all
    t[2, layout.slice("query")] = 1.0
    s = torch.ones(3, layout.size, requires_grad=True)
    out = obj.outside_mass(t, s, layout)
    assert out.tolist() == [15.0, 15.0, 0.0]
    out.sum().backward()
    assert s.grad is not None and s.grad[0, 0] == 0 and s.grad[0, 1] == 1 and float(s.grad[2].abs().sum()) == 0


def test_a_loss_update_with_the_outside_penalty_lowers_the_students_mass_outside_the_teacher() -> None:
    torch.manual_seed(0)
    iapo = {"form": "loss", "lam": 1.0, "weighting": "all", "outside": 5.0, "pixel_baseline": "white", "grid": 8}
    trainer = GroupTrainer(TrainConfig(**{**TINY, "reward": "iapo", "lr": 3e-3, "iapo": iapo}))
    ro = trainer.collect()
    obj = trainer.objective
    before = obj.outside_mass(*trainer.attributions(ro)).mean()
    logged = []
    for _ in range(3):
        logged.append(trainer.optimise(ro, torch.zeros(len(ro.actions)), lam=1.0)["outside_mass"])
    after = obj.outside_mass(*trainer.attributions(ro)).mean()
    assert logged[0] == pytest.approx(float(before), rel=1e-4)  # the update logs what its loss measured
    assert float(after) < 0.8 * float(before), (float(before), float(after))
    # the student's attribution is taken from the objective's pixel baseline
    teacher, student, layout = trainer.attributions(ro)
    white = trainer.policy.attribution(ro.batch, ro.actions, ro.source_hw, obj.grid, pixel_baseline="white")
    assert torch.allclose(student, white)


def test_the_outside_penalty_needs_the_loss_form_and_a_known_baseline() -> None:
    with pytest.raises(ValueError, match="outside must be a finite number >= 0"):
        IAPOObjective(outside=-0.1)
    with pytest.raises(ValueError, match="needs form='loss'; got form='reward'"):
        IAPOObjective(form="reward", outside=1.0)
    with pytest.raises(ValueError, match="pixel_baseline must be one of black, white"):
        IAPOObjective(pixel_baseline="grey")
    assert IAPOObjective(form="reward").outside == 0.0  # off by default, every form


def test_the_signal_weighting_weighs_the_successes_only_where_an_advantage_is_not_zero() -> None:
    obj = IAPOObjective(form="loss", weighting="signal")
    success = torch.tensor([True, False, True, True])
    quiet = obj.loss_weights(torch.zeros(4), success, None)  # every group agreed: nothing from the outcome
    assert quiet.tolist() == [0.0, 0.0, 0.0, 0.0]
    loud = obj.loss_weights(torch.tensor([0.0, -0.5, 0.5, 0.0]), success, torch.tensor([True, True, True, False]))
    assert loud.tolist() == [1.0, 0.0, 1.0, 0.0]  # the successes (and the selected decisions), as "success"
    assert IAPOObjective(form="loss").loss_weights(torch.zeros(4), success, None).tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="weighting"):
        IAPOObjective(form="loss", weighting="signals")
