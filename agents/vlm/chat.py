"""The model family's own chat template with tools: one format for training (TRL) and for benchmarks.

- :func:`tool_functions`: every registered tool as a typed Python function with a Google-style docstring, the
  form TRL's ``environment_factory`` turns into tool definitions (``transformers.utils.get_json_schema``);
  :func:`tool_schemas` gives the same definitions to the agent, so a checkpoint is benchmarked with exactly
  the tool list it was trained with.
- :func:`family_of` / :func:`ensure_tool_template`: the chat template must render tools, tool calls and tool
  messages. Qwen3-VL checkpoints ship such a template and use it. Qwen2.5-VL's stock template cannot render
  tool calls, so :data:`SHIPPED_TEMPLATES` holds one for that family (``templates/qwen2_5_vl_tools.jinja``, the
  Qwen2.5 ChatML tool format), used instead and logged. A family with neither fails with a message saying
  what to pass (``chat_template=PATH``).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from iapo_gym.tools import BUILTIN_TOOLS, get_tool

log = logging.getLogger("iapo_gym.vlm")

TEMPLATES_DIR = Path(__file__).with_name("templates")

FAMILIES: dict[str, str] = {"qwen2_5_vl": "Qwen2.5-VL", "qwen2_vl": "Qwen2-VL", "qwen3_vl": "Qwen3-VL"}
"""``config.model_type`` of the supported VLM families -> their names."""

SHIPPED_TEMPLATES: dict[str, Path] = {
    "qwen2_5_vl": TEMPLATES_DIR / "qwen2_5_vl_tools.jinja",
    "qwen2_vl": TEMPLATES_DIR / "qwen2_5_vl_tools.jinja",
}
"""Tool-capable chat templates shipped for families whose stock template cannot render tool calls."""

RESPONSE_PARSERS: dict[str, str] = {"qwen2_5_vl": "qwen3", "qwen2_vl": "qwen3", "qwen3_vl": "qwen3"}
"""The TRL response parser (``trl.chat_template_utils.<name>_template``) matching each family's tool-call
format: every Qwen family writes ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``."""

_JSON_TYPES: dict[str, type] = {"number": float, "integer": int, "string": str, "boolean": bool}


def _hint(schema: Mapping[str, Any]) -> Any:
    """A Python type hint whose JSON schema (``get_json_schema``) is ``schema``'s type."""
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list) and kind and all(k in _JSON_TYPES for k in kind):  # e.g. ["string", "number"]
        return Union[tuple(_JSON_TYPES[k] for k in kind)]
    if kind == "array":
        return list[_hint(schema.get("items", {"type": "string"}))]  # type: ignore[misc]  # a hint built at run time
    if kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    raise ValueError(
        f"tool parameter schema {dict(schema)!r}: type must be one of array, "
        f"{', '.join(_JSON_TYPES)} (or an enum) to become a chat tool definition"
    )


def tool_function(
    name: str, call: Callable[[str, dict[str, Any]], Any] | None = None, parameters: Mapping[str, Any] | None = None
) -> Callable[..., Any]:
    """The registered tool ``name`` as a function ``f(self, **arguments)`` with a signature, type hints and a
    Google-style docstring built from its JSON schema (what TRL and ``apply_chat_template`` read).

    ``call(name, arguments)`` does the work (an environment's dispatch); without it the function only
    describes the tool. ``parameters`` replaces the registered schema (an item's own, e.g. ``focus`` with
    the labels of a real chart as the allowed values: ``info["tools"]`` of ``RealVQA-v0``).
    """
    tool = get_tool(name)
    schema = dict(tool.parameters if parameters is None else parameters)
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines = []
    for arg in sorted(props, key=lambda a: a not in required):  # required ones first, as Python needs
        schema = props[arg]
        annotations[arg] = _hint(schema)
        default = inspect.Parameter.empty if arg in required else schema.get("default")
        params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotations[arg]))
        desc = schema.get("description") or arg
        lines.append(f"    {arg}: {' '.join(str(desc).split())}")

    def method(self: Any, **arguments: Any) -> Any:
        if call is None:
            raise RuntimeError(f"tool {name!r} is a description only here (no environment to run it)")
        return call(name, arguments)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # read by inspect; not in typeshed
    method.__annotations__ = annotations
    method.__doc__ = " ".join(tool.description.split()) + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    return method


