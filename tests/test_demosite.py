"""The bundled demo site: pages carry exactly the expected values, the counters count. The
example spiders' parsing is checked here too, on pages fetched from the site with a plain
aiohttp client (no engine involved)."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from parsel import Selector
from yarl import URL

from crawler.demosite import (
    CATEGORIES,
    DemoSite,
    Hit,
    expected_books,
    expected_quotes,
    expected_shop_items,
    run_in_thread,
    write_static_shop,
)
from spiders import books as books_spider
from spiders import quotes as quotes_spider

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def site() -> AsyncIterator[DemoSite]:
    async with DemoSite(books=100, quotes=35, shop_products=95) as s:
        yield s


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url, allow_redirects=False) as r:
        return r.status, await r.text()


async def page(client: aiohttp.ClientSession, url: str) -> Selector:
    async with client.get(url) as r:
        assert r.status == 200, url
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        return Selector(text=await r.text())


def join(base: str, href: str) -> str:
    return str(URL(base).join(URL(href)))


def hrefs(sel: Selector, base: str, css: str) -> list[str]:
    return [join(base, h) for h in sel.css(f"{css}::attr(href)").getall()]


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
    assert home.css("ul.pager li.current::text").get().strip() == "Page 1 of 5"
    pods = home.css("ol.row article.product_pod")
    assert len(pods) == 20
    for pod, book in zip(pods, expected[:20], strict=True):
        link = pod.css("h3 a")
        assert link.attrib["href"] == book["url"]
        assert link.attrib["title"] == book["title"]
        assert pod.css("p.price_color::text").get() == f"£{book['price']}"
        rating = pod.css("p.star-rating::attr(class)").get().split()[1]
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
            name = sel.css("div.page-header h1::text").get()
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
        detail_url = join(base + "page-2.html", second.css("h3 a::attr(href)").get())
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
    author_link = first.css("div.quote span a::attr(href)").get()
    author = await page(client, join(site.url + "/quotes/", author_link))
    assert author.css("h3.author-title::text").get() == quotes[0]["author"]
    assert (await page(client, site.url + "/quotes/page/1/")).get() == first.get()
    beyond = await page(client, site.url + "/quotes/page/9/")
    assert "No quotes found!" in beyond.get() and not beyond.css("div.quote")
    status, _ = await get(client, site.url + "/quotes")
    assert status == 301


# --- shop ----------------------------------------------------------------------------------


async def test_shop_pages_carry_expected_items(
    site: DemoSite, client: aiohttp.ClientSession
) -> None:
    index_url = site.url + "/shop/"
    index = await page(client, index_url)
    listings = hrefs(index, index_url, "ul.listings a")
    assert listings == [f"{site.url}/shop/list/{n}.html" for n in range(1, 6)]  # 95 / 20
    products: list[str] = []
    for url in listings:
        products += hrefs(await page(client, url), url, "ul.products a")
    assert len(products) == len(set(products)) == 95
    items = []
    links = 0
    for url in products:
        sel = await page(client, url)
        related = hrefs(sel, url, "ul.related a")
        assert len(related) == 5 and url not in related
        assert set(related) <= set(products)
        links += len(related)
        back = hrefs(sel, url, "a.listing")[0]
        assert url in hrefs(await page(client, back), back, "ul.products a")
        items.append(
            {
                "id": int(url.rsplit("/", 1)[1].removesuffix(".html")),
                "title": sel.css("h1.title::text").get(),
                "price": Decimal(sel.css("span.price::text").get().removeprefix("$")),
                "sku": sel.css("span.sku::text").get(),
                "url": URL(url).path,
            }
        )
    assert items == expected_shop_items(95)
    assert links == 5 * 95


async def test_static_shop_files_equal_served_pages(
    site: DemoSite, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    count = write_static_shop(tmp_path, 95)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert count == len(files) == 1 + 5 + 95
    for path in files:
        rel = path.relative_to(tmp_path).as_posix()
        url = site.url + "/" + rel.removesuffix("index.html")
        async with client.get(url) as r:
            assert r.status == 200, url
            assert await r.read() == path.read_bytes(), rel


async def test_unknown_shop_pages_are_404(site: DemoSite, client: aiohttp.ClientSession) -> None:
    for path in ("/shop/p/0.html", "/shop/p/96.html", "/shop/list/6.html", "/shop/list/0.html"):
        assert (await get(client, site.url + path))[0] == 404, path
    assert (await get(client, site.url + "/shop"))[0] == 301


def test_only_loopback_is_bound() -> None:
    for host in ("0.0.0.0", "192.0.2.2", "::", "example.com"):
        with pytest.raises(ValueError):
            DemoSite(host=host)
    with pytest.raises(ValueError):
        DemoSite(hosts=("127.0.0.1", "10.0.0.1"))


async def test_log_records_every_request(site: DemoSite, client: aiohttp.ClientSession) -> None:
    before = time.monotonic()
    for path in ("/page/a", "/page/b", "/nowhere", "/page/a?x=1"):
        await get(client, site.url + path)
    assert [(h.path, h.host) for h in site.stats.log] == [
        ("/page/a", "127.0.0.1"), ("/page/b", "127.0.0.1"), ("/nowhere", "127.0.0.1"),
        ("/page/a", "127.0.0.1"),
    ]  # fmt: skip
    times = [h.time for h in site.stats.log]
    assert before <= times[0] <= times[-1] <= time.monotonic() and times == sorted(times)
    assert site.stats.hits == {"/page/a": 2, "/page/b": 1, "/nowhere": 1}
    _, path, host = site.stats.log[0]  # a plain 3-tuple too
    assert isinstance(site.stats.log[0], Hit) and (path, host) == ("/page/a", "127.0.0.1")


# --- running it from sync code ---------------------------------------------------------------


def test_run_in_thread() -> None:
    with run_in_thread(books=40, shop_products=20) as site:
        with urllib.request.urlopen(site.url + "/catalogue/page-2.html") as r:
            assert r.status == 200 and b"Page 2 of 2" in r.read()
        assert site.stats.hits["/catalogue/page-2.html"] == 1
        site.reset_stats()
        assert site.stats.total == 0
        url = site.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/", timeout=5)


def test_run_in_thread_reports_startup_errors() -> None:
    with (
        run_in_thread(shop_products=1) as first,
        pytest.raises(OSError),
        run_in_thread(shop_products=1, port=first.port),
    ):
        pass


def test_command_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crawler.demosite", "--write-shop", str(tmp_path), "--shop", "40"],
        cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "wrote 43 files" in out.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.demosite", "--port", "0", "--books", "30"],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "/") as r:
            assert b"<strong>30</strong> results - showing" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

