"""The compact multimodal policy: a small PyTorch network that reads the glance, the crop, the question and
the last tool output, and emits a structured tool call (tool, box, focus label, answer).

Small enough to train on a laptop CPU in minutes. Its heads are the components of
:class:`~iapo_gym.wrappers.ActionCodec`, so it can express every move the oracle makes: a box on a 16x16
grid of centres with five sizes, a focus label, and an answer from the answer vocabulary. Two inductive
biases keep it learnable:

- the box-centre logits are a spatial map over the glance features, modulated by the question (FiLM), so
  "where to look" is a per-location decision rather than 256 unrelated classes;
- the answer and focus-label logits get a differentiable *copy* score: the similarity of each candidate's
  token embedding to the tokens of the tool output (answers) or the question (labels). Reading a number
  with OCR and answering it is then one learned scale away, and the answer's attribution flows to the
  tool-output tokens it copied, which is what the attribution teacher expects.
- with ``copy_slots`` (:class:`CompactConfig`), answers are no longer limited to the answer vocabulary: a
  pointer head scores each of the first ``copy_slots`` tool-output tokens (its embedding, what kind of
  token it is and where it stands), so a value read off a real chart ("34.5", "Germany") is answered by
  pointing at it. Behaviour cloning then imitates a copy wherever the answer is a token of the tool output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iapo_gym.attribution import (
    PIXEL_BASELINES,
    attribute,
    integrated_gradients,
    reduce_to_components,
    view_cell_weights,
)
from iapo_gym.text import OUTPUT_LENGTH, QUERY_LENGTH, VOCAB_SIZE, encode, token_id, tokenize
from iapo_gym.tools import BUILTIN_TOOLS
from iapo_gym.validation import check_ints
from iapo_gym.wrappers import ActionCodec

INPUTS = ("glance", "crop", "question", "tool_output")
"""The attributed inputs, in order: two images (B, 3, V, V) and two token-embedding tensors (B, L, D)."""


@dataclass
class CompactConfig:
    """Architecture of the compact policy (saved in every checkpoint)."""

    view_size: int = 128
    grid: int = 32
    sizes: tuple[float, ...] = (1 / 32, 3 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
    width: int = 32
    embed_dim: int = 32
    hidden: int = 128
    vocab_size: int = VOCAB_SIZE
    question_length: int = QUERY_LENGTH
    output_length: int = OUTPUT_LENGTH
    tools: tuple[str, ...] = field(default_factory=lambda: tuple(BUILTIN_TOOLS))
    copy_slots: int = 0
    """Tool-output tokens an answer may copy (0: answers come from the answer vocabulary only)."""

    def __post_init__(self) -> None:
        self.tools = tuple(self.tools)
        self.sizes = tuple(float(x) for x in self.sizes)
        check_ints(
            self, ("view_size", "grid", "width", "embed_dim", "hidden", "vocab_size", "question_length", "output_length"), 1
        )
        check_ints(self, ("copy_slots",), 0)
        if self.view_size % 8:
            raise ValueError(f"CompactConfig.view_size must be a multiple of 8; got {self.view_size}")
        if self.copy_slots > self.output_length:
            raise ValueError(
                f"CompactConfig.copy_slots must be at most output_length ({self.output_length}); got {self.copy_slots}"
            )


TOKEN_KINDS = 5
"""Features of a tool-output token for the copy pointer: number, decimal number, word, punctuation, position."""


def token_kinds(text: str, length: int) -> np.ndarray:
    """(length, :data:`TOKEN_KINDS`) float32: what kind each token of ``text`` is, and its relative position (the
    pointer's view of a token it has never seen: an unseen number's embedding is a hash, its kind is not)."""
    out = np.zeros((length, TOKEN_KINDS), dtype=np.float32)
    for k, tok in enumerate(tokenize(text)[:length]):
        number = tok.lstrip("-").replace(".", "", 1).isdigit()
        out[k] = (number, number and "." in tok, tok.isalpha(), not tok[0].isalnum() and not number, k / length)
    return out


def _candidate_tokens(strings: Sequence[str], vocab_size: int) -> Tensor:
    """Token id of each candidate string (its last token: "-5" -> "5" shares the copy of "5")."""
    ids = []
    for s in strings:
        toks = tokenize(s)
        ids.append(token_id(toks[-1], vocab_size) if toks else 0)
    return torch.tensor(ids, dtype=torch.long)


class CompactPolicyNet(nn.Module):
    """Glance + crop CNN, question/tool-output token embeddings, one categorical head per action component."""

    answer_tokens: Tensor  # buffers, registered in __init__
    label_tokens: Tensor

    def __init__(self, config: CompactConfig, codec: ActionCodec) -> None:
        super().__init__()
        c, w, d = config, config.width, config.embed_dim
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(3, w, 4, stride=4), nn.ReLU())  # V -> V/4 (fine: where to look)
        self.image_encoder = nn.Sequential(  # V/4 -> V/8 feature map (context)
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(),
        )
        self.skip = nn.Conv2d(w + 2, w, 1)  # + (x, y) coordinates: "the lowest point" is a place, not a pattern
        self.embedding = nn.Embedding(c.vocab_size, d, padding_idx=0)
        self.question_proj = nn.Linear(d, d)
        self.output_proj = nn.Linear(d, d)
        self.film = nn.Linear(d, 2 * w)
        self.cell_head = nn.Conv2d(w, 1, 1)
        self.trunk = nn.Sequential(nn.Linear(2 * w + 2 * d + 6, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU())
        sizes = dict(zip(codec.components, codec.component_sizes))
        sizes["answer"] = len(codec.answers)  # the vocabulary's; the copy slots get the pointer's scores
        self.heads = nn.ModuleDict({k: nn.Linear(c.hidden, n) for k, n in sizes.items() if k != "cell"})
        self.copy_scale = nn.Parameter(torch.tensor([1.0, 1.0]))  # answers from tool output, labels from question
        self.register_buffer("answer_tokens", _candidate_tokens(codec.answers, c.vocab_size), persistent=False)
        self.register_buffer("label_tokens", _candidate_tokens(codec.focus_labels, c.vocab_size), persistent=False)
        if c.copy_slots:  # the pointer: one score per copyable tool-output token
            self.pointer_token = nn.Linear(d, d)
            self.pointer_kind = nn.Linear(TOKEN_KINDS, d)
            self.pointer_query = nn.Linear(c.hidden, d)

    def embed(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)

    @staticmethod
    def _pool(emb: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(emb.dtype)
        return (emb * m).sum(1) / m.sum(1).clamp(min=1.0)

    def _copy(self, emb: Tensor, mask: Tensor, candidates: Tensor) -> Tensor:
        """Soft "is this candidate's token among these tokens": logsumexp over tokens of scaled similarity."""
        cand = F.normalize(self.embedding(candidates), dim=-1)  # (N, D)
        sim = torch.einsum("bld,nd->bln", F.normalize(emb, dim=-1), cand) * 8.0
        sim = sim.masked_fill(~mask.unsqueeze(-1), -1e4)
        score = torch.logsumexp(sim, dim=1) - 8.0  # ~0 for an exact match, very negative for none
        return score.clamp(min=-8.0)

    def forward(
        self,
        glance: Tensor,
        crop: Tensor,
        question: Tensor,
        tool_output: Tensor,
        q_mask: Tensor,
        o_mask: Tensor,
        aux: Tensor,
        o_kinds: Tensor,
    ) -> dict[str, Tensor]:
        """Logits per component. ``question``/``tool_output`` are token *embeddings* (so they can be
        attributed); the masks mark real tokens; ``aux`` is (view_box, budget fraction, whether a tool-output
        token repeats a question token); ``o_kinds`` the tool-output tokens' :func:`token_kinds`."""
        sg = self.stem(glance)
        fg, fc = self.image_encoder(sg), self.image_encoder(self.stem(crop))
        q = torch.tanh(self.question_proj(self._pool(question, q_mask)))
        o = torch.tanh(self.output_proj(self._pool(tool_output, o_mask)))
        gamma, beta = (x[..., None, None] for x in self.film(q).chunk(2, dim=-1))
        fmod = torch.relu(fg * (1 + gamma) + beta)
        # box centres on the fine (V/4) map: the context map upsampled plus the question-modulated stem
        n, _, hh, ww = sg.shape
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, hh, device=sg.device), torch.linspace(-1, 1, ww, device=sg.device), indexing="ij"
        )
        coords = torch.stack([xs, ys]).expand(n, 2, hh, ww)
        skip = self.skip(torch.cat([sg, coords], dim=1))
        fine = torch.relu(F.interpolate(fmod, size=(hh, ww), mode="nearest") + skip * (1 + gamma) + beta)
        cell = F.adaptive_avg_pool2d(self.cell_head(fine), self.config.grid).flatten(1)
        h = self.trunk(torch.cat([fmod.mean((2, 3)), fc.mean((2, 3)), q, o, aux], dim=-1))
        logits = {k: head(h) for k, head in self.heads.items()}
        logits["cell"] = cell
        logits["answer"] = logits["answer"] + 4.0 * self.copy_scale[0] * self._copy(tool_output, o_mask, self.answer_tokens)
        if self.config.copy_slots:
            n = self.config.copy_slots
            keys = torch.tanh(self.pointer_token(tool_output[:, :n]) + self.pointer_kind(o_kinds[:, :n]))
            pointer = torch.einsum("bnd,bd->bn", keys, self.pointer_query(h)).masked_fill(~o_mask[:, :n], -1e4)
            logits["answer"] = torch.cat([logits["answer"], pointer], dim=1)
        logits["label"] = logits["label"] + 4.0 * self.copy_scale[1] * self._copy(question, q_mask, self.label_tokens)
        return logits


