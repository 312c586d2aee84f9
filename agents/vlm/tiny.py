"""Tiny randomly initialised Qwen2.5-VL and Qwen3-VL models, built offline, for tests and demos of the whole
VLM track.

    python -m iapo_gym.agents.vlm.tiny --out DIR [--family qwen2_5_vl|qwen3_vl] [--layers 2 --hidden 64 --seed 0]

writes a folder that ``from_pretrained(DIR)`` loads like a real checkpoint: the model (safetensors), a
byte-level BPE tokenizer trained on the spot with the Qwen special tokens, the family's *stock* chat template
(Qwen2.5-VL's cannot render tool calls: loading it switches to the tool template shipped with iapo-gym, as
it does for a real Qwen2.5-VL checkpoint; Qwen3-VL's renders tools and is used as is) and the family's
image processor (Qwen2.5-VL: patch 14; Qwen3-VL: patch 16; merge 2, temporal patch 2, as the real models). The model knows nothing: its
generations are gibberish, which is exactly what the error paths need; it runs forward + backward in tens of
milliseconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The special tokens of Qwen2.5-VL's tokenizer that matter here (ids follow the BPE vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: Added but not special (as in Qwen2.5): kept when decoding with ``skip_special_tokens=True``.
ADDED_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>")

FAMILIES = ("qwen2_5_vl", "qwen3_vl")

# Qwen2.5-VL's stock chat template (images/videos in content lists; no tools, tool calls or tool messages).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split (words, single digits, punctuation runs, whitespace).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _corpus() -> list[str]:
    """Text to train the toy BPE on: the prompts, tool calls, questions and answers of this package."""
    from iapo_gym.tools import BUILTIN_TOOLS

    from .chat import tool_schemas
    from .prompt import DEFAULT_SYSTEM

    defs = "\n".join(json.dumps(d) for d in tool_schemas(BUILTIN_TOOLS))
    lines = [DEFAULT_SYSTEM, defs, "# Tools\n\nYou may call one or more functions to assist with the user query."]
    lines += [
        '<tool_call>{"name": "zoom", "arguments": {"box": [0.1, 0.2, 0.45, 0.6]}}</tool_call>',
        '<tool_call>{"name": "ocr", "arguments": {"box": [0.0, 0.5, 0.5, 1.0]}}</tool_call>',
        '<tool_call>{"name": "focus", "arguments": {"axis": "rows", "labels": ["Total"], "mode": "mask"}}</tool_call>',
        "<answer>42</answer> <answer>yes</answer> <answer>true</answer> <answer>red</answer>",
        "What is the value of the bar labelled Kyiv? Which row has the largest total? Is the statement true?",
        "error: malformed JSON in tool call; unknown tool; box is outside [0, 1]; (no legible text)",
        "0 1 2 3 4 5 6 7 8 9 10 25 50 75 100 0.25 0.5 0.75 1.0",
    ]
    return lines * 4


def build_tokenizer(vocab_size: int = 640, chat_template: str = CHAT_TEMPLATE):
    """A byte-level BPE tokenizer (Qwen2's pre-tokenizer) with the Qwen special tokens and chat template."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")],
        chat_template=chat_template,
        model_max_length=32768,
        padding_side="left",
    )
    return fast


