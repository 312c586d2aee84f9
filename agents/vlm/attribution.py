"""Attribution of a VLM's decision (the log-probability of its tool-call tokens) over its input, in the
shared :class:`~iapo_gym.attribution.ComponentLayout`.

Target: ``log p(action | prompt)``, the sum of the log-probabilities of the action's tokens, teacher-forced.

Methods (:class:`VLMAttributionConfig`):

- ``integrated_gradients`` (default, the paper's choice) and ``gradient_x_input`` (one step), through the
  shared :func:`iapo_gym.attribution.attribute`, over

  - ``image_input="embeddings"`` (default): the language model's input embeddings, image tokens included
    (the vision tower's output, one embedding per merged 2x2 patch group, replaces each ``<|image_pad|>``
    embedding); the baseline is zero for every prompt position;
  - ``image_input="pixels"``: the text embeddings and ``pixel_values`` jointly (one integration path), so
    image attribution is per 14-pixel patch; the pixel baseline is a black image by default (``pixel_baseline``).

  The action's own tokens keep their value on the path (baseline = input), so they get no attribution.
- ``attention``: attention rollout (or last-layer / mean attention) from the positions that predict the action
  tokens to the prompt tokens (eager attention for that one forward pass).

Per-token scores become components: a text token joins the word of its block that it overlaps (words as
:func:`iapo_gym.text.tokenize` splits them, so teachers and students with different tokenizers produce the
same layout); ``query`` and ``tool_outputs`` words past the layout's slots go to the last slot; chat template
tokens (role markers, image delimiters, earlier actions) go to the ``context`` block's last component,
labelled ``<chat>``. Image scores are placed on the view's pixels (``pixel_values`` rows are ordered
``(t, h/2, w/2, 2, 2)``, not raster order: :func:`patch_grid`) and mapped onto original-image cells through
the view's box with :func:`iapo_gym.attribution.pixels_to_cells`; every image of the chat (the glance and
each crop) adds to the same cells. Magnitudes are summed (signs dropped), and the result is normalised:
block masses sum to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from iapo_gym.attribution import (
    PIXEL_BASELINES,
    Attribution,
    ComponentLayout,
    attribute,
    pixels_to_cells,
)
from iapo_gym.attribution.layout import view_cell_weights

from .model import VLM, Encoded
from .prompt import Dialogue

CHAT_LABEL = "<chat>"
GRADIENT_INPUTS = ("embeddings", "pixels")


@dataclass
class VLMAttributionConfig:
    """How a VLM decision is attributed (every choice is a parameter).

    Args:
        method: ``integrated_gradients``, ``gradient_x_input``, ``attention``, or another name registered with
            :func:`iapo_gym.attribution.register_method` (run over the inputs chosen by ``image_input``).
        image_input: ``"embeddings"`` or ``"pixels"`` (gradient methods; see the module doc).
        grid: image cells per side of the layout.
        query_length, output_length: slots of the ``query`` and ``tool_outputs`` blocks.
        n_steps: integrated-gradient points on the path.
        internal_batch_size: evaluate the path in chunks of this many (memory bound on a GPU).
        pixel_baseline: ``"black"`` or ``"white"`` (the processed all-black or all-white image, as in
            :data:`~iapo_gym.attribution.PIXEL_BASELINES`: white is a blank page) or ``"zeros"`` (zero
            ``pixel_values``: the mean colour).
        attention_mode: ``"rollout"``, ``"last_layer"`` or ``"mean"``.
        residual: identity weight of attention rollout.
        method_kwargs: extra keyword arguments for the registered method.
    """

    method: str = "integrated_gradients"
    image_input: str = "embeddings"
    grid: int = 4
    query_length: int = 32
    output_length: int = 48
    n_steps: int = 16
    internal_batch_size: int | None = None
    pixel_baseline: str = "black"
    attention_mode: str = "rollout"
    residual: float = 0.5
    method_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_input not in GRADIENT_INPUTS:
            raise ValueError(f"image_input must be one of {', '.join(GRADIENT_INPUTS)}; got {self.image_input!r}")
        if self.pixel_baseline not in (*PIXEL_BASELINES, "zeros"):
            raise ValueError(f"pixel_baseline must be one of {', '.join(PIXEL_BASELINES)}, zeros; got {self.pixel_baseline!r}")
        if self.attention_mode not in ("rollout", "last_layer", "mean"):
            raise ValueError(f"attention_mode must be rollout, last_layer or mean; got {self.attention_mode!r}")
        if self.query_length < 1 or self.output_length < 1:
            raise ValueError("query_length and output_length must be >= 1")

    @classmethod
    def of(cls, value: VLMAttributionConfig | Mapping[str, Any] | None) -> VLMAttributionConfig:
        if value is None:
            return cls()
        if isinstance(value, VLMAttributionConfig):  # not cls: a type checker narrows on the class only
            return value
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- geometry ---------------------------------------------------------------------------------------------
def patch_grid(row_values: np.ndarray, grid_thw: Sequence[int], merge: int = 2) -> np.ndarray:
    """Per-row values of one image's ``pixel_values`` (rows ordered ``(t, h/m, w/m, m, m)`` as the Qwen2-VL
    image processor writes them) as a raster ``(h, w)`` patch grid (summed over ``t``)."""
    t, h, w = (int(v) for v in grid_thw)
    v = np.asarray(row_values, dtype=np.float64).reshape(t, h // merge, w // merge, merge, merge)
    return v.transpose(0, 1, 3, 2, 4).reshape(t, h, w).sum(0)


def token_grid(token_values: np.ndarray, grid_thw: Sequence[int], merge: int = 2) -> np.ndarray:
    """Per-token values of one image's placeholder tokens (raster over ``(t, h/m, w/m)``) as ``(h/m, w/m)``."""
    t, h, w = (int(v) for v in grid_thw)
    return np.asarray(token_values, dtype=np.float64).reshape(t, h // merge, w // merge).sum(0)


def grid_to_view(scores: np.ndarray, view_size: int) -> np.ndarray:
    """Spread a ``(r, c)`` score grid that tiles a square view evenly over the view's ``V`` x ``V`` pixels
    (each pixel gets its cell's score over the cell's pixel count, so the total is kept)."""
    s = np.asarray(scores, dtype=np.float64)
    r, c = s.shape
    ry = np.minimum(((np.arange(view_size) + 0.5) * r / view_size).astype(np.int64), r - 1)
    cx = np.minimum(((np.arange(view_size) + 0.5) * c / view_size).astype(np.int64), c - 1)
    nr = np.bincount(ry, minlength=r).astype(np.float64)
    nc = np.bincount(cx, minlength=c).astype(np.float64)
    per = s / np.maximum(nr[:, None] * nc[None, :], 1.0)
    return per[ry][:, cx]


def image_cells(
    scores: np.ndarray, view_box: Sequence[float], view_size: int, grid: int, source_hw: tuple[int, int]
) -> np.ndarray:
    """A score grid over one view (magnitudes) -> ``grid * grid`` original-image cells (row-major)."""
    amap = grid_to_view(np.abs(scores), view_size)
    return pixels_to_cells(amap, tuple(view_box), grid, source_hw)


# -- layout -------------------------------------------------------------------------------------------------
def layout_of(enc: Encoded, grid: int, query_length: int, output_length: int) -> ComponentLayout:
    """The component layout of an encoded decision (word-level text components, see the module doc), on the
    objective's ``grid`` and token slots (the attribution config's, which the IAPO objective sets)."""
    bw = enc.block_words
    ctx = list(bw["context"]) + [CHAT_LABEL]
    return ComponentLayout(
        grid=grid,
        query_length=query_length,
        output_length=output_length,
        context_length=len(ctx),
        tool_defs_length=len(bw["tool_defs"]),
        query_tokens=tuple(bw["query"][:query_length]),
        output_tokens=tuple(bw["tool_outputs"][:output_length]),
        context_tokens=tuple(ctx),
        tool_defs_tokens=tuple(bw["tool_defs"]),
    )


def assignment(enc: Encoded, layout: ComponentLayout) -> np.ndarray:
    """``(tokens, components)``: the fixed linear map from per-token score magnitudes to the components of
    ``layout`` (a text token adds to its word's slot, template tokens to ``<chat>``, an image token spreads
    over the original-image cells its patch group covers). ``|scores| @ assignment`` is the component vector;
    being linear, it carries gradients (the differentiable alignment loss)."""
    sl = layout.slices()
    out = np.zeros((len(enc), layout.size), dtype=np.float64)
    kinds = np.asarray(enc.kinds)
    limits = {
        "query": layout.query_length,
        "tool_outputs": layout.output_length,
        "context": layout.context_length - 1,
        "tool_defs": layout.tool_defs_length,
    }
    for block in ("query", "tool_outputs", "context", "tool_defs"):
        idx = np.flatnonzero(kinds == block)
        if idx.size == 0 or block not in sl:
            continue
        slot = np.minimum(enc.words[idx], limits[block] - 1)
        out[idx, sl[block].start + slot] = 1.0
    out[np.flatnonzero(kinds == "chat"), sl["context"].stop - 1] = 1.0
    for i, meta in enumerate(enc.images):
        idx = np.flatnonzero(enc.image_index == i)
        out[idx, sl["image"]] = token_cell_map(
            meta["grid_thw"], meta["merge"], meta["view_box"], meta["view_size"], layout.grid, enc.source_hw
        )
    return out


def token_cell_map(
    grid_thw: Sequence[int], merge: int, view_box: Sequence[float], view_size: int, grid: int, source_hw: tuple[int, int]
) -> np.ndarray:
    """``(image tokens, grid * grid)``: how a unit score on each image token (raster over ``(t, h/m, w/m)``)
    spreads over original-image cells; the matrix form of :func:`token_grid` -> :func:`image_cells` (both
    separable: evenly over the token's view pixels, then by area onto the cells)."""
    t, h, w = (int(v) for v in grid_thw)
    r, c = h // merge, w // merge
    rows, cols = view_cell_weights(tuple(view_box), grid, source_hw, view_size)  # (V, grid) each

    def spread(n: int) -> np.ndarray:  # (V, n): pixel -> its token row/column, divided by that one's pixel count
        owner = np.minimum(((np.arange(view_size) + 0.5) * n / view_size).astype(np.int64), n - 1)
        onehot = np.zeros((view_size, n))
        onehot[np.arange(view_size), owner] = 1.0
        return onehot / np.maximum(onehot.sum(0, keepdims=True), 1.0)

    a, b = rows.T @ spread(r), cols.T @ spread(c)  # (grid, r), (grid, c)
    m = np.einsum("ai,bj->ijab", a, b).reshape(r * c, grid * grid)
    return np.tile(m, (t, 1))


def components(
    enc: Encoded, layout: ComponentLayout, token_scores: np.ndarray, image_grids: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Raw per-token scores (and optionally per-image pixel-patch score grids replacing the image tokens'
    scores) -> a non-negative component vector of ``layout`` (magnitudes summed per component)."""
    scores = np.abs(np.asarray(token_scores, dtype=np.float64))
    if image_grids is not None:
        scores = np.where(np.asarray(enc.kinds) == "image", 0.0, scores)
    out = scores @ assignment(enc, layout)
    if image_grids is not None:
        sl = layout.slices()["image"]
        for i, meta in enumerate(enc.images):
            out[sl] += image_cells(image_grids[i], meta["view_box"], meta["view_size"], layout.grid, enc.source_hw)
    return out


def differentiable_attribution(vlm: VLM, enc: Encoded, layout: ComponentLayout) -> torch.Tensor:
    """Gradient x input over the input embeddings (image tokens: the vision tower's outputs) of the action's
    log-probability, as a ``(components,)`` tensor of ``layout`` built with ``create_graph=True``: a loss on
    it moves the attribution itself (the objective's ``form="loss"``). Not normalised (the objective's
    ``compare`` renormalises)."""
    dev = vlm.device
    ids = enc.input_ids[None].to(dev)
    mm = enc.mm_token_type_ids[None].to(dev)
    thw = enc.image_grid_thw.to(dev)
    pv = enc.pixel_values.to(dev, vlm.dtype)
    core = vlm.core
    positions = vlm.position_ids(ids, mm, thw)
    embeds = core.get_input_embeddings()(ids)
    feats = torch.cat(list(core.model.get_image_features(pv, thw).pooler_output), 0).to(embeds.dtype)
    embeds = embeds.masked_scatter((ids == vlm.image_token_id)[..., None].expand_as(embeds), feats)
    n_act = enc.action_length
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):  # the fused CPU/flash kernels have no double backward (create_graph)
        out = vlm.model(inputs_embeds=embeds, position_ids=positions, logits_to_keep=n_act + 1, use_cache=False)
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    target = logp.gather(-1, ids[:, -n_act:, None]).sum()
    (grad,) = torch.autograd.grad(target, embeds, create_graph=True)
    scores = (grad * embeds).sum(-1)[0].abs().float()
    scores = torch.cat([scores[: enc.action_start], scores.new_zeros(len(enc) - enc.action_start)])
    a = torch.as_tensor(assignment(enc, layout), dtype=scores.dtype, device=scores.device)
    return scores @ a


# -- scores ---------------------------------------------------------------------------------------------------
def _logprob_fn(vlm: VLM, enc: Encoded, positions: torch.Tensor, pixel_rows_shape: tuple[int, int] | None = None):
    """``f(embeds[, pixel_values]) -> (k,)``: summed log-prob of the action tokens for a batch of k inputs."""
    dev = vlm.device
    ids = enc.input_ids[None].to(dev)
    n_act = enc.action_length
    targets = ids[:, -n_act:]
    length = ids.shape[1]
    img_mask = (ids == vlm.image_token_id)[..., None]
    thw = enc.image_grid_thw.to(dev)
    core = vlm.core

    def f(embeds: torch.Tensor, pixel_rows: torch.Tensor | None = None) -> torch.Tensor:
        k = embeds.shape[0]
        if pixel_rows is not None:
            feats = core.model.get_image_features(pixel_rows.reshape(-1, pixel_rows.shape[-1]), thw.repeat(k, 1))
            feats = torch.cat(list(feats.pooler_output), 0).to(embeds.dtype)
            embeds = embeds.masked_scatter(img_mask.expand(k, length, embeds.shape[-1]), feats)
        out = core(inputs_embeds=embeds, position_ids=positions.expand(3, k, length), logits_to_keep=n_act + 1, use_cache=False)
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        return logp.gather(-1, targets.expand(k, -1).unsqueeze(-1)).squeeze(-1).sum(-1)

    return f


def _gradient_scores(vlm: VLM, enc: Encoded, cfg: VLMAttributionConfig) -> tuple[np.ndarray, list[np.ndarray] | None]:
    dev = vlm.device
    ids = enc.input_ids[None].to(dev)
    mm = enc.mm_token_type_ids[None].to(dev)
    thw = enc.image_grid_thw.to(dev)
    pv = enc.pixel_values.to(dev, vlm.dtype)
    positions = vlm.position_ids(ids, mm, thw)
    prompt = torch.zeros(ids.shape[1], dtype=torch.bool, device=dev)
    prompt[: enc.action_start] = True
    is_img = ids[0] == vlm.image_token_id
    kw = dict(cfg.method_kwargs)
    if cfg.method == "integrated_gradients":
        kw.setdefault("n_steps", cfg.n_steps)
        kw.setdefault("internal_batch_size", cfg.internal_batch_size)
    core = vlm.core
    with torch.no_grad():
        embeds = core.get_input_embeddings()(ids)
        if cfg.image_input == "embeddings":
            feats = torch.cat(list(core.model.get_image_features(pv, thw).pooler_output), 0).to(embeds.dtype)
            embeds = embeds.masked_scatter(is_img[None, :, None].expand_as(embeds), feats)
    zero_at = prompt if cfg.image_input == "embeddings" else prompt & ~is_img
    base_embeds = torch.where(zero_at[None, :, None], torch.zeros_like(embeds), embeds)
    f = _logprob_fn(vlm, enc, positions)
    if cfg.image_input == "embeddings":
        (a_emb,) = attribute(f, (embeds,), baselines=(base_embeds,), method=cfg.method, **kw)
        return a_emb[0].float().sum(-1).cpu().numpy(), None
    if cfg.pixel_baseline in PIXEL_BASELINES:  # the processed all-black or all-white image
        level = round(255 * PIXEL_BASELINES[cfg.pixel_baseline])
        blank = [np.full_like(_view_image(enc, i), level) for i in range(len(enc.images))]
        base_pv = torch.cat([vlm.process_image(b)[0] for b in blank], 0).to(dev, vlm.dtype)
    else:
        base_pv = torch.zeros_like(pv)
    a_emb, a_pix = attribute(f, (embeds, pv[None]), baselines=(base_embeds, base_pv[None]), method=cfg.method, **kw)
    rows = a_pix[0].float().sum(-1).cpu().numpy()
    grids = []
    for meta in enc.images:
        r0, r1 = meta["rows"]
        grids.append(patch_grid(rows[r0:r1], meta["grid_thw"], meta["merge"]))
    return a_emb[0].float().sum(-1).cpu().numpy(), grids


def _view_image(enc: Encoded, i: int) -> np.ndarray:
    size = enc.images[i]["view_size"]
    return np.zeros((size, size, 3), dtype=np.uint8)


def _attention_scores(vlm: VLM, enc: Encoded, cfg: VLMAttributionConfig) -> np.ndarray:
    core = vlm.core
    batch = vlm.collate([enc])
    previous = core.config._attn_implementation
    core.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = core(**batch.model_inputs(), output_attentions=True, use_cache=False, logits_to_keep=1)
    finally:
        core.set_attn_implementation(previous)
    layers = [a[0].float().mean(0) for a in out.attentions]  # (T, T) per layer, heads averaged
    length = layers[0].shape[0]
    start = enc.action_start
    rows = torch.arange(max(start - 1, 0), length - 1, device=layers[0].device)
    if cfg.attention_mode == "last_layer":
        mass = layers[-1][rows].mean(0)
    elif cfg.attention_mode == "mean":
        mass = torch.stack([m[rows] for m in layers]).mean(0).mean(0)
    else:  # rollout (Abnar & Zuidema 2020) restricted to the rows we read: R[S] = M_L[S] M_{L-1} ... M_1
        eye = torch.eye(length, device=layers[0].device)
        v = None
        for m in reversed(layers):
            mixed = (1.0 - cfg.residual) * m + cfg.residual * eye
            mixed = mixed / mixed.sum(-1, keepdim=True).clamp_min(1e-12)
            v = mixed[rows] if v is None else v @ mixed
        assert v is not None
        mass = v.mean(0)
    mass = mass.clone()
    mass[start:] = 0.0
    return mass.cpu().numpy()


def attribute_decision(
    vlm: VLM,
    dialogue: Dialogue,
    action: str | None = None,
    *,
    action_ids: Sequence[int] | None = None,
    config: VLMAttributionConfig | Mapping[str, Any] | None = None,
) -> Attribution:
    """The attribution of ``log p(action | dialogue)`` over the decision's input components.

    Args:
        vlm: the model.
        dialogue: the context of the decision.
        action: the action text (tokenised with the model's tokenizer) ...
        action_ids: ... or the exact generated token ids (preferred for the model that generated them).
        config: a :class:`VLMAttributionConfig` or a dict of its fields.

    Returns:
        An :class:`~iapo_gym.attribution.Attribution` in the layout of :func:`layout_of` (uniform if the
        model gives no signal at all).
    """
    cfg = VLMAttributionConfig.of(config)
    if action is None and action_ids is None:
        raise ValueError("attribute_decision needs the action: its text or its token ids")
    enc = vlm.encode(dialogue, action, action_ids)
    if enc.action_length == 0:
        raise ValueError("the action has no tokens; nothing to attribute")
    layout = layout_of(enc, cfg.grid, cfg.query_length, cfg.output_length)
    was_training = vlm.model.training
    vlm.model.eval()
    try:
        with vlm.frozen():
            if cfg.method == "attention":
                tokens, grids = _attention_scores(vlm, enc, cfg), None
            else:
                tokens, grids = _gradient_scores(vlm, enc, cfg)
    finally:
        vlm.model.train(was_training)
    tokens = np.nan_to_num(tokens, nan=0.0, posinf=0.0, neginf=0.0)
    tokens[enc.action_start :] = 0.0
    if grids is not None:
        grids = [np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in grids]
    return Attribution(layout, components(enc, layout, tokens, grids), allow_uniform=True)
