"""Every procedural task family by name (the classes live in their own modules)."""

from __future__ import annotations

from .base import ToolVQAEnv
from .charts import HBarEnv, VBarEnv
from .scenes import FineDetailEnv, TextReadEnv
from .scichart import SciChartEnv
from .tables import TableFactEnv, TableQAEnv, TableSynthEnv

FAMILY_ENVS: dict[str, type[ToolVQAEnv]] = {
    cls.family: cls
    for cls in (HBarEnv, VBarEnv, SciChartEnv, TableQAEnv, TableSynthEnv, TableFactEnv, FineDetailEnv, TextReadEnv)
}

__all__ = [
    "FAMILY_ENVS",
    "FineDetailEnv",
    "SciChartEnv",
    "TextReadEnv",
    "HBarEnv",
    "VBarEnv",
    "TableFactEnv",
    "TableQAEnv",
    "TableSynthEnv",
]