def build_tiny_vlm(
    out: str | os.PathLike[str],
    *,
    family: str = "qwen2_5_vl",
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vision_depth: int = 1,
    vision_hidden: int = 32,
    vocab_size: int = 640,
    seed: int = 0,
    image_processor: str = "pil",
) -> Path:
    """Build and save a tiny random Qwen2.5-VL or Qwen3-VL (model, tokenizer, image processor) into ``out``.

    Args:
        out: the folder (created; written atomically: a temporary sibling renamed into place).
        family: ``"qwen2_5_vl"`` (stock chat template without tools) or ``"qwen3_vl"`` (its own tool template).
        layers, hidden, heads, kv_heads: the language model's size (``hidden`` divisible by ``heads``,
            head dim even).
        vision_depth, vision_hidden: the vision tower's size (merge 2, temporal patch 2).
        vocab_size: BPE vocabulary size before special tokens.
        seed: torch seed of the random initialisation (different seeds: different "models").
        image_processor: ``"pil"`` (``Qwen2VLImageProcessorPil``) or ``"torchvision"``.

    Returns:
        The folder's path.
    """
    import torch
    import transformers
    from transformers import GenerationConfig

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    if hidden % heads or (hidden // heads) % 2:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads}) into an even head dim")
    if image_processor not in ("pil", "torchvision"):
        raise ValueError(f"image_processor must be 'pil' or 'torchvision'; got {image_processor!r}")
    head_dim = hidden // heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # t, h, w sections summing to head_dim / 2
    if family == "qwen3_vl":
        from trl.chat_template_utils import qwen3_vl_chat_template as template  # Qwen3-VL's own template
    else:
        template = CHAT_TEMPLATE
    tokenizer = build_tokenizer(vocab_size, template)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    tokens = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": False,
    }
    patch = 16 if family == "qwen3_vl" else 14
    config: Any  # the family's config class, which only its model class takes
    model_cls: type[transformers.PreTrainedModel]
    proc_cls: type[transformers.ProcessorMixin]
    video_cls: type[transformers.BaseVideoProcessor]
    if family == "qwen3_vl":
        config = transformers.Qwen3VLConfig(
            text_config={
                **text,
                "head_dim": head_dim,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 1000000.0,
                    "mrope_section": mrope,
                    "mrope_interleaved": True,
                },
            },
            vision_config={
                "depth": vision_depth,
                "hidden_size": vision_hidden,
                "intermediate_size": 2 * vision_hidden,
                "num_heads": 2,
                "out_hidden_size": hidden,
                "patch_size": patch,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "num_position_embeddings": 64,
                "deepstack_visual_indexes": [],
            },
            **tokens,
        )
        model_cls, proc_cls, video_cls = (
            transformers.Qwen3VLForConditionalGeneration,
            transformers.Qwen3VLProcessor,
            transformers.Qwen3VLVideoProcessor,
        )
    else:
        config = transformers.Qwen2_5_VLConfig(
            text_config={
                **text,
                "max_window_layers": layers,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
            },
            vision_config={
                "depth": vision_depth,
                "hidden_size": vision_hidden,
                "intermediate_size": 2 * vision_hidden,
                "num_heads": 2,
                "out_hidden_size": hidden,
                "patch_size": patch,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "window_size": 112,
                "fullatt_block_indexes": [vision_depth - 1],
                "tokens_per_second": 2,
            },
            **tokens,
        )
        model_cls, proc_cls, video_cls = (
            transformers.Qwen2_5_VLForConditionalGeneration,
            transformers.Qwen2_5_VLProcessor,
            transformers.Qwen2VLVideoProcessor,
        )
    torch.manual_seed(seed)
    # transformers wraps PreTrainedModel.to with functools.wraps, which typeshed types as an unbound function
    model = model_cls(config).to(torch.float32).eval()  # type: ignore[arg-type]
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
    )
    image_cls = transformers.Qwen2VLImageProcessorPil if image_processor == "pil" else transformers.Qwen2VLImageProcessor
    processor = proc_cls(
        image_processor=image_cls(patch_size=patch, merge_size=2, temporal_patch_size=2),
        tokenizer=tokenizer,
        video_processor=video_cls(patch_size=patch, merge_size=2, temporal_patch_size=2),
        chat_template=template,
    )

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # record the image processor class really used (save_pretrained names the torchvision one for both)
        proc_cfg = json.loads((tmp / "processor_config.json").read_text())
        proc_cfg["image_processor"]["image_processor_type"] = type(processor.image_processor).__name__
        (tmp / "processor_config.json").write_text(json.dumps(proc_cfg, indent=2) + "\n")
        (tmp / "iapo_tiny.json").write_text(
            json.dumps(
                {
                    "family": family,
                    "layers": layers,
                    "hidden": hidden,
                    "heads": heads,
                    "kv_heads": kv_heads,
                    "vision_depth": vision_depth,
                    "vision_hidden": vision_hidden,
                    "vocab_size": vocab_size,
                    "seed": seed,
                    "parameters": int(sum(p.numel() for p in model.parameters())),
                },
                indent=2,
            )
            + "\n"
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iapo_gym.agents.vlm.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the model into")
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="qwen2_5_vl",
        help="qwen2_5_vl (stock template without tools) or qwen3_vl (its own tool template)",
    )
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vision-depth", type=int, default=1)
    parser.add_argument("--vision-hidden", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-processor", choices=("pil", "torchvision"), default="pil")
    a = parser.parse_args(argv)
    path = build_tiny_vlm(
        a.out,
        family=a.family,
        layers=a.layers,
        hidden=a.hidden,
        heads=a.heads,
        kv_heads=a.kv_heads,
        vision_depth=a.vision_depth,
        vision_hidden=a.vision_hidden,
        vocab_size=a.vocab_size,
        seed=a.seed,
        image_processor=a.image_processor,
    )
    info = json.loads((path / "iapo_tiny.json").read_text())
    name = {"qwen2_5_vl": "Qwen2.5-VL", "qwen3_vl": "Qwen3-VL"}[a.family]
    print(f"wrote a tiny {name} ({info['parameters']:,} parameters) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
