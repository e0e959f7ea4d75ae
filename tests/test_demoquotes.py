"""The demo site's quotes (crawler/demoquotes.py): markup and values the quotes spider reads."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from crawler.demosite import (
    DemoSite,
    expected_quotes,
)
from spiders import quotes as quotes_spider

from . import demo_util
from .demo_util import get, hrefs, join, page

site = demo_util.site  # the fixtures, under the names the tests take
client = demo_util.client


# --- quotes ------------------------------------------------------------------------------


async def test_quotes_spider_parsing_yields_exactly_expected_quotes(
    site: DemoSite, client: aiohttp.ClientSession
) -> None:
    items: list[dict[str, Any]] = []
    listing: str | None = site.url + "/quotes/"
    visited = []
    while listing is not None:
        visited.append(URL(listing).path)
        sel = await page(client, listing)
        items += quotes_spider.parse_quotes_page(sel)
        nxt = hrefs(sel, listing, quotes_spider.NEXT_PAGE)
        listing = nxt[0] if nxt else None
    assert visited == ["/quotes/", "/quotes/page/2/", "/quotes/page/3/", "/quotes/page/4/"]
    assert items == expected_quotes(35)
    assert all(quotes_spider.Quote.model_validate(i).tags == i["tags"] for i in items)


async def test_quotes_markup(site: DemoSite, client: aiohttp.ClientSession) -> None:
    quotes = expected_quotes(100)
    assert len({q["text"] for q in quotes}) == 100
    assert any(not q["tags"] for q in quotes) and any(len(q["tags"]) > 1 for q in quotes)
    assert all(q["text"].startswith("\u201c") and q["text"].endswith("\u201d") for q in quotes)
    first = await page(client, site.url + "/quotes/")
    # The "Top Ten tags" box also has a.tag links, outside the quotes.
    assert len(first.css("div.tags-box a.tag")) > 0
    assert len(first.css("div.quote")) == 10
    author_link = first.css("div.quote span a::attr(href)").get("")
    author = await page(client, join(site.url + "/quotes/", author_link))
    assert author.css("h3.author-title::text").get() == quotes[0]["author"]
    assert (await page(client, site.url + "/quotes/page/1/")).get() == first.get()
    beyond = await page(client, site.url + "/quotes/page/9/")
    assert "No quotes found!" in beyond.get() and not beyond.css("div.quote")
    status, _ = await get(client, site.url + "/quotes")
    assert status == 301
