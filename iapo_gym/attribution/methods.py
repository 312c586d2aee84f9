"""Attribution methods for differentiable torch models, behind one captum-like call.

:func:`attribute` runs a registered method by name. The built-ins:

- ``integrated_gradients`` (the paper's choice; :func:`integrated_gradients`, captum's quadrature rules, with
  ``create_graph`` for a differentiable attribution): the path integral of
  gradients from a baseline to the input, times (input - baseline). It is *complete*: the attributions of
  an example sum to ``f(input) - f(baseline)``.
- ``gradient_x_input`` (captum ``InputXGradient``): one backward pass; cheap, local.
- ``occlusion`` (captum ``FeatureAblation``): replace one feature group (an image patch, a token) at a
  time by the baseline and record the change of the output.
- ``attention``: attention rollout or last-layer attention of a transformer, for models that expose their
  attention probabilities (see :func:`attention_to_keys` for the contract).

Token inputs are attributed at the embedding level (float tensors; integer ids have no gradient), then
summed over the embedding dimension with :func:`reduce_to_components`. Register your own method with
:func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..validation import check_int

Baselines = Tensor | float | int | tuple[Tensor | float | int, ...] | None

PIXEL_BASELINES: dict[str, float] = {"black": 0.0, "white": 1.0}
"""Named image baselines -> their pixel value for images scaled to [0, 1]. ``"black"`` is captum's default;
``"white"`` is a blank page: on a chart or table drawn in dark ink on white, a black baseline leaves the ink
itself (text, marks, a marker) without attribution, since gradient x (input - baseline) is 0 there."""
Target = int | tuple[int, ...] | Tensor | list[Any] | None


class AttributionMethod(Protocol):
    """What a registered method is: ``fn(forward_fn, inputs, baselines, target, additional_forward_args,
    **kw) -> attributions``. :func:`attribute` hands it ``inputs`` as a tuple of float tensors and
    ``baselines`` as a tuple of tensors of the same shapes; it returns one tensor per input, same shape."""

    def __call__(
        self,
        forward_fn: Callable[..., Any],
        inputs: tuple[Tensor, ...],
        baselines: tuple[Tensor, ...],
        target: Target,
        additional_forward_args: Any,
        *args: Any,  # with **kw: any further options, so a method's own keyword parameters fit
        **kw: Any,
    ) -> tuple[Tensor, ...]: ...


METHODS: dict[str, AttributionMethod] = {}
"""Method name -> implementation. Add to it with :func:`register_method`."""


def register_method(name: str, fn: AttributionMethod | None = None, *, overwrite: bool = False) -> Any:
    """Make ``fn`` available as ``attribute(..., method=name)``; usable as a decorator.

    Args:
        name: the method's name.
        fn: the implementation (see :class:`AttributionMethod`); omit it to use this as a decorator.
        overwrite: replace a method registered under the same name.

    Returns:
        ``fn`` (or a decorator returning it).
    """

    def add(f: AttributionMethod) -> AttributionMethod:
        if not callable(f):
            raise TypeError(f"an attribution method must be callable; got {f!r}")
        if name in METHODS and not overwrite:
            raise ValueError(f"an attribution method named {name!r} is registered already; pass overwrite=True to replace it")
        METHODS[name] = f
        return f

    return add if fn is None else add(fn)


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> AttributionMethod:
    """The method registered as ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown attribution method {name!r}; known: {', '.join(METHODS)}") from None


def _as_inputs(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    tup = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if not tup:
        raise ValueError("inputs is empty; pass a tensor or a tuple of tensors (batch first)")
    for i, x in enumerate(tup):
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{i}] must be a torch.Tensor; got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(
                f"inputs[{i}] has dtype {x.dtype}; attribution needs float inputs: attribute token ids at the "
                "embedding level (pass the embeddings and embed inside forward_fn only what is not attributed)"
            )
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"inputs[{i}] must have a batch dimension first; got shape {tuple(x.shape)}")
    batch = {x.shape[0] for x in tup}
    if len(batch) > 1:
        raise ValueError(f"inputs disagree on the batch size (dimension 0): {[tuple(x.shape) for x in tup]}")
    return tup


