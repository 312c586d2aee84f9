"""The learning and update-cost benchmarks run end to end at a tiny scale and write what they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from iapo_gym.benchmarks import learning, update_cost


def test_learning_benchmark_writes_a_paired_summary_and_resumes(tmp_path: Path) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--seeds",
        "0",
        "--starts",
        "weak",
        "--methods",
        "grpo",
        "default",
        "--steps",
        "40",
        "--start-episodes",
        "6",
        "6",
        "--warm-epochs",
        "1",
        "1",
        "--eval-episodes",
        "2",
        "--eval-every",
        "1",
        "--curve-episodes",
        "2",
    ]
    learning.main(argv)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["weak"]) == {"warm start", "grpo", "default"}
    assert set(summary["weak"]["grpo"]) == {"0"} and 0 <= summary["weak"]["default"]["0"] <= 1
    assert "default" in summary["paired_difference_vs_grpo"]["weak"]
    assert summary["s_per_update"]["default"] > 0
    table = (tmp_path / "table.md").read_text()
    assert "hit / read / accuracy given a read" in table and "| default |" in table
    assert "### start: weak (6 oracle episodes x 1 epochs behaviour-cloned), 40 env steps" in table
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "differences.png").stat().st_size > 1000
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    learning.main(argv)  # a rerun finds every run done and only re-renders
    assert (tmp_path / "runs.jsonl").read_text().splitlines() == lines


def test_methods_added_later_start_from_the_same_cached_warm_start(tmp_path: Path) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--seeds",
        "0",
        "--starts",
        "weak",
        "--steps",
        "20",
        "--start-episodes",
        "4",
        "4",
        "--warm-epochs",
        "1",
        "1",
        "--eval-episodes",
        "1",
        "--eval-every",
        "1",
        "--curve-episodes",
        "1",
    ]
    learning.main([*argv, "--methods", "grpo"])
    (cached,) = (tmp_path / "warm").glob("*/model.safetensors")
    stamp = cached.stat().st_mtime_ns
    learning.main([*argv, "--methods", "grpo", "grpo-kl"])  # a later invocation adds a method
    assert cached.stat().st_mtime_ns == stamp  # the start was loaded, not cloned again
    methods = [json.loads(line)["method"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert methods == ["warm start", "grpo", "grpo-kl"]
    train = learning.CONDITIONS["iid"].train_kwargs({"difficulty": 0})
    fresh = learning._warm(4, 0, train, 1)  # no cache: behaviour cloning from scratch gives the cached weights
    loaded = learning._warm(4, 0, train, 1, tmp_path / "warm")
    for (name, a), b in zip(fresh.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_update_cost_benchmark_reports_ratios_to_grpo(tmp_path: Path) -> None:
    update_cost.main(["--updates", "1", "--questions", "1", "--group-size", "2", "--out", str(tmp_path)])
    out = json.loads((tmp_path / "update_cost.json").read_text())
    assert out["grpo"]["ratio_to_grpo"] == 1.0 and out["iapo (default)"]["total"] > 0


def test_update_cost_benchmark_adds_comparison_grids_from_a_checkpoint(tmp_path: Path) -> None:
    from iapo_gym.agents.compact_agent import CompactAgent

    train = learning.CONDITIONS["iid"].train_kwargs({"difficulty": 0})
    CompactAgent(learning._warm(4, 0, train, 1)).save(tmp_path / "start")
    argv = ["--updates", "1", "--questions", "1", "--group-size", "2", "--grids", "16", "--no-paper"]
    argv += ["--methods", "outside-locators"]
    update_cost.main([*argv, "--policy", str(tmp_path / "start"), "--out", str(tmp_path)])
    out = json.loads((tmp_path / "update_cost.json").read_text())
    assert set(out) == {"grpo", "iapo (default)", "iapo (default, grid 16)", "outside-locators"}
    assert all(v["aligned_decisions"] >= 0 for v in out.values())
    assert "from the checkpoint start" in (tmp_path / "update_cost.md").read_text()
    with pytest.raises(SystemExit):
        update_cost.main(["--grids", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # the model teacher's method needs a checkpoint the cost benchmark has not
        update_cost.main(["--methods", "model-teacher", "--out", str(tmp_path)])


def test_the_sim2real_condition_tests_on_every_item_of_real_format_sets(tmp_path: Path) -> None:
    from iapo_gym.benchmarks.fixtures import build_fixtures

    data = build_fixtures(tmp_path / "fixtures", items=2, sets=["refocus-hbar", "vwtq"])
    argv = ["--condition", "sim2real", "--data-dir", str(data), "--real-sets", "refocus-hbar", "vwtq", "--copy-slots", "48"]
    argv += ["--out", str(tmp_path / "out"), "--seeds", "0", "--starts", "weak", "--methods", "grpo", "--steps", "20"]
    argv += ["--start-episodes", "4", "4", "--warm-epochs", "1", "1", "--eval-episodes", "3", "--eval-every", "1"]
    argv += ["--curve-episodes", "1"]
    learning.main(argv)
    runs = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [r["method"] for r in runs] == ["warm start", "grpo"]
    for r in runs:
        assert set(r["final"]) == {"refocus-hbar", "vwtq"} and all(len(f["correct"]) == 2 for f in r["final"].values())
        assert len(r["final_iid"]) == 6  # the procedural headline families' test split beside
        assert r["settings"]["copy_slots"] == 48 and r["settings"]["condition"] == "sim2real"
    assert (tmp_path / "out" / "warm" / "bc-4ep-1epochs-d0-copy48-seed0").exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["weak"]) == {"warm start", "grpo"} and "in_distribution" in summary
    with pytest.raises(SystemExit):  # the same --out with other settings is refused, not mixed
        learning.main([a if a != "48" else "0" for a in argv])
    with pytest.raises(SystemExit):  # sim2real without test sets
        learning.main(["--condition", "sim2real", "--out", str(tmp_path / "other")])


def test_the_area_under_a_curve_is_the_runs_mean_test_accuracy_over_its_steps() -> None:
    history = [{"env_steps": 0, "eval_accuracy": 0.0}, {"env_steps": 100, "loss": 1.0}, {"env_steps": 200, "eval_accuracy": 1.0}]
    history.append({"env_steps": 400, "eval_accuracy": 1.0})
    assert learning.curve_area(history) == pytest.approx((0.5 * 200 + 1.0 * 200) / 400)
    assert learning.curve_area(history[:2]) is None


def test_no_methods_evaluates_the_warm_starts_only(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path), "--seeds", "0", "--starts", "weak", "--methods", "--start-episodes", "4", "4"]
    learning.main([*argv, "--warm-epochs", "1", "1", "--eval-episodes", "1"])
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["method"] for r in runs] == ["warm start"] and len(runs[0]["final"]) == 6


def test_row_settings_read_a_missing_cue_place_as_the_default_and_tell_other_places_apart() -> None:
    mine = learning._row_settings({"condition": "shift", "difficulty": 0, "cue_rate": 1.0, "steps": 10})
    assert mine["cue_place"] == "value"
    old_row = {k: v for k, v in mine.items() if k != "cue_place"}  # kept before the setting existed
    assert learning._settings_differ(old_row, mine) == {}
    other = {**mine, "cue_place": "label"}
    assert learning._settings_differ(other, mine) == {"cue_place": ("label", "value")}
    shift = learning.CONDITIONS["shift"]
    kwargs = shift.train_kwargs({"difficulty": 0, "cue_rate": 1.0, "cue_place": "label"})
    assert kwargs["shortcut_place"] == "label" and "shortcut_place" not in shift.train_kwargs({"difficulty": 0})
    tests = shift.tests({"difficulty": 0, "cue_place": "label"})
    assert all(t.kwargs["shortcut_place"] == "label" and t.kwargs["shortcut_shift"] for t in tests)
    assert shift.tag({"cue_place": "label"}) != shift.tag({})


def test_the_curves_have_a_colour_for_every_method_however_many(tmp_path: Path) -> None:
    methods = list(learning.METHODS)  # more than a 10-colour cycle
    assert len(methods) > 10
    history = [{"env_steps": s, "eval_accuracy": 0.5, "calls_zoom": 1.0, "alignment": 0.2} for s in (0, 100, 200)]
    rows = [{"start": "strong", "seed": 0, "method": m, "history": history} for m in methods]
    png = learning.plot(rows, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_learning_signal_table_compares_a_runs_first_and_last_fifth() -> None:
    # 10 updates over 1,000 env steps: the first fifth is steps <= 200, the last fifth steps > 800
    history = [{"env_steps": 100 * (k + 1), "advantage_abs": 0.0 if k >= 8 else 0.5, "entropy": 2.0 - 0.2 * k} for k in range(10)]
    assert learning._phase(history, "advantage_abs", last=False) == pytest.approx(0.5)
    assert learning._phase(history, "no_signal", last=False) == 0.0 and learning._phase(history, "no_signal", last=True) == 1.0
    assert learning._phase(history, "entropy", last=True) == pytest.approx(np.mean([2.0 - 1.6, 2.0 - 1.8]))
    assert learning._phase(history, "grad_cos", last=True) is None and learning._phase([], "entropy", last=True) is None
    rows = [{"start": "weak", "seed": s, "method": m, "history": history} for s in (0, 1) for m in ("grpo", "default")]
    lines = learning._dynamics(rows, ["grpo", "default"])
    assert "| method | mean \\|advantage\\| | updates with no signal | entropy |" in lines
    assert "| grpo | 0.500 -> 0.000 | 0.000 -> 1.000 | 1.900 -> 0.300 |" in lines
    assert learning._dynamics([{"start": "weak", "seed": 0, "method": "grpo", "history": []}], ["grpo"]) == []
    smooth = learning._running_mean([(float(x), float(x % 2)) for x in range(6)], 2)
    assert smooth == [(float(x), 0.5) for x in range(1, 6)]
    assert learning._running_mean([(0.0, 1.0), (1.0, 3.0)], 25) == [(1.0, 2.0)]  # fewer points than the window


def test_every_method_is_a_valid_training_config() -> None:
    env_kwargs = learning.CONDITIONS["shift"].train_kwargs({"difficulty": 0, "cue_rate": 1.0})
    configs = {m: learning.method_config(m, env_kwargs, 100, 0, teacher="runs/t") for m in learning.METHODS}
    assert configs["loss-advantage"].objective.weighting == "advantage" and configs["default"].objective.weighting == "success"
    assert configs["default-ent"].ent_coef == 10 * configs["default"].ent_coef and configs["grpo-ent"].reward == "grpo"
    assert all(c.max_env_steps == 100 and c.env_kwargs["shortcut"] == 1.0 for c in configs.values())
