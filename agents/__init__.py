"""Agents: the protocol, the registry, built-in agents and trainers."""

from .oracle import OracleAgent

__all__ = ["OracleAgent"]
