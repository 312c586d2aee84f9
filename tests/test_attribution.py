"""Attribution core: layout and geometry, methods on hand-built models with known answers, metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iapo_gym.attribution import (
    Attribution,
    ComponentLayout,
    attention_to_keys,
    attribute,
    cells_of_box,
    cosine_distance,
    cosine_distance_torch,
    divergence,
    js,
    js_torch,
    kl,
    kl_torch,
    layout_for_observation,
    method_names,
    pixels_to_cells,
    reduce_to_components,
    register_method,
    topk_overlap,
)
from iapo_gym.attribution.methods import METHODS
from iapo_gym.scene import Program, Scene
from iapo_gym.tools import ToolContext

GRADIENT_METHODS = ["integrated_gradients", "gradient_x_input", "occlusion"]


# -- layout, Attribution ---------------------------------------------------------------------------------
def test_layout_slices_and_labels() -> None:
    layout = ComponentLayout(grid=3, query_length=4, output_length=5, context_length=2, context_tokens=("a", "b"))
    assert layout.sizes == {"image": 9, "query": 4, "tool_outputs": 5, "context": 2}
    assert layout.size == 20 and len(layout.labels()) == 20
    assert layout.slice("query") == slice(9, 13) and layout.slice("context") == slice(18, 20)
    assert layout.labels()[18] == "context[0]:a"
    with pytest.raises(KeyError, match="tool_defs"):
        layout.slice("tool_defs")
    # labels do not decide comparability
    assert ComponentLayout(query_tokens=("x",)) == ComponentLayout(query_tokens=("y",))


def test_layout_for_observation_reads_tokens() -> None:
    obs = {"question": "What is the value of Beta ?", "tool_output": "beta 42 " * 40}
    layout = layout_for_observation(obs, grid=2, query_length=4, output_length=6, tool_defs="zoom(box) ocr(box)")
    assert layout.query_tokens == ("what", "is", "the", "value")
    assert len(layout.output_tokens) == 6
    assert layout.sizes["tool_defs"] == len(layout.tool_defs_tokens) > 0
    assert ComponentLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout


def test_layout_for_real_env_observation() -> None:
    import gymnasium as gym

    import iapo_gym  # noqa: F401  (registers the envs)

    obs, _ = gym.make("VisualToolVQA-HBar-v0").reset(seed=0)
    layout = layout_for_observation(obs)
    assert layout.sizes == {"image": 16, "query": 32, "tool_outputs": 48}
    assert 0 < len(layout.query_tokens) <= 32


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=12, max_size=12).filter(lambda v: any(v)))
def test_attribution_normalises_and_pools_to_one(scores: list[float]) -> None:
    layout = ComponentLayout(grid=2, query_length=5, output_length=3)
    attr = Attribution(layout, np.array(scores))
    assert np.all(attr.values >= 0) and math.isclose(attr.values.sum(), 1.0, rel_tol=1e-9)
    blocks = attr.blocks()
    assert list(blocks) == ["image", "query", "tool_outputs"]
    assert math.isclose(sum(blocks.values()), 1.0, rel_tol=1e-9)
    assert np.allclose(attr.block("query"), np.abs(scores[4:9]) / np.abs(scores).sum())
    assert np.isclose(attr.vector("blocks").sum(), 1.0)


def test_attribution_errors_and_json() -> None:
    layout = ComponentLayout(grid=1, query_length=2, output_length=1)
    with pytest.raises(ValueError, match="4 components"):
        Attribution(layout, np.ones(5))
    with pytest.raises(ValueError, match="finite"):
        Attribution(layout, np.array([1.0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        Attribution.from_scores(layout, [1.0, np.inf, 0, 0])
    with pytest.raises(ValueError, match="allow_uniform"):
        Attribution(layout, np.zeros(4))
    assert np.allclose(Attribution.from_scores(layout, np.zeros(4), allow_uniform=True).values, 0.25)
    attr = Attribution.from_parts(layout, {"image": [3.0], "query": [-1.0, 0.0]})
    assert attr.blocks() == {"image": 0.75, "query": 0.25, "tool_outputs": 0.0}
    data = json.loads(json.dumps(attr.to_dict()))
    assert np.allclose(Attribution.from_dict(data).values, attr.values)
    with pytest.raises(ValueError, match="unknown block 'context'"):
        layout.assemble({"context": [1.0]})
    with pytest.raises(ValueError, match="has 2 components"):
        layout.assemble({"query": [1.0]})


# -- geometry ------------------------------------------------------------------------------------------
def test_cells_of_box() -> None:
    cells = cells_of_box((0.1, 0.2, 0.6, 0.3), grid=4).reshape(4, 4)
    assert np.allclose(cells[0, :3], [0.12, 0.2, 0.08]) and np.allclose(cells[1, :3], [0.12, 0.2, 0.08])
    assert cells[2:].sum() == 0 and cells[:, 3].sum() == 0
    assert np.allclose(cells_of_box((0, 0, 1, 1), 3), 1.0)
    assert cells_of_box((0.5, 0.5, 0.5, 0.9), 3).sum() == 0


def test_pixels_to_cells_bright_patch_in_letterboxed_non_square_crop() -> None:
    # original 200 x 400 (h x w); the crop box is the top-right quarter: 100 x 200 pixels, letterboxed into
    # 64 x 64 as 32 x 64 content rows 16..47 (padding above and below)
    view = np.zeros((64, 64))
    view[:16] = 1e6  # padding: whatever a model puts there is not image and must be ignored
    view[16 + 8 : 16 + 16, 48:56] = 1.0  # content rows 8..15 -> original y 25..50; cols 48..55 -> x 350..375
    cells = pixels_to_cells(view, (0.5, 0.0, 1.0, 0.5), grid=4, source_hw=(200, 400))
    assert cells.argmax() == 3  # row 0 (y < 0.25), column 3 (x >= 0.75)
    assert np.isclose(cells.sum(), 64.0) and np.isclose(cells[3], 64.0)
    # the same patch half a cell lower straddles rows 0 and 1 equally
    view2 = np.zeros((64, 64))
    view2[16 + 12 : 16 + 20, 48:56] = 1.0  # original y 37.5..62.5 around the 50-pixel cell border
    cells2 = pixels_to_cells(view2, (0.5, 0.0, 1.0, 0.5), grid=4, source_hw=(200, 400)).reshape(4, 4)
    assert np.isclose(cells2[0, 3], cells2[1, 3]) and np.isclose(cells2.sum(), 64.0)


def _scene(image: np.ndarray) -> Scene:
    return Scene("Test", image, "q?", ("a",), (), Program("read"))


@pytest.mark.parametrize("box", [(0.0, 0.0, 1.0, 1.0), (0.25, 0.1, 0.9, 0.45), (0.05, 0.3, 0.35, 0.95)])
def test_pixels_to_cells_matches_the_views_the_tools_draw(box: tuple[float, float, float, float]) -> None:
    # a bright rectangle on a non-square canvas: the brightness of the tool's own view, mapped back to cells,
    # must match the rectangle's coverage of each cell (the view is a faithful rescaling of the box)
    h, w, grid = 240, 360, 4
    image = np.zeros((h, w, 3), dtype=np.uint8)
    rect = (0.3, 0.2, 0.55, 0.4)
    image[int(rect[1] * h) : int(rect[3] * h), int(rect[0] * w) : int(rect[2] * w)] = 255
    ctx = ToolContext(_scene(image), image, view_size=96, ocr=None)
    view = ctx.view(box).astype(np.float64).sum(axis=2)
    got = pixels_to_cells(view, box, grid, (h, w))
    vis = (max(rect[0], box[0]), max(rect[1], box[1]), min(rect[2], box[2]), min(rect[3], box[3]))
    want = cells_of_box(vis, grid)
    assert got.sum() > 0 and want.sum() > 0
    # interpolation blurs edges by a view pixel, so compare the normalised distributions loosely
    assert np.abs(got / got.sum() - want / want.sum()).sum() < 0.1


def test_pixels_to_cells_edge_cases() -> None:
    assert not pixels_to_cells(np.ones((8, 8)), (0, 0, 0, 0), 4, (10, 10)).any()  # no crop yet
    assert np.allclose(pixels_to_cells(np.ones((8, 8)), (0, 0, 1, 1), 2, (10, 10)), 16.0)
    assert np.isclose(pixels_to_cells(-np.ones((8, 8)), (0, 0, 1, 1), 2, (10, 10)).sum(), 64.0)
    with pytest.raises(ValueError, match="square"):
        pixels_to_cells(np.ones((8, 8, 3)), (0, 0, 1, 1), 2, (10, 10))
    with pytest.raises(ValueError, match="view_box"):
        pixels_to_cells(np.ones((8, 8)), (0, 0, 1), 2, (10, 10))


# -- methods ------------------------------------------------------------------------------------------
def test_integrated_gradients_completeness() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Softplus(), torch.nn.Linear(16, 3)
    ).double()
    proj = torch.nn.Linear(4, 5).double()

    def f(x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([x, torch.tanh(proj(tokens)).sum(1)], dim=1))

    x, tokens = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 6, 4, dtype=torch.float64)
    base = (torch.full_like(x, 0.3), torch.zeros_like(tokens))
    ax, at = attribute(f, (x, tokens), baselines=base, target=1, method="integrated_gradients", n_steps=32)
    total = ax.sum(1) + at.sum((1, 2))
    delta = (f(x, tokens) - f(*base))[:, 1].detach()
    assert torch.allclose(total, delta, rtol=0.01, atol=1e-6), (total, delta)


def _image_and_tokens(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 16, 16, generator=g) + 0.1, torch.randn(2, 6, 8, generator=g)


REGION = (slice(4, 8), slice(8, 12))  # rows, cols of the image region the image model reads
HALO = (slice(3, 9), slice(7, 13))  # the region grown by the 3x3 conv's reach


class RegionModel(torch.nn.Module):
    """Output depends only on ``REGION`` of the image (through a 3x3 conv: on ``HALO``), not on tokens."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)
        mask = torch.zeros(1, 1, 16, 16)
        mask[:, :, REGION[0], REGION[1]] = 1
        self.register_buffer("mask", mask)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        feats = (torch.tanh(self.conv(image)) * self.mask).sum((2, 3))
        return self.head(feats) + 0.0 * tokens.sum((1, 2))[:, None]


