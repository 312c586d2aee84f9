"""The base environment shared by every task family: tool-call actions, image + text observations."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from iapo_gym.answers import is_correct
from iapo_gym.scoring import scorer_accepts
from iapo_gym.scene import Box, Scene, as_box
from iapo_gym.text import TextSpace, clean_text
from iapo_gym.toolcall import ToolCall, ToolCallError, parse_tool_call
from iapo_gym.trajectory import chosen_regions
from iapo_gym.tools import BUILTIN_TOOLS, ToolContext, check_args, get_tool, make_ocr
from iapo_gym.validation import check_int

from .cache import CachedScene, scene_cache
from .shortcuts import check_shortcut, plant_shortcut
from .style import FIXED, Style, check_style, draw_style

SPLITS: dict[str, tuple[int, int]] = {"train": (0, 1 << 30), "test": (1 << 30, 1 << 31)}
"""Scene-id ranges per split: disjoint, so test items are never trained on."""

QUESTION_LENGTH = 256
TOOL_OUTPUT_LENGTH = 512
ACTION_LENGTH = 4096
FULL_BOX: Box = (0.0, 0.0, 1.0, 1.0)


class ToolVQAEnv(gym.Env[dict[str, Any], str]):
    """Visual question answering with tools, over scenes from :meth:`generate`.

    ## Description
    Each episode shows one scene (a chart, a table, a street sign...) and asks one question about it. The
    evidence is small on a large canvas, so the glance image alone rarely suffices: the agent calls tools
    (``zoom``, ``ocr``, ``focus``) to look closer, then ``answer``.

    ## Observation
    ``Dict`` with ``image`` (uint8 VxVx3, the whole canvas at the view size), ``crop`` (uint8 VxVx3, the
    image the last image tool returned; zeros before any), ``question`` and ``tool_output`` (``Text``; the
    latter holds the last text result or an error message), ``view_box`` (float32 (4,), the last crop's box
    in normalised coordinates of the original image) and ``budget`` (tool calls left).

    ## Action
    A tool-call string: ``{"tool": "zoom", "args": {"box": [x0, y0, x1, y1]}}``,
    ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` or ``<answer>TEXT</answer>``. Boxes are
    normalised to the original image. A malformed call never raises: ``tool_output`` and ``info["error"]``
    say what was wrong, a budget unit is spent and the format penalty applies.

    ## Reward
    The sum of ``info["reward_terms"]``: ``outcome`` (1 for a correct answer, exact match after
    normalisation, or within ``relaxed_tolerance`` for numbers) and ``format`` (``-format_penalty`` per
    malformed call).

    ## Termination
    ``answer`` terminates; running out of ``budget`` truncates.

    ## Info
    ``family``, ``scene_id``, ``tool`` (name called, or ``None``), ``error``, ``reward_terms``, ``correct``,
    after a step ``call`` (the action parsed: a :class:`~iapo_gym.toolcall.ToolCall`, ``None`` when it did not
    parse) and ``regions`` (the image boxes a valid call chose: its ``box``, or the regions a ``focus`` named),
    ``scored`` (false for an item without a published answer: its ``correct`` means nothing), and ``scene``: the privileged :class:`~iapo_gym.scene.Scene` (evidence, layout, answers), for oracles,
    teachers and tests; a learning agent must not read it.

    ## Shortcut cue
    The bar and table families (``offers_shortcut``) can plant a confounder (:mod:`envs.shortcuts`):
    ``shortcut=p`` draws a black marker next to the asked bar or row in a share ``p`` of the scenes;
    ``shortcut_shift=True`` always draws it next to another one (the test split where the shortcut misleads);
    ``shortcut_place`` says where: ``"value"`` beside the printed value (the evidence), ``"label"`` beside the
    item's name, away from the evidence.

    ## Style
    ``style="fixed"`` (the default) draws every scene of a family in one look; ``style="random"`` draws, per
    scene, a look of its own (:mod:`envs.style`: font face and size, colours, where bar values are printed,
    gridlines, canvas aspect ratio, bar widths), for the families that offer it (``offers_style``: the six
    headline families, chart and table). The question, answers and evidence are drawn as before; only their
    rendering changes.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 2}  # gym.Env's, shared by the class
    family: str = ""  # each class's; an instance may name its own (RealVQA: the dataset's)
    question_length: ClassVar[int] = QUESTION_LENGTH
    """Characters of the question kept in the observation (the ``question`` space's length)."""
    offers_shortcut: ClassVar[bool] = False
    """Whether this family's scenes carry marker slots for the ``shortcut`` cue."""
    offers_style: ClassVar[bool] = False
    """Whether this family's ``generate`` draws in the :class:`~envs.style.Style` it is given (``style="random"``)."""

    def __init__(
        self,
        difficulty: int = 1,
        split: str = "train",
        view_size: int = 128,
        budget: int = 6,
        ocr: str = "scene",
        tools: Sequence[str] = BUILTIN_TOOLS,
        format_penalty: float = 0.1,
        relaxed_tolerance: float | None = None,
        render_mode: str | None = None,
        shortcut: float = 0.0,
        shortcut_shift: bool = False,
        shortcut_place: str = "value",
        style: str = "fixed",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        if not isinstance(difficulty, int) or not 0 <= difficulty <= 2:
            raise ValueError(f"difficulty must be 0 (easy), 1 (default) or 2 (hard); got {difficulty!r}")
        view_size = check_int("view_size", view_size, 16, hint=" (pixels)")
        budget = check_int("budget", budget, 1, hint=" (tool calls per episode)")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        for name in tools:
            get_tool(name)  # unknown names fail here, with the known ones listed
        self.difficulty, self.split, self.view_size, self.max_budget = difficulty, split, view_size, budget
        self.tools = tuple(tools)
        self.ocr_backend = make_ocr(ocr)
        self.format_penalty, self.relaxed_tolerance = float(format_penalty), relaxed_tolerance
        self.render_mode = render_mode
        self.shortcut, self.shortcut_shift, self.shortcut_place = check_shortcut(shortcut, shortcut_shift, shortcut_place)
        lacking = [name for name, cls in self.drawn_families().items() if not cls.offers_shortcut]
        if (self.shortcut or self.shortcut_shift) and lacking:
            raise ValueError(
                "shortcut and shortcut_shift need bar or table families (HBar, VBar, TableQA, TableSynth, TableFact); "
                f"no marker slots in: {', '.join(lacking)}"
            )
        self.style = check_style(style)
        unstyled = [name for name, cls in self.drawn_families().items() if not cls.offers_style]
        if self.style != "fixed" and unstyled:
            raise ValueError(
                f"style={self.style!r} needs families that draw styles (HBar, VBar, SciChart, TableQA, TableSynth, TableFact); "
                f"none in: {', '.join(unstyled)}"
            )

        image = spaces.Box(0, 255, (view_size, view_size, 3), np.uint8)
        self.observation_space = spaces.Dict(
            {
                "image": image,
                "crop": spaces.Box(0, 255, (view_size, view_size, 3), np.uint8),
                "question": TextSpace(self.question_length),
                "tool_output": TextSpace(TOOL_OUTPUT_LENGTH),
                "view_box": spaces.Box(0.0, 1.0, (4,), np.float32),
                "budget": spaces.Discrete(budget + 1),
            }
        )
        self.action_space = TextSpace(ACTION_LENGTH)
        self.scene: Scene | None = None
        self._blank = np.zeros((view_size, view_size, 3), dtype=np.uint8)
        self._blank.setflags(write=False)

    # -- the one thing a family defines -------------------------------------------------------------
    @staticmethod
    def generate(rng: np.random.Generator, difficulty: int, style: Style = FIXED) -> Scene:
        """Draw one scene in ``style`` (a family that does not offer styles is only ever given :data:`FIXED`);
        each family overrides this."""
        raise NotImplementedError("a task family overrides generate(rng, difficulty, style=FIXED) -> Scene")

    def draw_scene(self, scene_id: int) -> Scene:
        """The scene with this id (a pure function of the id and the env's settings)."""
        return self.generate(np.random.default_rng(scene_id), self.difficulty, self.scene_style(scene_id))

    def scene_style(self, scene_id: int) -> Style:
        """The style the scene with this id is drawn in: :data:`FIXED`, or its own random one."""
        return draw_style(scene_id) if self.style == "random" else FIXED

    def drawn_families(self) -> dict[str, type[ToolVQAEnv]]:
        """The task families this env draws its scenes from, by name (a mixture: one per task); what the
        ``shortcut`` and ``style`` checks ask whether they offer."""
        return {self.family: type(self)}

    def scene_key(self, scene_id: int) -> Hashable | None:
        """What decides the scene with this id, as a key of the process's scene cache (``None``: not cached).
        A family whose scenes depend on more settings than these puts them in the key too."""
        return (type(self), self.difficulty, self.split, int(scene_id))

    def _scene_entry(self, scene_id: int) -> CachedScene:
        """The drawn scene with this id, from the process's scene cache (drawn and cached when missing)."""
        key = self.scene_key(scene_id)
        planted = self.shortcut > 0.0 or self.shortcut_shift
        if key is not None and planted:
            key = (key, self.shortcut, self.shortcut_shift, self.shortcut_place)
        if key is not None and self.style != "fixed":
            key = (key, self.style)
        cache = scene_cache()
        entry = cache.get(key) if key is not None else None
        if entry is None:
            scene = self.draw_scene(scene_id)
            if planted:
                scene = plant_shortcut(scene, scene_id, self.shortcut, self.shortcut_shift, self.shortcut_place)
            entry = CachedScene(scene)
            if key is not None:
                cache.put(key, entry)
        return entry

    def scene_id_range(self) -> tuple[int, int]:
        """Half-open range of valid scene ids for this env's split (a dataset env: its item indices)."""
        return SPLITS[self.split]

    # -- Gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        lo, hi = self.scene_id_range()
        scene_id = (options or {}).get("scene_id")
        if scene_id is None:
            scene_id = int(self.np_random.integers(lo, hi))
        elif isinstance(scene_id, bool) or not isinstance(scene_id, (int, np.integer)) or not lo <= scene_id < hi:
            raise ValueError(f"options['scene_id'] must be an int in [{lo}, {hi}) here; got {scene_id!r}")
        self.scene_id = int(scene_id)
        entry = self._scene_entry(self.scene_id)
        self.scene, self._glance = entry.episode_scene(), entry.glance(self.view_size)
        self.ctx = ToolContext(self.scene, self.scene.image, self.view_size, self.ocr_backend, ink=entry.ink)
        self._question = clean_text(self.scene.question, self.question_length)
        self._crop = self._blank  # read-only zeros; _obs hands out copies
        self._view_box = np.zeros(4, dtype=np.float32)
        self._tool_output = ""
        self._budget = self.max_budget
        return self._obs(), self._info(None, None, {"outcome": 0.0, "format": 0.0}, False)

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        self._budget -= 1
        terms = {"outcome": 0.0, "format": 0.0}
        error: str | None = None
        name: str | None = None
        call: ToolCall | None = None
        terminated = correct = False
        try:
            call = parse_tool_call(action)
            name = call.name
            if call.name not in self.tools:
                raise ToolCallError(f"unknown tool {call.name!r}; known: {', '.join(self.tools)}")
            tool = get_tool(call.name)
            check_args(tool, call.args)
            try:
                result = tool(call.args, self.ctx)
            except ToolCallError:
                raise
            except Exception as exc:  # a user tool's bug must not kill a rollout; report it like bad input
                raise ToolCallError(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}") from exc
        except ToolCallError as exc:
            error = str(exc)
            terms["format"] = -self.format_penalty
            self._tool_output = clean_text(f"error: {error}", TOOL_OUTPUT_LENGTH)
        else:
            self._tool_output = clean_text(result.text, TOOL_OUTPUT_LENGTH)
            if result.crop is not None:
                self._crop = result.crop
                self._view_box = np.asarray(result.view_box or FULL_BOX, dtype=np.float32)
            if result.answer is not None:
                terminated = True
                correct = self._judge(result.answer)
                terms["outcome"] = 1.0 if correct else 0.0
        truncated = not terminated and self._budget <= 0
        reward = float(sum(terms.values()))
        info = self._info(name, error, terms, correct)
        info["call"] = call  # parsed once, here: wrappers, teachers and recorders read it instead of parsing again
        info["regions"] = [] if error is not None or call is None or call.name == "answer" else chosen_regions(call, self.scene)
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The full image with the last viewed box outlined (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self.scene is None:
            return None
        frame = self.ctx.image.copy()
        if self._view_box.any():
            x0, y0, x1, y1 = self.scene.to_pixels(as_box(self._view_box))
            cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), (255, 0, 0), 3)
        return frame

    # -- helpers -----------------------------------------------------------------------------------
    def _judge(self, answer: str) -> bool:
        """Whether ``answer`` is accepted: by the scene's named scorer, else exact match after normalisation
        (within ``relaxed_tolerance`` for numbers). A scene without accepted answers accepts nothing."""
        scene = self.scene
        assert scene is not None
        if not scene.answers:
            return False
        if scene.scorer is not None:
            return scorer_accepts(scene.scorer, answer, scene.answers, scene.meta.get("context"))
        tol = self.relaxed_tolerance if self.relaxed_tolerance is not None else scene.relaxed_tolerance
        return is_correct(answer, scene.answers, tol)

    def _obs(self) -> dict[str, Any]:
        assert self.scene is not None
        return {  # copies: check_env (and any buffer) must not see later steps through shared arrays
            "image": self._glance.copy(),
            "crop": self._crop.copy(),
            "question": self._question,
            "tool_output": self._tool_output,
            "view_box": self._view_box.copy(),
            "budget": int(max(self._budget, 0)),
        }

    def _info(self, tool: str | None, error: str | None, terms: dict[str, float], correct: bool) -> dict[str, Any]:
        assert self.scene is not None
        return {
            "family": self.scene.family,
            "scene_id": self.scene_id,
            "tool": tool,
            "error": error,
            "reward_terms": dict(terms),
            "correct": correct,
            "scored": bool(self.scene.answers),
            "scene": self.scene,
        }
