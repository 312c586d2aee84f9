"""The ``vlm`` teacher: a (larger) transformers VLM from a local folder, teacher-forced on the student's
context and action, giving its attribution of that action in the layout the student uses.

    teacher = make_teacher("vlm:/models/Qwen2.5-VL-7B-Instruct")          # or VLMTeacher(path, device="cuda")
    attr = teacher.attribute(observation, info, action)                     # one-step context
    attr = teacher.attribute(observation, info, action, dialogue=dialogue)  # the student's whole chat

The teacher reads the same chat as the student (:mod:`iapo_gym.agents.vlm.prompt`), tokenised with its own
tokenizer and images processed at its own resolution; text components are words and image components are
cells of the original image, so both attributions live in the same :class:`~iapo_gym.attribution.ComponentLayout`
whatever the two models' tokenizers and image sizes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from iapo_gym.attribution import Attribution, ComponentLayout
from iapo_gym.tools import BUILTIN_TOOLS


class VLMTeacher:
    """A VLM teacher (see the module doc).

    Args:
        path: a local checkpoint folder of a Qwen-VL-family model (``local_files_only``); it reads the chat
            through its own family's template (:mod:`iapo_gym.agents.vlm.chat`).
        device, dtype: where and how to run it (default CUDA when available; bf16 on GPU, fp32 on CPU).
        attribution: a :class:`~iapo_gym.agents.vlm.attribution.VLMAttributionConfig` or dict (method,
            image input, grid, slots...). Give it the student's ``grid``, ``query_length`` and
            ``output_length`` for component-level comparisons (block level works regardless).
        tools, system: the prompt, when a context is built from a bare observation (a given ``dialogue``
            carries its own).
        trust_remote_code, attn_implementation, min_pixels, max_pixels: passed to the loader.
    """

    name = "vlm"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: Any = "auto",
        attribution: Any = None,
        tools: Sequence[str] = BUILTIN_TOOLS,
        system: str | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = "sdpa",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from .attribution import VLMAttributionConfig
        from .model import VLM
        from .prompt import DEFAULT_SYSTEM

        self.path = str(path)
        self.vlm = VLM(
            path,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        for p in self.vlm.model.parameters():
            p.requires_grad_(False)
        self.config = VLMAttributionConfig.of(attribution)
        self.tools = tuple(tools)
        self.system = DEFAULT_SYSTEM if system is None else system

    def attribute(
        self,
        observation: Mapping[str, Any] | None,
        info: Mapping[str, Any] | None,
        layout: ComponentLayout | str | None = None,
        action: str | None = None,
        *,
        dialogue: Any = None,
        **config: Any,
    ) -> Attribution:
        """The teacher's attribution of ``action`` (the student's text) given the student's context.

        Both call forms work: the :class:`~iapo_gym.teachers.Teacher` protocol's
        ``attribute(observation, info, layout, action)`` and ``attribute(observation, info, action)``.

        Args:
            observation, info: the student's observation and env info at the decision (used when no
                ``dialogue`` is given: a one-step context of the glance, the question and the last tool
                result; ``info`` gives the original image size).
            layout: the layout wanted (its ``grid`` and slot counts are used; the result is expressed in it:
                blocks it lacks, e.g. ``context`` for a compact-track layout, are dropped and the rest
                renormalised). ``None``: the VLM layout of the decision.
            action: the student's action text (re-tokenised with the teacher's tokenizer); required.
            dialogue: the student's full :class:`~iapo_gym.agents.vlm.prompt.Dialogue` (preferred).
            **config: overrides of fields of the teacher's attribution config.
        """
        from .attribution import VLMAttributionConfig, attribute_decision
        from .prompt import dialogue_from_observation

        if isinstance(layout, str):
            if action is not None:
                raise TypeError("give the layout as a ComponentLayout (or leave it out) and the action as a string")
            layout, action = None, layout
        if action is None:
            raise ValueError("the vlm teacher is teacher-forced on the student's action: pass action=...")
        if dialogue is None:
            if observation is None:
                raise ValueError("VLMTeacher.attribute needs the observation or the student's dialogue")
            dialogue = dialogue_from_observation(observation, info, tools=self.tools, system=self.system)
        if layout is not None:
            config = {"grid": layout.grid, "query_length": layout.query_length, "output_length": layout.output_length, **config}
        cfg = VLMAttributionConfig(**{**self.config.to_dict(), **config}) if config else self.config
        attr = attribute_decision(self.vlm, dialogue, action, config=cfg)
        if layout is None or attr.layout == layout:
            return attr
        return project(attr, layout)

    def __repr__(self) -> str:
        return f"VLMTeacher({self.path!r}, method={self.config.method!r}, image_input={self.config.image_input!r})"


def make_vlm_teacher(path: str) -> VLMTeacher:
    """The ``vlm:PATH`` teacher spec's factory (this package's ``iapo_gym.teachers`` entry point ``vlm``)."""
    if not path:
        raise ValueError("the vlm teacher needs a local model folder: 'vlm:PATH'")
    return VLMTeacher(path)


def project(attr: Attribution, layout: ComponentLayout) -> Attribution:
    """``attr`` expressed in ``layout``: blocks of the same size are copied, others dropped; renormalised."""
    parts = {}
    for name, size in layout.sizes.items():
        if attr.layout.sizes.get(name) == size:
            parts[name] = attr.block(name)
    return Attribution.from_parts(layout, parts, allow_uniform=True)