class TokenModel(torch.nn.Module):
    """Output depends only on token 2's embedding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.w = torch.nn.Linear(8, 2)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.w(tokens[:, 2])) * 2 + 0.0 * image.sum((1, 2, 3))[:, None]


def _mass(parts: list[torch.Tensor], pick: torch.Tensor) -> torch.Tensor:
    total = sum(p.abs().flatten(1).sum(1) for p in parts)
    return pick.abs().reshape(pick.shape[0], -1).sum(1) / total


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_methods_find_the_image_region(method: str) -> None:
    image, tokens = _image_and_tokens()
    attrs = attribute(RegionModel(), (image, tokens), target=1, method=method, **({"grid": 16} if method == "occlusion" else {}))
    assert attrs[0].shape == image.shape and attrs[1].shape == tokens.shape
    pixels, toks = reduce_to_components(attrs, ("image", "tokens"))
    assert pixels.shape == (2, 16, 16) and toks.shape == (2, 6)
    mass = _mass([pixels, toks], pixels[:, HALO[0], HALO[1]])
    assert (mass > 0.8).all(), mass


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_methods_find_the_token(method: str) -> None:
    image, tokens = _image_and_tokens(3)
    attrs = attribute(TokenModel(), (image, tokens), target=0, method=method)
    pixels, toks = reduce_to_components(attrs, ("image", "tokens"))
    mass = _mass([pixels, toks], toks[:, 2])
    assert (mass > 0.8).all(), mass


def test_occlusion_group_sums_equal_effects() -> None:
    # for a linear model, a group's ablation effect is the sum of w * x over the group; the per-element
    # scores must add up to it (not to it times the group size)
    w = torch.randn(1, 6, 4)

    def f(tokens: torch.Tensor) -> torch.Tensor:
        return (tokens * w).sum((1, 2))

    tokens = torch.randn(2, 6, 4)
    (occ,) = attribute(f, tokens, method="occlusion")
    assert torch.allclose(occ.sum(2), (tokens * w).sum(2), atol=1e-5)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1]]).reshape(1, 6, 1)
    (occ2,) = attribute(f, tokens, method="occlusion", feature_mask=mask)
    assert torch.allclose(occ2[:, :3].sum((1, 2)), (tokens * w)[:, :3].sum((1, 2)), atol=1e-5)


class AttentionModel(torch.nn.Module):
    """One self-attention layer over tokens whose scores favour the token aligned with a fixed direction:
    returns its attention probabilities (B, H=2, Q, K), the contract of the ``attention`` method."""

    def __init__(self) -> None:
        super().__init__()
        self.direction = torch.zeros(8)
        self.direction[0] = 1.0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        scores = (tokens @ self.direction) * 4.0  # (B, K): the same key scores for every query
        probs = torch.softmax(scores, dim=-1)[:, None, None, :].expand(-1, 2, tokens.shape[1], -1)
        return probs


def test_attention_method_finds_the_attended_token() -> None:
    tokens = torch.randn(2, 6, 8) * 0.1
    tokens[:, 2, 0] = 2.0  # token 2 aligns with the direction: most attention goes to it
    for mode, residual in (("last_layer", 0.5), ("mean", 0.5), ("rollout", 0.0)):
        (attr,) = attribute(AttentionModel(), tokens, method="attention", mode=mode, residual=residual)
        comps = reduce_to_components(attr, "tokens")
        assert torch.allclose(comps.sum(1), torch.ones(2))
        assert (comps[:, 2] > 0.8).all(), (mode, comps)
    # with the residual stream mixed in, rollout keeps part of the mass on the reading (last) position itself;
    # among the other keys the attended token still dominates
    (attr,) = attribute(AttentionModel(), tokens, method="attention", mode="rollout")
    comps = reduce_to_components(attr, "tokens")[:, :-1]
    assert (comps[:, 2] / comps.sum(1) > 0.8).all(), comps


def test_attention_hand_built_matrix_and_shapes() -> None:
    k = 5
    att = torch.full((k, k), 0.1 / (k - 1))
    att[:, 3] = 0.9  # every query attends to key 3
    assert attention_to_keys(att, mode="last_layer")[3] > 0.85
    layers = torch.stack([att, att])[:, None].expand(2, 3, k, k)  # (L, H, Q, K)
    rolled = attention_to_keys(layers, mode="rollout")
    assert rolled.shape == (k,) and rolled.argmax() == 3 and rolled[3] > 0.5
    hf_style = [layers[i][None].expand(4, -1, -1, -1) for i in range(2)]  # L tensors (B, H, Q, K)
    batched = attention_to_keys(hf_style, mode="rollout", batched=True)
    assert batched.shape == (4, k) and torch.allclose(batched, rolled.expand(4, -1))
    assert attention_to_keys(att, query_index=None).shape == (k,)
    with pytest.raises(ValueError, match="Q == K"):
        attention_to_keys(torch.rand(2, 3).softmax(-1), mode="rollout")
    with pytest.raises(ValueError, match="mode"):
        attention_to_keys(att, mode="max")
    with pytest.raises(ValueError, match="batched=True"):
        attention_to_keys(torch.rand(1, 2, 3, k, k))


def test_attention_with_image_patches_and_key_slices() -> None:
    # keys: [decision token] + 2x2 image patches + 3 tokens; the decision attends to the bottom-left patch
    k = 1 + 4 + 3
    probs = torch.full((1, 1, k, k), 0.02)
    probs[..., 1 + 2] = 1.0
    probs = probs / probs.sum(-1, keepdim=True)
    image, tokens = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4)
    a_img, a_tok = attribute(
        lambda i, t: probs,
        (image, tokens),
        method="attention",
        mode="last_layer",
        query_index=0,
        patch_grid=2,
        key_slices=[slice(1, 5), slice(5, 8)],
    )
    pixels = reduce_to_components(a_img, "image")[0]
    assert pixels[4:, :4].sum() > 0.8
    # the decision key's own mass belongs to no input: the inputs share the rest
    assert 0.9 < float(pixels.sum() + a_tok.sum()) < 1.0
    with pytest.raises(ValueError, match="patch_grid"):
        attribute(lambda i, t: probs, (image, tokens), method="attention")
    with pytest.raises(ValueError, match="key_slices"):
        attribute(lambda t: probs, (tokens,), method="attention")


def test_attribute_errors_registry_and_no_grad() -> None:
    with pytest.raises(ValueError, match="known: .*integrated_gradients"):
        attribute(lambda x: x.sum(1), torch.rand(1, 3), method="shap")
    with pytest.raises(TypeError, match="embedding level"):
        attribute(lambda x: x.sum(1), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="2 baselines for 1 inputs"):
        attribute(lambda x: x.sum(1), torch.rand(1, 3), baselines=(0.0, 0.0))
    with pytest.raises(ValueError, match="already"):
        register_method("occlusion", METHODS["occlusion"])

    def saliency(forward_fn, inputs, baselines, target, extra, **kw):  # type: ignore[no-untyped-def]
        xs = tuple(x.detach().requires_grad_(True) for x in inputs)
        out = forward_fn(*xs)
        return torch.autograd.grad(out.sum(), xs)

    register_method("test_saliency", saliency)
    try:
        assert "test_saliency" in method_names()
        x = torch.rand(2, 3)
        with torch.no_grad():  # a rollout loop's context must not break gradient methods
            (g,) = attribute(lambda v: (v * torch.tensor([1.0, 2.0, 3.0])).sum(1), x, method="test_saliency")
            (ig,) = attribute(lambda v: (v**2).sum(1), x, baselines=0.0)
        assert torch.allclose(g, torch.tensor([1.0, 2.0, 3.0]).expand(2, 3))
        assert torch.allclose(ig, x**2, rtol=1e-3)
    finally:
        METHODS.pop("test_saliency")
    with pytest.raises(ValueError, match="kinds"):
        reduce_to_components(torch.rand(1, 2, 3), "pixels")


def test_gradient_x_input_with_baseline_uses_the_difference() -> None:
    x = torch.rand(2, 4)
    (a,) = attribute(lambda v: (3 * v).sum(1), x, baselines=0.5, method="gradient_x_input")
    assert torch.allclose(a, 3 * (x - 0.5))


# -- metrics ------------------------------------------------------------------------------------------
masses = st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False)
tiny_or_mass = st.one_of(masses, st.sampled_from([0.0, 1e-300, 1e-30, 1e-12]))


@st.composite
def pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 16))
    vec = st.lists(tiny_or_mass, min_size=n, max_size=n).filter(lambda v: sum(v) > 0)
    return np.array(draw(vec)), np.array(draw(vec))


@settings(max_examples=150, deadline=None)
@given(pairs())
def test_metric_properties(pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pq
    pn, qn = p / p.sum(), q / q.sum()
    values = [kl(p, q), js(p, q), cosine_distance(p, q), topk_overlap(p, q, 1)]
    assert all(math.isfinite(v) for v in values)
    assert kl(p, q) >= 0 and kl(p, p) == 0.0
    if np.abs(pn - qn).max() > 1e-3:
        assert kl(p, q) > 0
    assert js(p, q) == js(q, p) and 0.0 <= js(p, q) <= math.log(2) and js(p, p) == 0.0
    assert 0.0 <= cosine_distance(p, q) <= 1.0 and cosine_distance(p, p) < 1e-12
    for k in range(1, len(p) + 1):
        assert 0.0 <= topk_overlap(p, q, k) <= 1.0
        assert topk_overlap(p, p, k) == 1.0
    # the torch versions agree
    tp, tq = torch.tensor(p), torch.tensor(q)
    assert math.isclose(float(kl_torch(tp, tq)), kl(p, q), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(float(js_torch(tp, tq)), js(p, q), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(float(cosine_distance_torch(tp, tq)), cosine_distance(p, q), rel_tol=1e-6, abs_tol=1e-9)


def test_metric_extremes_and_zero_safety() -> None:
    assert math.isclose(js([1, 0], [0, 1]), math.log(2))
    assert math.isclose(cosine_distance([1, 0], [0, 1]), 1.0)
    assert topk_overlap([3, 2, 1, 0], [0, 1, 2, 3], 2) == 0.0
    big = kl([1, 0, 0], [0, 0, 1])
    assert math.isfinite(big) and big > 10  # bounded by the epsilon floor, ~ln(1/eps)
    assert math.isinf(kl([1, 0], [0, 1], eps=0.0))
    # gradients of the torch versions stay finite with zeros on either side
    s = torch.tensor([0.0, 0.5, 0.5], requires_grad=True)
    for fn in (kl_torch, js_torch, cosine_distance_torch):
        (g,) = torch.autograd.grad(fn(torch.tensor([1.0, 0.0, 0.0]), s), s)
        assert torch.isfinite(g).all(), fn
    batch = kl_torch(torch.rand(4, 7), torch.rand(4, 7))
    assert batch.shape == (4,) and (batch >= 0).all()


def test_metric_input_errors() -> None:
    for fn in (kl, js, cosine_distance):
        with pytest.raises(ValueError, match="teacher has 3 components but student has 2"):
            fn([1, 2, 3], [1, 2])
        with pytest.raises(ValueError, match="negative"):
            fn([1, -2, 3], [1, 2, 3])
        with pytest.raises(ValueError, match="NaN"):
            fn([1, 2, 3], [1, np.nan, 3])
        with pytest.raises(ValueError, match="infinite"):
            fn([1, np.inf, 3], [1, 2, 3])
        with pytest.raises(ValueError, match="positive mass"):
            fn([0, 0, 0], [1, 2, 3])
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\]"):
        topk_overlap([1, 2, 3], [1, 2, 3], 4)
    with pytest.raises(ValueError, match="teacher has 3 components but student has 2"):
        kl_torch(torch.rand(3), torch.rand(2))


def test_divergence_lookup_and_attribution_inputs() -> None:
    assert divergence("kl") is kl and divergence("cosine_distance") is cosine_distance
    assert divergence("js", torch=True) is js_torch
    with pytest.raises(ValueError, match="known: kl, js, cosine"):
        divergence("wasserstein")
    layout = ComponentLayout(grid=1, query_length=2, output_length=1)
    a, b = Attribution(layout, [1, 2, 3, 4]), Attribution(layout, [4, 3, 2, 1])
    assert kl(a, a) == 0 and kl(a, b) > 0
    other = Attribution(ComponentLayout(grid=1, query_length=1, output_length=2), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="different layouts"):
        js(a, other)


def test_torch_metrics_agree_on_subnormal_masses() -> None:
    # found by hypothesis: totals below the smallest normal float must still be divided by, not clamped
    p, q = np.array([5e-324, 0.0]), np.array([0.0, 1e-310])
    for f, g in ((kl, kl_torch), (js, js_torch), (cosine_distance, cosine_distance_torch)):
        assert math.isclose(float(g(torch.tensor(p), torch.tensor(q))), f(p, q), rel_tol=1e-9)


# -- one integrated-gradients implementation ------------------------------------------------------------
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle", "riemann_trapezoid", "riemann_left"])
@pytest.mark.parametrize("chunk", [None, 6])
def test_integrated_gradients_matches_captum(rule: str, chunk: int | None) -> None:
    """The one implementation gives captum's IntegratedGradients figures (same points, weights and targets)."""
    import captum.attr

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(11, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()

    def f(x: torch.Tensor, tokens: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([x * scale, tokens.sum(1)], dim=1))

    x, tokens, scale = (
        torch.randn(3, 7, dtype=torch.float64),
        torch.randn(3, 5, 4, dtype=torch.float64),
        torch.rand(3, 1).double(),
    )
    base = (torch.full_like(x, 0.2), torch.zeros_like(tokens))
    for target in (1, [0, 2, 1]):
        ours = attribute(
            f,
            (x, tokens),
            baselines=base,
            target=target,
            method="integrated_gradients",
            additional_forward_args=(scale,),
            n_steps=9,
            integration=rule,
            internal_batch_size=chunk,
        )
        theirs = captum.attr.IntegratedGradients(f).attribute(
            (x, tokens),
            baselines=base,
            target=target,
            additional_forward_args=(scale,),
            n_steps=9,
            method=rule,
            internal_batch_size=chunk,
        )
        for a, b in zip(ours, theirs):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)  # captum sums its weights in float32


