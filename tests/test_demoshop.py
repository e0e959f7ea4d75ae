"""The demo site's shop (crawler/demoshop.py): pages carry the expected items, the static copy
equals the served pages."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import aiohttp
from yarl import URL

from crawler.demosite import (
    DemoSite,
    expected_shop_items,
    write_static_shop,
)

from . import demo_util
from .demo_util import get, hrefs, page

site = demo_util.site  # the fixtures, under the names the tests take
client = demo_util.client


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
                "price": Decimal(sel.css("span.price::text").get("").removeprefix("$")),
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
