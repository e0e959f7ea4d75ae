"""LinkExtractor against the bundled bookstore and small pages, with Scrapy's documented
behaviour as the expected result."""

from __future__ import annotations

import re

import pytest

from crawler import Link, LinkExtractor, Request, Response
from crawler.shell import fetch_one

from .conftest import make_settings
from .servers import TestSite


def page(body: str, url: str = "http://example.com/dir/page.html") -> Response:
    return Response(url, 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode())


async def test_restrict_css_on_the_bookstore(site: TestSite) -> None:
    response = await fetch_one(make_settings(), Request(f"{site.url}/"))
    links = LinkExtractor(restrict_css="article.product_pod h3").extract_links(response)
    assert len(links) == 20
    assert all(link.url.startswith(f"{site.url}/catalogue/") for link in links)
    assert all(link.url.endswith("/index.html") for link in links)
    assert len({link.url for link in links}) == 20
    # The same links as the page's own hrefs, joined with the page URL, in document order.
    hrefs = response.css("article.product_pod h3 a::attr(href)").getall()
    assert [link.url for link in links] == [response.urljoin(h) for h in hrefs]
    # Link text is the element's whole text content.
    titles = response.css("article.product_pod h3 a::text").getall()
    assert [link.text for link in links] == titles


async def test_allow_and_deny_on_the_bookstore(site: TestSite) -> None:
    response = await fetch_one(make_settings(), Request(f"{site.url}/"))
    categories = LinkExtractor(allow=r"/category/books/").extract_links(response)
    assert len(categories) == 50  # the sidebar's 50 categories
    books = LinkExtractor(allow=r"catalogue/", deny=(r"/category/", r"page-\d+")).extract_links(
        response)
    assert len(books) == 20
    assert LinkExtractor(allow=r"page-2\.html").extract_links(response)[0].url == (
        f"{site.url}/catalogue/page-2.html")


def test_defaults_tags_attrs_extensions_and_unique() -> None:
    response = page("""<html><body>
        <a href="a.html">A</a> <a href="a.html">A again</a>
        <area href="/map.html">
        <a href="doc.pdf">pdf</a> <a href="pic.JPG">img</a> <a href="x.tar.gz">t</a>
        <img src="logo.png"> <link href="/style.html">
        <a href="mailto:a@b.c">mail</a> <a href="javascript:void(0)">js</a>
        <a href=" spaced.html ">s</a>
    </body></html>""")
    urls = [link.url for link in LinkExtractor().extract_links(response)]
    assert urls == [
        "http://example.com/dir/a.html",
        "http://example.com/map.html",
        "http://example.com/dir/spaced.html",
    ]
    every = [link.url for link in LinkExtractor(unique=False).extract_links(response)]
    assert every.count("http://example.com/dir/a.html") == 2
    with_docs = LinkExtractor(deny_extensions=[]).extract_links(response)
    assert "http://example.com/dir/doc.pdf" in [link.url for link in with_docs]
    images = LinkExtractor(tags="img", attrs="src", deny_extensions=()).extract_links(response)
    assert [link.url for link in images] == ["http://example.com/dir/logo.png"]
    star = LinkExtractor(tags="*", attrs="*", deny_extensions=()).extract_links(response)
    assert "http://example.com/style.html" in [link.url for link in star]


def test_domains_nofollow_canonicalize_and_restrict_xpaths() -> None:
    response = page("""<html><body>
        <div id="nav"><a href="http://sub.example.com/x?b=2&a=1">sub</a></div>
        <a href="http://other.org/y" rel="nofollow noopener">other</a>
        <a href="http://notexample.com/z">lookalike</a>
    </body></html>""")
    own = LinkExtractor(allow_domains="example.com").extract_links(response)
    assert [link.url for link in own] == ["http://sub.example.com/x?b=2&a=1"]
    others = LinkExtractor(deny_domains=["example.com"]).extract_links(response)
    assert [link.url for link in others] == ["http://other.org/y", "http://notexample.com/z"]
    assert others[0].nofollow and not others[1].nofollow
    canonical = LinkExtractor(canonicalize=True, restrict_xpaths='//div[@id="nav"]')
    assert [link.url for link in canonical.extract_links(response)] == [
        "http://sub.example.com/x?a=1&b=2"]
    text = LinkExtractor(restrict_text="look").extract_links(response)
    assert [link.text for link in text] == ["lookalike"]


def test_process_value_as_in_scrapys_docs() -> None:
    def process_value(value: str) -> str | None:
        m = re.search(r"javascript:goToPage\('(.*?)'", value)
        return m.group(1) if m else None

    response = page("""<a href="javascript:goToPage('../other/page.html'); return false">L</a>
                       <a href="plain.html">plain</a>""")
    links = LinkExtractor(process_value=process_value).extract_links(response)
    assert [link.url for link in links] == ["http://example.com/other/page.html"]


def test_base_href_is_honoured() -> None:
    response = page('<html><head><base href="http://cdn.example.com/root/"></head>'
                    '<body><a href="x.html">x</a></body></html>')
    assert LinkExtractor().extract_links(response)[0].url == "http://cdn.example.com/root/x.html"


def test_link_equality_and_follow() -> None:
    a, b = Link("http://e.com/", "t"), Link("http://e.com/", "t")
    assert a == b and hash(a) == hash(b) and a != Link("http://e.com/", "other")
    response = page('<a href="next.html">n</a>')
    link = LinkExtractor().extract_links(response)[0]
    request = response.follow(link, "parse_next")
    assert request is not None
    assert request.url == "http://example.com/dir/next.html"
    assert request.callback == "parse_next"
    with pytest.raises(TypeError):
        Link(b"http://e.com/")  # type: ignore[arg-type]


def test_matches() -> None:
    extractor = LinkExtractor(allow=r"/books/", deny=r"/books/old", allow_domains="e.com")
    assert extractor.matches("http://e.com/books/new")
    assert not extractor.matches("http://e.com/books/old/1")
    assert not extractor.matches("http://x.com/books/new")
