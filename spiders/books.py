"""Every book of books.toscrape.com, or of a local copy such as the bundled demo site.

    crawl books -o books.jsonl
    crawl books -a start_url=http://127.0.0.1:8000/ -o books.jsonl

The spider walks the catalogue pagination (``li.next a``) and opens every book page it lists;
categories are not crawled, since every book is already in the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from crawler import Item, Request, Response, Spider

if TYPE_CHECKING:  # parsel itself loads with the first response's .css()
    from parsel import Selector, SelectorList

#: Selectors, shared by the spider and its tests.
BOOK_LINKS = "article.product_pod h3 a"
NEXT_PAGE = "li.next a"

_RATINGS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}
_IN_STOCK = re.compile(r"\((\d+) available\)")


class Book(Item):
    """One book, as shown on its detail page."""

    title: str
    price: Decimal = Field(ge=0, description="Price in pounds, from '£51.77'.")
    availability: int = Field(ge=0, description="Copies in stock, from 'In stock (22 available)'.")
    rating: int = Field(ge=1, le=5, description="Stars, from the class 'star-rating Three'.")
    upc: str = Field(min_length=1)
    category: str = Field(min_length=1)
    url: str


class _Page(Protocol):
    """What the parsing needs: a Response, or a parsel Selector in tests."""

    def css(self, query: str) -> SelectorList[Selector]: ...


def parse_price(text: str | None) -> Decimal | None:
    """``"£51.77"`` → ``Decimal("51.77")``; None when there is no number."""
    digits = re.sub(r"[^\d.]", "", text or "")
    try:
        return Decimal(digits) if digits else None
    except InvalidOperation:
        return None


def parse_availability(text: str) -> int | None:
    """``"In stock (22 available)"`` → 22, ``"Out of stock"`` → 0, else None."""
    found = _IN_STOCK.search(text)
    if found:
        return int(found.group(1))
    return 0 if "out of stock" in text.lower() else None


def parse_book_page(page: _Page, url: str) -> dict[str, Any]:
    """The item of a book detail page. A value that cannot be read is None, so the item
    fails validation against :class:`Book` (and is reported) instead of being guessed."""
    main = page.css("div.product_main")
    classes = (main.css("p.star-rating::attr(class)").get() or "").split()
    table = {
        (row.css("th::text").get() or "").strip(): (row.css("td::text").get() or "").strip()
        for row in page.css("table.table-striped tr")
    }
    availability = " ".join(main.css("p.availability ::text").getall())
    return {
        "title": main.css("h1::text").get(),
        "price": parse_price(main.css("p.price_color::text").get()),
        "availability": parse_availability(availability),
        "rating": next((_RATINGS[c] for c in classes if c in _RATINGS), None),
        "upc": table.get("UPC"),
        "category": page.css("ul.breadcrumb li:nth-child(3) a::text").get(),
        "url": url,
    }


class BooksSpider(Spider):
    """Books of books.toscrape.com; ``-a start_url=...`` crawls another copy of the site."""

    name = "books"
    start_urls = ["https://books.toscrape.com/"]
    item_model = Book

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.start_urls[0]

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Request]:
        """A catalogue page: every book on it, then the next page."""
        yield from response.follow_all(css=BOOK_LINKS, callback=self.parse_book)
        yield from response.follow_all(css=NEXT_PAGE, callback=self.parse)

    def parse_book(self, response: Response) -> Iterator[dict[str, Any]]:
        yield parse_book_page(response, response.url)
