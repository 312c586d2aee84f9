"""The VLM track on TRL and on the leaderboard, for tiny offline models of both families (Qwen2.5-VL with the
shipped tool template, Qwen3-VL with its own)."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from iapo_gym.agents import make_agent  # noqa: E402
from iapo_gym.agents.vlm.chat import ensure_tool_template, renders_tools  # noqa: E402
from iapo_gym.agents.vlm.tiny import build_tiny_vlm  # noqa: E402
from iapo_gym.agents.vlm.train import VLMTrainConfig, train_vlm  # noqa: E402

import iapo_gym  # noqa: E402,F401

FAMILIES = ("qwen2_5_vl", "qwen3_vl")
CALL = '<tool_call>\n{"name": "zoom", "arguments": {"box": [0.0, 0.0, 0.5, 0.5]}}\n</tool_call>'
ENV = {"view_size": 112, "budget": 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Per family: a tiny student and a larger tiny teacher (another seed and tokenizer vocabulary)."""
    root = tmp_path_factory.mktemp("vlm-trl")
    return {
        f: (
            build_tiny_vlm(root / f"{f}-student", family=f, seed=0),
            build_tiny_vlm(root / f"{f}-teacher", family=f, layers=3, hidden=96, seed=1, vocab_size=400),
        )
        for f in FAMILIES
    }


