"""A Scrapy-style web crawling framework built natively on asyncio.

The public API::

    from crawler import Spider, Request, Response, Item, DropItem, CloseSpider

The names load on first use (PEP 562), so ``import crawler.cli`` or ``crawler list`` does not
pay for pydantic or aiohttp before it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from .errors import CloseSpider as CloseSpider
    from .errors import DropItem as DropItem
    from .errors import IgnoreRequest as IgnoreRequest
    from .errors import InvalidURL as InvalidURL
    from .http import Failure as Failure
    from .http import Request as Request
    from .http import Response as Response
    from .items import Item as Item
    from .sitemap import SitemapSpider as SitemapSpider
    from .spider import Spider as Spider

__all__ = [
    "CloseSpider",
    "DropItem",
    "Failure",
    "IgnoreRequest",
    "InvalidURL",
    "Item",
    "Request",
    "Response",
    "SitemapSpider",
    "Spider",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Static imports, one branch per module: nothing here is looked up from data.
    if name in ("CloseSpider", "DropItem", "IgnoreRequest", "InvalidURL"):
        from . import errors as module
    elif name in ("Failure", "Request", "Response"):
        from . import http as module  # type: ignore[no-redef]
    elif name == "Item":
        from . import items as module  # type: ignore[no-redef]
    elif name == "Spider":
        from . import spider as module  # type: ignore[no-redef]
    elif name == "SitemapSpider":
        from . import sitemap as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
