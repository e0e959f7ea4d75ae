"""The HTTP cache against a real local site: a rerun is answered from the cache (redirects
included, bodies decoded), transient statuses are not kept, old entries expire."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.errors import ConfigError

from .conftest import crawl
from .servers import Canned, TestSite


class Pages(Spider):
    name = "cached"
    base: str

    async def start(self) -> Any:
        yield Request(f"{self.base}/links?n=5", self.links)
        yield Request(f"{self.base}/redirect/2")
        yield Request(f"{self.base}/flaky/cache?fail=1&status=503")
        yield Request(f"{self.base}/zipped")

    def links(self, response: Response) -> Any:
        yield from response.follow_all(css="a")

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "status": response.status, "text": response.text[:60],
               "chain": response.redirect_chain}


@pytest.fixture
def zipped(site: TestSite) -> None:
    site.canned["/zipped"] = Canned(200, gzip.compress(b"<h1>zipped page</h1>"),
                                    {"Content-Encoding": "gzip", "Content-Type": "text/html"})


def network_hits(site: TestSite) -> int:
    return sum(n for path, n in site.stats.hits.items() if path != "/robots.txt")


@pytest.mark.usefixtures("zipped")
async def test_a_rerun_is_answered_from_the_cache(site: TestSite, tmp_path: Path) -> None:
    options: dict[str, Any] = {"http_cache": True, "http_cache_dir": str(tmp_path / "cache"),
                               "retry_backoff": 0.01}
    args = {"base": site.url}
    first, items1 = await crawl(Pages, tmp_path, spider_args=args, **options)
    fetched = network_hits(site)
    # links + 5 pages, 3 redirect hops, 503 then 200, the gzip page.
    assert fetched == 6 + 3 + 2 + 1
    assert first.stats["httpcache/store"] == fetched - 1  # not the 503
    assert (tmp_path / "cache" / "cached.sqlite3").is_file()

    site.reset_stats()
    second, items2 = await crawl(Pages, tmp_path, spider_args=args, **options)
    assert network_hits(site) == 0
    assert second.stats["httpcache/hit"] == fetched - 1
    assert "httpcache/miss" not in second.stats
    key = lambda item: item["url"]  # noqa: E731
    assert sorted(items2, key=key) == sorted(items1, key=key)
    zipped = next(i for i in items2 if i["url"].endswith("/zipped"))
    assert zipped["text"] == "<h1>zipped page</h1>"  # kept decoded
    redirected = next(i for i in items2 if i["chain"])
    assert len(redirected["chain"]) == 2


async def test_entries_expire_and_are_fetched_again(site: TestSite, tmp_path: Path) -> None:
    class One(Spider):
        name = "one"

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/a")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    options: dict[str, Any] = {"http_cache": True, "http_cache_dir": str(tmp_path / "c"),
                               "http_cache_expiration": 0.3}
    await crawl(One, tmp_path, **options)
    result, _ = await crawl(One, tmp_path, **options)
    assert site.stats.hits["/page/a"] == 1 and result.stats["httpcache/hit"] == 1
    await asyncio.sleep(0.4)
    result, _ = await crawl(One, tmp_path, **options)
    assert site.stats.hits["/page/a"] == 2 and result.stats["httpcache/miss"] == 1
    # And without http_cache nothing is read or written.
    result, _ = await crawl(One, tmp_path, http_cache_dir=str(tmp_path / "c"))
    assert site.stats.hits["/page/a"] == 3
    assert not any(k.startswith("httpcache/") for k in result.stats)


async def test_an_unusable_cache_dir_is_an_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ConfigError, match=r"cannot open the HTTP cache .*not-a-dir"):
        await crawl(Pages, tmp_path, spider_args={"base": "http://127.0.0.1:9"},
                    http_cache=True, http_cache_dir=str(blocker))


def test_a_failing_cache_never_loses_a_page(tmp_path: Path) -> None:
    """Disk full, a table gone: the request goes to the network and the page to its callback;
    the failure is counted and logged once."""
    import sqlite3

    from crawler.httpcache import HttpCache
    from crawler.stats import Stats

    path = tmp_path / "c.sqlite3"
    stats = Stats()
    cache = HttpCache(path, stats)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE responses")
    request = Request("http://127.0.0.1:9/a")
    response = Response(request.url, 200, {"Content-Type": "text/html"}, b"<p>a</p>", request)
    for _ in range(2):
        assert cache.process_request(request, None) is None
        assert cache.process_response(request, response, None) is response
    assert stats.get("httpcache/read_errors") == 2 and stats.get("httpcache/write_errors") == 2
    assert stats.get("httpcache/store") == 0
    cache.close()
