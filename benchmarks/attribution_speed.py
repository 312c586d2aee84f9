"""How long one attribution of one decision takes, per method, on a policy-sized model.

    python -m iapo_gym.benchmarks.attribution_speed            # views 64 and 128, batch 1
    python benchmarks/attribution_speed.py --views 128 --threads 1

First table: the compact policy itself (:class:`iapo_gym.agents.compact.CompactPolicy`), through
``CompactPolicy.attribution`` exactly as the IAPO trainer calls it (attribution of the log-probability of
the chosen structured action, mapped to image cells and token slots). It has no attention layer; the second
table adds the attention method on a stand-in of the same size (a shared conv over the glance and the crop,
token embeddings, one self-attention layer over patches and tokens). Each method attributes the
log-probability of the chosen action to the two images (pixels) and the two token-embedding blocks, the
way an IAPO student explains each decision. The table gives milliseconds per attribution and the cost
relative to one forward + backward pass of the same model (a training step's unit of work).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from iapo_gym.attribution import attribute, reduce_to_components
from iapo_gym.text import OUTPUT_LENGTH, QUERY_LENGTH, VOCAB_SIZE


class StandInPolicy(nn.Module):
    """A compact-policy-sized network (~143k parameters, 131k of them the token embedding): two view images
    + question and tool-output tokens."""

    def __init__(self, dim: int = 32, vocab: int = VOCAB_SIZE, n_actions: int = 16, patch_grid: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.patch_grid = patch_grid
        self.conv = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, dim, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(patch_grid),
        )
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.decision = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, n_actions))

    def _sequence(self, glance: Tensor, crop: Tensor, query: Tensor, output: Tensor) -> Tensor:
        patches = [self.conv(img).flatten(2).transpose(1, 2) for img in (glance, crop)]  # (B, P, dim) each
        return torch.cat([self.decision.expand(glance.shape[0], -1, -1), *patches, query, output], dim=1)

    def forward(self, glance: Tensor, crop: Tensor, query: Tensor, output: Tensor) -> Tensor:
        """Log-probabilities of the actions, ``(B, n_actions)``."""
        seq = self._sequence(glance, crop, query, output)
        mixed, _ = self.attn(seq[:, :1], seq, seq, need_weights=False)
        return torch.log_softmax(self.head(mixed[:, 0] + seq[:, 0]), dim=-1)

    def attention(self, glance: Tensor, crop: Tensor, query: Tensor, output: Tensor) -> Tensor:
        """Self-attention probabilities over the whole sequence, ``(B, H, K, K)`` (the attention contract)."""
        seq = self._sequence(glance, crop, query, output)
        _, weights = self.attn(seq, seq, seq, need_weights=True, average_attn_weights=False)
        return weights


def _time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (allocations, captum imports)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run(view: int, batch: int, repeats: int) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    model = StandInPolicy().eval()
    glance, crop = torch.rand(batch, 3, view, view), torch.rand(batch, 3, view, view)
    with torch.no_grad():
        query = model.embed(torch.randint(1, VOCAB_SIZE, (batch, QUERY_LENGTH)))
        output = model.embed(torch.randint(1, VOCAB_SIZE, (batch, OUTPUT_LENGTH)))
    inputs = (glance, crop, query, output)
    target = 3
    g = model.patch_grid

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        xs = tuple(x.detach().requires_grad_(True) for x in inputs)
        model(*xs)[:, target].sum().backward()

    base = _time(fwd_bwd, repeats)
    configs: list[tuple[str, dict[str, Any]]] = [
        ("integrated_gradients", {"n_steps": 8}),
        ("integrated_gradients", {"n_steps": 16}),
        ("integrated_gradients", {"n_steps": 32}),
        ("gradient_x_input", {}),
        ("occlusion", {"grid": 4, "perturbations_per_eval": 32}),
        ("occlusion", {"grid": 8, "perturbations_per_eval": 32}),
        (
            "attention",
            {
                "mode": "rollout",
                "patch_grid": g,
                "key_slices": [
                    slice(1, 1 + g * g),
                    slice(1 + g * g, 1 + 2 * g * g),
                    slice(1 + 2 * g * g, 1 + 2 * g * g + 32),
                    slice(1 + 2 * g * g + 32, None),
                ],
                "query_index": 0,
            },
        ),
    ]
    rows = [("forward+backward (reference)", base, 1.0)]
    for method, kw in configs:
        fn = model.attention if method == "attention" else model

        def once(method: str = method, kw: dict[str, Any] = kw, fn: Callable[..., Tensor] = fn) -> None:
            attrs = attribute(fn, inputs, target=target, method=method, **kw)
            reduce_to_components(attrs, ("image", "image", "tokens", "tokens"))

        t = _time(once, max(1, repeats // 2) if method == "occlusion" else repeats)
        label = method + "".join(f" {k}={v}" for k, v in kw.items() if k in ("n_steps", "grid"))
        rows.append((label, t, t / base))
    return rows


def run_compact(view: int, batch: int, repeats: int) -> list[tuple[str, float, float]]:
    """Timings of ``CompactPolicy.attribution`` per method, relative to one forward+backward of its log-prob."""
    from iapo_gym.agents.compact import TOKEN_KINDS, CompactConfig, CompactPolicy, ObservationBatch

    torch.manual_seed(0)
    policy = CompactPolicy(CompactConfig(view_size=view)).eval()
    vocab = policy.config.vocab_size
    b = ObservationBatch(
        torch.rand(batch, 3, view, view),
        torch.rand(batch, 3, view, view),
        torch.randint(1, vocab, (batch, 32)),
        torch.randint(1, vocab, (batch, 48)),
        torch.rand(batch, 6),
        torch.zeros(batch, 48, TOKEN_KINDS),
    )
    with torch.no_grad():
        actions = policy.sample(b)
    hw = [(1024, 1024)] * batch

    def fwd_bwd() -> None:
        policy.zero_grad(set_to_none=True)
        policy.log_prob(b, actions)[0].sum().backward()

    base = _time(fwd_bwd, repeats)
    rows = [("forward+backward (reference)", base, 1.0)]
    cases: tuple[tuple[str, dict[str, Any]], ...] = (
        ("integrated_gradients", {"n_steps": 8}),
        ("integrated_gradients", {"n_steps": 32}),
        ("gradient_x_input", {}),
        ("occlusion", {"perturbations_per_eval": 32}),
    )  # occlusion: 8x8 patches
    for method, kw in cases:
        t = _time(
            functools.partial(policy.attribution, b, actions, hw, 4, method, **kw),
            max(1, repeats // 2) if method == "occlusion" else repeats,
        )
        rows.append((method + "".join(f" {k}={v}" for k, v in kw.items() if k in ("n_steps", "grid")), t, t / base))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, nargs="+", default=[64, 128], help="view sizes (pixels per side)")
    parser.add_argument("--batch", type=int, default=1, help="decisions attributed per call")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per method (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from iapo_gym.agents.compact import CompactPolicy

    print(f"compact policy: {sum(p.numel() for p in CompactPolicy().parameters())} parameters")
    for view in args.views:
        print(f"\ncompact policy, view {view}x{view}, batch {args.batch}")
        print(f"{'method':<36} {'ms / attribution':>17} {'x fwd+bwd':>10}")
        for label, seconds, ratio in run_compact(view, args.batch, args.repeats):
            print(f"{label:<36} {seconds * 1e3:>17.2f} {ratio:>10.1f}")
    n_params = sum(p.numel() for p in StandInPolicy().parameters())
    print(
        f"stand-in policy: {n_params} parameters; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, CPU"
    )
    for view in args.views:
        print(f"\nview {view}x{view} (two images) + 32 query + 48 tool-output tokens")
        print(f"{'method':<36} {'ms / attribution':>17} {'x fwd+bwd':>10}")
        for label, seconds, ratio in run(view, args.batch, args.repeats):
            print(f"{label:<36} {seconds * 1e3:>17.2f} {ratio:>10.1f}")


if __name__ == "__main__":
    main()
