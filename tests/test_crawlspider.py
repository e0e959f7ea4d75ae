"""CrawlSpider and Rule on the bundled bookstore and quotes site, with Scrapy's semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawler import CrawlSpider, LinkExtractor, Request, Response, Rule
from crawler.demosite import expected_books, expected_quotes
from crawler.runner import run_spider

from .conftest import crawl, make_settings
from .servers import TestSite


class Books(CrawlSpider):
    name = "books_crawl"
    base: str
    rules = (
        Rule(LinkExtractor(restrict_css="article.product_pod h3"), callback="parse_book"),
        Rule(LinkExtractor(restrict_css="li.next")),  # no callback: follow defaults to True
    )

    async def start(self) -> Any:
        yield Request(f"{self.base}/catalogue/page-1.html")

    def parse_book(self, response: Response) -> Any:
        yield {"title": response.css("h1::text").get(), "link_text": response.meta["link_text"],
               "depth": response.request.depth}


async def test_rules_follow_pagination_and_call_back_on_books(
        site: TestSite, tmp_path: Path) -> None:
    result, items = await crawl(Books, tmp_path, spider_args={"base": site.url})
    titles = sorted(b["title"] for b in expected_books(100))
    assert sorted(i["title"] for i in items) == titles
    # A rule with a callback does not follow by default: no link of a book page was taken.
    assert result.stats["responses"] == 5 + 100
    assert all(i["link_text"] for i in items)


async def test_first_rule_takes_a_link_and_process_hooks(site: TestSite, tmp_path: Path) -> None:
    seen: list[str] = []

    class Quotes(CrawlSpider):
        name = "quotes_crawl"
        start_urls: list[str] = []
        rules = (
            Rule(LinkExtractor(allow=r"/quotes/page/\d+/"), callback="parse_page", follow=True,
                 cb_kwargs={"kind": "page"}, process_links="keep_links"),
            # Would also extract the pager links: the first rule already took them.
            Rule(LinkExtractor(allow=r"/quotes/"), callback="parse_other",
                 process_request="drop_authors"),
        )

        def keep_links(self, links: list[Any]) -> list[Any]:
            return [link for link in links if not link.url.endswith("/page/1/")]

        def drop_authors(self, request: Request, response: Response) -> Request | None:
            return None if "/author/" in request.url else request

        def parse_start_url(self, response: Response, **kwargs: Any) -> Any:
            return [{"start": response.url}]

        def parse_page(self, response: Response, kind: str) -> Any:
            seen.append(response.url)
            yield {"kind": kind, "quotes": len(response.css("div.quote"))}

        def parse_other(self, response: Response) -> Any:
            yield {"kind": "other", "url": response.url}

    Quotes.start_urls = [f"{site.url}/quotes/"]
    _, items = await crawl(Quotes, tmp_path)
    pages = len(expected_quotes(100)) // 10
    assert [i for i in items if "start" in i] == [{"start": f"{site.url}/quotes/"}]
    assert sorted(seen) == sorted(f"{site.url}/quotes/page/{n}/" for n in range(2, pages + 1))
    assert all(i["quotes"] == 10 for i in items if i.get("kind") == "page")
    assert not any("/author/" in path for path in site.stats.hits)
    others = {i["url"] for i in items if i.get("kind") == "other"}
    # Pager links went to the first rule; what its process_links dropped (page 1) was still
    # free for the second rule, as in Scrapy (a link is taken once the first rule keeps it).
    assert not others & set(seen)
    assert f"{site.url}/quotes/page/1/" in others
    assert f"{site.url}/quotes/login" in others
    assert not any("/author/" in url for url in others)


async def test_rule_requests_are_stored_by_name(site: TestSite, tmp_path: Path) -> None:
    """A durable job (SQLite frontier) stores rule requests: callbacks go by name."""
    settings = make_settings(jobdir=str(tmp_path / "job"))
    out = tmp_path / "books.jsonl"
    result = await run_spider(Books, settings, spider_args={"base": site.url}, output=str(out),
                              overwrite=True)
    assert result.reason == "finished"
    assert result.stats["items_scraped"] == 100
    assert not any(k.startswith("errors/") for k in result.stats)


def test_rule_defaults() -> None:
    assert Rule().follow is True
    assert Rule(callback="x").follow is False
    assert Rule(callback="x", follow=True).follow is True
    assert isinstance(Rule().link_extractor, LinkExtractor)


async def test_a_parse_method_is_only_a_rule_callback(site: TestSite, tmp_path: Path) -> None:
    """Public CrawlSpiders often name their callback ``parse``: as in Scrapy, the start
    pages still go to the rules, and parse() gets the pages a rule sends it."""

    class Books(CrawlSpider):
        name = "books_parse"
        rules = (Rule(LinkExtractor(restrict_css="article.product_pod h3"), callback="parse"),)

        def parse(self, response: Response) -> Any:
            yield {"title": response.css("h1::text").get()}

    Books.start_urls = [f"{site.url}/catalogue/page-1.html"]
    _, items = await crawl(Books, tmp_path)
    assert len(items) == 20 and all(i["title"] for i in items)