@pytest.mark.parametrize("n_steps", [0, 8])
def test_compact_attribution_is_the_shared_integrated_gradients(n_steps: int) -> None:
    """The compact policy's gradient x input and midpoint integrated gradients (built on
    :func:`integrated_gradients`) give the figures of the hand-written midpoint rule it replaced."""
    import gymnasium as gym
    from iapo_gym.agents.compact import CompactConfig, CompactPolicy, observations_to_batch

    torch.manual_seed(0)
    policy = CompactPolicy(CompactConfig(width=8, hidden=32, view_size=64))
    env = gym.make("VisualToolVQA-HBar-v0", view_size=64)
    obs = [env.reset(seed=s)[0] for s in range(3)]
    batch = observations_to_batch(obs, policy.config)
    actions = policy.sample(batch, torch.Generator().manual_seed(0))
    attributed, extra = policy.inputs(batch)
    new = policy._gradient_attribution(attributed, extra, actions, n_steps, create_graph=False)

    # the replaced implementation, verbatim: zero baselines, midpoint alphas, the mean of the gradients
    inputs = tuple(x.detach() for x in attributed)
    k = max(1, n_steps)
    alphas = ((torch.arange(k, dtype=torch.float32) + 0.5) / k) if n_steps else torch.ones(1)
    scaled = [(x.unsqueeze(0) * alphas.view(-1, *([1] * x.dim()))).flatten(0, 1).requires_grad_(True) for x in inputs]
    rep = lambda t: t.unsqueeze(0).expand(k, *t.shape).flatten(0, 1)  # noqa: E731
    logp, _ = policy.log_prob_from_logits(policy.net(*scaled, *(rep(e) for e in extra)), rep(actions))
    grads = torch.autograd.grad(logp.sum(), scaled)
    attrs = [x * g.view(k, *x.shape).mean(0) for x, g in zip(inputs, grads)]
    old = (attrs[0].sum(1), attrs[1].sum(1), attrs[2].sum(-1), attrs[3].sum(-1))
    for a, b in zip(new, old):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    # and differentiable in the parameters with create_graph (the IAPO loss form)
    diff = policy._gradient_attribution(policy.inputs(batch)[0], extra, actions, n_steps, create_graph=True)
    (grad,) = torch.autograd.grad(sum(d.abs().sum() for d in diff), [policy.net.embedding.weight])
    assert grad.abs().sum() > 0


