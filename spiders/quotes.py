"""Every quote of quotes.toscrape.com, or of a local copy such as the bundled demo site.

crawl quotes -o quotes.jsonl
crawl quotes -a start_url=http://127.0.0.1:8000/quotes/ -o quotes.jsonl
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from crawler import Item, Request, Response, Spider

if TYPE_CHECKING:  # parsel itself loads with the first response's .css()
    from parsel import Selector, SelectorList

#: Selectors, shared by the spider and its tests.
QUOTE = "div.quote"
NEXT_PAGE = "li.next a"


class Quote(Item):
    """One quote: its text (with the curly quotes the site shows), author and tags."""

    text: str
    author: str
    tags: list[str]


class _Page(Protocol):
    def css(self, query: str) -> SelectorList[Selector]: ...


def parse_quotes_page(page: _Page) -> list[dict[str, Any]]:
    """The items of a listing page; tags are read inside each quote (``div.tags a.tag``), not
    from the page's "Top Ten tags" box, which uses the same ``a.tag`` class."""
    return [
        {
            "text": quote.css("span.text::text").get(),
            "author": quote.css("small.author::text").get(),
            "tags": quote.css("div.tags a.tag::text").getall(),
        }
        for quote in page.css(QUOTE)
    ]


class QuotesSpider(Spider):
    """Quotes of quotes.toscrape.com; ``-a start_url=...`` crawls another copy of the site."""

    name = "quotes"
    start_urls = ["https://quotes.toscrape.com/"]
    item_model = Quote

    def __init__(self, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url or self.start_urls[0]

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        """A listing page: its quotes, then the next page."""
        yield from parse_quotes_page(response)
        yield from response.follow_all(css=NEXT_PAGE, callback=self.parse)
