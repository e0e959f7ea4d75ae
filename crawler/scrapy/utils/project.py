"""``scrapy.utils.project``: the project's settings, for scripts."""

from __future__ import annotations

from pathlib import Path

from ...compat import ScrapySettings


def get_project_settings() -> ScrapySettings:
    """The Scrapy project's settings (``settings.py`` named by ``scrapy.cfg``, searched from
    the current folder up), as Scrapy-named settings."""
    from ...scrapyproject import find_project

    project = find_project(Path.cwd())
    return ScrapySettings(None, project.settings if project is not None else {})


__all__ = ["get_project_settings"]