def test_a_white_pixel_baseline_attributes_gradient_times_input_minus_white() -> None:
    """``pixel_baseline="white"`` (a blank page): the images' attribution is gradient x (input - 1), so dark
    ink gets mass of its own, and a white pixel none; tokens keep their zero baseline."""
    import gymnasium as gym
    from iapo_gym.agents.compact import CompactConfig, CompactPolicy, observations_to_batch

    torch.manual_seed(0)
    policy = CompactPolicy(CompactConfig(width=8, hidden=32, view_size=64))
    env = gym.make("VisualToolVQA-HBar-v0", view_size=64)
    batch = observations_to_batch([env.reset(seed=s)[0] for s in range(2)], policy.config)
    actions = policy.sample(batch, torch.Generator().manual_seed(0))
    attributed, extra = policy.inputs(batch)
    white = policy._gradient_attribution(attributed, extra, actions, 0, False, (1.0, 1.0, 0.0, 0.0))
    black = policy._gradient_attribution(attributed, extra, actions, 0, False)
    inputs = tuple(x.detach().requires_grad_(True) for x in attributed)
    logp, _ = policy.log_prob_from_logits(policy.net(*inputs, *extra), actions)
    g_glance = torch.autograd.grad(logp.sum(), inputs[0])[0]
    assert torch.allclose(white[0], (g_glance * (inputs[0].detach() - 1.0)).sum(1), atol=1e-6)
    assert torch.allclose(black[0], (g_glance * inputs[0].detach()).sum(1), atol=1e-6)
    assert torch.allclose(white[2], black[2], atol=1e-7) and torch.allclose(white[3], black[3], atol=1e-7)  # tokens: zero
    # through the public call: a glance pixel that is pure white gets nothing from the white baseline
    cells_w = policy.attribution(batch, actions, [(1024, 1024)] * 2, grid=4, pixel_baseline="white")
    cells_b = policy.attribution(batch, actions, [(1024, 1024)] * 2, grid=4)
    assert cells_w.shape == cells_b.shape and not torch.allclose(cells_w, cells_b)
    assert (white[0][(inputs[0].detach() == 1.0).all(1)] == 0).all()
    with pytest.raises(ValueError, match="pixel_baseline must be one of black, white"):
        policy.attribution(batch, actions, [(1024, 1024)] * 2, pixel_baseline="grey")
