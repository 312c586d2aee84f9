"""RealVQA-v0 on hand-made files in the published formats: ReFocus's edits computed independently, the
evidence of a question, and one test per kind of bad input (an error naming the file and what is wrong, or a
skip counted with its reason)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.envs.public import DataError, load_dataset
from iapo_gym.envs.public.items import Band, parse_box
from iapo_gym.envs.real import evidence_regions, named_bands
from PIL import Image, ImageDraw

import iapo_gym  # noqa: F401  (registers RealVQA-v0)

W, H = 400, 300
LABELS = ["Velvet", "Oak", "Pine"]


def _bands(n: int = 3) -> list[dict[str, float]]:
    return [{"x1": 0.01, "y1": 0.05 + 0.3 * k, "x2": 0.99, "y2": 0.3 + 0.3 * k} for k in range(n)]


def _chart(root: Path, records: dict[str, Any], name: str = "chartQA_h_bar_wbb.json", image: bool = True) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "imgs").mkdir(exist_ok=True)
    if image:
        rng = np.random.default_rng(0)
        cv2.imwrite(str(root / "imgs" / "c.png"), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    path = root / "data" / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _record(**over: Any) -> dict[str, Any]:
    rec = {
        "query": "What is the value of Oak?",
        "answer": "17",
        "figure_path": "imgs/c.png",
        "x_values": [],
        "x_bboxes": [],
        "y_values": LABELS,
        "y_bboxes": _bands(),
        "figure_bbox": {"x1": 0, "y1": 0, "x2": 1, "y2": 1},
        "x_intervals": [],
        "y_intervals": [],
    }
    rec.update(over)
    return rec


def _env(root: Path, **kw: Any) -> gym.Env:
    return gym.make("RealVQA-v0", dataset="refocus-hbar", data_dir=str(root), ocr="scene", **kw)


# -- ReFocus's edits, computed independently with Pillow as ReFocus's src/tools.py does ----------------------
def _refocus_pixels(b: dict[str, float]) -> tuple[int, int, int, int]:
    return int(b["x1"] * W + 2), int(b["y1"] * H + 2), int(b["x2"] * W - 2), int(b["y2"] * H - 2)


def _expected(image: np.ndarray, mode: str, focus: list[str]) -> np.ndarray:
    img = Image.fromarray(image)
    boxes = dict(zip(LABELS, _bands()))
    if mode == "highlight":
        over = img.convert("RGBA").copy()
        draw = ImageDraw.Draw(over)
        for lab in focus:
            draw.rectangle(_refocus_pixels(boxes[lab]), fill=(255, 0, 0, 50))
        return np.asarray(Image.alpha_composite(img.convert("RGBA"), over).convert("RGB"))
    draw = ImageDraw.Draw(img, "RGBA")
    if mode == "draw":
        for lab in focus:
            draw.rectangle(_refocus_pixels(boxes[lab]), outline="red", width=5)
    else:
        masked = [k for k in LABELS if k not in focus]
        if len(masked) < len(LABELS):
            for lab in masked:
                draw.rectangle(_refocus_pixels(boxes[lab]), fill="white")
    return np.asarray(img)


@pytest.mark.parametrize("mode", ["highlight", "draw", "mask"])
@pytest.mark.parametrize("focus", [["Oak"], ["Velvet", "Pine"]])
def test_focus_edits_the_pixels_as_refocus_does(tmp_path: Path, mode: str, focus: list[str]) -> None:
    _chart(tmp_path, {"a": _record()})
    env = _env(tmp_path)
    _, info = env.reset(options={"scene_id": 0})
    original = info["scene"].image.copy()
    call = {"tool": "focus", "args": {"axis": "y_values", "labels": focus, "mode": mode}}
    _, _, _, _, info = env.step(json.dumps(call))
    assert info["error"] is None
    edited = env.unwrapped.ctx.image
    assert np.array_equal(edited, _expected(original, mode, focus))
    assert not np.array_equal(edited, original)
    assert np.array_equal(info["scene"].image, original)  # the cached scene is never edited


def test_mask_of_every_band_leaves_the_image_and_a_tables_header_row_is_never_masked(tmp_path: Path) -> None:
    root = tmp_path / "t"
    rows = _bands()
    rec = {
        "query": "What is the Score of Oak?",
        "answer": "3",
        "figure_path": "imgs/c.png",
        "column_headers": ["Name", "Score"],
        "columns_bbox": [{"x1": 0, "y1": 0, "x2": 0.5, "y2": 1}, {"x1": 0.5, "y1": 0, "x2": 1, "y2": 1}],
        "row_starters": ["Name", "Oak", "Pine"],
        "rows_bbox": rows,
        "table_bbox": {"x1": 0, "y1": 0, "x2": 1, "y2": 1},
        "text_html_table": "<table></table>",
    }
    _chart(root, {"t1": rec}, name="tablevqa_wbb.json")
    env = gym.make("RealVQA-v0", dataset="vwtq", data_dir=str(root), ocr="scene")
    _, info = env.reset(options={"scene_id": 0})
    original = info["scene"].image.copy()
    # the question names row Oak and column Score: the evidence is their cell
    (cell,) = info["scene"].evidence
    assert cell.kind == "cell" and cell.box == (0.5, rows[1]["y1"], rows[1]["x2"], rows[1]["y2"])
    env.step(json.dumps({"tool": "focus", "args": {"axis": "rows", "labels": ["Name"], "mode": "mask"}}))
    assert np.array_equal(env.unwrapped.ctx.image, original)  # only the header named: nothing to keep, unchanged
    env.step(json.dumps({"tool": "focus", "args": {"axis": "rows", "labels": ["Oak"], "mode": "mask"}}))
    edited = env.unwrapped.ctx.image
    x1, y1, x2, y2 = (
        int(rows[0]["x1"] * W + 2),
        int(rows[0]["y1"] * H + 2),
        int(rows[0]["x2"] * W - 2),
        int(rows[0]["y2"] * H - 2),
    )
    assert np.array_equal(edited[y1 : y2 + 1, x1 : x2 + 1], original[y1 : y2 + 1, x1 : x2 + 1])  # header kept
    x1, y1, x2, y2 = (
        int(rows[2]["x1"] * W + 2),
        int(rows[2]["y1"] * H + 2),
        int(rows[2]["x2"] * W - 2),
        int(rows[2]["y2"] * H - 2),
    )
    assert (edited[y1 : y2 + 1, x1 : x2 + 1] == 255).all()  # Pine masked


def test_tool_schema_lists_the_items_labels_and_an_unknown_label_is_refused_with_them(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record()})
    env = _env(tmp_path)
    _, info = env.reset(options={"scene_id": 0})
    focus = info["tools"]["focus"]["properties"]
    assert focus["axis"]["enum"] == ["y_values"] and focus["labels"]["items"]["enum"] == LABELS
    _, _, _, _, info = env.step('{"tool": "focus", "args": {"axis": "y_values", "labels": ["Maple"]}}')
    assert info["error"] == "unknown y_value label 'Maple'; known: Velvet, Oak, Pine"


def test_an_item_without_label_metadata_offers_zoom_and_ocr_only(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record(y_values=[], y_bboxes=[])})
    _, info = _env(tmp_path).reset(options={"scene_id": 0})
    assert list(info["tools"]) == ["zoom", "ocr", "answer"] and info["scene"].evidence == ()


# -- evidence -----------------------------------------------------------------------------------------------
def test_evidence_is_the_band_of_the_label_the_question_names() -> None:
    bands = [Band("y_values", lab, (0.0, 0.1 * k, 1.0, 0.1 * k + 0.1)) for k, lab in enumerate(["York", "New York", "Oak"])]
    assert [b.label for b in named_bands("What is the value of New York?", bands)] == ["New York"]  # not York
    assert [b.label for b in named_bands("Is oak bigger than YORK?", bands)] == ["York", "Oak"]  # case, word bounds
    assert named_bands("What about Oaks?", bands) == []
    assert evidence_regions("What is Oak?", bands)[0].label == "Oak"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from(["x1", "y1", "x2", "y2"]),
            st.one_of(st.floats(allow_nan=True), st.integers(-5, 2000), st.text(max_size=4)),
        ),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
        st.none(),
        st.text(max_size=5),
    ),
    st.sampled_from(["fraction", "pixel"]),
)
def test_a_bbox_parses_to_a_box_in_the_image_or_to_a_reason(raw: Any, unit: str) -> None:
    box = parse_box(raw, unit, (W, H))
    if isinstance(box, str):
        assert box
    else:
        x0, y0, x1, y1 = box
        assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0


# -- bad input, one by one ------------------------------------------------------------------------------------
def test_missing_data_file_names_the_published_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no data/chartQA_h_bar_wbb.json under .*expected .*data/chartQA_h_bar_wbb.json"):
        load_dataset("refocus-hbar", tmp_path)


def test_a_copy_one_folder_down_is_found_and_two_copies_are_refused(tmp_path: Path) -> None:
    _chart(tmp_path / "ReFocus_Code", {"a": _record()})
    assert len(load_dataset("refocus-hbar", tmp_path).items) == 1
    _chart(tmp_path / "another", {"a": _record()})
    with pytest.raises(DataError, match="found 2 times"):
        load_dataset("refocus-hbar", tmp_path)


def test_missing_image_is_a_counted_skip(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record(), "b": _record(figure_path="imgs/nope.png")})
    env = _env(tmp_path)
    assert env.unwrapped.report["usable"] == 1 and env.unwrapped.report["skipped"] == {"image file missing": 1}
    assert env.unwrapped.report["skipped_examples"] == ["chartQA_h_bar_wbb.json, item 'b': image file missing"]


def test_the_none_sentinel_and_empty_lists_mean_no_labels(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record(y_values=["Oak"], y_bboxes=[{"x1": "none"}]), "b": _record(y_values=[], y_bboxes=[])})
    loaded = load_dataset("refocus-hbar", tmp_path)
    assert [it.bands for it in loaded.items] == [(), ()]
    assert loaded.report["metadata_dropped"] == {"y_values: bbox is the 'none' sentinel": 1}


@pytest.mark.parametrize(
    ("labels", "boxes", "reason"),
    [
        (["Velvet", "Oak"], _bands(3), "y_values: 2 labels but 3 boxes"),
        (LABELS, [{"x1": 0.5, "y1": 0.1, "x2": 0.2, "y2": 0.3}] * 3, "y_values: bbox inverted or empty"),
        (LABELS, [{"x1": 0.1, "y1": 0.1, "x2": 1.5, "y2": 0.3}, *_bands(2)], "y_values: bbox outside the image"),
        (
            LABELS,
            [{"x1": float("nan"), "y1": 0.1, "x2": 0.5, "y2": 0.3}, *_bands(2)],
            "y_values: bbox has NaN or infinite coordinates",
        ),
    ],
)
def test_unusable_label_metadata_is_dropped_and_counted(tmp_path: Path, labels: list[str], boxes: list[Any], reason: str) -> None:
    records = {"a": _record(y_values=labels, y_bboxes=boxes)}
    _chart(tmp_path, records)
    loaded = load_dataset("refocus-hbar", tmp_path)
    assert loaded.items[0].bands == () and loaded.report["metadata_dropped"] == {reason: 1}


def test_pixel_boxes_where_fractions_are_published_are_detected(tmp_path: Path) -> None:
    pixels = [{"x1": 4, "y1": 15 + 90 * k, "x2": 396, "y2": 90 + 90 * k} for k in range(3)]
    _chart(tmp_path, {"a": _record(y_bboxes=pixels)})
    (item,) = load_dataset("refocus-hbar", tmp_path).items
    assert item.bands[1].box == pytest.approx((4 / W, 105 / H, 396 / W, 180 / H))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _chart(tmp_path, {"a": _record()})
    body = json.dumps(_record())
    path.write_text('{"a": %s, "a": %s}' % (body, body), encoding="utf-8")
    with pytest.raises(DataError, match="duplicate id or key 'a'"):
        load_dataset("refocus-hbar", tmp_path)


def test_a_non_utf8_file_is_refused_with_the_byte(tmp_path: Path) -> None:
    path = _chart(tmp_path, {"a": _record()})
    path.write_bytes(json.dumps({"a": _record(query="What is caf\u00e9?")}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DataError, match=r"not valid UTF-8 .* at byte \d+"):
        load_dataset("refocus-hbar", tmp_path)


def test_invalid_json_and_a_wrong_top_level_are_refused(tmp_path: Path) -> None:
    path = _chart(tmp_path, {"a": _record()})
    path.write_text('{"a": ', encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON"):
        load_dataset("refocus-hbar", tmp_path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="expected a non-empty JSON object mapping item ids"):
        load_dataset("refocus-hbar", tmp_path)


def test_an_item_without_a_query_is_skipped_and_a_file_with_no_usable_item_is_refused(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record(query="  ")})
    with pytest.raises(DataError, match=r"no usable item \(1 x no 'query'\)"):
        load_dataset("refocus-hbar", tmp_path)


OVERSIZED = r"""
import sys, gymnasium as gym, iapo_gym
env = gym.make("RealVQA-v0", dataset="refocus-hbar", data_dir=sys.argv[1], ocr="scene")
# this process's own peak (VmHWM: getrusage's maxrss would carry over the forking parent's peak across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(env.unwrapped.report["skipped"], peak // 1024)
"""


def test_an_oversized_image_is_skipped_before_it_is_decoded(tmp_path: Path) -> None:
    _chart(tmp_path, {"a": _record(), "big": _record(figure_path="imgs/big.png")})
    Image.new("L", (20_000, 20_000), 255).save(tmp_path / "imgs" / "big.png")  # 400 megapixels, a small file
    out = subprocess.run(
        [sys.executable, "-c", OVERSIZED, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    skipped, rss_mb = out.stdout.rsplit(" ", 1)
    assert skipped == "{'image too large': 1}" and int(rss_mb) < 1500  # decoding it would take 1.2 GB more


def test_an_item_without_a_published_answer_runs_and_is_not_scored(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "7.jpg"), np.full((120, 160, 3), 255, np.uint8))
    record = {"figure_id": 7, "query": "Which line is highest?", "answer": None, "inst_category": 1, "qa_source": 2}
    (tmp_path / "data" / "reasoning_test.json").write_text(json.dumps({"7": record}), encoding="utf-8")
    env = gym.make("RealVQA-v0", dataset="charxiv", data_dir=str(tmp_path), split="test", ocr="scene")
    assert env.unwrapped.report["unscored"] == 1
    env.reset(options={"scene_id": 0})
    _, reward, terminated, _, info = env.step("<answer>blue</answer>")
    assert terminated and reward == 0.0 and info["scored"] is False and info["correct"] is False


def test_unknown_dataset_and_split_and_no_data_dir_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'chartqa'; known: refocus-hbar"):
        gym.make("RealVQA-v0", dataset="chartqa", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="dataset 'charxiv' has no split 'train'; its splits: val, test"):
        gym.make("RealVQA-v0", dataset="charxiv", data_dir=str(tmp_path), split="train")
    with pytest.raises(ValueError, match="RealVQA-v0 needs data_dir="):
        gym.make("RealVQA-v0", dataset="charxiv")
