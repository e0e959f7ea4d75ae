"""The throughput bench spider: every product of the generated static shop.

    crawl shop -O out.jsonl -a start_url=http://127.0.0.1:8080/shop/

It makes exactly the crawl that ``bench/raw_loop.py`` makes by hand, with the same selectors:
index → listings; listing → products and pager; product → one item, its 5 related products
and its listing. Most links found are duplicates (about 143,000 links for 21,001 pages).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from shop_selectors import (  # the project folder's module, shared with bench/raw_loop.py
    LISTING_LINKS,
    PAGER_LINKS,
    PRICE,
    PRODUCT_LINKS,
    RELATED_LINKS,
    SKU,
    TITLE,
)

from crawler import Request, Response, Spider


class ShopSpider(Spider):
    """The static shop of ``crawler.demosite.write_static_shop``."""

    name = "shop"

    def __init__(self, start_url: str = "http://127.0.0.1:8000/shop/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Request]:
        """The index: every listing."""
        yield from response.follow_all(css=LISTING_LINKS, callback=self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Request]:
        yield from response.follow_all(css=PRODUCT_LINKS, callback=self.parse_product)
        yield from response.follow_all(css=PAGER_LINKS, callback=self.parse_listing)

    def parse_product(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        sku = response.css(SKU).get() or ""
        yield {
            "id": int(sku[4:]) if sku[4:].isdigit() else None,
            "title": response.css(TITLE).get(),
            "price": (response.css(PRICE).get() or "").lstrip("$"),
            "sku": sku,
            "url": response.url,
        }
        yield from response.follow_all(css=RELATED_LINKS, callback=self.parse_product)
        yield from response.follow_all(css=LISTING_LINKS, callback=self.parse_listing)
