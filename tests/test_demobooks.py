"""The demo site's bookstore (crawler/demobooks.py): markup as books.toscrape.com's, values
exactly the expected ones, read the way the books spider reads them."""

from __future__ import annotations

import asyncio
import collections
from decimal import Decimal
from typing import Any

import aiohttp
from parsel import Selector

from crawler.demosite import (
    CATEGORIES,
    DemoSite,
    expected_books,
)
from spiders import books as books_spider

from . import demo_util
from .demo_util import get, hrefs, join, page

site = demo_util.site  # the fixtures, under the names the tests take
client = demo_util.client


# --- bookstore ---------------------------------------------------------------------------


async def crawl_books(client: aiohttp.ClientSession, start: str) -> list[dict[str, Any]]:
    """What the books spider does: catalogue pages via NEXT_PAGE, every BOOK_LINKS page."""
    items: list[dict[str, Any]] = []
    listing: str | None = start
    while listing is not None:
        sel = await page(client, listing)
        links = hrefs(sel, listing, books_spider.BOOK_LINKS)
        pages = await asyncio.gather(*(page(client, u) for u in links))
        items += [books_spider.parse_book_page(p, u) for p, u in zip(pages, links, strict=True)]
        following = hrefs(sel, listing, books_spider.NEXT_PAGE)
        assert len(following) <= 1
        listing = following[0] if following else None
    return items


async def test_books_spider_parsing_yields_exactly_expected_books(
    client: aiohttp.ClientSession,
) -> None:
    async with DemoSite(books=1000, shop_products=20) as site:  # the demo's configuration
        items = await crawl_books(client, site.url + "/")
        hits = site.stats.hits
        assert hits["/"] == 1 and sum(n for p, n in hits.items() if "/page-" in p) == 49
    expected = [{**b, "url": f"{site.url}/{b['url']}"} for b in expected_books(1000)]
    assert items == expected
    assert [books_spider.Book.model_validate(i).price for i in items[:3]] == [
        b["price"] for b in expected[:3]
    ]


def test_expected_books_are_deterministic_and_varied() -> None:
    books = expected_books(1000)
    assert books[0] == {  # pinned: benchmarks and saved outputs compare across versions
        "title": "The Silent Attic: A Novel",
        "price": Decimal("57.48"),
        "availability": 11,
        "rating": 3,
        "upc": "9e91a637057a5352",
        "category": "Religion",
        "url": "catalogue/the-silent-attic-a-novel_1/index.html",
    }
    assert len({b["title"] for b in books}) == 1000
    assert len({b["upc"] for b in books}) == 1000
    assert {b["rating"] for b in books} == {1, 2, 3, 4, 5}
    assert {b["category"] for b in books} == set(CATEGORIES) and len(CATEGORIES) == 50
    assert all(Decimal("10.00") <= b["price"] <= Decimal("59.99") for b in books)
    assert all(1 <= b["availability"] <= 22 for b in books)
    assert sum(not b["title"].isascii() for b in books) >= 20
    assert any("&" in b["title"] for b in books) and any('"' in b["title"] for b in books)
    assert expected_books(5) == books[:5]


async def test_listing_markup_matches_books_toscrape(
    site: DemoSite, client: aiohttp.ClientSession
) -> None:
    expected = expected_books(100)
    home = await page(client, site.url + "/")
    assert home.css("ul.pager li.next a::attr(href)").get() == "catalogue/page-2.html"
    assert home.css("ul.pager li.previous").get() is None
    assert home.css("ul.pager li.current::text").get("").strip() == "Page 1 of 5"
    pods = home.css("ol.row article.product_pod")
    assert len(pods) == 20
    for pod, book in zip(pods, expected[:20], strict=True):
        link = pod.css("h3 a")
        assert link.attrib["href"] == book["url"]
        assert link.attrib["title"] == book["title"]
        assert pod.css("p.price_color::text").get() == f"£{book['price']}"
        rating = pod.css("p.star-rating::attr(class)").get("").split()[1]
        assert ["One", "Two", "Three", "Four", "Five"].index(rating) + 1 == book["rating"]
        assert pod.css("p.instock.availability::text").getall()[-1].strip() == "In stock"
        assert pod.css("div.image_container a::attr(href)").get() == book["url"]

    # Deeper pages link relative to catalogue/, as on the real site.
    url = site.url + "/catalogue/page-2.html"
    second = await page(client, url)
    assert second.css("li.next a::attr(href)").get() == "page-3.html"
    assert second.css("li.previous a::attr(href)").get() == "page-1.html"
    first_link = second.css("article.product_pod h3 a::attr(href)").get()
    assert first_link == expected[20]["url"].removeprefix("catalogue/")
    last = await page(client, site.url + "/catalogue/page-5.html")
    assert last.css("li.next").get() is None
    titles = last.css("article.product_pod h3 a::attr(title)").getall()
    assert titles == [b["title"] for b in expected[80:]]
    # /index.html and catalogue/page-1.html list the same books as /.
    for other in ("/index.html", "/catalogue/page-1.html"):
        sel = await page(client, site.url + other)
        assert hrefs(sel, site.url + other, "h3 a") == hrefs(home, site.url + "/", "h3 a")


