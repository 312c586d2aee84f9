"""Loading a Qwen2.5-VL-family checkpoint, encoding dialogues token by token with their block labels, batched
generation and teacher-forced log-probabilities.

Known pitfalls handled here:

- Qwen2.5-VL needs ``mm_token_type_ids`` (1 at image-pad tokens) to build its 3-D (temporal, height, width)
  rotary positions; without them it silently falls back to 1-D positions. :meth:`VLM.position_ids`
  computes the positions explicitly from them, so every forward pass (also ones given ``inputs_embeds``)
  uses the right ones, and no stale ``rope_deltas`` from an earlier ``generate`` leak in.
- Generation suppresses the vision placeholder tokens (a sampled ``<|image_pad|>`` would break the next
  prompt's image count), and free text put into the chat is kept from spelling out special tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iapo_gym.io import atomic_write_dir, recover_dir
from iapo_gym.text import WORD_PATTERN

from .chat import ensure_tool_template, family_of
from .prompt import Dialogue, chat_messages, clean, tool_definitions

AGENT_CONFIG = "iapo_vlm.json"
TEXT_BLOCKS = ("context", "tool_defs", "query", "tool_outputs")


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """``"auto"`` / ``None``: bfloat16 on a GPU, float32 on the CPU; else a torch dtype or its name."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ValueError(f"dtype must be one of {', '.join(table)}, 'auto' or a torch.dtype; got {dtype!r}")
    return table[dtype]


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Encoded:
    """One dialogue (and optionally an action) as model inputs, with where every token belongs.

    ``kinds[i]`` is the token's block (``context``, ``tool_defs``, ``query``, ``tool_outputs``, ``chat``,
    ``image``, ``action``); ``words[i]`` the index of the word of its block it falls in (text blocks; word
    indices run on across segments of the same block), else -1; ``image_index[i]`` which image an image-pad
    token shows (else -1). ``images`` describes each image: its view box, view size, its
    ``(t, h, w)`` patch grid, and the range of its rows in ``pixel_values``.
    """

    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    kinds: list[str]
    words: np.ndarray
    image_index: np.ndarray
    images: list[dict[str, Any]]
    block_words: dict[str, list[str]]
    action_start: int
    source_hw: tuple[int, int]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def action_length(self) -> int:
        return len(self) - self.action_start


@dataclass
class Batch:
    """Left-padded model inputs for a list of :class:`Encoded` (actions right-aligned at the end)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    position_ids: torch.Tensor
    action_lengths: list[int] = field(default_factory=list)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
            "position_ids": self.position_ids,
            "mm_token_type_ids": self.mm_token_type_ids,
        }


def _word_spans(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in WORD_PATTERN.finditer(text.lower())]


def _token_words(offsets: Sequence[tuple[int, int]], text: str) -> tuple[list[int], list[str]]:
    """For each token (char offsets into ``text``), the index of the word of :func:`iapo_gym.text.tokenize`
    it overlaps (a whitespace-only token joins the word before it, or the first word); and the words."""
    spans = _word_spans(text)
    words = [w for _, _, w in spans]
    if not spans:
        return [0] * len(offsets), []
    owner = np.full(len(text) + 1, -1, dtype=np.int64)
    for i, (s, e, _) in enumerate(spans):
        owner[s:e] = i
    out, last = [], 0
    for s, e in offsets:
        hit = owner[s : max(e, s + 1)]
        hit = hit[hit >= 0]
        if hit.size:
            last = int(hit[0])
        out.append(last)
    return out, words


def _block_spans(text: str, dialogue: Dialogue) -> list[tuple[int, int, str, str]]:
    """``(start, end, block, text)`` of the labelled parts of a rendered prompt, in order: the instructions,
    the tool definitions (between ``<tools>`` and ``</tools>``), the question and each tool output. A part the
    template did not render verbatim is left to ``chat``."""
    spans: list[tuple[int, int, str, str]] = []
    cursor = 0

    def find(needle: str, kind: str) -> None:
        nonlocal cursor
        if not needle:
            return
        i = text.find(needle, cursor)
        if i >= 0:
            spans.append((i, i + len(needle), kind, needle))
            cursor = i + len(needle)

    find(clean(dialogue.system), "context")
    a = text.find("<tools>\n", cursor)  # the list itself, not "within <tools></tools> XML tags"
    b = text.find("</tools>", a + 1) if a >= 0 else -1
    if a >= 0 and b > a:
        spans.append((a + len("<tools>"), b, "tool_defs", text[a + len("<tools>") : b]))
        cursor = b
    find(clean(dialogue.question), "query")
    for turn in dialogue.turns:
        find(clean(turn.text), "tool_outputs")
    return spans


def _span_owners(spans: Sequence[tuple[int, int, str, str]]) -> list[tuple[np.ndarray, int]]:
    """Per span: the word index (of its block) owning each character (a character between words belongs to
    the word before it, or the first one), and the span's word count."""
    out = []
    for _, _, _, txt in spans:
        found = _word_spans(txt)
        owner = np.full(len(txt) + 1, -1, dtype=np.int64)
        for i, (s, e, _) in enumerate(found):
            owner[s:e] = i
        last = 0
        for c in range(len(owner)):  # forward fill: whitespace and punctuation join the word before
            if owner[c] >= 0:
                last = owner[c]
            else:
                owner[c] = last
        out.append((owner, len(found)))
    return out


