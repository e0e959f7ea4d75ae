"""robots.txt against a real local server: one fetch per origin, RFC 9309 outcomes, Crawl-delay."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler import Request, Response, Spider
from crawler.downloader import Downloader
from crawler.engine import Engine
from crawler.robots import (
    MAX_ROBOTS_BYTES,
    RobotsCache,
    RobotsRules,
    RobotsUnavailable,
    origin_of,
    product_token,
)
from crawler.runner import CrawlResult, run_spider
from crawler.stats import Stats

from .conftest import assert_spaced, make_settings
from .servers import Canned, TestSite


class Pages(Spider):
    """Requests every URL of ``urls`` at once; one item per page fetched."""

    name = "pages"
    urls: list[str] = []

    async def start(self) -> Any:
        for url in self.urls:
            yield Request(url)

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}


async def run(
    tmp_path: Path, urls: list[str], *, retry_delay: float | None = None, **settings: Any
) -> tuple[CrawlResult, set[str], Engine]:
    """Crawl ``urls`` with robots.txt obeyed; returns the result, the URLs fetched, the engine."""
    engines: list[Engine] = []

    def tweak(engine: Engine) -> None:
        engines.append(engine)
        if retry_delay is not None and engine.robots is not None:
            engine.robots.retry_delay = retry_delay

    out = tmp_path / "items.jsonl"
    settings.setdefault("obey_robots", True)
    result = await run_spider(
        Pages, make_settings(**settings), spider_args={"urls": urls}, output=str(out),
        overwrite=True, on_engine=tweak,
    )
    lines = out.read_bytes().splitlines() if out.exists() else []
    return result, {orjson.loads(line)["url"] for line in lines}, engines[0]


def pages(site: TestSite, *paths: str, host: str | None = None) -> list[str]:
    return [site.url_for(p, host) for p in paths]


ROBOTS = """\
User-agent: *
Disallow: /page/private
Allow: /page/private-but-allowed

