"""Speed of the public-set loaders and of a real image's first observation, on one core.

``python -m iapo_gym.benchmarks.real_speed [--items 2000] [--repeats 5] [--out docs]`` builds, in a temporary
folder, a ReFocus-format file of ``--items`` items (horizontal-bar records with three label bands each,
pointing at 40 chart-like images) and a 1,600 x 1,200 chart in PNG and in JPEG, then measures:

- **load**: reading and validating the whole file (JSON, every field, every bbox, every image's header), with
  the process's set cache cleared before each repeat;
- **first observation**: ``env.reset`` of an episode whose image was never decoded (the image cache and the
  scene cache cleared before each repeat): decoding the file, matching the question's labels, the glance;
- **cached reset**: the next reset of the same item (what a group of episodes on one item pays).

Medians over ``--repeats`` (range in brackets). Writes ``real_speed.md`` and ``real_speed.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import cv2
import gymnasium as gym
import numpy as np

import iapo_gym  # noqa: F401  (registers RealVQA-v0)
from iapo_gym.envs import images
from iapo_gym.envs.cache import scene_cache
from iapo_gym.envs.public import clear_loaded, load_dataset
from iapo_gym.io import atomic_write_json, atomic_write_text
from iapo_gym.validation import check_int

if TYPE_CHECKING:
    from iapo_gym.envs.real import RealVQAEnv

LABELS = ["Velvet", "Oak", "Pine", "Birch", "Maple"]


def chart_image(width: int, height: int, seed: int) -> np.ndarray:
    """A white chart-like image: axes, five bars with labels and values, gridlines (compresses as charts do)."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 255, np.uint8)
    x0, y0, x1, y1 = width // 8, height // 10, width - width // 10, height - height // 10
    for gx in np.linspace(x0, x1, 6).astype(int):
        cv2.line(img, (int(gx), y0), (int(gx), y1), (225, 225, 225), 1)
    band = (y1 - y0) // len(LABELS)
    for k, label in enumerate(LABELS):
        top = y0 + k * band + band // 4
        length = int(rng.uniform(0.2, 0.95) * (x1 - x0))
        cv2.rectangle(img, (x0, top), (x0 + length, top + band // 2), (70, 110, 180), -1)
        cv2.putText(img, label, (8, top + band // 3), cv2.FONT_HERSHEY_SIMPLEX, height / 1200, (0, 0, 0), 2)
        cv2.putText(
            img, f"{length / 10:.1f}", (x0 + length + 6, top + band // 3), cv2.FONT_HERSHEY_SIMPLEX, height / 1200, (0, 0, 0), 2
        )
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 2)
    cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 2)
    return img


def build(root: Path, items: int, width: int = 1600, height: int = 1200) -> None:
    """The benchmark's data folder: ``data/chartQA_h_bar_wbb.json`` with ``items`` records over 40 images of
    640 x 480, plus ``big.png`` / ``big.jpg`` (``width`` x ``height``) used by item 0 and 1."""
    (root / "data").mkdir(parents=True)
    (root / "imgs").mkdir()
    for k in range(40):
        cv2.imwrite(str(root / "imgs" / f"{k}.png"), chart_image(640, 480, k))
    big = chart_image(width, height, 99)
    cv2.imwrite(str(root / "imgs" / "big.png"), big)
    cv2.imwrite(str(root / "imgs" / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    band = 0.8 / len(LABELS)
    bboxes = [{"x1": 5 / 640, "y1": 0.1 + k * band, "x2": 635 / 640, "y2": 0.1 + (k + 1) * band} for k in range(len(LABELS))]
    records = {}
    for i in range(items):
        figure = "imgs/big.png" if i == 0 else "imgs/big.jpg" if i == 1 else f"imgs/{i % 40}.png"
        records[f"h-{i}"] = {
            "query": f"What is the value of {LABELS[i % len(LABELS)]}?",
            "answer": str(i % 97),
            "figure_path": figure,
            "x_values": [],
            "x_bboxes": [],
            "y_values": LABELS,
            "y_bboxes": bboxes,
            "figure_bbox": {"x1": 0.12, "y1": 0.1, "x2": 0.9, "y2": 0.9},
            "x_intervals": [],
            "y_intervals": [],
        }
    (root / "data" / "chartQA_h_bar_wbb.json").write_text(json.dumps(records), encoding="utf-8")


def _times(fn: Callable[[], Any], before: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _clear() -> None:
    clear_loaded()
    images.clear_cache()
    scene_cache().clear()


def measure(items: int = 2000, repeats: int = 5) -> dict[str, Any]:
    """The figures of the module docstring, in seconds (lists of repeats)."""
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, items)
        load = _times(lambda: load_dataset("refocus-hbar", root), _clear, repeats)
        env = gym.make("RealVQA-v0", dataset="refocus-hbar", data_dir=str(root), ocr="scene", view_size=448)
        usable = len(cast("RealVQAEnv", env.unwrapped).items)
        result: dict[str, Any] = {"items": items, "repeats": repeats, "load_s": load, "usable": usable}
        for fmt, scene_id in (("png", 0), ("jpeg", 1)):

            def reset(i: int = scene_id) -> None:
                env.reset(options={"scene_id": i})

            def fresh() -> None:
                images.clear_cache()
                scene_cache().clear()

            result[f"first_obs_{fmt}_s"] = _times(reset, fresh, repeats)
            result[f"cached_reset_{fmt}_s"] = _times(reset, lambda: None, repeats)
    return result


def _fmt(values: Sequence[float], scale: float, unit: str) -> str:
    med = statistics.median(values) * scale
    return f"{med:.1f} {unit} [{min(values) * scale:.1f}, {max(values) * scale:.1f}]"


def report(result: dict[str, Any]) -> str:
    rows = [
        (
            "load a file of {items:,} items (JSON, fields, boxes, image headers)".format(**result),
            _fmt(result["load_s"], 1, "s"),
            "≤ 2 s",
        ),
        (
            "first observation, 1,600 x 1,200 PNG (decode, evidence, glance)",
            _fmt(result["first_obs_png_s"], 1e3, "ms"),
            "≤ 20 ms",
        ),
        ("first observation, 1,600 x 1,200 JPEG", _fmt(result["first_obs_jpeg_s"], 1e3, "ms"), "≤ 20 ms"),
        ("cached reset of the same item (PNG)", _fmt(result["cached_reset_png_s"], 1e3, "ms"), ""),
        ("cached reset of the same item (JPEG)", _fmt(result["cached_reset_jpeg_s"], 1e3, "ms"), ""),
    ]
    lines = [
        "# Public-set loading and first-observation speed",
        "",
        f"`python -m iapo_gym.benchmarks.real_speed --items {result['items']} --repeats {result['repeats']}`: one core "
        "(`cv2.setNumThreads(1)`), medians with the range over repeats in brackets; the view is 448 px.",
        "",
        "| what | time | goal |",
        "|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iapo_gym.benchmarks.real_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="folder for real_speed.md and real_speed.json (default: print only)")
    args = parser.parse_args(argv)
    result = measure(check_int("--items", args.items, 3), check_int("--repeats", args.repeats, 1))
    text = report(result)
    print(text, end="")
    if args.out:
        atomic_write_text(Path(args.out) / "real_speed.md", text)
        atomic_write_json(Path(args.out) / "real_speed.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
