"""Host-aware scheduling end to end: real crawls against several local hosts (one test site
bound on 127.0.0.2, 127.0.0.3 ...), checked by what the servers saw.

The rules: a host with a delay, a pause or a robots.txt that hangs holds up only itself; the
hosts are served side by side whatever order the start requests came in; per-host limits
hold at the server.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.engine import Engine
from crawler.http import Request, Response
from crawler.runner import CrawlResult, run_spider
from crawler.spider import Spider
from tests.conftest import make_settings

from .servers import Canned, TestSite

HOSTS = [f"127.0.0.{i}" for i in range(2, 7)]


@pytest.fixture
async def sites() -> AsyncIterator[list[TestSite]]:
    """One small test site per host of HOSTS, each with its own counters."""
    opened: list[TestSite] = []
    try:
        for host in HOSTS:
            site = TestSite(books=10, quotes=10, shop_products=10, host=host)
            await site.__aenter__()
            opened.append(site)
        yield opened
    finally:
        for site in opened:
            await site.__aexit__(None, None, None)


class HostAfterHost(Spider):
    """``pages`` pages of each site, every page of one host before the next host's."""

    name = "host_after_host"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = urls

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url)

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {"url": response.url}


def page_urls(sites: list[TestSite], pages: int) -> list[str]:
    return [site.url_for(f"/page/{i}") for site in sites for i in range(pages)]


async def crawl_until(
    tmp_path: Path, urls: list[str], done: Any, **settings: Any
) -> tuple[CrawlResult, Engine]:
    """Crawl ``urls``; once ``done()`` holds (polled, up to a minute), stop gracefully."""
    engines: list[Engine] = []
    task = asyncio.create_task(run_spider(
        HostAfterHost, make_settings(**settings), spider_args={"urls": urls},
        output=str(tmp_path / "items.jsonl"), overwrite=True, on_engine=engines.append,
    ))
    for _ in range(600):
        if done() or task.done():
            break
        await asyncio.sleep(0.1)
    if not task.done():
        engines[0].stop("test_done")
    return await task, engines[0]


async def test_hosts_are_served_side_by_side_whatever_the_order(
    sites: list[TestSite], tmp_path: Path
) -> None:
    """Start requests host after host, one request per host at a time, a delay: every host's
    first page comes before any host's second (no head-of-line blocking), and the servers
    see the limits."""
    urls = page_urls(sites, 3)
    result = await run_spider(
        HostAfterHost,
        make_settings(concurrency=16, concurrency_per_host=1, download_delay=0.3),
        spider_args={"urls": urls}, output=str(tmp_path / "items.jsonl"), overwrite=True,
    )
    assert result.reason == "finished"
    assert result.stats["items_scraped"] == len(urls)
    hits = sorted((hit.time, hit.host, hit.path) for site in sites for hit in site.stats.log
                  if hit.path.startswith("/page/"))
    assert len(hits) == len(urls)
    first_round = {host for _, host, _ in hits[: len(sites)]}
    assert first_round == set(HOSTS)
    for site in sites:
        assert site.stats.max_inflight_by_host == {site.stats.log[0].host: 1}
        times = [hit.time for hit in site.stats.log]
        # Timer slack only: the delay counts from when a request's headers are sent.
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.3 - 0.02


async def test_a_hanging_robots_txt_holds_up_only_its_host(
    sites: list[TestSite], tmp_path: Path
) -> None:
    stuck, *others = sites
    stuck.canned["/robots.txt"] = Canned(200, "User-agent: *\nDisallow:\n", delay=3600)
    urls = page_urls(sites, 4)
    want = 4 * len(others)

    def others_done() -> bool:
        return sum(s.stats.hits["/page/0"] + s.stats.hits["/page/3"] for s in others) == \
            2 * len(others) and sum(s.stats.total for s in others) >= want

    result, _ = await crawl_until(tmp_path, urls, others_done, obey_robots=True,
                                  concurrency_per_host=1, timeout=2)
    assert result.reason == "test_done"
    for site in others:
        assert [h.path for h in site.stats.log if h.path.startswith("/page/")] == [
            f"/page/{i}" for i in range(4)
        ]
    assert [h.path for h in stuck.stats.log] == ["/robots.txt"]  # its pages wait for it


async def test_retry_after_pauses_only_the_host_that_asked(
    sites: list[TestSite], tmp_path: Path
) -> None:
    busy, *others = sites
    for i in range(4):
        busy.canned[f"/page/{i}"] = Canned(503, "busy", {"Retry-After": "3600"})
    urls = page_urls(sites, 4)
    want = 4 * len(others)

    result, _ = await crawl_until(
        tmp_path, urls, lambda: sum(s.stats.total for s in others) >= want,
        concurrency_per_host=1,
    )
    assert result.reason == "test_done"
    assert sum(s.stats.total for s in others) == want
    # One request, answered 503 + Retry-After: the host is paused for an hour, alone.
    assert [h.path for h in busy.stats.log] == ["/page/0"]
    assert result.stats["retries/status/503"] == 1
    assert result.stats["hosts_paused"] == 1


async def test_concurrency_per_host_holds_with_many_requests_each(
    sites: list[TestSite], tmp_path: Path
) -> None:
    urls = [site.url_for(f"/delay/0.05?i={i}") for site in sites for i in range(12)]
    result = await run_spider(
        HostAfterHost, make_settings(concurrency=64, concurrency_per_host=3),
        spider_args={"urls": urls}, output=str(tmp_path / "items.jsonl"), overwrite=True,
    )
    assert result.stats["items_scraped"] == len(urls)
    for site in sites:
        assert max(site.stats.max_inflight_by_host.values()) == 3


class CountsTasks(HostAfterHost):
    name = "counts_tasks"
    most_tasks = 0

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        CountsTasks.most_tasks = max(CountsTasks.most_tasks, len(asyncio.all_tasks()))
        yield {"url": response.url}


async def test_a_high_concurrency_costs_only_the_requests_in_flight(
    sites: list[TestSite], tmp_path: Path
) -> None:
    """One task per request in flight, not per unit of ``concurrency``."""
    urls = page_urls(sites, 2)
    result = await run_spider(
        CountsTasks, make_settings(concurrency=50_000, concurrency_per_host=1),
        spider_args={"urls": urls}, output=str(tmp_path / "items.jsonl"), overwrite=True,
    )
    assert result.stats["items_scraped"] == len(urls)
    assert 0 < CountsTasks.most_tasks < 50
