"""A Scrapy-style web crawling framework built natively on asyncio.

The public API::

    from crawler import Spider, Request, Response, Item, DropItem, CloseSpider
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CloseSpider, DropItem, IgnoreRequest, InvalidURL
from .http import Failure, Request, Response
from .items import Item
from .spider import Spider

__all__ = [
    "CloseSpider",
    "DropItem",
    "Failure",
    "IgnoreRequest",
    "InvalidURL",
    "Item",
    "Request",
    "Response",
    "Spider",
    "__version__",
]
