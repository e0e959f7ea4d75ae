"""crawler.spider: the Spider base, its Scrapy-style surface and its start requests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider

from .conftest import crawl
from .servers import TestSite


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


async def test_a_string_for_a_list_attribute_is_split_on_commas(
    site: TestSite, tmp_path: Path
) -> None:
    class Plain(Spider):
        name = "plain"
        other: str
        start_urls = ["http://unused.invalid/"]

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    one = f"{site.url}/page/a"
    _, items = await crawl(Plain, tmp_path, spider_args={"start_urls": one})
    assert [i["url"] for i in items] == [one]
    two = f"{site.url}/page/b , {site.url}/page/c"
    _, items = await crawl(Plain, tmp_path, spider_args={"start_urls": two,
                                                         "allowed_domains": "127.0.0.1"})
    assert sorted(i["url"] for i in items) == [f"{site.url}/page/b", f"{site.url}/page/c"]
    assert Plain(allowed_domains="a.com,b.com").allowed_domains == ["a.com", "b.com"]
    assert Plain(other="x,y").other == "x,y"



class Polite(Spider):
    name = "polite"
    download_delay = 0.5
    user_agent = "polite/1"
    custom_settings = {"DEPTH_LIMIT": 3, "depth_limit": 2, "retries": 1}


def test_spider_settings_take_scrapy_attributes_and_custom_settings_win() -> None:
    assert Polite.spider_settings() == {"download_delay": 0.5, "user_agent": "polite/1",
                                        "depth_limit": 2, "retries": 1}
    assert Spider.spider_settings() == {}


async def test_start_requests_skip_what_is_not_http_and_name_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Mixed(Spider):
        name = "mixed"
        start_urls = ["http://e.com/a", "ftp://e.com/f", "/relative", "https://e.com/b"]

    with caplog.at_level(logging.WARNING, logger="spiders.mixed"):
        urls = [r.url async for r in Mixed().start()]
    assert urls == ["http://e.com/a", "https://e.com/b"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2 and skipped[0].startswith("Skipped start URL 'ftp://e.com/f': ")


async def test_a_string_start_url_is_one_url_and_start_requests_may_be_async() -> None:
    class One(Spider):
        name = "one"

    one = One()
    one.start_urls = "http://e.com/only"  # type: ignore[assignment]
    assert [r.url async for r in one.start()] == ["http://e.com/only"]

    class Async(Spider):
        name = "async"

        async def start_requests(self) -> Any:
            for i in range(2):
                yield Request(f"http://e.com/{i}")

    assert [r.url async for r in Async().start()] == ["http://e.com/0", "http://e.com/1"]


def test_arguments_state_logger_and_the_default_callback() -> None:
    class Args(Spider):
        name = "args"

    spider = Args(tag="humor", pages=3)
    assert (spider.tag, spider.pages, spider.state) == ("humor", 3, {})  # type: ignore[attr-defined]
    assert spider.logger.name == "spiders.args" and repr(spider) == "<Args 'args'>"
    with pytest.raises(NotImplementedError, match=r"Args\.parse\(\) is not defined"):
        spider.parse(Response("http://e.com/", 200, {}, b""))