@dataclass
class ObservationBatch:
    """Observations as tensors: images float in [0, 1] (B, 3, V, V), token ids, masks, aux features."""

    glance: Tensor
    crop: Tensor
    q_ids: Tensor
    o_ids: Tensor
    aux: Tensor
    o_kinds: Tensor
    """(B, output length, :data:`TOKEN_KINDS`): what kind each tool-output token is (for the copy pointer)."""

    FIELDS = ("glance", "crop", "q_ids", "o_ids", "aux", "o_kinds")

    def __len__(self) -> int:
        return int(self.glance.shape[0])

    def index(self, idx: Tensor | slice) -> ObservationBatch:
        return ObservationBatch(*(getattr(self, f)[idx] for f in self.FIELDS))

    @staticmethod
    def cat(batches: Sequence[ObservationBatch]) -> ObservationBatch:
        return ObservationBatch(*(torch.cat([getattr(b, f) for b in batches]) for f in ObservationBatch.FIELDS))


def _image(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[0] != size:
        import cv2

        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
    return x


def observations_to_batch(observations: Sequence[dict[str, Any]], config: CompactConfig) -> ObservationBatch:
    """Stack raw env observations into a :class:`ObservationBatch` (images resized to the policy's view size)."""
    v = config.view_size
    glance = np.stack([_image(o["image"], v) for o in observations])
    crop = np.stack([_image(o["crop"], v) for o in observations])
    q = np.stack([encode(str(o["question"]), config.question_length, config.vocab_size) for o in observations])
    out = np.stack([encode(str(o["tool_output"]), config.output_length, config.vocab_size) for o in observations])
    kinds = np.stack([token_kinds(str(o["tool_output"]), config.output_length) for o in observations])
    # "does a tool-output token repeat a question token" (what a true/false statement turns on), by exact id
    repeat = ((q[:, :, None] == out[:, None, :]) & (q[:, :, None] > 0)).any(axis=(1, 2)).astype(np.float32)
    aux = np.stack(
        [
            np.concatenate([np.asarray(o["view_box"], np.float32), [float(o["budget"]) / 8.0, r]])
            for o, r in zip(observations, repeat)
        ]
    )
    to_img = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float().div_(255.0)  # noqa: E731
    return ObservationBatch(
        to_img(glance),
        to_img(crop),
        torch.from_numpy(q),
        torch.from_numpy(out),
        torch.from_numpy(aux).float(),
        torch.from_numpy(kinds),
    )


def used_components(codec: ActionCodec, tools: Tensor) -> Tensor:
    """(B, 7) bool: which components an action with these tool indices actually uses (the rest are ignored
    by the env, so they take no part in the action's log-probability)."""
    table = torch.zeros(len(codec.tools), len(codec.components), dtype=torch.bool)
    for t, kind in enumerate(codec.tool_kinds):
        names = {
            "box": ("tool", "cell", "size"),
            "focus": ("tool", "axis", "label", "mode"),
            "answer": ("tool", "answer"),
            "none": ("tool",),
        }[kind]
        for n in names:
            table[t, codec.components.index(n)] = True
    return table[tools]


class CompactPolicy(nn.Module):
    """The network plus everything to turn observations into actions and actions into log-probabilities."""

    def __init__(self, config: CompactConfig | None = None) -> None:
        super().__init__()
        self.config = config or CompactConfig()
        self.codec = ActionCodec(
            self.config.tools, grid=self.config.grid, sizes=self.config.sizes, copy_slots=self.config.copy_slots
        )
        self.net = CompactPolicyNet(self.config, self.codec)

    def inputs(self, batch: ObservationBatch) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """(attributed inputs, other forward args) of a batch, in :data:`INPUTS` order."""
        q_mask, o_mask = batch.q_ids > 0, batch.o_ids > 0
        attributed = (batch.glance, batch.crop, self.net.embed(batch.q_ids), self.net.embed(batch.o_ids))
        return attributed, (q_mask, o_mask, batch.aux, batch.o_kinds)

    def logits(self, batch: ObservationBatch) -> dict[str, Tensor]:
        attributed, extra = self.inputs(batch)
        return self.net(*attributed, *extra)

    def log_prob_from_logits(self, logits: dict[str, Tensor], actions: Tensor) -> tuple[Tensor, Tensor]:
        """(log-probability, entropy) per action, over the components the chosen tool uses."""
        used = used_components(self.codec, actions[:, 0])
        logp = torch.zeros(actions.shape[0], device=actions.device)
        ent = torch.zeros_like(logp)
        for i, name in enumerate(self.codec.components):
            lp = F.log_softmax(logits[name], dim=-1)
            logp = logp + torch.where(used[:, i], lp.gather(1, actions[:, i : i + 1]).squeeze(1), 0.0)
            ent = ent + torch.where(used[:, i], -(lp.exp() * lp).sum(-1), 0.0)
        return logp, ent

    def log_prob(self, batch: ObservationBatch, actions: Tensor) -> tuple[Tensor, Tensor]:
        return self.log_prob_from_logits(self.logits(batch), actions)

    @torch.no_grad()
    def sample(self, batch: ObservationBatch, generator: torch.Generator | None = None, greedy: bool = False) -> Tensor:
        """(B, 7) int64 structured actions."""
        logits = self.logits(batch)
        cols = []
        for name in self.codec.components:
            lg = logits[name]
            cols.append(lg.argmax(-1) if greedy else torch.multinomial(F.softmax(lg, -1), 1, generator=generator).squeeze(1))
        return torch.stack(cols, dim=1)

    def act(
        self, observations: Sequence[dict[str, Any]], generator: torch.Generator | None = None, greedy: bool = True
    ) -> list[str]:
        """Tool-call strings for raw env observations (what every agent built on this policy sends)."""
        return self.to_calls(
            self.sample(observations_to_batch(observations, self.config), generator, greedy=greedy), observations
        )

    def to_calls(self, actions: Tensor, observations: Sequence[dict[str, Any]] | None = None) -> list[str]:
        """Tool-call strings of structured actions; a copied answer reads its text from the observation's tool output."""
        outputs = [None] * len(actions) if observations is None else [str(o["tool_output"]) for o in observations]
        return [self.codec.decode(a, out).to_json() for a, out in zip(actions.cpu().numpy(), outputs)]

    def encode(self, call: str, observation: dict[str, Any]) -> np.ndarray:
        """The structured action of a tool call made at ``observation``: an answer that is a token of the tool
        output is a copy of it when this policy can copy (what behaviour cloning imitates and IAPO attributes)."""
        return self.codec.encode(call, str(observation["tool_output"]), prefer_copy=self.config.copy_slots > 0)

    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["tools"] = list(self.config.tools)
        d["sizes"] = list(self.config.sizes)
        return d

    def attribution(
        self,
        batch: ObservationBatch,
        actions: Tensor,
        source_hw: Sequence[tuple[int, int]],
        grid: int = 4,
        method: str = "gradient_x_input",
        *,
        create_graph: bool = False,
        pixel_baseline: str = "black",
        **method_kwargs: Any,
    ) -> Tensor:
        """Attribution of each decision's log-probability over :meth:`layout` components: ``(B, n)``
        non-negative raw scores (normalise per row to compare).

        The glance's pixel attributions map to original-image cells through the full box, the crop's through
        its ``view_box`` (both letterboxed as the env draws them: :func:`~iapo_gym.attribution.view_cell_weights`);
        token attributions are summed over the embedding; magnitudes are taken per pixel and per token.
        Baselines: zero embeddings, and black images (``pixel_baseline="black"``, captum's default) or white
        ones (``"white"``: a blank page, the absence of ink on a chart or table, where a black baseline gives
        black ink, text and marks, no attribution of their own).

        ``gradient_x_input`` and ``integrated_gradients`` (``n_steps``) are computed here in batch, and with
        ``create_graph=True`` the result is differentiable in the parameters (the IAPO alignment loss moves
        the attribution itself); any other registered method goes through captum, without gradients.
        """
        if pixel_baseline not in PIXEL_BASELINES:
            raise ValueError(f"pixel_baseline must be one of {', '.join(PIXEL_BASELINES)}; got {pixel_baseline!r}")
        attributed, extra = self.inputs(batch)
        baselines = (PIXEL_BASELINES[pixel_baseline],) * 2 + (0.0, 0.0)  # glance, crop, question, tool output
        if method in ("gradient_x_input", "integrated_gradients"):
            g_map, c_map, q_tok, o_tok = self._gradient_attribution(
                attributed,
                extra,
                actions,
                int(method_kwargs.get("n_steps", 8)) if method == "integrated_gradients" else 0,
                create_graph,
                baselines,
            )
        else:
            if create_graph:
                raise ValueError(
                    f"attribution method {method!r} is not differentiable; use gradient_x_input or "
                    "integrated_gradients for the IAPO loss form"
                )

            def forward(
                glance: Tensor,
                crop: Tensor,
                q: Tensor,
                o: Tensor,
                q_mask: Tensor,
                o_mask: Tensor,
                aux: Tensor,
                o_kinds: Tensor,
                acts: Tensor,
            ) -> Tensor:
                logp, _ = self.log_prob_from_logits(self.net(glance, crop, q, o, q_mask, o_mask, aux, o_kinds), acts)
                return logp

            attrs = attribute(
                forward,
                tuple(x.detach() for x in attributed),
                baselines=baselines,
                method=method,
                additional_forward_args=(*extra, actions),
                **method_kwargs,
            )
            g_map, c_map, q_tok, o_tok = reduce_to_components(attrs, ("image", "image", "tokens", "tokens"))
        v = self.config.view_size
        boxes = batch.aux[:, :4].numpy()
        hws = [tuple(int(x) for x in hw) for hw in source_hw]
        glance = {hw: view_cell_weights((0.0, 0.0, 1.0, 1.0), grid, hw, v) for hw in set(hws)}
        crop = [view_cell_weights(tuple(box), grid, hw, v) for box, hw in zip(boxes, hws)]

        def to_cells(pixel_map: Tensor, weights: list[tuple[np.ndarray, np.ndarray]]) -> Tensor:
            rows, cols = (torch.from_numpy(np.stack([w[j] for w in weights])).to(pixel_map.dtype) for j in (0, 1))
            return torch.einsum("bvg,bvw,bwh->bgh", rows, pixel_map.abs(), cols)

        cells = to_cells(g_map, [glance[hw] for hw in hws]) + to_cells(c_map, crop)
        return torch.cat([cells.flatten(1), q_tok.abs(), o_tok.abs()], dim=1)

    def _gradient_attribution(
        self,
        attributed: tuple[Tensor, ...],
        extra: tuple[Tensor, ...],
        actions: Tensor,
        n_steps: int,
        create_graph: bool,
        baselines: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0),
    ) -> tuple[Tensor, ...]:
        """Gradient x (input - baseline) (``n_steps=0``) or integrated gradients from the baselines (``n_steps``
        midpoint Riemann points, all in one batched pass), reduced to pixel maps and token scores: both through
        :func:`~iapo_gym.attribution.integrated_gradients` (gradient x input is its one point at the input)."""

        def forward(glance: Tensor, crop: Tensor, q: Tensor, o: Tensor, *rest: Tensor) -> Tensor:
            *args, acts = rest
            logp, _ = self.log_prob_from_logits(self.net(glance, crop, q, o, *args), acts)
            return logp

        attrs = integrated_gradients(
            forward,
            attributed,
            baselines=baselines,
            additional_forward_args=(*extra, actions),
            n_steps=max(1, n_steps),
            integration="riemann_middle" if n_steps else "riemann_right",
            create_graph=create_graph,
        )
        return (attrs[0].sum(1), attrs[1].sum(1), attrs[2].sum(-1), attrs[3].sum(-1))
