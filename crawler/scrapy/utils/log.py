"""``scrapy.utils.log``: logging set-up for scripts."""

from __future__ import annotations

from typing import Any


def configure_logging(settings: Any = None, install_root_handler: bool = True) -> None:
    """Log to stderr at the settings' LOG_LEVEL (INFO by default), as a crawl does."""
    from ...cli import setup_logging

    level = "INFO"
    if settings is not None and hasattr(settings, "get"):
        level = str(settings.get("LOG_LEVEL") or "INFO")
    elif isinstance(settings, dict):
        level = str(settings.get("LOG_LEVEL", "INFO"))
    if install_root_handler:
        setup_logging(level.upper())


__all__ = ["configure_logging"]