def _as_baselines(baselines: Baselines, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    if baselines is None:
        return tuple(torch.zeros_like(x) for x in inputs)
    tup = (baselines,) if not isinstance(baselines, (tuple, list)) else tuple(baselines)
    if len(tup) != len(inputs):
        raise ValueError(f"got {len(tup)} baselines for {len(inputs)} inputs; give one per input (or None for zeros)")
    out = []
    for i, (b, x) in enumerate(zip(tup, inputs)):
        if isinstance(b, Tensor):
            try:
                out.append(b.to(x).broadcast_to(x.shape).contiguous())
            except RuntimeError:
                raise ValueError(
                    f"baselines[{i}] has shape {tuple(b.shape)}, which does not broadcast to inputs[{i}] {tuple(x.shape)}"
                ) from None
        else:
            out.append(torch.full_like(x, float(b)))
    return tuple(out)


def attribute(
    forward_fn: Callable[..., Any],
    inputs: Tensor | Sequence[Tensor],
    baselines: Baselines = None,
    target: Target = None,
    method: str = "integrated_gradients",
    *,
    additional_forward_args: Any = None,
    **kw: Any,
) -> tuple[Tensor, ...]:
    """Attribute a model's output to its inputs with a registered method.

    Args:
        forward_fn: ``forward_fn(*inputs, *additional_forward_args)`` -> output of shape ``(B,)`` or
            ``(B, n)`` (e.g. the log-probability of the chosen tool call); for ``method="attention"``, the
            model's attention probabilities instead (see :func:`attention_to_keys`).
        inputs: a float tensor or a tuple of them, batch first (images ``(B, C, H, W)``, token embeddings
            ``(B, T, D)``...).
        baselines: the reference input per input: ``None`` (zeros), a scalar, or a tensor broadcastable to
            the input; a tuple with one per input.
        target: which output to explain when it has more than one per example (captum's ``target``).
        method: a name in :data:`METHODS` (``integrated_gradients``, ``gradient_x_input``, ``occlusion``,
            ``attention``, or one you registered).
        additional_forward_args: passed to ``forward_fn`` after the inputs, not attributed.
        **kw: the method's own parameters: ``n_steps`` (integrated gradients, default 32),
            ``internal_batch_size``; ``feature_mask``, ``grid``, ``perturbations_per_eval`` (occlusion);
            ``mode``, ``query_index``, ``residual``, ``key_slices``, ``patch_grid`` (attention).

    Returns:
        A tuple with one attribution tensor per input, each of the input's shape.

    Raises:
        ValueError: unknown method (the message lists the known ones), or inputs/baselines that do not fit.
    """
    fn = get_method(method)
    xs = _as_inputs(inputs)
    bs = _as_baselines(baselines, xs)
    if additional_forward_args is not None and not isinstance(additional_forward_args, tuple):
        additional_forward_args = (additional_forward_args,)
    # gradients are needed even when the caller (a rollout loop) runs under torch.no_grad()
    with torch.enable_grad():
        out = fn(forward_fn, xs, bs, target, additional_forward_args, **kw)
    out = (out,) if isinstance(out, Tensor) else tuple(out)
    if len(out) != len(xs) or any(a.shape != x.shape for a, x in zip(out, xs)):
        raise RuntimeError(
            f"attribution method {method!r} returned shapes {[tuple(a.shape) for a in out]} for inputs "
            f"{[tuple(x.shape) for x in xs]}; a method must return one tensor per input, of its shape"
        )
    return tuple(a.detach() for a in out)


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError as exc:  # captum is the engine of the gradient and ablation methods
        raise ImportError(
            "the integrated_gradients, gradient_x_input and occlusion methods need captum: pip install captum"
        ) from exc
    return captum.attr


def _fresh(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    # leaf copies that require grad: captum would set it on the caller's tensors (and warn) otherwise
    return tuple(x.detach().clone().requires_grad_(True) for x in inputs)


INTEGRATION_RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
"""Quadrature rules of :func:`integrated_gradients` (captum's names and points)."""


def integration_points(rule: str, n_steps: int) -> tuple[list[float], list[float]]:
    """``(alphas, weights)``: the points on the path from baseline (0) to input (1) and their weights, for
    ``n_steps`` points of a quadrature rule (the same points and weights as captum's rules)."""
    check_int("n_steps", n_steps)
    n = int(n_steps)
    if rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return [float(x) for x in 0.5 * (1 + nodes)], [float(x) for x in 0.5 * w]
    if rule == "riemann_trapezoid":  # captum's weights: 1/n, the two ends halved (they sum to 1 - 1/n)
        if n < 2:
            raise ValueError(f"riemann_trapezoid needs n_steps >= 2; got {n}")
        return [float(x) for x in np.linspace(0, 1, n)], [0.5 / n, *[1.0 / n] * (n - 2), 0.5 / n]
    starts = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if rule not in starts:
        raise ValueError(f"integration must be one of {', '.join(INTEGRATION_RULES)}; got {rule!r}")
    return [(i + starts[rule]) / n for i in range(n)], [1.0 / n] * n


def _select_target(output: Tensor, target: Target, repeats: int) -> Tensor:
    """The explained output per example (captum's ``target``), for ``repeats`` stacked copies of the batch."""
    if target is None:
        return output
    if isinstance(target, Tensor) and target.numel() == 1:
        target = int(target.item())
    if isinstance(target, int):
        return output[:, target]
    if isinstance(target, tuple):
        index: tuple[Any, ...] = (slice(None), *target)
        return output[index]
    per_example: list[Any] = list(target.tolist() if isinstance(target, Tensor) else target) * repeats
    if len(per_example) != output.shape[0]:
        raise ValueError(f"target has {len(per_example) // repeats} entries for a batch of {output.shape[0] // repeats}")
    rows = [(i, *t) if isinstance(t, tuple) else (i, t) for i, t in enumerate(per_example)]
    return torch.stack([output[row] for row in rows])


def integrated_gradients(
    forward_fn: Callable[..., Any],
    inputs: Tensor | Sequence[Tensor],
    baselines: Baselines = None,
    target: Target = None,
    additional_forward_args: Any = None,
    n_steps: int = 32,
    integration: str = "gausslegendre",
    internal_batch_size: int | None = None,
    *,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """Integrated gradients (Sundararajan et al. 2017): the one implementation in iapo-gym.

    ``(input - baseline) * sum_i weight_i * grad f(baseline + alpha_i * (input - baseline))`` over the points
    of :func:`integration_points`, all points of a batch evaluated in one forward pass (stacked point-major,
    as captum does) or in chunks of ``internal_batch_size`` examples. With ``n_steps=1`` and
    ``integration="riemann_right"`` it is gradient x (input - baseline).

    Args:
        forward_fn, inputs, baselines, target, additional_forward_args: as for :func:`attribute` (tensor
            arguments with the batch first are repeated for every point; other arguments pass as they are).
        n_steps: points on the path. integration: the quadrature rule (:data:`INTEGRATION_RULES`).
        internal_batch_size: evaluate at most this many (point, example) pairs per forward pass.
        create_graph: keep the graph of the gradients, so the attributions are differentiable in the
            model's parameters and in inputs that require grad (an attribution loss); otherwise the inputs
            are detached.

    Returns:
        One attribution tensor per input, of its shape.
    """
    alphas, weights = integration_points(integration, n_steps)
    xs = _as_inputs(inputs)
    xs = xs if create_graph else tuple(x.detach() for x in xs)
    bs = _as_baselines(baselines, xs)
    extra = additional_forward_args
    extra = () if extra is None else extra if isinstance(extra, tuple) else (extra,)
    batch = xs[0].shape[0]
    per_pass = len(alphas) if internal_batch_size is None else max(1, int(internal_batch_size) // batch)
    total: list[Tensor] | None = None
    with torch.enable_grad():
        for start in range(0, len(alphas), per_pass):
            chunk_a, chunk_w = alphas[start : start + per_pass], weights[start : start + per_pass]
            k = len(chunk_a)
            scaled = [torch.cat([b + a * (x - b) for a in chunk_a]) for x, b in zip(xs, bs)]
            scaled = [x if x.requires_grad else x.requires_grad_(True) for x in scaled]
            args = [torch.cat([e] * k) if isinstance(e, Tensor) and e.dim() and e.shape[0] == batch else e for e in extra]
            out = _select_target(forward_fn(*scaled, *args), target, k)
            grads = torch.autograd.grad(out.sum(), scaled, create_graph=create_graph)
            for i, w in enumerate(chunk_w):
                part = [w * g[i * batch : (i + 1) * batch] for g in grads]
                total = part if total is None else [t + p for t, p in zip(total, part)]
    assert total is not None  # n_steps >= 1
    return tuple(g * (x - b) for g, x, b in zip(total, xs, bs))


def _integrated_gradients(
    forward_fn: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: Target,
    additional_forward_args: Any,
    n_steps: int = 32,
    integration: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> tuple[Tensor, ...]:
    """The registered ``integrated_gradients`` method: :func:`integrated_gradients` (the same quadrature
    points and weights as captum's ``IntegratedGradients``, default Gauss-Legendre with 32 points)."""
    return integrated_gradients(
        forward_fn, inputs, baselines, target, additional_forward_args, n_steps, integration, internal_batch_size
    )


def _gradient_x_input(
    forward_fn: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: Target,
    additional_forward_args: Any,
) -> tuple[Tensor, ...]:
    """Gradient times (input - baseline): the first-order term of integrated gradients, one backward pass.

    captum's ``InputXGradient`` multiplies by the input itself; with a non-zero baseline we multiply by the
    difference instead, so the method stays a first-order estimate of ``f(input) - f(baseline)``.
    """
    if all(not b.any() for b in baselines):
        return tuple(
            _captum()
            .InputXGradient(forward_fn)
            .attribute(_fresh(inputs), target=target, additional_forward_args=additional_forward_args)
        )
    grads = (
        _captum()
        .Saliency(forward_fn)
        .attribute(_fresh(inputs), target=target, abs=False, additional_forward_args=additional_forward_args)
    )
    return tuple(g * (x - b) for g, x, b in zip(grads, inputs, baselines))


def default_feature_mask(inputs: Sequence[Tensor], grid: int = 8) -> tuple[Tensor, ...]:
    """Feature groups for occlusion, numbered across all inputs (no id shared between inputs).

    - ``(B, C, H, W)`` images: ``grid`` x ``grid`` patches, all channels together;
    - ``(B, T, D)`` token embeddings: one feature per token;
    - ``(B, F)`` vectors, and anything else: one feature per element.

    Args:
        inputs: the inputs (batch first).
        grid: patches per side of image inputs.

    Returns:
        One int64 mask per input, broadcastable to it (batch dimension 1).
    """
    masks, offset = [], 0
    for x in inputs:
        shape = tuple(x.shape)
        if x.dim() == 4:
            h, w = shape[2], shape[3]
            g = max(1, min(int(grid), h, w))
            rows = torch.arange(h, device=x.device) * g // h
            cols = torch.arange(w, device=x.device) * g // w
            m = (rows[:, None] * g + cols[None, :]).reshape(1, 1, h, w)
            n = g * g
        elif x.dim() == 3:
            m = torch.arange(shape[1], device=x.device).reshape(1, shape[1], 1)
            n = shape[1]
        else:
            n = int(torch.tensor(shape[1:]).prod()) if x.dim() > 1 else 1
            m = torch.arange(n, device=x.device).reshape((1, *shape[1:]))
        masks.append(m + offset)
        offset += n
    return tuple(masks)


def _occlusion(
    forward_fn: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: Target,
    additional_forward_args: Any,
    feature_mask: Tensor | Sequence[Tensor] | None = None,
    grid: int = 8,
    perturbations_per_eval: int = 16,
) -> tuple[Tensor, ...]:
    """Occlusion by feature ablation (captum ``FeatureAblation``): each feature group in turn is replaced by
    the baseline; its score is ``f(input) - f(input with the group ablated)``.

    captum gives every element of a group the group's whole score; we divide by the group's element count
    so that the sum over a group is its score. Otherwise a 16x16-pixel patch would count 256 times where a
    token counts D times, and block masses would measure group sizes rather than effects.

    Args:
        feature_mask: int tensors (one per input, broadcastable to it) numbering the feature groups;
            default :func:`default_feature_mask` with ``grid``.
        grid: patches per side of image inputs for the default mask.
        perturbations_per_eval: ablated copies evaluated per forward pass (speed vs memory).
    """
    if feature_mask is None:
        masks = default_feature_mask(inputs, grid)
    else:
        masks = (feature_mask,) if isinstance(feature_mask, Tensor) else tuple(feature_mask)
        if len(masks) != len(inputs):
            raise ValueError(f"got {len(masks)} feature masks for {len(inputs)} inputs; give one per input")
        masks = tuple(m.to(device=x.device, dtype=torch.long) for m, x in zip(masks, inputs))
    attrs = (
        _captum()
        .FeatureAblation(forward_fn)
        .attribute(
            tuple(x.detach() for x in inputs),
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=masks,
            perturbations_per_eval=max(1, int(perturbations_per_eval)),
        )
    )
    batch = inputs[0].shape[0]
    full = [m.expand_as(x).reshape(batch, -1) for m, x in zip(masks, inputs)]
    n_feat = int(max(int(m.max()) for m in full)) + 1
    counts = torch.zeros(batch, n_feat, device=inputs[0].device)
    for m in full:
        counts.scatter_add_(1, m, torch.ones_like(m, dtype=counts.dtype))
    return tuple(a / counts.gather(1, m).reshape(a.shape).to(a.dtype) for a, m in zip(attrs, full))


def attention_to_keys(
    attn: Tensor | Sequence[Tensor],
    mode: str = "rollout",
    query_index: int | None = -1,
    residual: float = 0.5,
    *,
    batched: bool = False,
) -> Tensor:
    """Per-key attention mass from a transformer's attention probabilities.

    Contract of ``attn`` (softmax probabilities, rows summing to 1 over keys):

    - ``batched=False``: ``(Q, K)`` one matrix; ``(H, Q, K)`` one layer's heads; ``(L, H, Q, K)``; or a
      sequence of ``L`` tensors ``(H, Q, K)``.
    - ``batched=True``: ``(B, H, Q, K)`` one layer; ``(B, L, H, Q, K)``; or a sequence of ``L`` tensors
      ``(B, H, Q, K)`` (what Hugging Face models return with ``output_attentions=True``).

    Layers are in forward order; heads are averaged.

    Args:
        attn: attention probabilities as above.
        mode: ``"rollout"`` (Abnar & Zuidema 2020: multiply the head-averaged layer matrices, each mixed
            with the identity for the residual stream; needs self-attention, ``Q == K``),
            ``"last_layer"`` (the last layer's head-averaged attention) or ``"mean"`` (averaged over layers).
        query_index: the query position whose attention is read (default ``-1``: the last token, the one
            that emits the next token / the decision); ``None`` averages over all query positions.
        residual: weight of the identity in rollout (0.5 as in the paper by Abnar & Zuidema).

    Returns:
        Non-negative key masses: ``(K,)``, or ``(B, K)`` when ``batched``; each row sums to 1.
    """
    if isinstance(attn, Tensor):
        a = attn
        want = (4, 5) if batched else (2, 3, 4)
        if a.dim() not in want:
            raise ValueError(
                f"attn has shape {tuple(a.shape)}; expected {'(B, H, Q, K) or (B, L, H, Q, K)' if batched else '(Q, K), (H, Q, K) or (L, H, Q, K)'}"
                + ("" if batched else " (pass batched=True for batch-first tensors)")
            )
        if batched:
            a = a.unsqueeze(1) if a.dim() == 4 else a
        else:
            a = a.reshape((1,) * (5 - a.dim()) + tuple(a.shape))
    else:
        layers = list(attn)
        if not layers:
            raise ValueError("attn is an empty sequence of layers")
        dims = {t.dim() for t in layers}
        want_dim = 4 if batched else 3
        if dims != {want_dim}:
            raise ValueError(
                f"each layer's attention must be {'(B, H, Q, K)' if batched else '(H, Q, K)'}; got shapes "
                f"{[tuple(t.shape) for t in layers]}"
            )
        a = torch.stack(layers, dim=1 if batched else 0)
        a = a if batched else a.unsqueeze(0)
    a = a.detach().float()
    if not torch.isfinite(a).all() or (a < 0).any():
        raise ValueError("attention probabilities must be finite and non-negative")
    per_layer = a.mean(dim=2)  # (B, L, Q, K): heads averaged
    q, k = per_layer.shape[-2], per_layer.shape[-1]
    if mode == "rollout":
        if q != k:
            raise ValueError(f"rollout needs self-attention (Q == K); got Q={q}, K={k}: use mode='last_layer'")
        eye = torch.eye(k, device=a.device, dtype=a.dtype)
        rolled = None
        for layer in range(per_layer.shape[1]):
            m = (1.0 - residual) * per_layer[:, layer] + residual * eye
            m = m / m.sum(dim=-1, keepdim=True).clamp_min(1e-12)
            rolled = m if rolled is None else m @ rolled
        assert rolled is not None
        mat = rolled
    elif mode == "last_layer":
        mat = per_layer[:, -1]
    elif mode == "mean":
        mat = per_layer.mean(dim=1)
    else:
        raise ValueError(f"mode must be 'rollout', 'last_layer' or 'mean'; got {mode!r}")
    rows = mat.mean(dim=1) if query_index is None else mat[:, query_index]
    rows = rows / rows.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return rows if batched else rows[0]


def _attention(
    forward_fn: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: Target,
    additional_forward_args: Any,
    mode: str = "rollout",
    query_index: int | None = -1,
    residual: float = 0.5,
    key_slices: Sequence[slice] | None = None,
    patch_grid: int | None = None,
) -> tuple[Tensor, ...]:
    """Attention-based attribution (baselines and target are not used: attention does not depend on them).

    Contract: ``forward_fn(*inputs, *additional_forward_args)`` returns the model's attention probabilities,
    batch first (``(B, H, Q, K)``, ``(B, L, H, Q, K)`` or a sequence of per-layer ``(B, H, Q, K)``). Each
    input owns a run of keys:

    - a sequence input ``(B, T, ...)`` (token embeddings): its ``T`` positions, one key each;
    - an image input ``(B, C, H, W)`` (a ViT-style model): ``patch_grid ** 2`` keys, one per patch of a
      ``patch_grid`` x ``patch_grid`` grid, row-major (the patches of :func:`default_feature_mask`).

    By default the runs follow each other from key 0 in input order (their lengths must add up to ``K``);
    ``key_slices`` gives each input's key range otherwise (e.g. when a decision token comes first). A
    key's mass is spread evenly over the elements it covers (embedding dims; a patch's pixels and
    channels), so summing them (:func:`reduce_to_components`) gives the key's mass back.

    Args:
        mode, query_index, residual: see :func:`attention_to_keys`.
        key_slices: one ``slice`` of the key axis per input.
        patch_grid: patches per side for image inputs.
    """
    with torch.no_grad():
        attn = forward_fn(*inputs, *(additional_forward_args or ()))
    mass = attention_to_keys(attn, mode=mode, query_index=query_index, residual=residual, batched=True)
    if any(x.dim() == 4 for x in inputs) and (patch_grid is None or int(patch_grid) < 1):
        raise ValueError("image inputs (B, C, H, W) need patch_grid=<patches per side> to map keys to patches")
    grid = 0 if patch_grid is None else patch_grid  # read only for image inputs, which have one (checked above)
    lengths = [int(grid) ** 2 if x.dim() == 4 else int(x.shape[1]) if x.dim() > 1 else 1 for x in inputs]
    if key_slices is None:
        if sum(lengths) != mass.shape[1]:
            raise ValueError(
                f"the model attends over {mass.shape[1]} keys but the inputs have {sum(lengths)} positions "
                f"({lengths}); pass key_slices=[slice(...), ...] to say which keys belong to which input"
            )
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        key_slices = [slice(s, s + n) for s, n in zip(starts, lengths)]
    if len(key_slices) != len(inputs):
        raise ValueError(f"got {len(key_slices)} key_slices for {len(inputs)} inputs")
    out = []
    for i, (x, sl, n) in enumerate(zip(inputs, key_slices, lengths)):
        m = mass[:, sl]
        if m.shape[1] != n:
            raise ValueError(f"key_slices[{i}] selects {m.shape[1]} keys but inputs[{i}] has {n} positions")
        if x.dim() == 4:
            ids = default_feature_mask((x,), int(grid))[0].reshape(-1)
            per_patch = torch.bincount(ids, minlength=n).to(m) * x.shape[1]  # elements each key covers
            pixels = (m / per_patch)[:, ids].reshape(x.shape[0], 1, x.shape[2], x.shape[3])
            out.append(pixels.to(x).expand_as(x).clone())
            continue
        trailing = x[0, 0].numel() if x.dim() > 1 else 1
        m = m.reshape(m.shape + (1,) * (x.dim() - 2)) / trailing
        out.append(m.to(x).expand_as(x).clone())
    return tuple(out)


def reduce_to_components(
    attributions: Tensor | Sequence[Tensor], kinds: str | Sequence[str] = "tokens"
) -> Tensor | tuple[Tensor, ...]:
    """Sum element-level attributions to components: tokens or pixels.

    Sums keep signs (integrated gradients' completeness holds per token only for the signed sum over the
    embedding); take magnitudes later (:class:`~iapo_gym.attribution.Attribution` does).

    Args:
        attributions: one tensor, or one per input, batch first.
        kinds: per tensor (or one for all): ``"tokens"`` ``(B, T, D) -> (B, T)`` (sum over the embedding),
            ``"image"`` ``(B, C, H, W) -> (B, H, W)`` (sum over channels), ``"image_hwc"``
            ``(B, H, W, C) -> (B, H, W)``, ``"none"`` (unchanged).

    Returns:
        A tensor, or a tuple matching ``attributions``.
    """
    single = isinstance(attributions, Tensor)
    attrs = (attributions,) if single else tuple(attributions)
    ks = [kinds] * len(attrs) if isinstance(kinds, str) else list(kinds)
    if len(ks) != len(attrs):
        raise ValueError(f"got {len(ks)} kinds for {len(attrs)} attribution tensors")
    want = {"tokens": 3, "image": 4, "image_hwc": 4}
    out = []
    for i, (a, kind) in enumerate(zip(attrs, ks)):
        if kind == "none":
            out.append(a)
            continue
        if kind not in want:
            raise ValueError(f"kinds[{i}] must be one of tokens, image, image_hwc, none; got {kind!r}")
        if a.dim() != want[kind]:
            raise ValueError(f"a {kind!r} attribution must have {want[kind]} dims (batch first); got shape {tuple(a.shape)}")
        out.append(a.sum(dim=1 if kind == "image" else -1))
    return out[0] if single else tuple(out)


register_method("integrated_gradients", _integrated_gradients)
register_method("gradient_x_input", _gradient_x_input)
register_method("occlusion", _occlusion)
register_method("attention", _attention)