User-agent: otherbot
Disallow: /
"""


async def test_disallowed_dropped_allowed_fetched_robots_fetched_once(
    site: TestSite, tmp_path: Path
) -> None:
    site.canned["/robots.txt"] = Canned(200, ROBOTS, {"Content-Type": "text/plain"}, delay=0.2)
    urls = pages(site, *[f"/page/{i}" for i in range(20)], "/page/private1", "/page/private2",
                 "/page/private-but-allowed")
    result, fetched, _ = await run(tmp_path, urls, concurrency_per_host=8)
    assert fetched == set(urls) - set(pages(site, "/page/private1", "/page/private2"))
    assert result.stats["robots_denied"] == 2
    # 23 requests arrived together while robots.txt took 0.2 s: still one fetch.
    assert site.stats.hits["/robots.txt"] == 1
    assert site.stats.hits["/page/private1"] == 0
    # The robots.txt fetch is not a page.
    assert result.stats["responses"] == 21 == result.stats["requests"]
    assert result.stats["robots/status/200"] == 1
    # Every page came after robots.txt was known.
    first_page = min(t for t, path, _ in site.stats.log if path.startswith("/page/"))
    robots_time = next(t for t, path, _ in site.stats.log if path == "/robots.txt")
    assert first_page >= robots_time + 0.2


async def test_one_fetch_per_origin(site: TestSite, tmp_path: Path) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow: /page/x\n")
    urls = pages(site, "/page/1", "/page/x") + pages(site, "/page/2", "/page/x", host="localhost")
    result, fetched, _ = await run(tmp_path, urls)
    assert fetched == {urls[0], urls[2]}
    hosts = sorted(h for _, path, h in site.stats.log if path == "/robots.txt")
    assert hosts == ["127.0.0.1", "localhost"]
    assert result.stats["robots_denied"] == 2


async def test_matched_against_the_product_token(site: TestSite, tmp_path: Path) -> None:
    site.canned["/robots.txt"] = Canned(
        200,
        "User-agent: *\nDisallow: /page/all\n\n"
        "User-agent: crawler\nDisallow: /page/ours\n\n"
        "User-agent: crawlerx\nDisallow: /page/theirs\n",
    )
    urls = pages(site, "/page/all", "/page/ours", "/page/theirs")
    _, fetched, _ = await run(tmp_path, urls, user_agent="Crawler/2.0 (+https://example.com)")
    # Our group replaces the * group: /page/all is allowed, /page/ours is not; the
    # "crawlerx" group is another robot.
    assert fetched == set(pages(site, "/page/all", "/page/theirs"))
    assert product_token("Crawler/2.0 (+https://example.com)") == "crawler"
    assert product_token("crawler") == "crawler"


@pytest.mark.parametrize("status", [401, 403, 404, 410])
async def test_4xx_allows_everything(site: TestSite, tmp_path: Path, status: int) -> None:
    site.canned["/robots.txt"] = Canned(status, "User-agent: *\nDisallow: /\n")
    urls = pages(site, "/page/1", "/page/2")
    result, fetched, _ = await run(tmp_path, urls)
    assert fetched == set(urls)
    assert "robots_denied" not in result.stats


async def test_5xx_holds_requests_until_robots_is_known(site: TestSite, tmp_path: Path) -> None:
    site.canned["/robots.txt"] = [
        Canned(503, "busy"),
        Canned(500, "broken"),
        Canned(200, "User-agent: *\nDisallow: /page/private\n"),
    ]
    urls = pages(site, "/page/1", "/page/2", "/page/private")
    result, fetched, _ = await run(tmp_path, urls, retry_delay=0.1)
    # Nothing was dropped while robots.txt was unreachable; the rules decided at the end.
    assert fetched == set(pages(site, "/page/1", "/page/2"))
    assert result.stats["robots_denied"] == 1
    assert site.stats.hits["/robots.txt"] == 3
    assert result.stats["robots/unavailable"] == 2
    assert result.stats["robots/deferred"] >= 3
    last_robots = max(t for t, path, _ in site.stats.log if path == "/robots.txt")
    assert all(t > last_robots for t, path, _ in site.stats.log if path.startswith("/page/"))


async def test_unreachable_for_good_drops_the_origin(site: TestSite, tmp_path: Path) -> None:
    # A robots.txt slower than the timeout: unreachable; after retries+1 attempts, the
    # origin is disallowed for the rest of the crawl and the crawl still finishes.
    site.canned["/robots.txt"] = Canned(200, "", delay=5)
    urls = pages(site, "/page/1", "/page/2", "/page/3")
    result, fetched, _ = await run(
        tmp_path, urls, retry_delay=0.05, retries=2, timeout=0.3, read_timeout=0.3
    )
    assert fetched == set()
    assert result.reason == "finished"
    assert result.stats["dropped/robots_unavailable"] == 3
    assert result.stats["robots/errors/DownloadTimeout"] == 3
    assert site.stats.hits["/robots.txt"] == 3
    assert not any(path.startswith("/page/") for _, path, _ in site.stats.log)


async def test_unreachable_host_is_not_retried_forever(tmp_path: Path) -> None:
    # Nothing listens on this port: robots.txt refused, so after the retries the host is
    # failed and its request fails (through the errback), not dropped.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, fetched, _ = await run(
        tmp_path, [f"http://127.0.0.1:{port}/a"], retry_delay=0.01, retries=1
    )
    assert fetched == set()
    assert result.stats["robots/errors/ConnectError"] == 2
    assert result.stats["errors/ConnectError"] == 1 and result.stats["hosts_failed"] == 1


async def test_redirects_followed_up_to_five_hops(site: TestSite, tmp_path: Path) -> None:
    other = site.url_for("/robots-moved.txt", "localhost")
    site.canned["/robots.txt"] = Canned(301, "", {"Location": "/redirect/4"})
    # /redirect/4 → 3 → 2 → 1 → /redirect/0: five hops in all from /robots.txt, whose body is
    # not a robots.txt that disallows anything. A sixth hop is one too many: allow all.
    result, fetched, _ = await run(tmp_path, pages(site, "/page/1"))
    assert fetched == set(pages(site, "/page/1"))
    assert site.stats.hits["/redirect/0"] == 1
    assert result.stats["robots/status/301"] == 1 and result.stats["robots/status/302"] == 4

    site.reset_stats()
    site.canned["/robots.txt"] = Canned(302, "", {"Location": other})
    site.canned["/robots-moved.txt"] = Canned(200, "User-agent: *\nDisallow: /page/x\n")
    result, fetched, _ = await run(tmp_path, pages(site, "/page/1", "/page/x"))
    assert fetched == set(pages(site, "/page/1"))  # the rules found on the other host apply
    assert result.stats["robots_denied"] == 1

    site.reset_stats()
    site.canned["/robots.txt"] = Canned(302, "", {"Location": "/redirect/5"})
    result, fetched, _ = await run(tmp_path, pages(site, "/page/1"))
    assert fetched == set(pages(site, "/page/1"))
    assert site.stats.hits["/redirect/0"] == 0  # gave up after five hops


async def test_only_the_first_500_kib_are_parsed(site: TestSite, tmp_path: Path) -> None:
    filler = "# padding line\n" * (MAX_ROBOTS_BYTES // 15 + 1000)
    site.canned["/robots.txt"] = Canned(
        200, "User-agent: *\nDisallow: /page/early\n" + filler + "Disallow: /page/late\n"
    )
    urls = pages(site, "/page/early", "/page/late", "/page/other")
    _, fetched, engine = await run(tmp_path, urls)
    assert fetched == set(pages(site, "/page/late", "/page/other"))
    assert engine.robots is not None
    rules = engine.robots.known(urls[0])
    assert rules is not None and len(rules.text) <= MAX_ROBOTS_BYTES
    assert rules.text.endswith("\n")  # cut at a line end


async def test_crawl_delay_spaces_every_page_including_the_first(
    site: TestSite, tmp_path: Path
) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nCrawl-delay: 0.25\n")
    urls = pages(site, *[f"/page/{i}" for i in range(5)])
    _, fetched, _ = await run(tmp_path, urls, concurrency_per_host=8)
    assert fetched == set(urls)
    times = [t for t, path, _ in site.stats.log]  # robots.txt first, then the pages
    assert len(times) == 6
    assert_spaced(times, 0.25)


async def test_obey_robots_false_never_fetches_it(site: TestSite, tmp_path: Path) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow: /\n")
    urls = pages(site, "/page/1")
    _, fetched, engine = await run(tmp_path, urls, obey_robots=False)
    assert fetched == set(urls)
    assert engine.robots is None
    assert site.stats.hits["/robots.txt"] == 0


async def test_disallowed_logged_at_debug(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow: /page/no\n")
    with caplog.at_level(logging.DEBUG, logger="crawler.engine"):
        await run(tmp_path, pages(site, "/page/no"))
    record = next(r for r in caplog.records if "robots.txt" in r.getMessage())
    assert record.levelno == logging.DEBUG and "/page/no" in record.getMessage()


async def test_dump_and_load(site: TestSite) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow: /page/x\nCrawl-delay: 2\n")
    site.canned["/missing/robots.txt"] = Canned(404)
    settings = make_settings(timeout=1)
    stats = Stats()
    async with Downloader(settings, stats) as downloader:
        cache = RobotsCache(settings.user_agent, downloader.fetch, stats=stats, retry_delay=30)
        allowed = await cache.resolve(Request(site.url_for("/page/1")))
        assert isinstance(allowed, RobotsRules)
        site.canned["/robots.txt"] = Canned(503)
        other = await cache.resolve(Request(site.url_for("/page/1", "localhost")))
        assert isinstance(other, RobotsUnavailable) and not other.final
    data = orjson.loads(orjson.dumps(cache.dump()))  # plain JSON data
    fresh = RobotsCache(settings.user_agent, downloader.fetch)
    fresh.load(data)
    rules = fresh.known(site.url_for("/page/x"))
    assert rules is not None and rules.crawl_delay == 2.0
    assert not rules.allows(site.url_for("/page/x")) and rules.allows(site.url_for("/page/y"))
    assert fresh.known(site.url_for("/page/x", "localhost")) is None  # still unavailable
    state = await fresh.resolve(Request(site.url_for("/page/x", "localhost")))
    assert isinstance(state, RobotsUnavailable) and 25 < state.retry_in() <= 30
    # Rules for another user agent are not loaded.
    third = RobotsCache("otherbot/1.0", downloader.fetch)
    third.load(data)
    assert third.known(site.url_for("/page/x")) is None


async def test_concurrent_resolve_shares_one_fetch(site: TestSite) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow: /no\n", delay=0.1)
    settings = make_settings()
    async with Downloader(settings, Stats()) as downloader:
        cache = RobotsCache(settings.user_agent, downloader.fetch)
        states = await asyncio.gather(
            *[cache.resolve(Request(site.url_for(f"/p{i}"))) for i in range(50)]
        )
    assert len({id(s) for s in states}) == 1
    assert site.stats.hits["/robots.txt"] == 1


def test_origin_of() -> None:
    assert origin_of("http://a.com/x/y?z") == "http://a.com"
    assert origin_of("https://a.com:8443/") == "https://a.com:8443"
    assert origin_of("https://a.com") == "https://a.com"
    assert origin_of("http://[::1]:80/x") == "http://[::1]:80"