def _script_first_turn(trainer, record):
    """The random tiny model never writes a valid tool call; script its first turn to call ``zoom`` (later
    turns are its own), and record what reaches the training forward pass."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    tok = trainer.processing_class.tokenizer
    ids = tok(CALL, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    real_generate, real_loss = model.generate, trainer._compute_loss

    def generate(*args, **kw):
        out = real_generate(*args, **kw)
        prompt = kw["input_ids"]
        if "<tool_response>" in tok.decode(prompt[0]):
            return out
        return torch.cat([prompt, torch.tensor(ids, device=out.device).expand(out.shape[0], -1)], 1)

    def compute_loss(model_, inputs):
        record.append({"images": int(inputs["image_grid_thw"].shape[0]), "rows": int(inputs["prompt_ids"].shape[0])})
        return real_loss(model_, inputs)

    model.generate = generate
    trainer._compute_loss = compute_loss
    record.append({"trainer": trainer})


@pytest.mark.parametrize("family", FAMILIES)
def test_two_trl_iapo_steps(models, family, tmp_path, caplog):
    student, teacher = models[family]
    before = _weights(student)
    record: list[dict] = []
    cfg = VLMTrainConfig(
        model=str(student),
        out=str(tmp_path / "run"),
        teacher=f"vlm:{teacher}",
        reward="iapo",
        iapo={"weighting": "all", "outside": 0.5 if family == FAMILIES[0] else 0.0},  # the absolute penalty on one
        env_kwargs=ENV,
        max_steps=2,
        num_generations=2,
        batch_size=2,
        dataset_size=2,
        lr=1e-2,
        max_completion_length=96,
    )  # 64 rolls the crop back
    with caplog.at_level(logging.WARNING, logger="iapo_gym.vlm"):
        out = train_vlm(cfg, progress=False, before_train=lambda t: _script_first_turn(t, record))
    if family == "qwen2_5_vl":  # the stock template cannot render tool calls: the shipped one is used, and said so
        assert "qwen2_5_vl_tools.jinja" in caplog.text
    else:
        assert "shipped" not in caplog.text
    rows = list(csv.DictReader((out / "curves.csv").open()))
    assert len(rows) == 2
    assert all(float(r.get("calls_zoom") or 0) > 0 for r in rows), rows  # a tool was called
    steps = [r for r in record if "images" in r]
    assert steps and all(r["images"] > r["rows"] for r in steps)  # the crops reached the loss, beside the glances
    # the IAPO term is logged (TRL flushes a loss-time metric with the next step's row) and is in the loss
    assert any(r.get("alignment") not in (None, "") and float(r["alignment"]) > 0 for r in rows), rows
    assert float(rows[0]["loss"]) > 0  # the outcomes tie (GRPO's part is 0): the loss is the alignment term
    logged_outside = [float(r["outside_mass"]) for r in rows if r.get("outside_mass") not in (None, "")]
    if family == FAMILIES[0]:
        assert logged_outside and all(m >= 0 for m in logged_outside), rows
    else:
        assert not logged_outside
    after = _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before), "two IAPO steps changed no parameter"
    # the saved folder loads as vlm:DIR and generates what the trained model generates
    trained = record[-1]["trainer"] if "trainer" in record[-1] else record[0]["trainer"]
    from iapo_gym.agents.vlm.agent import VLMAgent
    from iapo_gym.agents.vlm.model import VLM

    model = trained.accelerator.unwrap_model(trained.model).eval()
    del model.generate  # the model's own generate again, not the scripted one
    in_memory = VLMAgent(VLM.wrap(model, trained.processing_class), max_new_tokens=12)
    loaded = make_agent(f"vlm:{out}", device="cpu", max_new_tokens=12)
    assert loaded.vlm.template_source == "checkpoint"  # the tool template was saved with the model
    env = gym.make("VisualToolVQA-v0", **ENV)
    obs, info = env.reset(seed=3)
    assert loaded.act(obs, info) == in_memory.act(obs, info)
    assert json.loads((out / "train_config.json").read_text())["reward"] == "iapo"


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.mark.parametrize("family", FAMILIES)
def test_bench_run_puts_the_vlm_on_the_leaderboard(models, family, tmp_path):
    from iapo_gym.benchmarks import cli

    suite = tmp_path / "tiny.yaml"
    suite.write_text("name: tiny\nseeds: [0]\nepisodes: 1\ndifficulty: 0\nocr: scene\nview_size: 112\nfamilies: [HBar]\n")
    student, _ = models[family]
    rc = cli.main(["run", "--agents", f"vlm:{student}", "--suite", str(suite), "--out", str(tmp_path / "b"), "--quiet"])
    assert rc == 0
    board = (tmp_path / "b" / "leaderboard.md").read_text()
    assert f"vlm:{student}" in board or student.name in board
    from iapo_gym.agents.checkpoint import folder_hash

    assert folder_hash(student) in (tmp_path / "b" / "leaderboard.csv").read_text()  # identified by its weights


def test_a_family_without_a_tool_template_says_what_to_pass(models):
    from iapo_gym.agents.vlm.model import load_processor
    from iapo_gym.agents.vlm.tiny import CHAT_TEMPLATE

    processor = load_processor(models["qwen2_5_vl"][0])
    processor.chat_template = CHAT_TEMPLATE  # the stock template: no tools
    assert not renders_tools(processor)
    with pytest.raises(ValueError, match="chat_template=") as err:
        ensure_tool_template(processor, "llava", "/models/some-llava")
    assert "'llava'" in str(err.value) and "/models/some-llava" in str(err.value)
    assert ensure_tool_template(processor, "qwen2_5_vl", "x").startswith("shipped:") and renders_tools(processor)


def test_environment_tools_and_dataset():
    from iapo_gym.agents.vlm.trl import build_dataset, environment_class

    cls = environment_class("VisualToolVQA-HBar-v0", ENV)
    from transformers.utils import get_json_schema

    from iapo_gym.agents.vlm.chat import tool_schemas

    env = cls()
    assert [get_json_schema(getattr(env, t)) for t in cls._tools] == tool_schemas(cls._tools)
    data = build_dataset("VisualToolVQA-HBar-v0", 3, "test", ENV, seed=1)
    row = data[0]
    assert set(row) >= {"prompt", "images", "scene_id", "split"} and row["split"] == "test"
    env.reset(**row)
    assert env._dialogue.question in row["prompt"][-1]["content"][-1]["text"]
    result = env.zoom(box=[0.0, 0.0, 0.5, 0.5])
    assert result[0]["type"] == "image" and result[1]["type"] == "text"
    assert np.asarray(result[0]["image"]).shape == (112, 112, 3)
    bad = env.zoom(box=[0.5, 0.5, 1.5, 1.0])
    assert isinstance(bad, str) and bad.startswith("error:")


ROOT = Path(__file__).resolve().parents[1]


def test_two_steps_under_accelerate_launch_with_two_processes(models, tmp_path):
    student, teacher = models["qwen2_5_vl"]
    config = ROOT / "agents" / "vlm" / "accelerate" / "cpu_2proc.yaml"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "iapo_gym.agents.cli",
        "--agent",
        "vlm",
        "--model",
        str(student),
        "--teacher",
        f"vlm:{teacher}",
        "--reward",
        "iapo",
        "--max-steps",
        "2",
        "--num-generations",
        "2",
        "--batch-size",
        "1",
        "--max-completion-length",
        "48",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    meta = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert meta["world_size"] == 2
    assert (tmp_path / "run" / "curves.csv").is_file()
    assert make_agent(f"vlm:{tmp_path / 'run'}", device="cpu").vlm.family == "qwen2_5_vl"


def test_a_curve_row_takes_trls_metrics_by_the_compact_trainers_names() -> None:
    from iapo_gym.agents.vlm.train import _history_row

    logs = {"grad_norm": 2.5, "entropy": 0.7, "iapo/divergence": 0.1, "rewards/outcome_reward/mean": 0.25, "calls_ocr": 1.0}
    row = _history_row({**logs, "learning_rate": 1e-5}, step=3, episodes=12, env_steps=40)
    assert row == {
        "update": 3.0,
        "episodes": 12.0,
        "env_steps": 40.0,
        "grad_norm": 2.5,
        "entropy": 0.7,
        "alignment": 0.1,
        "accuracy": 0.25,
        "reward_outcome": 0.25,
        "calls_ocr": 1.0,
    }
