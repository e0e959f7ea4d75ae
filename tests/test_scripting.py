"""crawler.scripting: CrawlerProcess for Scrapy scripts and the native run()."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crawler import Response, Spider
from crawler.demosite import expected_quotes
from crawler.errors import SpiderNotFound
from crawler.scripting import CrawlerRunner, run_async

from .servers import TestSite
from .test_cli import run
from .test_scrapy_compat import lines


async def test_crawler_process_and_run(site: TestSite, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    out = tmp_path / "quotes.jsonl"
    script.write_text(textwrap.dedent(f"""
        import crawler.scrapy
        crawler.scrapy.install()
        import scrapy
        from scrapy.crawler import CrawlerProcess

        class QuotesSpider(scrapy.Spider):
            name = "quotes"

            def parse(self, response):
                for quote in response.css("div.quote"):
                    yield {{"author": quote.css("small.author::text").get(), "tag": self.tag}}

        process = CrawlerProcess(settings={{
            "FEEDS": {{"{out}": {{"format": "jsonlines", "overwrite": True}}}},
            "ROBOTSTXT_OBEY": False,
            "LOG_LEVEL": "WARNING",
        }})
        process.crawl(QuotesSpider, tag="t", start_urls=["{site.url}/quotes/"])
        process.start()
    """))
    code, _, err = await run(sys.executable, str(script), cwd=tmp_path)
    assert code == 0, err
    assert lines(out) == [{"author": q["author"], "tag": "t"} for q in expected_quotes(10)]



def test_native_run(site_thread: str, tmp_path: Path) -> None:
    from crawler import run as run_crawl

    class One(Spider):
        name = "one"

        def parse(self, response: Response) -> Any:
            yield {"title": response.css("h1::text").get()}

    One.start_urls = [f"{site_thread}/page/7"]
    out = tmp_path / "one.jsonl"
    result = run_crawl(One, settings={"obey_robots": False, "DOWNLOAD_DELAY": 0},
                       output=str(out), overwrite=True)
    assert result.reason == "finished" and result.stats["items_scraped"] == 1
    assert lines(out) == [{"title": "Page 7"}]



class Titles(Spider):
    name = "titles"

    def parse(self, response: Response) -> Any:
        yield {"title": response.css("h1::text").get(), "tag": getattr(self, "tag", None)}


async def test_run_async_takes_feeds_and_native_names_over_scrapy_names(
    site: TestSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "%(name)s.jsonl"
    result = await run_async(Titles, settings={
        "FEEDS": {str(out): {"format": "jsonlines", "overwrite": True}},
        "ROBOTSTXT_OBEY": False, "CLOSESPIDER_ITEMCOUNT": 1, "close_on.items": 2,
    }, spider_args={"start_urls": [f"{site.url}/page/{i}" for i in range(2)], "tag": "t"})
    # close_on.items (native, the highest layer) wins over CLOSESPIDER_ITEMCOUNT.
    assert result.reason == "close_on_items" and result.stats["items_scraped"] == 2
    assert sorted(i["title"] for i in lines(tmp_path / "titles.jsonl")) == ["Page 0", "Page 1"]


class Agent(Spider):
    name = "agent"
    seen: ClassVar[list[str]] = []

    def parse(self, response: Response) -> None:
        self.seen.append(response.json()["headers"]["user-agent"])


async def test_a_runner_joins_every_queued_crawl(
    site: TestSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CrawlerRunner({"ROBOTSTXT_OBEY": False, "USER_AGENT": "runner/1"})
    assert runner.settings.get("USER_AGENT") == "runner/1"
    for i in range(3):
        runner.crawl(Titles, start_urls=[f"{site.url}/page/{i}"])
    results = await runner.join()
    assert [r.reason for r in results] == ["finished"] * 3 and runner.results == results
    assert sorted(site.stats.hits[f"/page/{i}"] for i in range(3)) == [1, 1, 1]
    runner.crawl(Agent, start_urls=[f"{site.url}/echo"])
    await runner.join()
    assert Agent.seen == ["runner/1"]  # the runner's Scrapy settings reach the crawl
    assert await runner.join() == []  # nothing queued any more
    with pytest.raises(SpiderNotFound, match="'absent'"):
        runner.crawl("absent")
