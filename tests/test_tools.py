"""Tools: legibility-limited scene OCR, zoom geometry, focus edits, custom tools, and the real easyocr."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from iapo_gym import ToolCallError, ToolResult, get_tool, register_tool, tool_names
from iapo_gym.tools import FunctionTool, ToolContext, letterbox
from iapo_gym.tools.schema import compile_check


def ocr_call(box) -> str:
    return json.dumps({"tool": "ocr", "args": {"box": list(box)}})


def test_scene_ocr_reads_evidence_when_zoomed_but_not_at_a_glance() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    _, info = env.reset(seed=4)
    region = info["scene"].evidence[0]
    obs, *_ = env.step(ocr_call(region.box))
    assert obs["tool_output"] == region.value
    obs, *_ = env.step(ocr_call((0, 0, 1, 1)))  # the whole canvas at view size: too small to read
    assert region.value not in obs["tool_output"].split()


def test_zoom_returns_the_region_and_its_box() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    _, info = env.reset(seed=0)
    box = [0.25, 0.25, 0.75, 0.5]
    obs, *_ = env.step(json.dumps({"tool": "zoom", "args": {"box": box}}))
    assert np.allclose(obs["view_box"], box)
    top, left, h, w = letterbox(256, 512, 128)
    assert (top, left, h, w) == (32, 0, 64, 128)
    assert not obs["crop"][:top].any() and obs["crop"][top : top + h].any()  # letterbox padding is zero


def test_focus_mask_keeps_only_the_chosen_bar() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    _, info = env.reset(seed=0)
    scene = info["scene"]
    keep = scene.layout[0].label
    obs, _, _, _, info = env.step(json.dumps({"tool": "focus", "args": {"axis": "bars", "labels": [keep], "mode": "mask"}}))
    assert info["error"] is None and keep in obs["tool_output"]
    edited = env.unwrapped.ctx.image
    x0, y0, x1, y1 = scene.to_pixels(scene.layout[1].box)
    assert (edited[y0:y1, x0:x1] == 255).all()  # another bar is gone
    assert not np.array_equal(edited, scene.image) and scene.image[y0:y1, x0:x1].min() < 255  # scene untouched
    env.reset(seed=0)
    assert env.unwrapped.ctx.image is env.unwrapped.scene.image  # a reset starts from the clean image


def test_custom_tool_registers_and_runs() -> None:
    def brightness(args, ctx: ToolContext) -> ToolResult:
        x0, y0, x1, y1 = ctx.pixel_box(tuple(args["box"]))
        return ToolResult(text=f"{ctx.image[y0:y1, x0:x1].mean():.0f}")

    schema = {"type": "object", "properties": {"box": {"type": "array"}}, "required": ["box"]}
    name = "brightness_test_tool"
    if name not in tool_names():
        register_tool(FunctionTool(name, "Mean brightness of a region.", schema, brightness))
    with pytest.raises(ValueError, match="registered already"):
        register_tool(FunctionTool(name, "dup", schema, brightness))
    env = gym.make("VisualToolVQA-HBar-v0", tools=("zoom", "answer", name))
    env.reset(seed=0)
    obs, *_, info = env.step(json.dumps({"tool": name, "args": {"box": [0, 0, 0.01, 0.01]}}))
    assert info["error"] is None and obs["tool_output"] == "255"
    *_, info = env.step(ocr_call((0, 0, 1, 1)))
    assert info["error"] == f"unknown tool 'ocr'; known: zoom, answer, {name}"


def test_a_crashing_user_tool_is_reported_not_raised() -> None:
    def broken(args, ctx):
        raise KeyError("oops")

    name = "broken_test_tool"
    if name not in tool_names():
        register_tool(FunctionTool(name, "always fails", {"type": "object", "properties": {}}, broken))
    env = gym.make("VisualToolVQA-HBar-v0", tools=("answer", name))
    env.reset(seed=0)
    *_, info = env.step(json.dumps({"tool": name, "args": {}}))
    assert info["error"].startswith(f"tool '{name}' failed: KeyError")


def test_register_rejects_non_tools() -> None:
    with pytest.raises(TypeError, match="is not a Tool"):
        register_tool(object())  # type: ignore[arg-type]
    with pytest.raises(ToolCallError, match="unknown tool 'nope'; known: zoom, ocr, focus, answer"):
        get_tool("nope")


def test_easyocr_reads_a_rendered_word_offline() -> None:
    pytest.importorskip("easyocr")
    env = gym.make("VisualToolVQA-HBar-v0", ocr="easyocr")
    hits = 0
    for seed in range(3):
        _, info = env.reset(seed=seed)
        region = info["scene"].evidence[0]
        obs, *_ = env.step(ocr_call(region.box))
        hits += obs["tool_output"].strip() == region.value
    assert hits >= 2, "easyocr should read printed bar values"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"tool": "zoom", "args": {"box": ["a", "b"]}}, "zoom box must be an array of 4 numbers in [0, 1]; got ['a', 'b']"),
        (
            {"tool": "zoom", "args": {"box": [0, 0, 1, 2]}},
            "zoom box must be an array of 4 numbers in [0, 1]; got [0, 0, 1, 2] (item 3:",
        ),
        (
            {"tool": "focus", "args": {"axis": "bars", "labels": ["Q1"], "mode": "blur"}},
            "focus mode must be one of highlight, mask, draw; got 'blur'",
        ),
        (
            {"tool": "focus", "args": {"axis": "diagonal", "labels": ["Q1"]}},
            "focus axis must be one of rows, columns, bars, series, x_values, y_values",
        ),
        (
            {"tool": "focus", "args": {"axis": "bars", "labels": "Q1"}},
            "focus labels must be a non-empty array of strings; got 'Q1'",
        ),
        ({"tool": "answer", "args": {"text": True}}, "answer text must be a string or a number; got True"),
    ],
)
def test_arguments_are_checked_against_the_tools_json_schema(args: dict, message: str) -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    env.reset(seed=0)
    obs, reward, *_, info = env.step(json.dumps(args))
    assert info["error"] is not None and info["error"].startswith(message), info["error"]
    assert obs["tool_output"] == "error: " + info["error"] and reward < 0


def test_a_number_is_an_answer_and_a_custom_schema_is_enforced() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    env.reset(seed=0)
    *_, terminated, _, info = env.step(json.dumps({"tool": "answer", "args": {"text": 12}}))
    assert terminated and info["error"] is None
    name = "count_test_tool"
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    register_tool(FunctionTool(name, "Echo a count.", schema, lambda args, ctx: ToolResult(text=str(args["n"]))), overwrite=True)
    env = gym.make("VisualToolVQA-HBar-v0", tools=("zoom", "answer", name))
    env.reset(seed=0)
    assert env.step(json.dumps({"tool": name, "args": {"n": 3}}))[-1]["error"] is None
    assert env.step(json.dumps({"tool": name, "args": {"n": 0}}))[-1]["error"] == f"{name} n must be an integer >= 1; got 0"
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        register_tool(FunctionTool("bad_schema_tool", "?", {"type": "nothing"}, lambda args, ctx: ToolResult()))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.sampled_from(["", "Q1", "rows", "mask", "x"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["box", "axis", "labels", "mode", "text", "n"]), inner, max_size=4)
    ),
    max_leaves=12,
)
_SCHEMAS = [get_tool(name).parameters for name in ("zoom", "ocr", "focus", "answer")] + [
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 2.5}}, "required": ["n"]},
    {"type": ["array", "null"], "items": {"type": ["boolean", "string"]}, "maxItems": 2},
]


@given(
    instance=_JSON
    | st.dictionaries(st.sampled_from(["box", "labels"]), st.lists(st.floats(-0.5, 1.5) | st.integers(-1, 2), max_size=5))
)
def test_the_compiled_schema_check_agrees_with_jsonschema(instance: object) -> None:
    for schema in _SCHEMAS:
        check = compile_check(schema)
        assert check is not None
        assert check(instance) == Draft202012Validator(schema).is_valid(instance), (schema, instance)


def test_the_compiled_schema_check_leaves_the_rest_to_jsonschema() -> None:
    assert compile_check({"type": "string", "pattern": "^a"}) is None  # a keyword outside the subset
    assert compile_check({"type": "array", "items": True}) is None  # a bool schema
    assert compile_check({"type": "number"})(np.float32(0.5)) is None  # not a plain JSON value