def _label(
    s: int,
    e: int,
    spans: Sequence[tuple[int, int, str, str]],
    owners: Sequence[tuple[np.ndarray, int]],
    base_of: Mapping[int, int],
) -> tuple[str, int]:
    """The block and word index (within the block) of the token covering characters ``[s, e)`` of the prompt."""
    for i, (a, b, kind, _) in enumerate(spans):
        if s < b and e > a:
            owner, n = owners[i]
            if n == 0:  # no word in this part: count it with the block's previous word
                return kind, max(base_of[i] - 1, 0)
            hit = owner[max(s, a) - a : min(e, b) - a]
            return kind, base_of[i] + int(hit[np.flatnonzero(hit >= 0)[0]] if (hit >= 0).any() else 0)
    return "chat", -1


def load_processor(path: str | os.PathLike[str], trust_remote_code: bool = False) -> Any:
    """``AutoProcessor.from_pretrained(path)`` (local files only), with the image processor class that was
    saved: ``AutoProcessor`` picks the torchvision image processor even when ``preprocessor_config.json``
    names the PIL one, and the two resize differently."""
    import transformers
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    saved: dict[str, Any] = {}
    if (Path(path) / "preprocessor_config.json").is_file():
        saved = json.loads((Path(path) / "preprocessor_config.json").read_text())
    elif (Path(path) / "processor_config.json").is_file():
        saved = dict(json.loads((Path(path) / "processor_config.json").read_text()).get("image_processor") or {})
    cls = getattr(transformers, str(saved.get("image_processor_type")), None)
    if isinstance(cls, type) and type(processor.image_processor) is not cls:
        processor.image_processor = cls(**{k: v for k, v in saved.items() if k != "image_processor_type"})
    return processor


