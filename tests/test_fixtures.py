"""The public-test-set fixtures: files in the published formats that parse, boxes that lie inside the image
and over the ink of the labels they name, one draw per image, the same bytes for the same seed."""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("vega_datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from iapo_gym.benchmarks import fixtures  # noqa: E402
from iapo_gym.benchmarks.fixtures import SETS, FixtureError, build_fixtures  # noqa: E402
from PIL import Image  # noqa: E402

ITEMS = 4
INK = 160
"""A pixel is ink when its grey level is below this (the backgrounds are white, the text black)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures") / "data"
    start = time.perf_counter()
    build_fixtures(out, items=ITEMS, seed=0)
    print(f"built {len(SETS)} sets x {ITEMS} items in {time.perf_counter() - start:.2f} s")
    return out


def load(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text())


def gray(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel).convert("L"), dtype=np.int16)


def pixels(box: dict[str, float], width: int, height: int) -> tuple[int, int, int, int]:
    return round(box["x1"] * width), round(box["y1"] * height), round(box["x2"] * width), round(box["y2"] * height)


def assert_box(box: dict[str, Any]) -> None:
    assert list(box) == ["x1", "y1", "x2", "y2"]
    assert 0 <= box["x1"] < box["x2"] <= 1 and 0 <= box["y1"] < box["y2"] <= 1, box


# --------------------------------------------------------------------------------------------- layout


def test_manifest_lists_every_set_file_and_count(built: Path) -> None:
    manifest = load(built, "manifest.json")
    assert manifest["format"] == fixtures.FORMAT and manifest["seed"] == 0 and manifest["items"] == ITEMS
    assert list(manifest["sets"]) == list(SETS)
    for name, entry in manifest["sets"].items():
        assert entry["items"] >= 1, name
        for rel, count in entry["files"].items():
            path = built / rel
            assert path.is_file(), rel
            n = pq.ParquetFile(path).metadata.num_rows if rel.endswith(".parquet") else len(load(built, rel))
            assert n == count, rel
        for rel in entry["images"]:
            assert (built / rel).is_file(), rel
    assert not list(built.parent.glob(".data.*")), "no temporary sibling is left behind"


def test_published_file_names(built: Path) -> None:
    names = {str(p.relative_to(built)) for p in built.rglob("*") if p.is_file()}
    expected = {
        "data/chartQA_h_bar_wbb.json",
        "data/chartQA_v_bar_wbb.json",
        "data/tablevqa_wbb.json",
        "data/tablevqa-vwtq_syn_wbb.json",
        "data/tablevqa-vtabfact_wbb.json",
        "data/reasoning_val.json",
        "data/reasoning_test.json",
        "data/descriptive_val.json",
        "data/descriptive_test.json",
        "data/image_metadata_val.json",
        "data/image_metadata_test.json",
        "datasets/test_full.parquet",
        "datasets/val_full.parquet",
        "datasets/train_full.parquet",
        "datasets/table_train.parquet",
        "datasets/table_test.parquet",
    }
    assert expected <= names


# --------------------------------------------------------------------------------------------- ReFocus charts


def chart_records(root: Path, kind: str) -> dict[str, Any]:
    return load(root, f"data/chartQA_{kind}_wbb.json")


@pytest.mark.parametrize("kind", ["h_bar", "v_bar"])
def test_refocus_chart_records_follow_the_helper(built: Path, kind: str) -> None:
    records = chart_records(built, kind)
    assert len(records) == ITEMS
    for key, ex in records.items():
        assert set(ex) == {
            "figure_path",
            "query",
            "answer",
            "figure_bbox",
            "x_intervals",
            "y_intervals",
            "x_values",
            "y_values",
            "x_bboxes",
            "y_bboxes",
        }
        assert isinstance(ex["query"], str) and isinstance(ex["answer"], str) and ex["answer"]
        assert ex["x_intervals"] == ex["y_intervals"] == []
        image = Image.open(built / ex["figure_path"])
        assert image.format == "PNG" and not image.info, "no metadata chunk"
        w, h = image.size
        assert 640 <= w <= 1600 and 480 <= h <= 1200
        fig = ex["figure_bbox"]
        assert_box(fig)
        labels, boxes = (ex["y_values"], ex["y_bboxes"]) if kind == "h_bar" else (ex["x_values"], ex["x_bboxes"])
        other = (ex["x_values"], ex["x_bboxes"]) if kind == "h_bar" else (ex["y_values"], ex["y_bboxes"])
        assert other == ([], [])
        assert len(labels) == len(boxes) == len(set(labels)) >= 2, key
        for b in boxes:
            assert_box(b)
        if kind == "h_bar":  # full-width bands (5 px in), top to bottom, the last reaching the plot bottom
            assert all(b["x1"] == 5 / w and b["x2"] == (w - 5) / w for b in boxes)
            assert boxes[0]["y1"] >= fig["y1"] and boxes[-1]["y2"] == fig["y2"]
            assert all(a["y2"] <= b["y1"] for a, b in zip(boxes, boxes[1:]))
        else:  # from the plot top down to the tick labels, left to right, the last reaching the plot's right
            assert all(b["y1"] == fig["y1"] and b["y2"] > fig["y2"] for b in boxes)
            assert boxes[0]["x1"] >= fig["x1"] and boxes[-1]["x2"] == fig["x2"]
            assert all(a["x2"] <= b["x1"] for a, b in zip(boxes, boxes[1:]))


def test_central_bands_follow_refocus_helper() -> None:
    """Each band reaches half-way from its label's centre to the next label's *start* (so neighbours leave
    a gap), never starts before the previous band ends, and the last one runs to the plot's edge."""
    assert fixtures.central_bands([(10, 10), (40, 10), (70, 10)], 0, 100) == [(2, 27), (32, 57), (57, 100)]
    assert fixtures.central_bands([(50, 20)], 30, 90) == [(30, 90)]


def label_strip(ex: dict[str, Any], kind: str, img: np.ndarray) -> tuple[np.ndarray, int]:
    """The tick-label strip (left of the plot for h_bar, under it for v_bar), as an ink mask over the
    whole image's rows (h_bar) or columns (v_bar), and the offset of its first pixel."""
    h, w = img.shape
    fx1, fy1, fx2, fy2 = pixels(ex["figure_bbox"], w, h)
    if kind == "h_bar":
        return img[fy1:fy2, : fx1 - 2] < INK, fy1
    bottom = round(ex["x_bboxes"][0]["y2"] * h)
    return (img[fy2 + 2 : bottom, fx1:fx2] < INK).T, fx1


@pytest.mark.parametrize("kind", ["h_bar", "v_bar"])
def test_every_label_band_holds_its_label_ink_and_all_label_ink_is_in_a_band(built: Path, kind: str) -> None:
    for key, ex in chart_records(built, kind).items():
        img = gray(built, ex["figure_path"])
        h, w = img.shape
        strip, offset = label_strip(ex, kind, img)
        ink_lines = np.flatnonzero(strip.any(axis=1)) + offset  # rows (h_bar) or columns (v_bar) with ink
        boxes = ex["y_bboxes"] if kind == "h_bar" else ex["x_bboxes"]
        size, lo, hi = (h, "y1", "y2") if kind == "h_bar" else (w, "x1", "x2")
        spans = [(round(b[lo] * size), round(b[hi] * size)) for b in boxes]
        for (a, b), label in zip(spans, ex["y_values"] or ex["x_values"]):
            assert ((ink_lines >= a) & (ink_lines <= b)).sum() >= 3, f"{key}: no ink of {label!r} in its band"
        outside = [v for v in ink_lines if not any(a <= v <= b for a, b in spans)]
        assert not outside, f"{key}: label ink outside every band at {outside[:5]}"


@pytest.mark.slow
def test_ocr_reads_the_named_label_inside_its_band(built: Path) -> None:
    """The ink in a label's band is that label: easyocr (offline weights) reads it back."""
    pytest.importorskip("easyocr")
    from iapo_gym.tools.ocr import EasyOCR

    ocr = EasyOCR()
    checked = 0
    for key, ex in chart_records(built, "h_bar").items():
        img = np.asarray(Image.open(built / ex["figure_path"]).convert("RGB"))
        h, w = img.shape[:2]
        fx1 = round(ex["figure_bbox"]["x1"] * w)
        for label, box in list(zip(ex["y_values"], ex["y_bboxes"]))[:2]:
            y1, y2 = round(box["y1"] * h), round(box["y2"] * h)
            read = ocr.recognize(tight_crop(img[y1:y2, : fx1 - 8]))
            assert similar(read, label), f"{key}: band of {label!r} reads {read!r}"
            checked += 1
    for key, ex in load(built, "data/tablevqa_wbb.json").items():
        img = np.asarray(Image.open(built / ex["figure_path"]).convert("RGB"))
        h, w = img.shape[:2]
        if not ex["columns_bbox"]:
            continue
        x1, _, x2, _ = pixels(ex["columns_bbox"][0], w, h)
        for label, box in list(zip(ex["row_starters"], ex["rows_bbox"]))[1:3]:
            _, y1, _, y2 = pixels(box, w, h)
            read = ocr.recognize(tight_crop(img[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]))
            assert similar(read, label), f"{key}: row of {label!r} reads {read!r}"
            checked += 1
    assert checked >= 8


def tight_crop(region: np.ndarray, pad: int = 4) -> np.ndarray:
    ink = np.argwhere(region.mean(axis=2) < INK)
    (a, b), (c, d) = ink.min(axis=0), ink.max(axis=0)
    return region[max(0, a - pad) : c + pad + 1, max(0, b - pad) : d + pad + 1]


def similar(read: str, label: str) -> bool:
    norm = [re.sub(r"[^a-z0-9]", "", s.lower()) for s in (read, label)]
    return difflib.SequenceMatcher(None, *norm).ratio() >= 0.8


# --------------------------------------------------------------------------------------------- ReFocus tables


def parse_like_refocus(text_html_table: str) -> tuple[list[str], list[str]]:
    """Column headers and row starters, read from the HTML the way ReFocus's table helper reads them."""
    table = text_html_table[:-1]
    starters = [r.split(">")[1].split("</")[0] for r in table.split("<tr>")[1:]]
    headers: list[str] = []
    for row in table.split("</tr>"):
        if row.count("<th>") > len(headers):
            headers = [k.replace("</th>", "") for k in row.split("<th>")[1:]]
    return headers, starters


@pytest.mark.parametrize("name", ["vwtq", "vwtq-syn", "vtabfact"])
def test_refocus_table_records(built: Path, name: str) -> None:
    records = load(built, f"data/{fixtures.TABLE_FILES[name]}")
    assert len(records) == ITEMS
    for key, ex in records.items():
        assert list(ex) == [
            "figure_id",
            "figure_path",
            "query",
            "answer",
            "text_html_table",
            "column_headers",
            "columns_bbox",
            "row_starters",
            "rows_bbox",
            "table_bbox",
        ]
        assert ex["figure_path"] == f"{fixtures.TABLE_IMAGE_DIRS[name]}/{ex['figure_id']}.png"
        headers, starters = parse_like_refocus(ex["text_html_table"])
        assert ex["column_headers"] in (headers, [])
        assert ex["row_starters"] == starters and starters[0] == headers[0]
        assert len(ex["columns_bbox"]) == len(ex["column_headers"]) and len(ex["rows_bbox"]) == len(starters)
        for b in ex["columns_bbox"] + ex["rows_bbox"] + [ex["table_bbox"]]:
            assert_box(b)
        assert all(a["y2"] < b["y1"] for a, b in zip(ex["rows_bbox"], ex["rows_bbox"][1:]))
        assert all(a["x2"] < b["x1"] for a, b in zip(ex["columns_bbox"], ex["columns_bbox"][1:]))
        if name == "vtabfact":
            assert ex["answer"] in ("0", "1")
        else:
            assert isinstance(ex["answer"], (str, list)) and ex["answer"]
    if name == "vtabfact":
        answers = [ex["answer"] for ex in records.values()]
        assert answers.count("1") == answers.count("0"), "half the statements are true"


@pytest.mark.parametrize("name", ["vwtq", "vwtq-syn", "vtabfact"])
def test_table_header_cells_and_row_starters_hold_ink(built: Path, name: str) -> None:
    for key, ex in load(built, f"data/{fixtures.TABLE_FILES[name]}").items():
        img = gray(built, ex["figure_path"])
        h, w = img.shape
        if not ex["columns_bbox"]:
            continue
        rows = [pixels(b, w, h) for b in ex["rows_bbox"]]
        cols = [pixels(b, w, h) for b in ex["columns_bbox"]]
        for label, (cx1, _, cx2, _) in zip(ex["column_headers"], cols):  # the header cell of each column
            _, ry1, _, ry2 = rows[0]
            assert (img[ry1 + 2 : ry2 - 2, cx1 + 2 : cx2 - 2] < INK).sum() > 5, f"{key}: header {label!r} has no ink"
        cx1, _, cx2, _ = cols[0]
        for label, (_, ry1, _, ry2) in zip(ex["row_starters"], rows):  # the first cell of each row
            assert (img[ry1 + 2 : ry2 - 2, cx1 + 2 : cx2 - 2] < INK).sum() > 5, f"{key}: row {label!r} has no ink"


def test_vwtq_item_six_has_no_column_boxes_as_refocus_leaves_a_mismatch() -> None:
    with fixtures.matplotlib_style():
        items = fixtures.table_items("vwtq", 0, 6)
    assert [bool(it.record["columns_bbox"]) for it in items] == [True] * 5 + [False]
    assert items[5].record["column_headers"] == [] and items[5].record["rows_bbox"]


# --------------------------------------------------------------------------------------------- CharXiv


def test_charxiv_files(built: Path) -> None:
    for split, fids in (("val", range(0, ITEMS, 2)), ("test", range(1, ITEMS, 2))):
        reasoning = load(built, f"data/reasoning_{split}.json")
        descriptive = load(built, f"data/descriptive_{split}.json")
        meta = load(built, f"data/image_metadata_{split}.json")
        assert list(reasoning) == list(descriptive) == list(meta) == [str(f) for f in fids]
        for key, r in reasoning.items():
            assert list(r) == ["figure_id", "query", "answer", "inst_category", "qa_source"]
            assert r["figure_id"] == int(key) and r["inst_category"] in (1, 2, 3, 4) and r["qa_source"] in (1, 2, 3)
            d = descriptive[key]
            assert d["num_subplots"] == 1 and d["subplot_loc"] == [0, 0]
            assert len(set(d["qids"])) == 4 and all(1 <= q <= 19 for q in d["qids"])
            assert set(meta[key]) == {"category", "year", "figure_path", "caption", "paper_id", "title"}
            image = Image.open(built / f"images/{key}.jpg")
            assert image.format == "JPEG"
            if split == "test":
                assert r["answer"] is None and d["answers"] is None
                continue
            assert isinstance(r["answer"], str) and r["answer"]
            assert len(d["answers"]) == 4 and all(isinstance(a, str) and a for a in d["answers"])
            if r["inst_category"] == 4:  # CharXiv builds the decimal-places instruction from this string
                assert re.fullmatch(r"-?\d+(\.\d+)?", r["answer"]), r


def test_charxiv_descriptive_answers_come_from_the_drawn_figure() -> None:
    with fixtures.matplotlib_style():
        item = fixtures.sci_item(0, 0)
    chart = item.chart
    assert fixtures.descriptive_answer(12, chart) == str(len(item.data.series))
    assert fixtures.descriptive_answer(13, chart) == ", ".join(s.label for s in item.data.series)
    assert fixtures.descriptive_answer(2, chart) == item.data.xlabel
    assert fixtures.descriptive_answer(18, chart) == "1 by 1"
    assert chart.xticks and chart.yticks


# --------------------------------------------------------------------------------------------- VTool-R1


def rows(root: Path, rel: str) -> list[dict[str, Any]]:
    return pq.read_table(root / rel).to_pylist()


def test_vtool_chart_parquets(built: Path) -> None:
    for split in ("train", "val", "test"):
        table = pq.read_table(built / f"datasets/{split}_full.parquet")
        assert table.column_names == ["metadata", "figure_id", "figure_path", "query", "prompt", "answer", "images"]
        assert table.schema.field("images").type == pa.list_(pa.binary())
        assert pa.types.is_struct(table.schema.field("metadata").type)
        hf = json.loads(table.schema.metadata[b"huggingface"])
        binary = {"dtype": "binary", "_type": "Value"}
        assert hf["info"]["features"]["images"] == {"feature": binary, "_type": "Sequence"}
        for row in table.to_pylist():
            meta = row["metadata"]
            assert meta["type"] in ("h_bar", "v_bar") and row["figure_id"].startswith(f"{split}-")
            full, empty = ("y_values_bbox", "x_values_bbox")
            if meta["type"] == "v_bar":
                full, empty = empty, full
            assert meta[empty]["x1"] == "none" and all(v is None for k, v in meta[empty].items() if k != "x1")
            labels = {k: v for k, v in meta[full].items() if v is not None}
            assert meta[full].get("x1") is None and labels
            assert f"The {full[0]} values in the image are: {list(labels)}." in row["prompt"]
            image = Image.open(io.BytesIO(row["images"][0]))
            assert image.format == "PNG" and (built / row["figure_path"]).read_bytes() == row["images"][0]
            w, h = image.size
            for box in [meta["figure_bbox"], *labels.values()]:
                assert all(isinstance(v, int) for v in box.values())  # pixels
                assert 0 <= box["x1"] < box["x2"] <= w and 0 <= box["y1"] < box["y2"] <= h


def test_vtool_table_parquets_are_the_refocus_records_in_pixels(built: Path) -> None:
    refocus = {}
    for name in ("vwtq", "vwtq-syn", "vtabfact"):
        refocus.update(load(built, f"data/{fixtures.TABLE_FILES[name]}"))
    seen = 0
    for rel in ("datasets/table_train.parquet", "datasets/table_test.parquet"):
        for row in rows(built, rel):
            meta = json.loads(row["metadata"])
            assert list(meta) == ["type", "figure_bbox", "columns_bbox", "row_starters"] and meta["type"] == "table"
            matches = [ex for ex in refocus.values() if ex["figure_id"] == row["figure_id"] and ex["query"] == row["query"]]
            assert matches, row["query"]
            ex = matches[0]
            w, h = Image.open(io.BytesIO(row["images"][0])).size
            assert meta["figure_bbox"] == ex["table_bbox"]  # left in fractions, as VTool-R1 leaves it
            assert list(meta["row_starters"]) == ex["row_starters"]
            for box, ref in zip(meta["row_starters"].values(), ex["rows_bbox"]):
                scaled = {"x1": ref["x1"] * w, "y1": ref["y1"] * h, "x2": ref["x2"] * w, "y2": ref["y2"] * h}
                assert box == pytest.approx(scaled)
            answer = ex["answer"]
            assert row["answer"] == ("|||".join(answer) if isinstance(answer, list) else answer)
            seen += 1
    assert seen == ITEMS


def test_datasets_library_loads_the_parquets(built: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(built / "datasets/test_full.parquet"), split="train")
    row = ds[0]
    assert isinstance(row["images"][0], bytes) and isinstance(row["metadata"], dict)
    tables = datasets.load_dataset("parquet", data_files=str(built / "datasets/table_test.parquet"), split="train")
    assert isinstance(json.loads(tables[0]["metadata"]), dict)


# --------------------------------------------------------------------------------------------- determinism, errors


SUBSET = ["refocus-hbar", "vwtq", "charxiv", "vtool-r1-charts", "vtool-r1-tables"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_a_prefix_does_not_depend_on_items(tmp_path: Path) -> None:
    """Byte for byte, across processes too (another hash seed, through the command line)."""
    a = tree(build_fixtures(tmp_path / "a", items=2, seed=3, sets=SUBSET))
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "iapo_gym.benchmarks.fixtures",
            "--out",
            str(tmp_path / "b"),
            "--items",
            "2",
            "--seed",
            "3",
            "--sets",
            ",".join(SUBSET),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    b = tree(tmp_path / "b")
    assert a == b
    c = tree(build_fixtures(tmp_path / "c", items=2, seed=4, sets=SUBSET))
    assert a["data/chartQA_h_bar_wbb.json"] != c["data/chartQA_h_bar_wbb.json"]
    longer = build_fixtures(tmp_path / "d", items=3, seed=3, sets=["refocus-hbar"])
    short, long_ = json.loads(a["data/chartQA_h_bar_wbb.json"]), load(longer, "data/chartQA_h_bar_wbb.json")
    assert list(long_.items())[:2] == list(short.items())


def test_one_draw_per_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property: Any) -> None:
    """The build's cost is its draws: each image is drawn once (a chart would redraw only if its labels
    missed the bands its layout predicted). Timing is reported, never asserted (benchmarks time, tests
    count)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    draws = []
    original = FigureCanvasAgg.draw
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda self: draws.append(1) or original(self))
    start = time.perf_counter()
    out = build_fixtures(tmp_path / "f", items=3, seed=0)
    record_property("build_seconds_3_items_all_sets", round(time.perf_counter() - start, 2))
    manifest = load(out, "manifest.json")
    images = {rel for entry in manifest["sets"].values() for rel in entry["images"]}
    assert len(images) <= len(draws) <= len(images) + 2


def test_rebuild_replaces_an_earlier_build_but_never_a_foreign_folder(tmp_path: Path) -> None:
    out = build_fixtures(tmp_path / "x", items=1, sets=["refocus-vbar"])
    build_fixtures(out, items=1, sets=["vtabfact"])
    assert not (out / "data/chartQA_v_bar_wbb.json").exists() and (out / "data/tablevqa-vtabfact_wbb.json").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FixtureError, match="non-empty folder"):
        build_fixtures(foreign, items=1, sets=["vtabfact"])
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(FixtureError, match="unknown fixture set"):
        build_fixtures(tmp_path / "y", sets=["refocus-pie"])
    with pytest.raises(FixtureError, match="items must be"):
        build_fixtures(tmp_path / "y", items=0)
    assert not (tmp_path / "y").exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fixtures.main(["--out", str(tmp_path / "cli"), "--items", "1", "--sets", "refocus-vbar,charxiv"]) == 0
    printed = capsys.readouterr().out
    assert "data/chartQA_v_bar_wbb.json (1)" in printed and "built" in printed
    assert fixtures.main(["--out", str(tmp_path / "cli"), "--sets", "nope"]) == 2
