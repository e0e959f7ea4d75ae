"""Spider discovery: every module of the project's spiders package, imported once."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigError, SpiderLoadError, SpiderNotFound
from .spider import Spider

__all__ = [
    "SpiderInfo", "discover", "import_object", "import_project_module", "load_spider",
    "load_spider_file", "load_spider_from",
]


@dataclass(slots=True, frozen=True)
class SpiderInfo:
    name: str
    module: str
    cls: type[Spider]


def discover(package: str = "spiders", project_dir: Path | None = None) -> dict[str, SpiderInfo]:
    """Import every module under ``package`` and return its spiders by name.

    The project folder goes first on ``sys.path`` so ``spiders`` is the project's own. A module
    that fails to import raises :class:`SpiderLoadError` naming it; two spiders with one name
    raise :class:`ConfigError` naming both modules.
    """
    if project_dir is not None:
        root = str(project_dir.resolve())
        if root not in sys.path:
            sys.path.insert(0, root)
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name == package or package.startswith(f"{exc.name}."):
            raise ConfigError(
                f"spiders package {package!r} not found in {project_dir or Path.cwd()}"
                " (run crawl in the project folder, the one holding settings.toml)"
            ) from exc
        raise SpiderLoadError(package, exc) from exc
    except Exception as exc:
        raise SpiderLoadError(package, exc) from exc
    modules = [pkg]
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=f"{package}."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as exc:
            raise SpiderLoadError(info.name, exc) from exc
    found: dict[str, SpiderInfo] = {}
    for module in modules:
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Spider)
                and obj is not Spider
                and obj.__module__ == module.__name__
                and obj.name
            ):
                other = found.get(obj.name)
                if other is not None and other.cls is not obj:
                    raise ConfigError(
                        f"two spiders are named {obj.name!r}: {other.module}.{other.cls.__name__}"
                        f" and {module.__name__}.{obj.__name__}"
                    )
                found[obj.name] = SpiderInfo(obj.name, module.__name__, obj)
    return dict(sorted(found.items()))


def load_spider(
    name: str, package: str = "spiders", project_dir: Path | None = None
) -> type[Spider]:
    """The spider class called ``name``; :class:`SpiderNotFound` lists the available ones."""
    spiders = discover(package, project_dir)
    try:
        return spiders[name].cls
    except KeyError:
        raise SpiderNotFound(name, list(spiders)) from None


def load_spider_from(name: str, packages: list[str], project_dir: Path) -> type[Spider]:
    """The spider called ``name`` in any of ``packages`` (a Scrapy project's
    SPIDER_MODULES)."""
    spiders: dict[str, SpiderInfo] = {}
    for package in packages:
        spiders.update(discover(package, project_dir))
    try:
        return spiders[name].cls
    except KeyError:
        raise SpiderNotFound(name, sorted(spiders)) from None


def load_spider_file(path: Path) -> type[Spider]:
    """The spider of one Python file, as Scrapy's ``runspider`` finds it: the file is
    imported as a module named after it (its folder first on ``sys.path``), and its last
    spider class with a ``name`` is the one."""
    import importlib.util

    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    if path.suffix != ".py":
        raise ConfigError(f"not a Python file: {path}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SpiderLoadError(str(path), exc) from exc
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Spider) and obj.__module__ == module.__name__
        and obj.name
    ]
    if not found:
        raise ConfigError(f"no spider found in {path} (a Spider subclass with a name)")
    return found[-1]


def import_project_module(name: str) -> ModuleType:
    """A module of the project by its dotted ``name`` (a Scrapy project's settings module,
    named in its ``scrapy.cfg``): the project's own code, never a name from a response."""
    return importlib.import_module(name)


def import_object(path: str) -> Any:
    """``"pkg.mod:Name"`` or ``"pkg.mod.Name"`` → the object, with a clear error."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"cannot import {path!r}: expected 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"cannot import {path!r}: {module_name} has no {attr!r}") from None
