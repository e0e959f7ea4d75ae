"""Hostile servers: each case is a local server that really does it, crawled by the engine.

Every case ends in its documented result (an error of the right type in the stats, a retry,
or a page) and the crawl finishes; a truncated body never reaches a callback.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from crawler import Failure, Request, Response, Spider
from crawler.downloader import Downloader
from crawler.errors import ResponseTooLarge
from crawler.http import Request as HttpRequest
from crawler.stats import Stats

from .conftest import crawl, make_settings
from .servers import Canned, HostileServer, TestSite, bomb_routes, hostile_page

MIB = 1 << 20


@pytest.fixture
async def site() -> AsyncIterator[TestSite]:
    """The shared site, serving decompression bombs too."""
    async with TestSite(books=100, shop_products=400, routes=bomb_routes()) as s:
        yield s


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer() as server:
        yield server


class Fetch(Spider):
    """Fetches ``urls``; every page that reaches the callback becomes an item holding its
    body length, every failure an item holding the error type and message."""

    name = "fetch"
    urls: list[str] = []

    async def start(self) -> Any:
        for url in self.urls:
            yield Request(url, errback=self.failed)

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "length": len(response.body),
               "complete": response.body.endswith(b"</html>\n") or None}

    def failed(self, failure: Failure) -> Any:
        yield {"url": failure.request.url, "error": type(failure.value).__name__,
               "message": str(failure.value)}


async def fetch_all(tmp_path: Path, urls: list[str], **settings: Any) -> tuple[
    dict[str, Any], dict[str, dict[str, Any]]
]:
    settings.setdefault("retries", 0)
    result, items = await crawl(Fetch, tmp_path, spider_args={"urls": urls}, **settings)
    assert result.reason == "finished"
    return result.stats, {item["url"]: item for item in items}


# ----------------------------------------------------------------------- size limits


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip-members"])
async def test_decompression_bombs_stop_at_the_limit(
    site: TestSite, tmp_path: Path, coding: str
) -> None:
    url = site.url_for(f"/bomb/{coding}/{64 * MIB}")
    stats, items = await fetch_all(tmp_path, [url], max_response_size=MIB, retries=3)
    assert items[url]["error"] == "ResponseTooLarge"
    assert stats["errors/ResponseTooLarge"] == 1 and stats["response_too_large"] == 1
    assert "retries" not in stats  # the same bomb would explode again
    assert site.stats.hits[f"/bomb/{coding}/{64 * MIB}"] == 1


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip-members"])
async def test_bomb_memory_is_bounded_by_about_the_limit(site: TestSite, coding: str) -> None:
    limit = 4 * MIB
    url = site.url_for(f"/bomb/{coding}/{256 * MIB}")
    async with Downloader(make_settings(max_response_size=limit), Stats()) as downloader:
        await downloader.fetch(HttpRequest(site.url_for("/page/warmup")))
        await downloader.fetch(HttpRequest(site.url_for(f"/bomb/{coding}/1024")))
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge):
                await downloader.fetch(HttpRequest(url))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The decoded bytes kept (the limit) plus bounded decoder steps; never the 256 MiB.
    assert peak < 2 * limit, f"{coding}: peak {peak / MIB:.1f} MiB"


async def test_body_over_the_limit_without_content_length(
    site: TestSite, hostile: HostileServer, tmp_path: Path
) -> None:
    until_close = hostile.url_for(f"/no-length?bytes={3 * MIB}")
    chunked = site.url_for(f"/bytes/{3 * MIB}?chunked=1")
    small = hostile.url_for("/no-length?bytes=5000")
    stats, items = await fetch_all(tmp_path, [until_close, chunked, small], max_response_size=MIB)
    assert items[until_close]["error"] == items[chunked]["error"] == "ResponseTooLarge"
    assert stats["response_too_large"] == 2
    assert items[small]["length"] == 5000  # read until the server closed: complete


# --------------------------------------------------------------------- time limits


async def test_trickle_fails_at_the_total_deadline(site: TestSite, tmp_path: Path) -> None:
    # One byte every 0.1 s never trips the read timeout; the total deadline ends it.
    url = site.url_for("/trickle?bytes=100&interval=0.1")
    stats, items = await fetch_all(tmp_path, [url], timeout=0.6, read_timeout=5)
    assert items[url]["error"] == "DownloadTimeout"
    assert "total deadline" in items[url]["message"]  # not the 10 s the body would take
    assert site.stats.hits["/trickle"] == 1
    assert stats["errors/DownloadTimeout"] == 1


@pytest.mark.parametrize("path", ["/headers-then-hang", "/hang"])
async def test_silent_servers_fail_at_the_read_timeout_and_are_retried(
    site: TestSite, tmp_path: Path, path: str
) -> None:
    url = site.url_for(path)
    stats, items = await fetch_all(tmp_path, [url], read_timeout=0.3, retries=1,
                                   retry_backoff=0.01)
    assert items[url]["error"] == "DownloadTimeout"
    assert "read timeout" in items[url]["message"]
    assert stats["retries/DownloadTimeout"] == 1 and stats["errors/DownloadTimeout"] == 1


async def test_accepts_and_never_answers(hostile: HostileServer, tmp_path: Path) -> None:
    url = hostile.url_for("/silent")
    _, items = await fetch_all(tmp_path, [url], read_timeout=0.3)
    assert items[url]["error"] == "DownloadTimeout"


# ---------------------------------------------------------------- broken connections


async def test_resets_are_retried_then_fail_with_their_type(
    hostile: HostileServer, tmp_path: Path
) -> None:
    before = hostile.url_for("/reset-before-headers")
    mid = hostile.url_for("/reset-mid-body")
    stats, items = await fetch_all(tmp_path, [before, mid], retries=2, retry_backoff=0.01)
    assert items[before]["error"] == "ConnectError"
    assert items[mid]["error"] == "ProtocolError"  # part of a body: truncated
    assert stats["retries/ConnectError"] == 2 and stats["retries/ProtocolError"] == 2
    assert hostile.hits["/reset-before-headers"] >= 3 and hostile.hits["/reset-mid-body"] == 3


async def test_content_length_larger_than_body_never_reaches_a_callback(
    site: TestSite, hostile: HostileServer, tmp_path: Path
) -> None:
    raw = hostile.url_for("/short-body")
    served = site.url_for("/truncated")
    chunked = hostile.url_for("/chunked-cut")
    stats, items = await fetch_all(tmp_path, [raw, served, chunked], retries=1,
                                   retry_backoff=0.01)
    for url in (raw, served, chunked):
        assert items[url]["error"] == "ProtocolError", items[url]
        assert "length" not in items[url]  # parse() never saw the short body
    assert stats["errors/ProtocolError"] == 3 and "responses" not in stats
    assert stats["retries/ProtocolError"] == 3


# ---------------------------------------------------------------- malformed responses


async def test_malformed_responses_are_clear_per_request_errors(
    hostile: HostileServer, tmp_path: Path
) -> None:
    bad = [hostile.url_for(p) for p in (
        "/long-header", "/many-headers", "/no-colon", "/bad-status/word", "/bad-status/code",
        "/bad-status/garbage", "/bad-status/empty",
    )]  # fmt: skip
    good = [hostile.url_for(f"/page/{i}") for i in range(5)]
    stats, items = await fetch_all(tmp_path, bad + good)
    for url in bad:
        assert items[url]["error"] == "ProtocolError", items[url]
        message = items[url]["message"]
        assert "malformed response" in message and "\n" not in message and len(message) < 400
    assert "header" in items[bad[0]]["message"].lower() or "32768" in items[bad[0]]["message"]
    assert "Too many headers" in items[bad[1]]["message"]
    assert "status" in items[bad[3]]["message"].lower()
    assert all(items[url]["complete"] for url in good)  # the engine kept running
    assert stats["errors/ProtocolError"] == len(bad) and stats["responses"] == len(good)


async def test_many_headers_within_the_limit_are_fine(
    hostile: HostileServer, tmp_path: Path
) -> None:
    url = hostile.url_for("/many-headers?n=200")
    url2 = hostile.url_for("/long-header?size=20000")  # a long CSP or cookie header
    _, items = await fetch_all(tmp_path, [url, url2])
    assert items[url]["length"] == 3 and items[url2]["length"] == 3


@pytest.mark.slow
async def test_random_resets_lose_nothing_and_truncate_nothing(tmp_path: Path) -> None:
    """2,000 pages from a server that resets 10% of requests (half before the headers, half
    in the middle of the body): every page is delivered, complete, exactly once."""

    class Pages(Spider):
        name = "pages"
        base: str

        async def start(self) -> Any:
            for i in range(2000):
                yield Request(f"{self.base}/page/{i}")

        def parse(self, response: Response) -> Any:
            i = int(response.url.rsplit("/", 1)[1])
            yield {"i": i, "intact": response.body == hostile_page(i)}

    async with HostileServer(reset_rate=0.1, seed=1) as server:
        result, items = await crawl(
            Pages, tmp_path, spider_args={"base": server.url}, retries=10,
            retry_backoff=0.001, retry_backoff_max=0.01,
        )
        resets = server.resets
    assert sorted(item["i"] for item in items) == list(range(2000))
    assert all(item["intact"] for item in items)
    assert resets > 150  # about 10% of 2,000 and their retries
    # Resets in a body are retried by the engine; aiohttp itself resends a request whose
    # pooled connection was reset before the headers, so not every reset is an engine retry.
    assert result.stats["retries"] >= resets // 4
    assert "errors/ConnectError" not in result.stats
    assert "errors/ProtocolError" not in result.stats


# -------------------------------------------------------------------------- encodings

ENCODINGS = [
    # (Content-Type, body, expected codec, expected text)
    ("text/html; charset=utf-8", b"\xef\xbb\xbfcaf\xc3\xa9", "utf-8", "café"),
    # The header wins over a BOM (a deliberate choice, see crawler.encoding).
    ("text/html; charset=iso-8859-1", b"\xef\xbb\xbfcaf\xc3\xa9", "cp1252", "ï»¿cafÃ©"),
    ("text/html", b"\xef\xbb\xbfcaf\xc3\xa9", "utf-8", "café"),
    ("text/html", b'<meta charset="windows-1252">caf\xe9 \x93q\x94', "cp1252",
     '<meta charset="windows-1252">café “q”'),
    ("text/html; charset=x-unknown", b'<meta charset="latin-1">caf\xe9', "cp1252",
     '<meta charset="latin-1">café'),
    ("text/html; charset=x-unknown", b"caf\xc3\xa9", "utf-8", "café"),
    ("text/html", b"caf\xff\xfe!", "utf-8", "caf\ufffd\ufffd!"),
    ("text/html; charset=latin-1", b"caf\xe9 \x80", "cp1252", "café €"),
    ("text/html; charset=gb2312", "中文".encode("gb18030"), "gb18030", "中文"),
    ("text/html", b"\xff\xfe" + "héllo".encode("utf-16-le"), "utf-16-le", "héllo"),
    ("text/html; charset=utf-16", b"\xfe\xff" + "héllo".encode("utf-16-be"), "utf-16-be",
     "héllo"),
]  # fmt: skip


async def test_encodings_always_decode_with_the_expected_codec(
    site: TestSite, tmp_path: Path
) -> None:
    for n, (ctype, body, _, _) in enumerate(ENCODINGS):
        site.canned[f"/enc/{n}"] = Canned(200, body, {"Content-Type": ctype})

    class Texts(Spider):
        name = "texts"
        base: str

        async def start(self) -> Any:
            for n in range(len(ENCODINGS)):
                yield Request(f"{self.base}/enc/{n}", cb_kwargs={"n": n})

        def parse(self, response: Response, **cb_kwargs: Any) -> Any:
            yield {"n": cb_kwargs["n"], "codec": response.encoding, "text": response.text}

    _, items = await crawl(Texts, tmp_path, spider_args={"base": site.url})
    got = {item["n"]: (item["codec"], item["text"]) for item in items}
    assert got == {n: (codec, text) for n, (_, _, codec, text) in enumerate(ENCODINGS)}


# --------------------------------------------------------------------- malformed HTML


async def test_malformed_html_gives_what_it_can(site: TestSite, tmp_path: Path) -> None:
    depth = 100_000
    site.canned["/truncated-html"] = Canned(
        200, b'<html><head><title>Cut</title></head><body><h1>Title</h1><p>para <a href="/x">li',
        {"Content-Type": "text/html"},
    )
    site.canned["/garbage"] = Canned(
        200, bytes(range(256)) * 400, {"Content-Type": "text/html; charset=utf-8"}
    )
    site.canned["/deep"] = Canned(
        200,
        b"<html><body><p id=top>top</p>" + b"<div>" * depth + b"<a href=/deep-link>deep</a>"
        + b"</div>" * depth + b"<p id=bottom>bottom</p></body></html>",
        {"Content-Type": "text/html"},
    )

    class Html(Spider):
        name = "html"
        base: str

        async def start(self) -> Any:
            for path in ("/truncated-html", "/garbage", "/deep"):
                yield Request(f"{self.base}{path}")

        def parse(self, response: Response) -> Any:
            found = {
                "path": response.url.rsplit("/", 1)[1],
                "title": response.css("h1::text").get(),
                "link": response.css("a::attr(href)").get(),
                "top": response.css("#top::text").get(),
                "divs": len(response.css("div")),
                "texts": len(response.xpath("//text()")),
            }
            yield found

    result, items = await crawl(Html, tmp_path, spider_args={"base": site.url})
    by_path = {item["path"]: item for item in items}
    assert by_path["truncated-html"]["title"] == "Title"
    assert by_path["truncated-html"]["link"] == "/x"
    assert by_path["garbage"]["texts"] >= 1  # decoded (with U+FFFD) and parsed, no crash
    deep = by_path["deep"]
    # libxml2 stops at a nesting depth of a few thousand levels: what comes before is there,
    # the rest of the document is not; never a crash, never a stack overflow.
    assert deep["top"] == "top" and deep["divs"] >= 256
    assert len(items) == 3 and site.stats.hits["/deep"] == 1
    assert "errors/ValueError" not in result.stats
