"""The test server: fault endpoints behave as documented, the counters count them."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from . import demo_util
from .demo_util import get, page
from .servers import TestSite, bomb_routes

client = demo_util.client  # the fixture, under the name the tests take


@pytest.fixture
async def site() -> AsyncIterator[TestSite]:
    async with TestSite(books=100, quotes=35, shop_products=95, routes=bomb_routes()) as s:
        yield s


async def wait_until_idle(site: TestSite) -> None:
    """The server notices a departed client a moment after it leaves."""
    for _ in range(200):
        if site.stats.inflight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still in flight: {site.stats.inflight_by_host}")


# --- fault endpoints -----------------------------------------------------------------------


async def test_status(site: TestSite, client: aiohttp.ClientSession) -> None:
    for code in (200, 201, 404, 418, 429, 500, 503, 599):
        assert await get(client, f"{site.url}/status/{code}") == (code, f"status {code}\n")
    async with client.post(f"{site.url}/status/500", data=b"x") as r:
        assert r.status == 500
    assert await get(client, f"{site.url}/status/204") == (204, "")
    async with client.get(f"{site.url}/status/301?location=/page/x", allow_redirects=False) as r:
        assert r.status == 301 and r.headers["Location"] == "/page/x"
    assert (await get(client, f"{site.url}/status/99"))[0] == 400
    assert site.stats.hits["/status/404"] == 1


async def test_redirect_chain(site: TestSite, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{site.url}/redirect/3", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/redirect/2"  # relative
    async with client.get(f"{site.url}/redirect/3") as r:
        assert r.status == 200 and await r.text() == "redirect chain done\n"
        assert [str(h.url) for h in r.history] == [f"{site.url}/redirect/{n}" for n in (3, 2, 1)]
    async with client.get(f"{site.url}/redirect/2?status=307", allow_redirects=False) as r:
        assert r.status == 307 and r.headers["Location"] == "/redirect/1?status=307"
    hits = {f"/redirect/{i}": site.stats.hits[f"/redirect/{i}"] for i in range(4)}
    assert hits == {"/redirect/3": 2, "/redirect/2": 2, "/redirect/1": 1, "/redirect/0": 1}


async def test_redirect_to_and_loop(site: TestSite, client: aiohttp.ClientSession) -> None:
    target = "http://localhost:1/elsewhere?q=1"
    url = f"{site.url}/redirect-to?url={target}&status=303"
    async with client.get(URL(url), allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == target
    async with client.get(f"{site.url}/redirect-to?url=ftp://x/", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "ftp://x/"
    async with client.get(f"{site.url}/redirect-loop/k", allow_redirects=False) as r:
        assert r.headers["Location"] == "/redirect-loop/k/b"
    async with client.get(f"{site.url}/redirect-loop/k/b", allow_redirects=False) as r:
        assert r.headers["Location"] == "/redirect-loop/k"
    with pytest.raises(aiohttp.TooManyRedirects):
        await client.get(f"{site.url}/redirect-loop/z", max_redirects=7)
    assert site.stats.hits["/redirect-loop/z"] == 4 and site.stats.hits["/redirect-loop/z/b"] == 3


async def test_concurrent_delays_counted_in_flight(
    site: TestSite, client: aiohttp.ClientSession
) -> None:
    texts = await asyncio.gather(*(get(client, f"{site.url}/delay/0.3?i={i}") for i in range(10)))
    assert texts == [(200, "delayed 0.3s\n")] * 10
    assert site.stats.max_inflight == 10  # served concurrently, not one after another
    assert site.stats.max_inflight_by_host == {"127.0.0.1": 10}
    assert site.stats.inflight == 0 and site.stats.inflight_by_host == {"127.0.0.1": 0}
    assert site.stats.hits["/delay/0.3"] == 10


async def test_in_flight_per_host_name(site: TestSite, client: aiohttp.ClientSession) -> None:
    urls = [
        site.url_for(f"/delay/0.2?i={i}", host)
        for i in range(4)
        for host in ("127.0.0.1", "localhost")
    ]
    await asyncio.gather(*(get(client, u) for u in urls))
    assert site.stats.max_inflight_by_host == {"127.0.0.1": 4, "localhost": 4}
    assert site.stats.max_inflight == 8
    hosts = collections.Counter(hit.host for hit in site.stats.log)
    assert hosts == {"127.0.0.1": 4, "localhost": 4}

    site.reset_stats()
    assert site.stats.max_inflight == 0 and site.stats.max_inflight_by_host == {}
    assert not site.stats.hits and not site.stats.log
    await get(client, site.url + "/delay/0")
    assert site.stats.max_inflight == 1 and site.stats.total == 1


async def test_several_loopback_addresses_share_one_port(client: aiohttp.ClientSession) -> None:
    async with TestSite(books=1, shop_products=1, hosts=("127.0.0.1", "127.0.0.2")) as site:
        assert site.url == f"http://127.0.0.1:{site.port}"
        urls = [
            site.url_for(f"/delay/0.2?i={i}", h)
            for i in range(3)
            for h in ("127.0.0.1", "127.0.0.2")
        ]
        await asyncio.gather(*(get(client, u) for u in urls))
        assert site.stats.max_inflight_by_host == {"127.0.0.1": 3, "127.0.0.2": 3}


async def test_hang_never_answers_and_leaves_when_the_client_does(
    site: TestSite, client: aiohttp.ClientSession
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await client.get(f"{site.url}/hang", timeout=aiohttp.ClientTimeout(total=0.3))
    await wait_until_idle(site)
    assert site.stats.max_inflight == 1 and site.stats.hits["/hang"] == 1


async def test_headers_then_hang(site: TestSite, client: aiohttp.ClientSession) -> None:
    async with client.get(
        f"{site.url}/headers-then-hang", timeout=aiohttp.ClientTimeout(sock_read=0.3)
    ) as r:
        assert r.status == 200 and r.headers["Content-Length"] == "100"
        with pytest.raises(asyncio.TimeoutError):
            await r.read()
    await wait_until_idle(site)


async def test_trickle(site: TestSite, client: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    async with client.get(f"{site.url}/trickle?bytes=3&interval=0.1") as r:
        assert r.headers["Content-Length"] == "3"
        chunks = []
        async for chunk in r.content.iter_any():
            chunks.append(chunk)
    assert b"".join(chunks) == b"xxx" and len(chunks) == 3  # byte by byte
    assert time.monotonic() - t0 >= 0.3


async def test_drop_and_truncated(site: TestSite, client: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.get(f"{site.url}/drop")
    assert site.stats.hits["/drop"] in (1, 2)  # aiohttp resends an idempotent request once
    async with client.get(f"{site.url}/truncated") as r:
        assert r.headers["Content-Length"] == "100"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    await wait_until_idle(site)


async def test_flaky_counts_per_key(site: TestSite, client: aiohttp.ClientSession) -> None:
    url = f"{site.url}/flaky/a?fail=2&status=503&retry_after=7"
    for attempt in (1, 2):
        async with client.get(url) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "7"
            assert await r.json() == {"key": "a", "attempt": attempt}
    async with client.get(url) as r:
        assert r.status == 200 and "Retry-After" not in r.headers
        assert await r.json() == {"key": "a", "attempt": 3}
    async with client.get(f"{site.url}/flaky/b?fail=1&status=429") as r:
        assert r.status == 429 and "Retry-After" not in r.headers  # its own counter
    site.reset_stats()
    async with client.get(url) as r:
        assert r.status == 503  # counters start over


async def test_echo_and_cookies(site: TestSite) -> None:
    # aiohttp's default cookie jar ignores cookies from IP addresses; unsafe=True accepts them.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await check_echo_and_cookies(site, client)


async def check_echo_and_cookies(site: TestSite, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{site.url}/set-cookie?session=abc&lang=fr") as r:
        assert await r.json() == {"session": "abc", "lang": "fr"}
    async with client.post(
        f"{site.url}/echo?q=1&r=é", json={"a": 1}, headers={"X-Test": "yes"}
    ) as r:
        echo = await r.json()
    assert echo["method"] == "POST" and echo["path"] == "/echo"
    assert echo["query"] == {"q": "1", "r": "é"}
    assert echo["headers"]["x-test"] == "yes"
    assert echo["headers"]["host"] == f"127.0.0.1:{site.port}"
    assert echo["cookies"] == {"session": "abc", "lang": "fr"}
    assert echo["body"] == '{"a": 1}'


async def test_json_links_pages_and_bodies(site: TestSite, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{site.url}/json") as r:
        assert r.content_type == "application/json"
        assert (await r.json())["unicode"] == "Café 東京 Ελλάδα"
    links = await page(client, f"{site.url}/links?n=5")
    assert links.css("a::attr(href)").getall() == [f"/page/{i}" for i in range(5)]
    assert (await page(client, f"{site.url}/page/ab")).css("h1.page::text").get() == "Page ab"
    async with client.get(f"{site.url}/bytes/200000") as r:
        assert r.headers["Content-Length"] == "200000" and await r.read() == b"x" * 200_000
    async with client.get(f"{site.url}/bytes/1000?chunked=1") as r:
        assert "Content-Length" not in r.headers and len(await r.read()) == 1000
    async with client.get(f"{site.url}/gzip-bomb/5000000", auto_decompress=False) as r:
        raw = await r.read()
        assert r.headers["Content-Encoding"] == "gzip" and len(raw) < 20_000
    async with client.get(f"{site.url}/gzip-bomb/5000000") as r:
        assert await r.read() == bytes(5_000_000)


async def test_close_cuts_off_hanging_requests(client: aiohttp.ClientSession) -> None:
    site = TestSite(books=1, shop_products=1)
    await site.start()
    pending = [
        asyncio.ensure_future(client.get(f"{site.url}{path}"))
        for path in ("/hang", "/headers-then-hang", "/delay/60")
    ]
    while site.stats.inflight < 3:
        await asyncio.sleep(0.01)
    await site.close()
    assert site.stats.inflight == 0  # every hanging handler was cut off
    for future in pending:
        try:
            (await future).close()
        except aiohttp.ClientError:
            pass
