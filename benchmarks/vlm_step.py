"""Seconds per TRL ``GRPOTrainer`` step on tiny random VLMs, GRPO vs IAPO (the attribution overhead).

Run: ``python -m iapo_gym.benchmarks.vlm_step [--family qwen2_5_vl|qwen3_vl] [--preset default|paper]
[--steps 3] [--view-size 112] [--hidden 64 --layers 2] [--json out.json]``.

Both runs script the first turn of every rollout to call ``zoom`` (a random model never writes a valid tool
call), so each step holds a tool call with its image, as real training does; later turns are the model's.
The student is a tiny model (``--layers``/``--hidden``), the IAPO teacher a larger tiny one (one more layer,
1.5x hidden). The time per step is TRL's own ``step_time`` log, the first step (warm-up) left out. On a GPU
(``--device cuda``, larger ``--hidden``/``--layers``) the same script measures a larger random model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

CALL = '<tool_call>\n{"name": "zoom", "arguments": {"box": [0.0, 0.0, 0.5, 0.5]}}\n</tool_call>'


def script_first_turn(trainer: Any) -> None:
    """Make every rollout's first turn the ``zoom`` call :data:`CALL`."""
    import torch

    model = trainer.accelerator.unwrap_model(trainer.model)
    tok = trainer.processing_class.tokenizer
    ids = tok(CALL, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    real = model.generate

    def generate(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        prompt = kw["input_ids"]
        if "<tool_response>" in tok.decode(prompt[0]):
            return out
        return torch.cat([prompt, torch.tensor(ids, device=out.device).expand(out.shape[0], -1)], 1)

    model.generate = generate


def run(reward: str, student: Path, teacher: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    import csv

    from iapo_gym.agents.vlm.train import VLMTrainConfig, train_vlm

    times: list[float] = []

    def hook(trainer: Any) -> None:
        script_first_turn(trainer)
        from transformers import TrainerCallback

        class Times(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
                if logs and "step_time" in logs:
                    times.append(float(logs["step_time"]))

        trainer.add_callback(Times())

    cfg = VLMTrainConfig(
        model=str(student),
        out=str(out),
        teacher=f"vlm:{teacher}" if reward == "iapo" else None,
        reward=reward,
        preset=args.preset,
        iapo={"weighting": "all"} if args.preset == "default" else {},
        env_kwargs={"view_size": args.view_size, "budget": 2},
        max_steps=args.steps + 1,
        num_generations=args.group_size,
        batch_size=args.group_size,
        dataset_size=4,
        max_completion_length=args.max_completion_length,
        lr=1e-4,
    )
    train_vlm(cfg, progress=False, before_train=hook)
    rows = list(csv.DictReader((out / "curves.csv").open()))
    timed = times[1:] or times
    return {"seconds": sum(timed) / len(timed), "steps": float(len(timed)), "calls_zoom": float(rows[-1].get("calls_zoom") or 0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iapo_gym.benchmarks.vlm_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="qwen2_5_vl", choices=("qwen2_5_vl", "qwen3_vl"))
    p.add_argument("--preset", default="default", choices=("default", "paper"), help="IAPO objective preset")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    p.add_argument("--group-size", type=int, default=2)
    p.add_argument("--view-size", type=int, default=112)
    p.add_argument("--max-completion-length", type=int, default=96)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)

    import os

    import torch

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from iapo_gym.agents.vlm.tiny import build_tiny_vlm

    with tempfile.TemporaryDirectory() as tmp:
        student = build_tiny_vlm(Path(tmp) / "student", family=args.family, layers=args.layers, hidden=args.hidden)
        teacher = build_tiny_vlm(
            Path(tmp) / "teacher", family=args.family, layers=args.layers + 1, hidden=args.hidden * 3 // 2, seed=1
        )
        results = {r: run(r, student, teacher, args, Path(tmp) / r) for r in ("grpo", "iapo")}
    ratio = results["iapo"]["seconds"] / results["grpo"]["seconds"]
    print(
        f"tiny {args.family} (hidden {args.hidden}, {args.layers} layers), TRL GRPOTrainer, G={args.group_size}, "
        f"view {args.view_size}, IAPO preset {args.preset!r}, device {'cuda' if torch.cuda.is_available() else 'cpu'}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print("| reward | s / step | zoom calls / episode |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.2f} | {r['calls_zoom']:.1f} |")
    print(f"IAPO / GRPO time per step: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "results": results, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
