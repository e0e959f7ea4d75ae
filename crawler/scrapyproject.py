"""A Scrapy project folder: ``scrapy.cfg``, the project package's ``settings.py`` and its
spider modules, so ``crawl NAME`` runs in it as ``scrapy crawl NAME`` does.

``scrapy.cfg`` names the settings module (``[settings] default = myproject.settings``); that
module's UPPER_CASE names are the project's Scrapy settings, ``SPIDER_MODULES`` the packages
searched for spiders. The compatibility layer is installed first, so the project's
``import scrapy`` works.
"""

from __future__ import annotations

import configparser
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .loader import import_project_module

__all__ = ["ScrapyProject", "find_project"]

CONFIG_FILE = "scrapy.cfg"


@dataclass(slots=True)
class ScrapyProject:
    """A loaded Scrapy project: its folder, its settings module's name and values."""

    root: Path
    settings_module: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def spider_modules(self) -> list[str]:
        modules = self.settings.get("SPIDER_MODULES")
        if modules:
            return [modules] if isinstance(modules, str) else list(modules)
        return [f"{self.settings_module.rpartition('.')[0] or self.settings_module}.spiders"]


def find_project(start: Path) -> ScrapyProject | None:
    """The Scrapy project whose ``scrapy.cfg`` is in ``start`` or a folder above, loaded
    (its settings module imported); None when there is none."""
    for folder in (start, *start.parents):
        cfg = folder / CONFIG_FILE
        if cfg.is_file():
            return load_project(folder)
    return None


def load_project(root: Path) -> ScrapyProject:
    """Read ``root/scrapy.cfg`` and import the settings module it names (with ``root`` on
    ``sys.path`` and ``import scrapy`` served by the compatibility layer)."""
    from .scrapy import install

    install(quiet=True)
    parser = configparser.ConfigParser()
    try:
        parser.read(root / CONFIG_FILE, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"cannot read {root / CONFIG_FILE}: {exc}") from exc
    module_name = parser.get("settings", "default", fallback=None)
    if not module_name:
        raise ConfigError(f"{root / CONFIG_FILE} has no [settings] default = <module>")
    path = str(root.resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = import_project_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import the Scrapy settings module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}") from exc
    values = {k: getattr(module, k) for k in dir(module) if k.isupper()}
    return ScrapyProject(root, module_name, values)
