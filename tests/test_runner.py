"""crawler.runner: run_spider builds a crawl from settings and the spider, refuses what
cannot be used, and always ends with its stats and summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from crawler import Response, Spider
from crawler.errors import ConfigError
from crawler.runner import CrawlResult, parse_once, run_spider

from .conftest import crawl, make_settings
from .servers import TestSite
from .test_middleware import EchoPages
from .test_nothing_lost import Pages


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("pipelines", "tests.test_middleware:Missing", "has no 'Missing'"),
    ("pipelines", "nowhere.at.all:Name", "cannot import"),
    ("middlewares", "tests.test_middleware:Tag", "is not a middleware"),
    ("pipelines", "tests.test_middleware:ReplaceHeader", "is not a pipeline"),
])
async def test_a_spider_component_that_cannot_be_used_is_refused(
    site: TestSite, tmp_path: Path, attribute: str, value: str, message: str
) -> None:
    Spider_ = type("Bad", (EchoPages,), {attribute: [value]})
    with pytest.raises(ConfigError, match=message) as info:
        await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert f"Bad.{attribute}" in str(info.value)
    assert site.stats.total == 0  # refused before any request



async def test_stats_and_summary_survive_an_error_at_the_end(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "file").write_text("")
    stats = tmp_path / "file" / "stats.json"  # cannot be written: its folder is a file
    result = await run_spider(Pages, make_settings(), spider_args={"base": site.url},
                              stats_path=str(stats))
    assert result.reason == "finished" and result.stats["items_scraped"] == 6
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"Could not write the stats to {stats}") for m in messages)
    assert any(m.startswith("Crawl finished.") for m in messages)



class Books(Spider):
    name = "books"
    base: str  # a spider argument

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}
        yield from response.follow_all(css="a", callback=self.parse_other)

    def parse_other(self, response: Response) -> Any:
        yield {"other": response.url}


async def test_parse_once_runs_one_callback_and_follows_nothing(site: TestSite) -> None:
    url = f"{site.url}/links?n=3"
    seen = await parse_once(Books, make_settings(), url)
    assert seen.called and seen.items == [{"url": url}]
    assert [getattr(r.callback, "__name__", None) for r in seen.requests] == ["parse_other"] * 3
    assert sorted(r.url for r in seen.requests) == [f"{site.url}/page/{i}" for i in range(3)]
    assert site.stats.total == 1  # the one page, none of its links
    other = await parse_once(Books, make_settings(), f"{site.url}/page/7", "parse_other")
    assert other.items == [{"other": f"{site.url}/page/7"}] and other.requests == []


async def test_parse_once_of_a_missing_callback_lists_the_parse_methods(site: TestSite) -> None:
    with pytest.raises(ConfigError, match=r"has no method 'parse_nope' \(its parse methods:"
                                          r" parse, parse_other\)"):
        await parse_once(Books, make_settings(), f"{site.url}/page/1", "parse_nope")
    assert site.stats.total == 0


async def test_parse_once_of_an_error_status_does_not_call_back(site: TestSite) -> None:
    seen = await parse_once(Books, make_settings(retries=0), f"{site.url}/status/404")
    assert not seen.called and seen.items == [] and seen.requests == []
    assert seen.stats["status/404"] == 1 and seen.stats["errors/HttpError"] == 1


@pytest.mark.parametrize(("reason", "failed"), [
    ("finished", False), ("shutdown", False), ("closespider_itemcount", False),
    ("start_failed", True), ("frontier_lost", True), ("output_failed", True),
])  # fmt: skip
def test_which_finish_reasons_fail_the_run(reason: str, failed: bool) -> None:
    assert CrawlResult(reason).failed is failed
