"""A Scrapy-style web crawling framework built natively on asyncio.

The public API::

    from crawler import Spider, Request, Response, Item, DropItem, CloseSpider
    from crawler import CrawlSpider, Rule, LinkExtractor, ItemLoader, FormRequest, DictItem
    from crawler import run          # a crawl from a script: run(MySpider, output="x.jsonl")

Spiders written for Scrapy run unchanged: ``crawl`` and ``crawler runspider`` serve
``import scrapy`` from :mod:`crawler.scrapy` (``crawler.scrapy.install()`` in a script).

The names load on first use (PEP 562), so ``import crawler.cli`` or ``crawler list`` does not
pay for pydantic or aiohttp before it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from .crawlspider import CrawlSpider as CrawlSpider
    from .crawlspider import Rule as Rule
    from .dictitem import DictItem as DictItem
    from .dictitem import Field as Field
    from .errors import CloseSpider as CloseSpider
    from .errors import DropItem as DropItem
    from .errors import IgnoreRequest as IgnoreRequest
    from .errors import InvalidURL as InvalidURL
    from .forms import FormRequest as FormRequest
    from .forms import JsonRequest as JsonRequest
    from .http import Failure as Failure
    from .http import Request as Request
    from .http import Response as Response
    from .itemloader import ItemLoader as ItemLoader
    from .linkextractor import Link as Link
    from .linkextractor import LinkExtractor as LinkExtractor
    from .scripting import run as run
    from .sitemap import SitemapSpider as SitemapSpider
    from .spider import Spider as Spider
    from .typeditem import Item as Item

__all__ = [
    "CloseSpider",
    "CrawlSpider",
    "DictItem",
    "DropItem",
    "Failure",
    "Field",
    "FormRequest",
    "IgnoreRequest",
    "InvalidURL",
    "Item",
    "ItemLoader",
    "JsonRequest",
    "Link",
    "LinkExtractor",
    "Request",
    "Response",
    "Rule",
    "SitemapSpider",
    "Spider",
    "__version__",
    "run",
]


def __getattr__(name: str) -> Any:
    # Static imports, one branch per module: nothing here is looked up from data.
    value: Any
    if name in ("CloseSpider", "DropItem", "IgnoreRequest", "InvalidURL"):
        from . import errors

        value = getattr(errors, name)
    elif name in ("Failure", "Request", "Response"):
        from . import http

        value = getattr(http, name)
    elif name == "Item":
        from . import typeditem

        value = typeditem.Item
    elif name == "Spider":
        from . import spider

        value = getattr(spider, name)
    elif name == "SitemapSpider":
        from . import sitemap

        value = getattr(sitemap, name)
    elif name in ("CrawlSpider", "Rule"):
        from . import crawlspider

        value = getattr(crawlspider, name)
    elif name in ("DictItem", "Field"):
        from . import dictitem

        value = getattr(dictitem, name)
    elif name in ("FormRequest", "JsonRequest"):
        from . import forms

        value = getattr(forms, name)
    elif name == "ItemLoader":
        from . import itemloader

        value = getattr(itemloader, name)
    elif name in ("Link", "LinkExtractor"):
        from . import linkextractor

        value = getattr(linkextractor, name)
    elif name == "run":
        from . import scripting

        value = getattr(scripting, name)
    else:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
