"""crawler.scripting: CrawlerProcess for Scrapy scripts and the native run()."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from crawler import Response, Spider
from crawler.testsite import TestSite, expected_quotes

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

