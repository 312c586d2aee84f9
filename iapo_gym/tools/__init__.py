"""Tools: the protocol, the registry, OCR backends and the built-in tools (registered on import)."""

from . import builtin as _builtin  # noqa: F401  (registers zoom, ocr, focus, answer)
from .base import (
    FunctionTool,
    Tool,
    ToolContext,
    ToolResult,
    check_args,
    get_tool,
    letterbox,
    register_tool,
    tool,
    tool_names,
)
from .ocr import OCR_BACKENDS, EasyOCR, OCRBackend, SceneOCR, make_ocr

BUILTIN_TOOLS = ("zoom", "ocr", "focus", "answer")

__all__ = [
    "BUILTIN_TOOLS",
    "OCR_BACKENDS",
    "EasyOCR",
    "FunctionTool",
    "OCRBackend",
    "SceneOCR",
    "Tool",
    "ToolContext",
    "ToolResult",
    "check_args",
    "get_tool",
    "letterbox",
    "make_ocr",
    "register_tool",
    "tool",
    "tool_names",
]
