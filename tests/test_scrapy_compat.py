"""Spiders, pipelines, middlewares, settings and commands written for Scrapy, run unchanged:
``import scrapy`` served by :mod:`crawler.scrapy`, against the bundled test site."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler import Item, Request, Response, Spider
from crawler.demosite import expected_quotes
from crawler.runner import run_spider
from crawler.settings import build_settings

from .conftest import crawl
from .servers import TestSite
from .test_cli import BIN, run


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


QUOTES_SPIDER = '''
    import scrapy
    from scrapy.http import FormRequest, HtmlResponse
    from scrapy.exceptions import DropItem, CloseSpider, IgnoreRequest, NotConfigured
    from scrapy.spiders import CrawlSpider, Rule
    from scrapy.linkextractors import LinkExtractor
    from scrapy.loader import ItemLoader
    from scrapy.selector import Selector
    from itemloaders.processors import TakeFirst


    class Quote(scrapy.Item):
        text = scrapy.Field()
        author = scrapy.Field()


    class QuotesSpider(scrapy.Spider):
        name = "quotes"
        custom_settings = {"DEPTH_LIMIT": 2, "CONCURRENT_REQUESTS": 4,
                           "TELNETCONSOLE_ENABLED": False}

        def start_requests(self):
            yield scrapy.Request(self.base + "/quotes/", self.parse)

        def parse(self, response):
            self.log(f"parsing {response.url}")
            assert isinstance(response, HtmlResponse)
            for quote in response.css("div.quote"):
                yield Quote(text=quote.css("span.text::text").get(),
                            author=quote.css("small.author::text").get())
            yield from response.follow_all(response.css("li.next a"), self.parse)
'''


async def test_runspider_a_scrapy_file(site: TestSite, tmp_path: Path) -> None:
    spider = tmp_path / "quotes.py"
    spider.write_text(textwrap.dedent(QUOTES_SPIDER))
    out = tmp_path / "out.jsonl"
    code, _, err = await run(str(BIN / "crawler"), "runspider", str(spider), "-O", str(out),
                             "-a", f"base={site.url}", "-s", "obey_robots=false",
                             "-s", "log_level=DEBUG", cwd=tmp_path)
    assert code == 0, err
    quotes = expected_quotes(30)  # DEPTH_LIMIT 2: pages 1 to 3
    assert lines(out) == [{"text": q["text"], "author": q["author"]} for q in quotes]
    assert "Scrapy settings in QuotesSpider.custom_settings translated: DEPTH_LIMIT -> " \
           "depth_limit, CONCURRENT_REQUESTS -> concurrency" in err
    assert err.count("ignored (no counterpart here): TELNETCONSOLE_ENABLED") == 1
    assert "parsing " in err  # Spider.log, at DEBUG
    code, _, err = await run(str(BIN / "crawler"), "runspider", str(tmp_path / "none.py"),
                             cwd=tmp_path)
    assert code == 2 and "no such file" in err


def test_import_hook_and_layout() -> None:
    """`import scrapy` loads this layer; Scrapy's module paths give the native classes."""
    import subprocess

    code = textwrap.dedent("""
        import sys
        import crawler.scrapy
        assert crawler.scrapy.install() is True
        import scrapy
        from scrapy.spiders import CrawlSpider, Rule, Spider, SitemapSpider
        from scrapy.linkextractors import LinkExtractor
        from scrapy.linkextractors.lxmlhtml import LxmlLinkExtractor
        from scrapy.loader import ItemLoader
        from scrapy.loader.processors import TakeFirst
        from scrapy.http import Request, FormRequest, JsonRequest, TextResponse, HtmlResponse
        from scrapy.item import Item, Field
        from scrapy.selector import Selector
        from scrapy.exceptions import DropItem, CloseSpider, IgnoreRequest, NotConfigured
        from scrapy.crawler import CrawlerProcess
        from scrapy.utils.response import open_in_browser
        from scrapy.spidermiddlewares.httperror import HttpError
        from scrapy import signals
        import crawler
        assert scrapy.Spider is crawler.Spider and Spider is crawler.Spider
        assert scrapy.Request is crawler.Request and CrawlSpider is crawler.CrawlSpider
        assert scrapy.Item is crawler.DictItem and LxmlLinkExtractor is crawler.LinkExtractor
        assert DropItem is crawler.DropItem and scrapy.FormRequest is crawler.FormRequest
        assert sys.modules["scrapy.http"] is sys.modules["crawler.scrapy.http"]
        r = HtmlResponse("http://e.com/", body="<p>é</p>", encoding="utf-8")
        assert isinstance(r, crawler.Response) and isinstance(r, TextResponse)
        assert Selector(r).css("p::text").get() == "é"
        assert Selector(text="<a>x</a>").css("a::text").get() == "x"
        print("ok", scrapy.__version__)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 2.")


def test_real_scrapy_is_left_alone(tmp_path: Path) -> None:
    import subprocess

    fake = tmp_path / "scrapy"
    fake.mkdir()
    (fake / "__init__.py").write_text("REAL = True\n")
    code = ("import logging, crawler.scrapy; logging.basicConfig();"
            "active = crawler.scrapy.install(); import scrapy;"
            "print(active, getattr(scrapy, 'REAL', False))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": f"{tmp_path}:{Path.cwd()}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
    assert "A real Scrapy is importable" in result.stderr
    assert "compatibility layer is off" in result.stderr


class Page(Item):
    url: str
    title: str


class DictStylePipeline:
    """A pipeline written for dicts, Scrapy-style, with from_crawler."""

    def __init__(self, suffix: str, stats: Any) -> None:
        self.suffix = suffix
        self.stats = stats
        self.opened = self.closed = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> DictStylePipeline:
        assert crawler.spider is None or crawler.spider.name
        return cls(crawler.settings.get("TITLE_SUFFIX"), crawler.stats)

    def open_spider(self, spider: Any) -> None:
        self.opened = True

    def close_spider(self, spider: Any) -> None:
        spider.closed_pipeline = True

    def process_item(self, item: Any, spider: Any) -> Any:
        item["title"] = item["title"] + self.suffix
        self.stats.inc_value("pipeline_seen")
        return item


class HeaderMiddleware:
    order: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_crawler(cls, crawler: Any) -> HeaderMiddleware:
        return cls(cls.__name__)

    def process_request(self, request: Request, spider: Any) -> None:
        HeaderMiddleware.order.append(self.name)
        request.meta.setdefault("seen_by", []).append(self.name)


class FirstMiddleware(HeaderMiddleware):
    pass


class SyncSpiderMiddleware:
    def process_spider_output(self, response: Response, result: Any, spider: Any) -> Any:
        for x in result:
            if isinstance(x, dict) or hasattr(x, "model_fields"):
                spider.crawler.stats.inc_value("sync_mw_items")
            yield x


class PagesSpider(Spider):
    name = "pages"
    base: str
    item_model = Page
    custom_settings = {
        "ITEM_PIPELINES": {f"{__name__}.DictStylePipeline": 300},
        "DOWNLOADER_MIDDLEWARES": {f"{__name__}.HeaderMiddleware": 700,
                                   f"{__name__}.FirstMiddleware": 100},
        "SPIDER_MIDDLEWARES": {f"{__name__}.SyncSpiderMiddleware": 50},
        "TITLE_SUFFIX": "!",
        "ROBOTSTXT_OBEY": False,
    }

    async def start(self) -> Any:
        for i in range(3):
            yield Request(f"{self.base}/page/{i}")

    def parse(self, response: Response) -> Any:
        assert self.settings.get("TITLE_SUFFIX") == "!"
        assert self.settings.getint("DEPTH_LIMIT") == 0
        assert self.crawler.stats.get_value("pipeline_seen", 0) >= 0
        yield {"url": response.url, "title": ",".join(response.meta["seen_by"])}


async def test_scrapy_pipelines_and_middlewares(site: TestSite, tmp_path: Path) -> None:
    settings = build_settings(project_dir=None, custom_settings=PagesSpider.spider_settings(),
                              cli={"log_interval": 3600}, environ={})
    out = tmp_path / "items.jsonl"
    result = await run_spider(PagesSpider, settings, spider_args={"base": site.url},
                              output=str(out), overwrite=True)
    items = lines(out)
    # Lower order numbers run process_request first; the pipeline got a pydantic item and
    # used it like a dict.
    assert sorted(i["title"] for i in items) == ["FirstMiddleware,HeaderMiddleware!"] * 3
    assert result.stats["pipeline_seen"] == 3
    assert result.stats["sync_mw_items"] == 3


async def test_project_folder_runs_with_crawl(site: TestSite, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    pkg = project / "proj"
    (pkg / "spiders").mkdir(parents=True)
    (project / "scrapy.cfg").write_text("[settings]\ndefault = proj.settings\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "spiders" / "__init__.py").write_text("")
    (pkg / "settings.py").write_text(textwrap.dedent("""
        BOT_NAME = "proj"
        SPIDER_MODULES = ["proj.spiders"]
        ROBOTSTXT_OBEY = False
        CLOSESPIDER_ITEMCOUNT = 15
        ITEM_PIPELINES = {"proj.pipelines.UpperPipeline": 300}
        AUTHOR_CASE = "upper"
    """))
    (pkg / "pipelines.py").write_text(textwrap.dedent("""
        from itemadapter import ItemAdapter

        class UpperPipeline:
            @classmethod
            def from_crawler(cls, crawler):
                pipeline = cls()
                pipeline.case = crawler.settings.get("AUTHOR_CASE")
                return pipeline

            def process_item(self, item, spider):
                adapter = ItemAdapter(item)
                if self.case == "upper":
                    adapter["author"] = adapter["author"].upper()
                return item
    """))
    (pkg / "spiders" / "quotes.py").write_text(textwrap.dedent(f"""
        import scrapy

        class QuotesSpider(scrapy.Spider):
            name = "quotes"
            start_urls = ["{site.url}/quotes/"]

            def parse(self, response):
                for quote in response.css("div.quote"):
                    yield {{"author": quote.css("small.author::text").get()}}
                next_page = response.css("li.next a::attr(href)").get()
                if next_page is not None:
                    yield response.follow(next_page, callback=self.parse)
    """))
    out = tmp_path / "q.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "quotes", "-O", str(out), cwd=project)
    assert code == 0, err
    items = lines(out)
    # CLOSESPIDER_ITEMCOUNT stops after the page that reached 15 items.
    assert 15 <= len(items) <= 20
    assert [i["author"] for i in items[:10]] == [q["author"].upper() for q in expected_quotes(10)]
    assert "Scrapy settings in proj.settings translated" in err
    code, listing, err = await run(str(BIN / "crawler"), "list", cwd=project)
    assert code == 0, err
    assert listing.split() == ["quotes", "proj.spiders.quotes"]


async def test_fetch_command(site: TestSite) -> None:
    code, out, err = await run(str(BIN / "crawler"), "fetch", f"{site.url}/page/3",
                               "-s", "obey_robots=false")
    assert code == 0, err
    assert "Page 3" in out
    code, out, err = await run(str(BIN / "crawler"), "fetch", "--headers", f"{site.url}/page/3")
    assert code == 0, err
    assert out.startswith(f"200 {site.url}/page/3") and "Content-Type: text/html" in out
    code, _, err = await run(str(BIN / "crawler"), "fetch", "not a url")
    assert code == 2 and "error" in err


def test_dict_pipeline_on_pydantic_items_via_itemadapter() -> None:
    from itemadapter import ItemAdapter

    page = Page(url="http://e.com/", title="t")
    adapter = ItemAdapter(page)
    adapter["title"] = "u"
    assert page.title == "u" and page["title"] == "u"


async def test_readme_scrapy_example_runs(site: TestSite, tmp_path: Path) -> None:
    from .test_readme import readme_block

    (tmp_path / "quotes.py").write_text(readme_block("# quotes.py"))
    command = readme_block("crawler runspider quotes.py").split()
    assert command[:4] == ["crawler", "runspider", "quotes.py", "-O"]
    out = tmp_path / "quotes.jsonl"
    code, _, err = await run(str(BIN / "crawler"), "runspider", "quotes.py", "-O", str(out),
                             "-a", f"start_urls={site.url}/quotes/", cwd=tmp_path)
    assert code == 0, err
    quotes = expected_quotes(20)  # DEPTH_LIMIT 1: two pages
    assert lines(out) == [{"text": q["text"], "author": q["author"]} for q in quotes]


async def test_request_cookies_are_sent(site: TestSite, tmp_path: Path) -> None:
    class Cookies(Spider):
        name = "cookies"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/echo", cookies={"consent": "yes"})
            yield Request(f"{self.base}/echo?2", cookies=[{"name": "a", "value": "1"}])

        def parse(self, response: Response) -> Any:
            yield {"cookies": response.json()["cookies"]}

    _, items = await crawl(Cookies, tmp_path, spider_args={"base": site.url})
    assert sorted(items, key=str) == sorted([{"cookies": {"consent": "yes"}},
                                             {"cookies": {"a": "1"}}], key=str)


def test_compat_layer_loads_nothing_heavy() -> None:
    """`crawl` installs the hook; a native crawl loads none of the Scrapy-side libraries."""
    import subprocess

    code = ("import sys, crawler.scrapy; crawler.scrapy.install(); import crawler.runner;"
            "import scrapy;"
            "print(*[m for m in ('itemadapter', 'itemloaders', 'parsel', 'lxml', 'cssselect')"
            " if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


async def test_bench_sites_through_the_proxy(tmp_path: Path) -> None:
    """What bench/scrapy_compat relies on: a corpus spider (unchanged) reaches the local
    quotes.toscrape.com and books.toscrape.com over http and https through the proxy, and
    the comparison counts items as a multiset."""
    import shutil

    from bench.scrapy_compat import run as compat
    from bench.scrapy_compat.site import serving

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    collected = tmp_path / "c.jsonl"
    collected.write_text('{"b": 1, "a": 2}\n{"a": 2, "b": 1}\n')
    assert compat.items_of(collected) == {'{"a": 2, "b": 1}': 2}
    assert compat.spider_args(compat.SPIDERS / "quotes_tag_arg.py") == ["-a", "tag=humor"]
    with serving() as port:
        out = tmp_path / "books.jsonl"
        code, _, err = await run(
            str(BIN / "crawler"), "runspider", str(compat.SPIDERS / "books_tutorial.py"),
            "-O", str(out), "-s", f"proxy=http://127.0.0.1:{port}", "-s", "verify_tls=false",
            "-s", "close_on.items=5", cwd=tmp_path)
        assert code == 0, err
        items = lines(out)
        assert len(items) >= 5 and all(i["url"].startswith("https://books.toscrape.com/")
                                       for i in items)
        out = tmp_path / "quotes.jsonl"
        code, _, err = await run(
            str(BIN / "crawler"), "runspider", str(compat.SPIDERS / "quotes_item.py"),
            "-O", str(out), "-s", f"proxy=http://127.0.0.1:{port}", cwd=tmp_path)
        assert code == 0, err
        assert len(lines(out)) == 100


