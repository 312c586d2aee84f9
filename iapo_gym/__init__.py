"""iapo-gym: visual question answering with tools as Gymnasium environments, and IAPO training.

Importing the package registers every environment id (``VisualToolVQA-v0``, ``VisualToolVQA-<Family>-v0``,
``DatasetVQA-v0``).
"""

from .answers import is_correct, normalize_answer
from .registration import ENV_TABLE, FAMILIES, HEADLINE_FAMILIES, register_envs
from .scene import Box, Program, Region, Scene, TextItem
from .toolcall import ToolCall, ToolCallError, parse_box, parse_tool_call
from .tools import (
    Tool,
    ToolContext,
    ToolResult,
    get_tool,
    register_tool,
    tool,
    tool_names,
)

__version__ = "0.1.0"

register_envs()

__all__ = [
    "ENV_TABLE",
    "FAMILIES",
    "HEADLINE_FAMILIES",
    "Box",
    "Program",
    "Region",
    "Scene",
    "TextItem",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolContext",
    "ToolResult",
    "__version__",
    "get_tool",
    "is_correct",
    "normalize_answer",
    "parse_box",
    "parse_tool_call",
    "register_envs",
    "register_tool",
    "tool",
    "tool_names",
]