async def test_category_listings_partition_the_books(
    site: DemoSite, client: aiohttp.ClientSession
) -> None:
    expected = expected_books(100)
    home = await page(client, site.url + "/")
    sidebar = hrefs(home, site.url + "/", "div.side_categories ul ul a")
    assert len(sidebar) == 50
    assert home.css("div.side_categories > ul > li > a::attr(href)").get() == (
        "catalogue/category/books_1/index.html"
    )
    found: dict[str, list[str]] = {}
    for url in sidebar:
        listing: str | None = url
        while listing is not None:
            sel = await page(client, listing)
            name = sel.css("div.page-header h1::text").get("")
            assert sel.css("ul.breadcrumb li.active::text").get() == name
            found.setdefault(name, [])
            found[name] += hrefs(sel, listing, books_spider.BOOK_LINKS)
            nxt = hrefs(sel, listing, books_spider.NEXT_PAGE)
            listing = nxt[0] if nxt else None
    want: dict[str, list[str]] = {name: [] for name in CATEGORIES}
    for b in expected:
        want[b["category"]].append(f"{site.url}/{b['url']}")
    assert found == want
    # A bigger store has categories of more than one page.
    async with DemoSite(books=1000, shop_products=20) as big:
        sizes = collections.Counter(b["category"] for b in expected_books(1000))
        name, size = sizes.most_common(1)[0]
        assert size > 20
        slug = f"{name.lower().replace(' ', '-')}_{CATEGORIES.index(name) + 2}"
        base = f"{big.url}/catalogue/category/books/{slug}/"
        first = await page(client, base + "index.html")
        assert first.css("li.next a::attr(href)").get() == "page-2.html"
        assert first.css("form strong::text").getall() == [str(size), "1", "20"]
        second = await page(client, base + "page-2.html")
        assert len(second.css("article.product_pod")) == size - 20
        detail_url = join(base + "page-2.html", second.css("h3 a::attr(href)").get(""))
        detail = await page(client, detail_url)
        assert detail.css("ul.breadcrumb li:nth-child(3) a::text").get() == name
        everything = await page(client, f"{big.url}/catalogue/category/books_1/page-50.html")
        assert len(everything.css("article.product_pod")) == 20


async def test_detail_page_markup(site: DemoSite, client: aiohttp.ClientSession) -> None:
    book = expected_books(100)[36]
    url = f"{site.url}/{book['url']}"
    sel = await page(client, url)
    assert sel.css("div.product_main h1::text").get() == book["title"]
    assert sel.css("div.product_main p.price_color::text").get() == f"£{book['price']}"
    availability = " ".join(sel.css("p.instock.availability::text").getall()).split()
    assert availability == ["In", "stock", f"({book['availability']}", "available)"]
    rows = {
        r.css("th::text").get(): r.css("td::text").get() for r in sel.css("table.table-striped tr")
    }
    assert rows["UPC"] == book["upc"]
    assert rows["Price (incl. tax)"] == f"£{book['price']}"
    assert rows["Availability"] == f"In stock ({book['availability']} available)"
    crumbs = sel.css("ul.breadcrumb li a")
    assert [a.css("::text").get() for a in crumbs] == ["Home", "Books", book["category"]]
    assert join(url, crumbs[0].attrib["href"]) == site.url + "/index.html"
    assert join(url, crumbs[2].attrib["href"]).startswith(f"{site.url}/catalogue/category/books/")
    assert books_spider.parse_book_page(sel, url) == {**book, "url": url}


async def test_unknown_bookstore_pages_are_404(
    site: DemoSite, client: aiohttp.ClientSession
) -> None:
    good = expected_books(100)[0]["url"]
    for path in (
        "/catalogue/page-0.html",
        "/catalogue/page-6.html",
        "/catalogue/wrong-slug_1/index.html",
        "/catalogue/x_101/index.html",
        "/catalogue/category/books/nope_99/index.html",
        "/catalogue/category/books/travel_2/page-9.html",
        "/" + good.replace("index.html", "other.html"),
    ):
        assert (await get(client, site.url + path))[0] == 404, path


def test_spider_helpers_read_odd_values() -> None:
    assert books_spider.parse_price("£51.77") == Decimal("51.77")
    assert books_spider.parse_price(None) is None
    assert books_spider.parse_availability("In stock (1 available)") == 1
    assert books_spider.parse_availability("Out of stock") == 0
    assert books_spider.parse_availability("Call us") is None
    sel = Selector(text="<div class='product_main'><h1>T</h1></div>")
    item = books_spider.parse_book_page(sel, "http://x/")
    assert item["title"] == "T" and item["rating"] is None and item["price"] is None
