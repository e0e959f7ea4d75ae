"""crawler.spider: the Spider base, its Scrapy-style surface and its start requests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from crawler import Response, Spider
from crawler.testsite import TestSite

from .conftest import crawl


def test_spider_surface(caplog: pytest.LogCaptureFixture) -> None:
    class S(Spider):
        name = "s"
        start_urls = ["http://e.com/a", "mailto:x@e.com", "http://e.com/b"]

    spider = S()
    with caplog.at_level(logging.DEBUG):
        spider.log("hello there")
        spider.log("warned", level=logging.WARNING)
        requests = list(spider.start_requests())
    assert [r.url for r in requests] == ["http://e.com/a", "http://e.com/b"]
    assert all(r.dont_filter for r in requests)  # as in Scrapy
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["hello there"] == logging.DEBUG and levels["warned"] == logging.WARNING
    response = Response("http://e.com/p/", 200, {"Content-Type": "text/html"},
                        b'<a href="x">x</a><a href="y">y</a>')
    follows = response.follow_all(response.css("a"), "parse_x")  # callback positionally
    assert [(r.url, r.callback) for r in follows] == [
        ("http://e.com/p/x", "parse_x"), ("http://e.com/p/y", "parse_x")]
    assert response.follow("z", "cb").callback == "cb"  # type: ignore[union-attr]
    assert response.meta["depth"] == 0



async def test_start_urls_are_not_filtered(site: TestSite, tmp_path: Path) -> None:
    """A later link back to a start page is fetched again, as Scrapy's dont_filter start
    requests allow."""

    class Back(Spider):
        name = "back"

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}
            if response.url.endswith("/links?n=1"):
                yield response.follow("/page/0")
            else:
                yield response.follow("/links?n=1")

    Back.start_urls = [f"{site.url}/links?n=1"]
    _, items = await crawl(Back, tmp_path)
    assert sorted(i["url"] for i in items) == sorted(
        [f"{site.url}/links?n=1", f"{site.url}/page/0", f"{site.url}/links?n=1"])

