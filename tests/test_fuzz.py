"""Fuzzing ``step`` with 10^5 random and adversarial tool-call strings across every family: no exception
escapes, and memory does not grow beyond the bounded scene cache. Slow: runs in CI or with --run-slow."""

from __future__ import annotations

import json
import tracemalloc

import gymnasium as gym
import numpy as np
import pytest

from iapo_gym import FAMILIES

CALLS = 100_000
WARMUP = 2_000
"""Steps before memory tracing starts."""
BASELINE = 10_000
"""Steps after which the traced memory is the baseline: by then every scene in the (bounded) scene cache
was allocated while tracing, so the cache's own size is in the baseline and later growth is a leak."""
MAX_GROWTH = 8 << 20
"""Bytes the traced memory may grow from the baseline to the end."""

_WEIRD = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    10**400,
    1e308,
    -1e308,
    0.5,
    "0.5",
    "",
    "zoom",
    [],
    {},
    [0.1] * 3,
    [0.1, 0.1, 0.2, 0.2],
    [0.2, 0.2, 0.1, 0.1],
    [0.0, 0.0, 1.0, 1.0],
    [0.5, 0.5, 0.5, 0.5],
    ["a"] * 4,
    [None] * 4,
    [True, 0, 1, 1],
    [-0.1, 0, 1, 1],
    [0, 0, 1.5, 1],
    {"box": 1},
    "\x00",
    "ü" * 30,
    "\ud800",
]
_TOOLS = ["zoom", "ocr", "focus", "answer", "zom", "", " ", "ZOOM", "a" * 300, "answer\x00", None, 7]
_TEMPLATES = [
    '{{"tool": {t}, "args": {a}}}',
    '<tool_call>{{"name": {t}, "arguments": {a}}}</tool_call>',
    "<answer>{s}</answer>",
    '<tool_call>{{"name": {t}',
    "<answer>{s}",
    '{{"tool": {t}, "args": {a}',
    '<think>{s}</think><tool_call>{{"name": {t}, "arguments": {a}}}</tool_call>',
    "{s}",
    "<answer><answer>{s}</answer></answer>",
    "<tool_call></tool_call>",
    "<tool_call>{s}</tool_call>",
    '{{"tool": {t}, "args": {a}, "tool": "zoom"}}',
    "[{a}]",
    '{{"args": {a}}}',
]


def _json(rng: np.random.Generator, depth: int = 0) -> str:
    """A random JSON-ish value: mostly valid, sometimes nested, sometimes not JSON at all."""
    r = rng.random()
    if r < 0.35 or depth > 3:
        value = _WEIRD[int(rng.integers(len(_WEIRD)))]
        try:
            return json.dumps(value)
        except ValueError:
            return "NaN"
    if r < 0.55:
        return "[" + ", ".join(str(round(float(x), 3)) for x in rng.uniform(-0.2, 1.2, int(rng.integers(0, 6)))) + "]"
    if r < 0.75:
        keys = ["box", "text", "axis", "labels", "mode", "x", "__class__"]
        items = [
            f"{json.dumps(keys[int(rng.integers(len(keys)))])}: {_json(rng, depth + 1)}" for _ in range(int(rng.integers(0, 4)))
        ]
        return "{" + ", ".join(items) + "}"
    if r < 0.85:
        return _text(rng)
    return "[" * int(rng.integers(1, 3000)) + "]" * int(rng.integers(0, 2))  # deep nesting (RecursionError bait)


def _text(rng: np.random.Generator) -> str:
    """Random text: printable, unicode, binary, huge."""
    n = int(rng.choice([0, 1, 5, 40, 500, 20_000]))
    kind = rng.random()
    if kind < 0.4:
        return rng.integers(32, 127, n, dtype=np.uint8).tobytes().decode("ascii")
    if kind < 0.7:
        points = rng.integers(0, 0x2FFFF, min(n, 2000), dtype=np.uint32)
        return points[(points < 0xD800) | (points >= 0xE000)].tobytes().decode("utf-32-le")  # no lone surrogates
    if kind < 0.8:
        return "9" * max(n, 5000)  # an integer too long for int()
    return rng.bytes(min(n, 2000)).decode("latin-1")


