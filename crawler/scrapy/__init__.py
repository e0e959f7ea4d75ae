"""``import scrapy`` without Scrapy: Scrapy's module layout over this framework's own code.

Every module here is a thin layer of names over the native implementation (no second engine):
``scrapy.Spider`` is :class:`crawler.Spider`, ``scrapy.Request`` is :class:`crawler.Request`,
``scrapy.Item`` is :class:`crawler.dictitem.DictItem`, and so on. :func:`install` registers
the package under the name ``scrapy`` through an import hook (as PyMySQL's
``install_as_MySQLdb()`` does); ``crawl`` and ``crawler runspider`` call it before importing
spiders. When a real Scrapy is importable it is left alone: the hook is not installed and a
warning says so.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..crawlspider import CrawlSpider as CrawlSpider
    from ..dictitem import DictItem as Item
    from ..dictitem import Field as Field
    from ..forms import FormRequest as FormRequest
    from ..http import Request as Request
    from ..spider import Spider as Spider
    from .selector import Selector as Selector

logger = logging.getLogger(__name__)

#: The Scrapy version whose API this layer follows.
__version__ = "2.19.0"
version_info = (2, 19, 0)

__all__ = [
    "Field", "FormRequest", "Item", "Request", "Selector", "Spider", "__version__", "install",
    "signals", "version_info",
]

_PREFIX = "crawler.scrapy"


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `crawl` pays only for what a spider imports.
    value: Any
    if name == "Spider":
        from ..spider import Spider as value
    elif name == "Request":
        from ..http import Request as value
    elif name == "FormRequest":
        from ..forms import FormRequest as value
    elif name == "Item":
        from ..dictitem import DictItem as value
    elif name == "Field":
        from ..dictitem import Field as value
    elif name == "Selector":
        from .selector import Selector as value
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'scrapy' has no attribute {name!r}")
    globals()[name] = value
    return value


_SUBMODULES = frozenset({
    "crawler", "exceptions", "http", "item", "link", "linkextractors", "loader", "selector",
    "settings", "signals", "spidermiddlewares", "spiders", "utils",
})


class _Alias(importlib.abc.Loader):
    """Loads ``scrapy.x`` as the already imported ``crawler.scrapy.x`` (one module object
    under two names)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the alias spec on the module: give it its own back.
        own = importlib.util.find_spec(self.target)
        if own is not None:
            module.__spec__ = own


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "scrapy" and not fullname.startswith("scrapy."):
            return None
        real = _PREFIX + fullname[len("scrapy"):]
        try:
            found = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            return None
        if found is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _Alias(real), is_package=found.submodule_search_locations is not None)


_finder = _Finder()


def real_scrapy() -> str | None:
    """Where a real Scrapy is installed, or None."""
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return None
    module = sys.modules.get("scrapy")
    if module is not None:
        return None if module.__name__ == __name__ else str(getattr(module, "__file__", "?"))
    try:
        spec = importlib.util.find_spec("scrapy")
    except (ImportError, ValueError):
        return None
    return None if spec is None else str(spec.origin)


def install(*, quiet: bool = False) -> bool:
    """Make ``import scrapy`` (and ``from scrapy.spiders import ...``) load this layer.

    Returns whether the layer is active. When a real Scrapy is importable, nothing is
    installed and a warning says so (a debug message with ``quiet``): its spiders subclass
    Scrapy's own classes, which only Scrapy runs. Idempotent."""
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return True
    where = real_scrapy()
    if where is not None:
        logger.log(logging.DEBUG if quiet else logging.WARNING,
                   "A real Scrapy is importable (%s): the Scrapy compatibility layer is off",
                   where)
        return False
    sys.meta_path.insert(0, _finder)
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests): the hook and the ``scrapy`` module names go."""
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in [n for n in sys.modules if n == "scrapy" or n.startswith("scrapy.")]:
        del sys.modules[name]
