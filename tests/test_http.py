"""Request and Response: follow_all (links read from the elements, known links skipped before a
Request, built lazily), replace, the trusted constructor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.fingerprint import request_fingerprint

from .conftest import crawl
from .servers import TestSite

PAGE = b"""<html><body>
<a class="x" href="/a">1</a><a class="x">no href</a><img class="x" src="/i.png">
<a class="x" href="b.html">2</a><link class="x" href="/c"><p class="x">text</p>
<a class="x" href="/a#top">again</a><a class="x" href="mailto:x@y">mail</a>
<a class="x" href="http://other.example/d?b=2&amp;a=1">abs</a>
</body></html>"""


def page(url: str = "http://h.example/dir/page.html", body: bytes = PAGE) -> Response:
    return Response(url, 200, {"Content-Type": "text/html"}, body, Request(url))


def test_css_reads_the_same_links_as_the_selectors() -> None:
    r = page()
    for query in (".x", "a.x", ".x::attr(href)", "a::text", "p", "*", "img"):
        via_selectors = [r.follow(s) for s in r.selector.css(query)]
        assert [q.url for q in r.follow_all(css=query)] == [q.url for q in via_selectors if q]


def test_the_selector_is_the_tree_parsel_builds_from_the_text() -> None:
    """The response parses with a parser it reuses; the tree is parsel's own, page after
    page, for HTML and XML, odd documents included."""
    from parsel import Selector

    docs = [b"", b"   ", b"<!-- only a comment -->", b"<p>a\x00b</p>", b"  <p>x</p>  ",
            b"<a href='/x'>1</a><a href=y>2", b"\xef\xbb\xbf<p>bom</p>", b"plain text",
            "<p>caf\u00e9 \u00e0 la carte".encode(), b"<?xml version='1.0'?><r><a>1</a></r>",
            b"<r xmlns='http://n.example/'><a>1</a></r>", b"<p>&amp;&nbsp;&lt;</p>"]
    kept = []
    for ctype in ("text/html; charset=utf-8", "application/xml"):
        for body in docs:
            r = Response("http://h.example/p", 200, {"Content-Type": ctype}, body)
            expected = Selector(text=r.text, type=r.selector.type, base_url=r.url)
            assert r.selector.type == ("xml" if "xml" in ctype else "html")
            assert r.selector.get() == expected.get()
            assert r.xpath("//text()").getall() == expected.xpath("//text()").getall()
            assert r.selector.root.base == expected.root.base
            kept.append((r, expected.get()))
    # Every tree is still whole after the parser went on to other pages.
    assert all(r.selector.get() == text for r, text in kept)


def test_selector_results_read_as_parsel_reads_them() -> None:
    """Strings (text, attributes) come back as they are, without parsel's detour through an
    exception; elements, numbers and booleans as parsel serialises them."""
    from parsel import Selector

    body = b"<h1 class=t>Title</h1><a href='/x'>x</a><p>1</p><p>2</p>"
    r = Response("http://h.example/p", 200, {"Content-Type": "text/html"}, body)
    expected = Selector(text=body.decode(), type="html")
    for query in ("h1.t::text", "a::attr(href)", "p", "p::text", "nothing::text"):
        assert r.css(query).get() == expected.css(query).get()
        assert r.css(query).getall() == expected.css(query).getall()
        assert r.css(query).extract() == expected.css(query).extract()
    for query in ("count(//p)", "1=1", "1=2", "string(//h1)", "//p/text()"):
        assert r.xpath(query).getall() == expected.xpath(query).getall()
    assert r.css("h1.t::text").get() == "Title" and r.css("h1.t::text")[0].get() == "Title"
    assert repr(r.css("p")[0]) == repr(expected.css("p")[0])
    assert isinstance(r.selector, Selector)
    # Nested queries, on elements and on text results, as parsel answers them.
    assert [p.css("::text").get() for p in r.css("p")] == ["1", "2"]
    assert r.css("p::text")[0].css("::text").getall() == expected.css("p::text")[0].css(
        "::text").getall()
    assert [x.xpath(".").get() for x in r.css("a")] == [x.xpath(".").get()
                                                        for x in expected.css("a")]
    for bad in ("a[", "p:nth-child(x)"):  # invalid CSS fails as it does with parsel
        with pytest.raises(Exception) as ours:
            r.css(bad)
        with pytest.raises(Exception) as theirs:
            expected.css(bad)
        assert type(ours.value) is type(theirs.value)


def test_selector_css_in_xml_with_registered_namespaces() -> None:
    body = b"<r xmlns:x='http://x.example/'><x:a>1</x:a><a>2</a></r>"
    r = Response("http://h.example/p", 200, {"Content-Type": "application/xml"}, body)
    assert r.css("a::text").getall() == ["2"]
    r.selector.register_namespace("x", "http://x.example/")
    assert r.css("x|a::text").getall() == ["1"]
    assert r.selector.xpath("//x:a/text()").getall() == ["1"]


def test_known_links_get_no_request_and_count_as_duplicates() -> None:
    from crawler.stats import Stats

    def fp(url: str) -> bytes:
        return Request(url).fingerprint

    known = {fp("http://h.example/a"), fp("http://other.example/d?a=1&b=2")}
    for _ in range(2):  # the second time the fingerprints come from the memo of link texts
        r = page()
        r.stats = Stats()
        r.known = known.__contains__
        urls = [q.url for q in r.follow_all(css=".x")]
        assert urls == ["http://h.example/i.png", "http://h.example/dir/b.html",
                        "http://h.example/c"]
        # /a and /a#top are one known request; the reordered query is the same request too.
        assert r.stats.get("duplicates_filtered") == 3
        assert r.stats.get("links_skipped") == 3  # no href, <p>, mailto:


def test_known_links_remember_the_frontiers_yes_and_only_that() -> None:
    """With known_links (the engine's), a link the frontier said it has is skipped on later
    pages without asking again; a link only repeated on its page, or not known yet, is asked
    about again."""
    asked: list[bytes] = []
    known: set[bytes] = set()

    def check(fp: bytes) -> bool:
        asked.append(fp)
        return fp in known

    links: set[str] = set()
    body = b'<a href="/x">1</a><a href="/x">2</a><a href="/y">3</a>'
    for _ in range(2):
        r = page(body=body)
        r.known, r.known_links = check, links
        assert [q.url for q in r.follow_all(css="a")] == ["http://h.example/x",
                                                          "http://h.example/y"]
    assert links == set()  # never a yes: nothing remembered
    known.add(Request("http://h.example/x").fingerprint)
    for n in range(2):
        asked.clear()
        r = page(body=body)
        r.known, r.known_links = check, links
        assert [q.url for q in r.follow_all(css="a")] == ["http://h.example/y"]
        # /y is asked about each time; /x only until the frontier said yes once.
        assert asked == ([Request("http://h.example/x").fingerprint] if n == 0 else []) + [
            Request("http://h.example/y").fingerprint]
    assert links == {"http://h.example/x"}


def test_repeats_within_one_page_are_dropped_too() -> None:
    r = page(body=b'<a href="/x">1</a><a href="/x">2</a><a href="/x#f">3</a><a href="/y">4</a>')
    r.known = set().__contains__
    assert [q.url for q in r.follow_all(css="a")] == ["http://h.example/x", "http://h.example/y"]
    r.known = None  # no frontier check: every link becomes a request, as before
    assert len(list(r.follow_all(css="a"))) == 4


def test_no_skipping_for_requests_with_another_fingerprint() -> None:
    r = page(body=b'<a href="/x">1</a>')
    r.known = {Request("http://h.example/x").fingerprint}.__contains__
    assert list(r.follow_all(css="a")) == []
    assert len(list(r.follow_all(css="a", dont_filter=True))) == 1
    posted = r.follow_all(css="a", method="POST", body=b"q")
    assert [q.fingerprint for q in posted] == [
        request_fingerprint("POST", "http://h.example/x", b"q")]


def test_base_href_changes_the_key(tmp_path: Path) -> None:
    body = b'<head><base href="http://cdn.example/s/"></head><a href="/x">1</a><a href="y">2</a>'
    r = page(body=body)
    r.known = {Request("http://h.example/x").fingerprint}.__contains__
    assert [q.url for q in r.follow_all(css="a")] == ["http://cdn.example/x",
                                                      "http://cdn.example/s/y"]


class ShopSpider(Spider):
    name = "shop"

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.base + "/shop/")

    def parse(self, response: Response) -> Iterator[Any]:
        yield from response.follow_all(css="a.listing", callback=self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Any]:
        yield from response.follow_all(css="a.product", callback=self.parse_product)
        yield from response.follow_all(css="nav.pager a", callback=self.parse_listing)

    def parse_product(self, response: Response) -> Iterator[Any]:
        yield {"url": response.url}
        yield from response.follow_all(css="a.related", callback=self.parse_product)
        yield from response.follow_all(css="a.listing", callback=self.parse_listing)


async def test_a_crawl_fetches_every_page_once_and_counts_every_repeat(
    site: TestSite, tmp_path: Path
) -> None:
    """The engine hands the memory frontier's check to responses: same pages, same items, and
    duplicates_filtered still counts every repeated link (skipped early or at the frontier)."""
    result, items = await crawl(ShopSpider, tmp_path, spider_args={"base": site.url})
    assert len(items) == len({i["url"] for i in items}) == 400
    pages = 1 + 20 + 400
    assert result.stats["status/200"] == pages
    assert sum(n for p, n in site.stats.hits.items() if p.startswith("/shop")) == pages
    # Every link followed, minus the first sighting of each page (the start URL is not a
    # link): the index's 20 listings, 20 x 20 products, 19 x 2 pager links, and on each of
    # the 400 products 5 related products and its listing.
    links = 20 + 400 + 38 + 400 * 6
    assert result.stats["duplicates_filtered"] == links - (pages - 1)


def test_links_that_depend_on_the_page_are_not_shared_between_pages() -> None:
    """"http:///x" has no host: it resolves against the page; so does "p.html"."""
    body = b'<a href="http:///x">1</a><a href="p.html">2</a>'
    first = page("http://one.example/a/", body)
    first.known = set().__contains__
    assert [q.url for q in first.follow_all(css="a")] == ["http://one.example/x",
                                                          "http://one.example/a/p.html"]
    other = page("http://two.example/b/", body)
    other.known = {q.fingerprint for q in first.follow_all(css="a")}.__contains__
    assert [q.url for q in other.follow_all(css="a")] == ["http://two.example/x",
                                                          "http://two.example/b/p.html"]


def test_follow_all_is_lazy_and_builds_each_request_when_taken() -> None:
    taken = 0

    def hrefs() -> Iterator[str]:
        nonlocal taken
        for i in range(1000):
            taken += 1
            yield f"/p/{i}"

    r = page(body=b"")
    r.known = set().__contains__
    requests = r.follow_all(hrefs())
    assert taken == 0  # nothing read yet
    first = next(iter(requests))
    assert first.url == "http://h.example/p/0" and taken == 1
    assert len(list(requests)) == 999 and taken == 1000


def test_replace_of_depth_and_priority_keeps_the_rest_and_copies_meta() -> None:
    original = Request("http://h.example/a?b=1", "parse", meta={"k": [1]}, cb_kwargs={"x": 1},
                       headers={"X-A": "1"})
    copy = original.replace(depth=3, priority=-2)
    assert (copy.depth, copy.priority, original.depth, original.priority) == (3, -2, 0, 0)
    assert copy.fingerprint == original.fingerprint and copy.url == original.url
    assert copy.headers["X-A"] == "1" and copy.callback == "parse"
    assert copy.meta == {"k": [1]} and copy.meta is not original.meta
    assert copy.cb_kwargs == {"x": 1} and copy.cb_kwargs is not original.cb_kwargs
    with pytest.raises(AttributeError):
        copy.depth = 4


def test_a_simple_request_is_rebuilt_whole_from_its_trusted_parts() -> None:
    simple = Request("http://h.example/a", "parse", depth=2, priority=5, dont_filter=True)
    assert simple.simple and not simple.has_meta
    rebuilt = Request.from_trusted(simple.url, "parse", depth=2, priority=5, dont_filter=True)
    assert rebuilt.simple
    assert [getattr(rebuilt, f) for f in ("url", "method", "callback", "depth", "priority",
                                          "dont_filter", "body")] == \
        [getattr(simple, f) for f in ("url", "method", "callback", "depth", "priority",
                                      "dont_filter", "body")]
    assert rebuilt.fingerprint == simple.fingerprint and rebuilt.yurl == simple.yurl
    assert not Request("http://h.example/a", meta={"m": 1}).simple
    assert not Request("http://h.example/a", method="POST").simple
    flagged = Request("http://h.example/a")
    assert not flagged.has_meta and flagged._meta is None  # asking creates nothing
    flagged.meta["x"] = 1  # meta stays the one mutable part
    assert flagged.has_meta and not flagged.simple