def fuzz_action(rng: np.random.Generator, labels: list[str]) -> str:
    """One random or adversarial action string."""
    r = rng.random()
    if r < 0.15:  # well-formed calls with random (often invalid) boxes and labels
        x0, y0 = rng.uniform(-0.1, 1.0, 2)
        s = rng.uniform(-0.05, 0.6)
        tool = ["zoom", "ocr"][int(rng.integers(2))]
        return json.dumps({"tool": tool, "args": {"box": [x0, y0, x0 + s, y0 + s]}})
    if r < 0.25:
        picked = [labels[int(i)] for i in rng.integers(len(labels), size=int(rng.integers(0, 4)))] if labels else []
        args = {
            "axis": ["rows", "columns", "bars", "series", "x"][int(rng.integers(5))],
            "labels": picked + ["nope"] * int(rng.integers(2)),
            "mode": ["highlight", "mask", "blur"][int(rng.integers(3))],
        }
        return json.dumps({"tool": "focus", "args": args})
    if r < 0.3:
        return f"<answer>{_text(rng)[:50]}</answer>"
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    tool = _TOOLS[int(rng.integers(len(_TOOLS)))]
    return template.format(t=json.dumps(tool), a=_json(rng), s=_text(rng))


@pytest.mark.slow
def test_fuzzed_actions_never_raise_out_of_step_and_memory_stays_bounded() -> None:
    envs = [gym.make(f"VisualToolVQA-{f}-v0", budget=8) for f in FAMILIES]
    rng = np.random.default_rng(12)
    obs_infos = [env.reset(seed=i) for i, env in enumerate(envs)]
    errors = kinds = 0
    seen_errors: set[str] = set()
    for k in range(CALLS):
        if k == WARMUP:
            tracemalloc.start()
        if k == BASELINE:
            before = tracemalloc.get_traced_memory()[0]
        i = k % len(envs)
        env = envs[i]
        scene = obs_infos[i][1]["scene"]
        action = fuzz_action(rng, [r.label for r in scene.layout])
        try:
            _, reward, terminated, truncated, info = env.step(action)
        except Exception as exc:  # the property under test: nothing escapes
            pytest.fail(f"step raised {type(exc).__name__}: {exc} on action {action[:200]!r}")
        assert np.isfinite(reward)
        if info["error"]:
            errors += 1
            seen_errors.add(info["error"].split(" ")[0])
        if terminated or truncated:
            obs_infos[i] = env.reset(seed=k)  # fresh scenes throughout: the cache keeps turning over
            kinds += 1
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    growth = after - before
    print(
        f"{CALLS} actions, {errors} rejected with a message, {kinds} episodes; traced memory growth "
        f"{growth / 2**20:.2f} MiB (peak {peak / 2**20:.1f} MiB)"
    )
    assert errors > CALLS // 2 and len(seen_errors) > 5  # the fuzzer reached many kinds of bad input
    assert growth < MAX_GROWTH, f"memory grew by {growth / 2**20:.1f} MiB over {CALLS - BASELINE} steps"


def test_the_inputs_the_fuzzer_found_are_tool_call_errors() -> None:
    env = gym.make("VisualToolVQA-HBar-v0")
    env.reset(seed=0)
    for action in (
        '{"tool": "zoom", "args": {"box": ' + "[" * 5000 + "]}}",
        '{"tool": "zoom", "args": {"box": ' + "9" * 5000 + "}}",
        json.dumps({"tool": "zoom", "args": {"box": [0, 0, 10**400, 1]}}),
    ):
        info = env.step(action)[-1]
        assert info["error"] and "failed" not in info["error"], info["error"]
