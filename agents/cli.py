"""``iapo-train``: train an agent (IAPO, GRPO, PPO, the model teacher, or a VLM) from flags or a YAML config.

Examples::

    iapo-train --agent iapo --env VisualToolVQA-v0 --task HBar TableQA --difficulty 0 --updates 100 --out runs/iapo
    iapo-train --agent grpo --config my_run.yaml --out runs/grpo
    iapo-train --agent iapo --resume runs/iapo            # continue an interrupted run
    iapo-train --agent teacher --env VisualToolVQA-v0 --out runs/teacher   # then --teacher model:runs/teacher
    iapo-train --agent ppo --env VisualToolVQA-HBar-v0 --steps 20000 --out runs/ppo
    iapo-train --agent vlm --model PATH --teacher vlm:PATH --reward iapo --max-steps 200 --out runs/vlm
    accelerate launch --config_file agents/vlm/accelerate/multi_gpu.yaml -m iapo_gym.agents.cli --agent vlm ...

A YAML config holds any :class:`~iapo_gym.agents.trainer.TrainConfig` field (``group_size``, ``preset``,
``iapo: {lam: 0.5, form: credit}``, ``policy: {width: 32}`` ...); flags given on the command line override it.
``--preset paper`` trains the paper's objective instead of the default. For ``--agent vlm`` the YAML holds
:class:`~iapo_gym.agents.vlm.train.VLMTrainConfig` fields instead (``num_generations``, ``lora``...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from iapo_gym.validation import check_int

from .checkpoint import check_config

AGENTS = ("iapo", "grpo", "ppo", "teacher", "vlm")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iapo-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", choices=AGENTS, default="iapo", help="what to train (default: iapo)")
    p.add_argument("--config", type=Path, help="YAML file of training options (flags override it)")
    p.add_argument("--env", dest="env_id", help="env id (default VisualToolVQA-v0)")
    p.add_argument("--task", nargs="+", help="task families of the mixture env (default: all)")
    p.add_argument("--difficulty", type=int, help="0 (targets visible at a glance), 1 (default) or 2")
    p.add_argument("--teacher", help="oracle | model:PATH | vlm:PATH | module:Class (iapo only)")
    p.add_argument("--preset", help="IAPO objective preset: default (the best measured) or paper (iapo only)")
    p.add_argument("--lam", type=float, help="weight of the IAPO alignment term")
    p.add_argument("--form", choices=["reward", "credit", "loss"], help="how the alignment term enters the update")
    p.add_argument("--granularity", choices=["blocks", "components", "within"], help="what is compared")
    p.add_argument("--divergence", choices=["kl", "js", "cosine"], help="divergence between the attributions")
    p.add_argument(
        "--kl-coef",
        dest="kl_coef",
        type=float,
        help="KL to the starting (behaviour-cloned) policy, GRPO's reference term (default 0: off)",
    )
    p.add_argument("--updates", type=int, help="policy updates")
    p.add_argument("--steps", dest="max_env_steps", type=int, help="stop after this many env steps")
    p.add_argument("--warm-start", dest="warm_start_episodes", type=int, help="oracle episodes to imitate before RL")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, curves.csv, curves.png")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--checkpoint-every", type=int, default=10, help="updates between checkpoints (default 10)")
    vlm = p.add_argument_group("--agent vlm (TRL GRPOTrainer; the model's own chat template with tools)")
    vlm.add_argument("--model", help="the student's local VLM folder")
    vlm.add_argument("--reward", choices=["grpo", "iapo"], help="outcome + format only, or + the IAPO term (default iapo)")
    vlm.add_argument("--max-steps", type=int, help="optimiser steps (default 10)")
    vlm.add_argument("--num-generations", type=int, help="rollouts per question (default 4)")
    vlm.add_argument("--batch-size", type=int, help="rollouts per device per step (default 4)")
    vlm.add_argument("--lr", type=float, help="learning rate (default 1e-5)")
    vlm.add_argument(
        "--max-completion-length",
        type=int,
        help="tokens per episode after the prompt, tool-response image tokens included (default 1024)",
    )
    vlm.add_argument("--lora", action="store_true", help="train a LoRA adapter (r=16) instead of all weights")
    vlm.add_argument("--chat-template", help="a tool-capable Jinja template, for a family iapo-gym ships none for")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the --config file or the --resume checkpoint to name a teacher class or env module "
        "outside iapo_gym (its code runs); a --teacher you type is always allowed",
    )
    return p


def options(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields from the YAML config and the flags (flags win)."""
    opts: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"iapo-train: cannot read config {args.config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"iapo-train: config {args.config} must be a YAML mapping of training options")
        file_only = {k: v for k, v in loaded.items() if getattr(args, k, None) is None}  # not overridden by a flag
        check_config(file_only, f"training config {args.config}:", trust_remote_code=args.trust_remote_code)
        opts.update(loaded)
    for key in ("env_id", "teacher", "preset", "kl_coef", "updates", "max_env_steps", "warm_start_episodes", "seed"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    iapo = dict(opts.get("iapo", {}))
    for key in ("lam", "form", "granularity", "divergence"):
        if getattr(args, key) is not None:
            iapo[key] = getattr(args, key)
    if iapo:
        opts["iapo"] = iapo
    env_kwargs = dict(opts.get("env_kwargs", {}))
    if args.task:
        env_kwargs["task"] = args.task
    if args.difficulty is not None:
        env_kwargs["difficulty"] = args.difficulty
    if env_kwargs:
        opts["env_kwargs"] = env_kwargs
    return opts


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f"iapo-train: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    opts = options(args)
    for key in ("updates", "max_env_steps", "warm_start_episodes"):
        if key in opts:
            check_int(f"--{key.replace('_', '-')}", opts[key], 0)
    if args.agent in ("iapo", "grpo"):
        from .compact_agent import CompactAgent

        if args.resume:
            agent = CompactAgent.load_checkpoint(args.out, trust_remote_code=args.trust_remote_code)
            if not agent.resumable:
                raise ValueError(f"{args.out} holds no training state to resume")
            if "updates" in opts:
                agent.train_config.updates = opts["updates"]
        else:
            agent = CompactAgent(train={**opts, "reward": args.agent})
        history = agent.learn(out=args.out, progress=not args.no_progress, checkpoint_every=args.checkpoint_every)
        last = history[-1] if history else {}
        print(
            f"{args.agent}: {len(history)} updates, {last.get('env_steps', 0)} env steps, "
            f"train accuracy {last.get('accuracy', float('nan')):.3f}, "
            f"test accuracy {last.get('eval_accuracy', float('nan')):.3f}; saved to {args.out}"
        )
        return 0
    if args.agent == "teacher":
        from .model_teacher import train_model_teacher

        env_id = opts.get("env_id", "VisualToolVQA-v0")
        episodes = opts.get("warm_start_episodes") or 1000
        agent = train_model_teacher(
            env_id, args.out, episodes=episodes, env_kwargs=opts.get("env_kwargs"), seed=opts.get("seed", 0)
        )
        print(f"model teacher trained on {episodes} oracle episodes of {env_id}; use --teacher model:{args.out}")
        return 0
    if args.agent == "ppo":
        from .ppo import PPOAgent

        ppo = PPOAgent(opts.get("env_id", "VisualToolVQA-HBar-v0"), env_kwargs=opts.get("env_kwargs"), seed=opts.get("seed", 0))
        ppo.learn(total_timesteps=opts.get("max_env_steps") or 2048, progress=not args.no_progress)
        ppo.save(args.out)
        print(f"ppo: saved to {args.out}")
        return 0
    return run_vlm(args, opts)


def run_vlm(args: argparse.Namespace, opts: dict[str, Any]) -> int:
    """``--agent vlm``: TRL's GRPOTrainer (needs the 'vlm' extra)."""
    from .vlm.train import VLMTrainConfig, train_vlm

    data: dict[str, Any] = {k: v for k, v in opts.items() if k not in ("updates", "max_env_steps", "warm_start_episodes")}
    if "updates" in opts:
        data.setdefault("max_steps", opts["updates"])
    for flag, key in (
        ("model", "model"),
        ("reward", "reward"),
        ("max_steps", "max_steps"),
        ("num_generations", "num_generations"),
        ("batch_size", "batch_size"),
        ("lr", "lr"),
        ("max_completion_length", "max_completion_length"),
        ("chat_template", "chat_template"),
    ):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.lora:
        data["lora"] = True
    data["out"] = str(args.out)
    if not data.get("model"):
        raise ValueError("--agent vlm needs --model PATH (a local Qwen2.5-VL or Qwen3-VL folder)")
    out = train_vlm(VLMTrainConfig.from_dict(data), progress=not args.no_progress)
    print(f"vlm {data.get('reward', 'iapo')}: saved to {out}; benchmark it with iapo-bench run --agents vlm:{out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
