"""Bad links and spider traps, crawled by the engine: the crawl never stops on a bad link and
every drop is counted by its reason. (The pure ``parse_url`` corpus is in test_urls.py.)"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import Request, Response, Spider
from crawler.demosite import html_page

from .conftest import crawl
from .servers import Canned, TestSite

#: Links that cannot be crawled, one per kind: ``/bad-links`` serves them all.
BAD_LINKS: tuple[str, ...] = (
    "javascript:alert(1)",
    "mailto:someone@example.com",
    "data:text/html,<b>x</b>",
    "file:///etc/passwd",
    "ftp://example.com/file",
    "tel:+441234567890",
    "",
    "   ",
    "http://exa mple.com/space-in-host",
    "http://a..b.com/",  # an empty label
    "http://\u2028bad.com/",  # a line separator cannot be IDNA-encoded
    "http://" + "a" * 64 + ".com/",  # a label over 63 characters
    "http://example.com:99999/",  # port out of range
    "http://example.com:0/",
    "http://ex\x01ample.com/",  # a control character (HTML parsers drop a NUL)
    "http://ex%00ample.com/",  # an escaped NUL in a host
    "http://999.1.1.1/",  # a numeric host that is not an IPv4 address
    "http://[::1/",  # an unclosed IPv6 literal
)  # fmt: skip

#: Links on ``/bad-links`` that are valid and lead to pages of the site (relative, or on
#: hosts that are not resolvable but valid once IDNA-encoded).
BAD_LINKS_VALID: tuple[str, ...] = (
    "/page/%zz-bad-escape",  # a bad escape is kept literally (as %25zz)
    "/page/with space",
    "/page/caf\u00e9",
    "/page/\ufffd\ufffd",  # what undecodable bytes become
    "  /page/padded  ",
)  # fmt: skip


async def bad_links_page(request: web.Request) -> web.Response:
    """``/bad-links``: every link of :data:`BAD_LINKS` and :data:`BAD_LINKS_VALID`."""
    items = "".join(f'<li><a href="{html.escape(href, quote=True)}">link</a></li>\n'
                    for href in [*BAD_LINKS, *BAD_LINKS_VALID])
    return html_page(
        "<!DOCTYPE html>\n<html><head><title>bad links</title></head>\n"
        f"<body>\n<ul>\n{items}</ul>\n</body></html>\n"
    )


async def trap_page(request: web.Request) -> web.Response:
    """``/trap/...``: a spider trap, any path linking relatively to ``loop/`` below itself."""
    return html_page(
        "<!DOCTYPE html>\n<html><head><title>trap</title></head>\n"
        f'<body><h1>{html.escape(request.path)}</h1><a href="loop/">deeper</a></body></html>\n'
    )


@pytest.fixture
async def site() -> AsyncIterator[TestSite]:
    routes = [web.get("/bad-links", bad_links_page), web.get("/trap/{tail:.*}", trap_page)]
    async with TestSite(books=100, shop_products=400, routes=routes) as s:
        yield s


class FollowAll(Spider):
    """Follows every <a> of the start page (of every page with ``recurse``); one item per
    page reached."""

    name = "follow_all"
    base: str
    path: str
    recurse = False

    async def start(self) -> Any:
        yield Request(f"{self.base}{self.path}", self.links)

    def links(self, response: Response) -> Any:
        yield from response.follow_all(css="a")

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "h1": response.css("h1::text").get()}
        if self.recurse:
            yield from response.follow_all(css="a")


async def test_bad_links_are_skipped_and_counted(site: TestSite, tmp_path: Path) -> None:
    result, items = await crawl(FollowAll, tmp_path,
                                spider_args={"base": site.url, "path": "/bad-links"})
    assert result.reason == "finished"
    assert result.stats["links_skipped"] == len(BAD_LINKS)
    assert sorted(item["h1"] for item in items) == sorted([
        "Page %zz-bad-escape", "Page with space", "Page café", "Page \ufffd\ufffd",
        "Page padded",
    ])  # fmt: skip
    assert len(items) == len(BAD_LINKS_VALID)
    assert result.stats.get("errors/InvalidURL", 0) == 0  # skipped, not failed
    assert site.stats.total == 1 + len(BAD_LINKS_VALID)  # nothing else was requested


async def test_non_utf8_bytes_in_links(site: TestSite, tmp_path: Path) -> None:
    site.canned["/raw"] = Canned(
        200,
        b'<html><body><a href="/page/\xff\xfe">bytes in a path</a>'
        b'<a href="http://ex\xffample.com/">bytes in a host</a>'
        b'<a href="/page/caf\xe9">latin-1 in a utf-8 page</a></body></html>',
        {"Content-Type": "text/html; charset=utf-8"},
    )
    result, items = await crawl(FollowAll, tmp_path, spider_args={"base": site.url, "path": "/raw"})
    # Undecodable bytes become U+FFFD, which a path may hold (percent-encoded) and a host may
    # not (it cannot be IDNA-encoded).
    assert sorted(item["url"].rsplit("/", 1)[1] for item in items) == [
        "%EF%BF%BD%EF%BF%BD", "caf%EF%BF%BD"]
    assert result.stats["links_skipped"] == 1


async def test_request_built_from_a_bad_link_raises_value_error_and_the_crawl_goes_on(
    site: TestSite, tmp_path: Path
) -> None:
    for link in BAD_LINKS:
        with pytest.raises(ValueError, match="invalid URL"):
            Request(link)

    class Direct(Spider):
        name = "direct"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/page/start", self.bad)

        def bad(self, response: Response) -> Any:
            yield Request(f"{self.base}/page/before")
            yield Request("javascript:void(0)")  # raises here: the rest of this callback is lost
            yield Request(f"{self.base}/page/after")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    result, items = await crawl(Direct, tmp_path, spider_args={"base": site.url})
    assert [item["url"] for item in items] == [f"{site.url}/page/before"]
    assert result.stats["errors/InvalidURL"] == 1
    assert result.reason == "finished"


async def test_valid_international_domain_names_are_encoded(site: TestSite, tmp_path: Path) -> None:
    class Idn(Spider):
        name = "idn"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/page/x")

        def parse(self, response: Response) -> Any:
            for link in ("http://münchen.de/straße", "https://Пример.рф/", "http://例え.テスト/"):
                request = response.follow(link)
                yield {"link": link, "url": request.url if request else None}

    _, items = await crawl(Idn, tmp_path, spider_args={"base": site.url})
    assert {item["link"]: item["url"] for item in items} == {
        "http://münchen.de/straße": "http://xn--mnchen-3ya.de/stra%C3%9Fe",
        "https://Пример.рф/": "https://xn--e1afmkfd.xn--p1ai/",
        "http://例え.テスト/": "http://xn--r8jz45g.xn--zckzah/",
    }


# -------------------------------------------------------------------------- spider traps


async def test_repeated_path_segments_end_a_trap(site: TestSite, tmp_path: Path) -> None:
    result, items = await crawl(FollowAll, tmp_path,
                                spider_args={"base": site.url, "path": "/trap/",
                                             "recurse": True},
                                max_repeated_segments=3)
    assert sorted(item["h1"] for item in items) == [
        "/trap/loop/", "/trap/loop/loop/", "/trap/loop/loop/loop/"]
    assert result.stats["dropped/max_repeated_segments"] == 1
    assert result.reason == "finished"


async def test_url_length_limit(site: TestSite, tmp_path: Path) -> None:
    long_name = "x" * 200

    class Long(Spider):
        name = "long"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/page/start", self.links)

        def links(self, response: Response) -> Any:
            for n in (10, 50, 100, 200):
                yield response.follow(f"/page/{long_name[:n]}")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    limit = len(f"{site.url}/page/") + 100
    result, items = await crawl(Long, tmp_path, spider_args={"base": site.url},
                                url_length_limit=limit)
    assert sorted(len(item["url"]) for item in items) == [limit - 90, limit - 50, limit]
    assert result.stats["dropped/url_length_limit"] == 1


async def test_max_pages_per_host(site: TestSite, tmp_path: Path) -> None:
    class TwoHosts(Spider):
        name = "two_hosts"

        async def start(self) -> Any:
            for host in ("127.0.0.1", "localhost"):
                yield Request(site.url_for("/links?n=30", host), self.links)
            yield Request(site.url_for("/flaky/budget?fail=2&status=503", "127.0.0.1"))

        def links(self, response: Response) -> Any:
            yield from response.follow_all(css="a")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    result, _ = await crawl(TwoHosts, tmp_path, max_pages_per_host=10, retry_backoff=0.01)
    hosts: dict[str, int] = {}
    for _, _, host in site.stats.log:
        hosts[host] = hosts.get(host, 0) + 1
    # 127.0.0.1: /links, /flaky (3 attempts: retries do not spend the budget), 8 pages.
    assert hosts == {"127.0.0.1": 12, "localhost": 10}
    assert result.stats["dropped/max_pages_per_host"] == (30 - 8) + (30 - 9)


async def test_bad_start_urls_are_skipped_and_the_rest_crawled(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = ["", "/relative/only", "mailto:someone@example.com", "http://exa mple.com:99999/",
           "javascript:alert(1)"]  # fmt: skip

    class StartUrls(Spider):
        name = "start_urls"

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    StartUrls.start_urls = [bad[0], f"{site.url}/page/one", *bad[1:], f"{site.url}/page/two"]
    result, items = await crawl(StartUrls, tmp_path)
    assert result.reason == "finished"
    assert sorted(item["url"] for item in items) == [f"{site.url}/page/one",
                                                     f"{site.url}/page/two"]
    skipped = [r for r in caplog.records if r.getMessage().startswith("Skipped start URL")]
    assert len(skipped) == len(bad)
    assert all(r.levelname == "WARNING" and r.name == "spiders.start_urls" for r in skipped)
    assert "scheme 'mailto' is not http or https" in skipped[2].getMessage()
    assert result.stats.get("errors/InvalidURL", 0) == 0