class VLM:
    """A Qwen-VL-family model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and its processor, with the encoding this package
    needs.

    Args:
        path: a local folder with a checkpoint (``from_pretrained(path, local_files_only=True)``), or a
            folder written by :meth:`save` (full weights or a LoRA adapter over a base folder).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (``None``/``"auto"``: CUDA when available).
        dtype: ``"auto"`` (bf16 on GPU, fp32 on CPU), ``"bfloat16"``, ``"float16"``, ``"float32"``.
        lora: ``None`` (full fine-tuning), ``True`` (LoRA r=16 on the language model's attention and MLP
            projections) or a dict of ``peft.LoraConfig`` arguments.
        trust_remote_code: passed to ``from_pretrained`` (off unless asked).
        attn_implementation: ``"sdpa"`` (default), ``"eager"``, ``"flash_attention_2"``...
        min_pixels, max_pixels: the image processor's pixel budget per image (``None``: the checkpoint's).
        chat_template: a tool-capable Jinja template (text or ``.jinja`` file) instead of the checkpoint's
            (default: the checkpoint's when it renders tools, else the one shipped for the family, see
            :func:`~iapo_gym.agents.vlm.chat.ensure_tool_template`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
        lora: bool | Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = "sdpa",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        chat_template: str | os.PathLike[str] | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText

        path = recover_dir(path)  # a save killed half-way
        if not path.is_dir():
            raise ValueError(f"model path {str(path)!r} is not a folder; give a local checkpoint folder (nothing is downloaded)")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.trust_remote_code = bool(trust_remote_code)
        self.attn_implementation = attn_implementation
        adapter = (path / "adapter_config.json").is_file()
        saved = json.loads((path / AGENT_CONFIG).read_text()) if (path / AGENT_CONFIG).is_file() else {}
        base_path = Path(saved["base_model"]) if adapter and saved.get("base_model") else path
        if adapter and not (path / "config.json").is_file() and base_path == path:
            raise ValueError(f"{path} holds a LoRA adapter but no base model path ({AGENT_CONFIG} 'base_model')")
        kw: dict[str, Any] = {"local_files_only": True, "trust_remote_code": self.trust_remote_code, "dtype": self.dtype}
        if attn_implementation:
            kw["attn_implementation"] = attn_implementation
        model: Any  # the transformers model, then maybe the PEFT model wrapping it
        try:
            model = AutoModelForImageTextToText.from_pretrained(str(base_path), **kw)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load a vision-language model from {str(base_path)!r}: {exc}") from exc
        proc_path = (
            path if (path / "preprocessor_config.json").is_file() or (path / "processor_config.json").is_file() else base_path
        )
        self.processor = load_processor(proc_path, trust_remote_code=self.trust_remote_code)
        self.family = family_of(model.config)
        self.template_source = ensure_tool_template(self.processor, self.family, str(path), chat_template)
        if min_pixels is not None or max_pixels is not None:
            size = dict(self.processor.image_processor.size)
            if min_pixels is not None:
                size["shortest_edge"] = int(min_pixels)
            if max_pixels is not None:
                size["longest_edge"] = int(max_pixels)
            self.processor.image_processor.size = size
        self.base_path = str(base_path)
        self.lora_config: dict[str, Any] | None = None
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
            self.lora_config = dict(saved.get("lora") or {})
        elif lora:
            model = self._add_lora(model, lora)
            self.lora_config = dict(lora) if isinstance(lora, Mapping) else {}
        self.model = model.to(self.device)
        self.model.eval()
        self._setup()

    @classmethod
    def wrap(cls, model: Any, processor: Any, source: str = "<in memory>", base_path: str | None = None) -> VLM:
        """A :class:`VLM` around an already loaded model and processor (e.g. the one a TRL trainer is training:
        ``model`` may be a peft model; its device and dtype are kept)."""
        self = cls.__new__(cls)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.trust_remote_code, self.attn_implementation = False, None
        self.processor, self.model = processor, model
        self.family = family_of(self.core.config)
        self.template_source = ensure_tool_template(processor, self.family, source)
        self.base_path = base_path or source
        self.lora_config = {} if hasattr(model, "get_base_model") else None
        self._setup()
        return self

    def _setup(self) -> None:
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        cfg = self.core.config
        self.image_token_id = int(cfg.image_token_id)
        self.vision_start_id = int(cfg.vision_start_token_id)
        self.vision_end_id = int(cfg.vision_end_token_id)
        self.image_pad = str(tok.convert_ids_to_tokens(self.image_token_id))
        eos = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
        self.eos_ids = [int(i) for i in eos if i is not None and i != tok.unk_token_id]
        names = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|im_start|>")
        self.suppress_ids = sorted(
            {int(i) for i in (tok.convert_tokens_to_ids(t) for t in names) if i is not None and i != tok.unk_token_id}
            | {self.image_token_id}
        )

    # -- parts -------------------------------------------------------------------------------------------
    @staticmethod
    def _add_lora(model: Any, lora: bool | Mapping[str, Any]) -> Any:
        from peft import LoraConfig, get_peft_model

        args: dict[str, Any] = {
            "r": 16,
            "lora_alpha": 32,
            "lora_dropout": 0.0,
            "target_modules": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        }
        if isinstance(lora, Mapping):
            args.update(lora)
        return get_peft_model(model, LoraConfig(**args))

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def core(self) -> Any:
        """The ``...ForConditionalGeneration`` module (inside a peft wrapper when LoRA is on; calling it
        runs the adapters)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "get_base_model")

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return (p for p in self.model.parameters() if p.requires_grad)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """No parameter gradients inside (attribution needs input gradients only: faster, no ``.grad`` mess)."""
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in flags:
                p.requires_grad_(f)

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The frozen reference policy: with LoRA, the same model with its adapters disabled."""
        if not self.is_lora:
            raise RuntimeError("reference() needs LoRA; a full fine-tune keeps a separate frozen copy")
        with self.model.disable_adapter():
            yield self.core

    # -- encoding ----------------------------------------------------------------------------------------
    def process_image(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pixel_values (N, C*T*P*P), grid_thw (3,))`` of one uint8 HxWx3 image."""
        out = self.processor.image_processor(images=[np.ascontiguousarray(image)], return_tensors="pt")
        return out["pixel_values"], out["image_grid_thw"][0]

    def render(self, dialogue: Dialogue) -> str:
        """The prompt text of ``dialogue`` from the model's chat template with the tools, ending with the
        assistant header (one ``<|image_pad|>`` per image, expanded by :meth:`encode`)."""
        return self.processor.apply_chat_template(
            chat_messages(dialogue),
            tools=tool_definitions(dialogue.tools, dialogue.tool_specs),
            tokenize=False,
            add_generation_prompt=True,
        )

    def encode(self, dialogue: Dialogue, action: str | None = None, action_ids: Sequence[int] | None = None) -> Encoded:
        """Token ids, image inputs and block labels of the prompt of ``dialogue`` (+ the action, if given).

        The prompt is the chat template's text (:meth:`render`); each token is labelled by where it falls:
        the instructions (``context``), between ``<tools>`` and ``</tools>`` (``tool_defs``), the question
        (``query``), a tool message's text (``tool_outputs``), an image, or template scaffolding and earlier
        actions (``chat``). ``action_ids`` (the exact generated ids) take precedence over tokenising ``action``.
        """
        tok = self.tokenizer
        merge = int(self.processor.image_processor.merge_size)
        text = self.render(dialogue)
        spans = _block_spans(text, dialogue)
        pad = self.image_pad
        pieces = text.split(pad)
        views = dialogue.images()
        if len(pieces) - 1 != len(views):
            raise ValueError(f"the chat template rendered {len(pieces) - 1} image placeholders for {len(views)} images")
        ids: list[int] = []
        kinds: list[str] = []
        words: list[int] = []
        image_index: list[int] = []
        pixel_values: list[torch.Tensor] = []
        grids: list[torch.Tensor] = []
        images: list[dict[str, Any]] = []
        block_words: dict[str, list[str]] = {k: [] for k in TEXT_BLOCKS}
        owners = _span_owners(spans)
        base_of: dict[int, int] = {}
        for i, (_, _, kind, txt) in enumerate(spans):
            base_of[i] = len(block_words[kind])
            block_words[kind] += [w for _, _, w in _word_spans(txt)]
        rows, start = 0, 0
        for p, piece in enumerate(pieces):
            if piece:
                enc = tok(piece, add_special_tokens=False, return_offsets_mapping=True)
                for t, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
                    kind, word = _label(start + s, start + max(e, s + 1), spans, owners, base_of)
                    ids.append(int(t))
                    kinds.append(kind)
                    words.append(word)
                    image_index.append(-1)
            start += len(piece) + len(pad)
            if p < len(views):
                view, box = views[p]
                pv, thw = self.process_image(view)
                n = int(thw.prod()) // (merge * merge)
                ids += [self.image_token_id] * n
                kinds += ["image"] * n
                words += [-1] * n
                image_index += [len(images)] * n
                images.append(
                    {
                        "view_box": tuple(float(v) for v in box),
                        "view_size": int(view.shape[0]),
                        "grid_thw": tuple(int(v) for v in thw),
                        "rows": (rows, rows + int(pv.shape[0])),
                        "merge": merge,
                    }
                )
                rows += int(pv.shape[0])
                pixel_values.append(pv)
                grids.append(thw)
        action_start = len(ids)
        if action_ids is None and action is not None:
            action_ids = tok(clean(action), add_special_tokens=False)["input_ids"]
        if action_ids is not None:
            ids += [int(i) for i in action_ids]
            n = len(action_ids)
            kinds += ["action"] * n
            words += [-1] * n
            image_index += [-1] * n
        ids_t = torch.tensor(ids, dtype=torch.long)
        return Encoded(
            input_ids=ids_t,
            mm_token_type_ids=(ids_t == self.image_token_id).to(torch.int32),
            pixel_values=torch.cat(pixel_values, 0),
            image_grid_thw=torch.stack(grids, 0).to(torch.long),
            kinds=kinds,
            words=np.asarray(words, dtype=np.int64),
            image_index=np.asarray(image_index, dtype=np.int64),
            images=images,
            block_words=block_words,
            action_start=action_start,
            source_hw=dialogue.hw(),
        )

    def collate(self, encoded: Sequence[Encoded]) -> Batch:
        """Left-pad a list of encodings into one batch on the model's device, with 3-D rope positions."""
        if not encoded:
            raise ValueError("collate() needs at least one encoding")
        length = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        mm = torch.zeros((len(encoded), length), dtype=torch.int32)
        for i, e in enumerate(encoded):
            ids[i, length - len(e) :] = e.input_ids
            mask[i, length - len(e) :] = 1
            mm[i, length - len(e) :] = e.mm_token_type_ids
        dev = self.device
        ids, mask, mm = ids.to(dev), mask.to(dev), mm.to(dev)
        pv = torch.cat([e.pixel_values for e in encoded], 0).to(dev, self.dtype)
        thw = torch.cat([e.image_grid_thw for e in encoded], 0).to(dev)
        return Batch(ids, mask, mm, pv, thw, self.position_ids(ids, mm, thw, mask), [e.action_length for e in encoded])

    def position_ids(
        self,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor,
        image_grid_thw: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Qwen2.5-VL's 3-D rope positions ``(3, B, T)`` (computed from ``mm_token_type_ids``)."""
        pos, _ = self.core.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw, attention_mask=attention_mask
        )
        return pos

    # -- generation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        dialogues: Sequence[Dialogue],
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        num_return_sequences: int = 1,
    ) -> list[tuple[str, list[int]]]:
        """Generate the next assistant message for each dialogue (batched): ``(text, token_ids)`` each,
        ``num_return_sequences`` per dialogue in order. ``token_ids`` are the generated ids up to and including
        the end-of-turn token (if one was generated); ``text`` is their decoding without special tokens."""
        batch = self.collate([self.encode(d) for d in dialogues])
        self.core.model.rope_deltas = None
        gen_kw: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens),
            "do_sample": bool(do_sample),
            "num_return_sequences": int(num_return_sequences),
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "suppress_tokens": self.suppress_ids,
        }
        if do_sample:
            gen_kw.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        else:
            gen_kw.update(temperature=None, top_p=None, top_k=None)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                pixel_values=batch.pixel_values,
                image_grid_thw=batch.image_grid_thw,
                mm_token_type_ids=batch.mm_token_type_ids,
                **gen_kw,
            )
        finally:
            self.core.model.rope_deltas = None
            self.model.train(was_training)
        new = out[:, batch.input_ids.shape[1] :].tolist()
        results = []
        for row in new:
            ids: list[int] = []
            for t in row:
                ids.append(int(t))
                if t in self.eos_ids:
                    break
            while ids and ids[-1] == self.pad_id and self.pad_id not in self.eos_ids:
                ids.pop()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results.append((text, ids))
        return results

    # -- teacher forcing -------------------------------------------------------------------------------------
    def action_logprobs(self, batch: Batch, module: Any | None = None) -> list[torch.Tensor]:
        """Per-token log-probabilities of each sequence's action tokens (its last ``action_lengths`` tokens),
        under ``module`` (default: the model; pass the reference). Differentiable unless under ``no_grad``."""
        module = self.core if module is None else module
        k = max(batch.action_lengths)
        if k == 0:
            return [torch.zeros(0, device=self.device) for _ in batch.action_lengths]
        out = module(**batch.model_inputs(), logits_to_keep=k + 1, use_cache=False)
        logits = out.logits[:, :-1].float()
        targets = batch.input_ids[:, -k:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return [logp[i, k - n :] for i, n in enumerate(batch.action_lengths)]

    # -- persistence -------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> Path:
        """Write the model (safetensors; a LoRA run writes its adapter and records its base folder), the
        processor and ``iapo_vlm.json`` into ``path``, atomically (temporary sibling renamed into place)."""

        def fill(tmp: Path) -> None:
            self.model.save_pretrained(str(tmp), safe_serialization=True)
            self.processor.save_pretrained(str(tmp))
            meta = {
                "base_model": self.base_path if self.is_lora else None,
                "lora": self.lora_config,
                "dtype": str(self.dtype).replace("torch.", ""),
            }
            meta.update(extra or {})
            (tmp / AGENT_CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

        return atomic_write_dir(path, fill)
