"""Frontier backends behind one contract (see :mod:`crawler.frontier.base`)."""

from __future__ import annotations

from .base import Frontier, FrontierCounts, Lease
from .memory import MemoryFrontier

__all__ = ["Frontier", "FrontierCounts", "Lease", "MemoryFrontier"]