def tool_schemas(
    tools: Sequence[str] = BUILTIN_TOOLS, parameters: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The chat tool definitions of the named tools, exactly as TRL renders an environment's tool methods;
    ``parameters`` gives some of them an item's own schema (see :func:`tool_function`)."""
    from transformers.utils import get_json_schema

    given = parameters or {}
    return [get_json_schema(tool_function(t, parameters=given.get(t))) for t in tools]


def tool_functions(tools: Sequence[str], call: Callable[[str, dict[str, Any]], Any]) -> dict[str, Callable[..., Any]]:
    """``{name: method}`` for a class body: each method runs ``call(name, arguments)``."""
    return {t: tool_function(t, call) for t in tools}


# -- templates ------------------------------------------------------------------------------------------------
def family_of(config: Any) -> str:
    """The ``model_type`` of a model config (its top level: ``qwen2_5_vl``, ``qwen3_vl``...)."""
    return str(getattr(config, "model_type", "") or "")


def renders_tools(processor: Any) -> bool:
    """Whether ``processor``'s chat template renders a tool definition, an assistant tool call and a tool
    message (all three must show up in the text)."""
    if not getattr(processor, "chat_template", None):
        return False
    tools = [
        {
            "type": "function",
            "function": {"name": "probe_tool_x", "description": "d", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": ""}],
            "tool_calls": [{"type": "function", "function": {"name": "probe_call_y", "arguments": {"k": "v"}}}],
        },
        {"role": "tool", "name": "probe_call_y", "content": [{"type": "text", "text": "probe_result_z"}]},
    ]
    try:
        text = processor.apply_chat_template(messages, tools=tools, tokenize=False)
    except Exception:  # noqa: BLE001 -- any template error means: cannot render tools
        return False
    return all(s in text for s in ("probe_tool_x", "probe_call_y", "probe_result_z"))


def ensure_tool_template(processor: Any, family: str, source: str, chat_template: str | os.PathLike[str] | None = None) -> str:
    """Make ``processor`` (and its tokenizer) render tools; returns where the template came from.

    Args:
        processor: the loaded processor (changed in place).
        family: the model's ``model_type``.
        source: the model folder (for messages).
        chat_template: a Jinja template (text or a ``.jinja`` file) to use instead of the checkpoint's.

    Returns:
        ``"checkpoint"``, ``"shipped:<file>"`` or ``"given"``.

    Raises:
        ValueError: the template cannot render tools and none is shipped for the family.
    """
    if chat_template is not None:
        text = Path(chat_template).read_text() if Path(str(chat_template)).suffix == ".jinja" else str(chat_template)
        _set_template(processor, text)
        if not renders_tools(processor):
            raise ValueError(
                f"chat_template {str(chat_template)[:80]!r} cannot render tools, tool calls and tool "
                "messages; give a tool-capable Jinja template"
            )
        return "given"
    if renders_tools(processor):
        return "checkpoint"
    shipped = SHIPPED_TEMPLATES.get(family)
    if shipped is None:
        known = ", ".join(f"{FAMILIES[k]} ({k})" for k in FAMILIES)
        raise ValueError(
            f"{source}: the chat template of this {family or 'unknown'!r} model cannot render tool calls, and "
            f"iapo-gym ships no tool template for that family (shipped for: {', '.join(sorted(SHIPPED_TEMPLATES))}; "
            f"supported families: {known}). Pass a tool-capable Jinja template: chat_template='path/to/tools.jinja' "
            "(VLMAgent / VLM) or --chat-template PATH (iapo-train), or save one as chat_template.jinja in the folder"
        )
    _set_template(processor, shipped.read_text())
    log.warning(
        "%s: the stock %s chat template cannot render tool calls; using the tool template shipped with iapo-gym (%s)",
        source,
        FAMILIES.get(family, family),
        shipped.name,
    )
    return f"shipped:{shipped.name}"


def _set_template(processor: Any, text: str) -> None:
    processor.chat_template = text
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.chat_template = text
