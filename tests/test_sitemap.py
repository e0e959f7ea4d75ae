"""SitemapSpider against a real local site: robots.txt → index → sitemaps (plain and .gz) →
pages, rules, follow patterns, alternates; parse_sitemap on hostile XML."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from crawler import Response, SitemapSpider
from crawler import sitemap as sitemap_module
from crawler.sitemap import parse_sitemap

from .conftest import crawl
from .servers import Canned, TestSite

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
XHTML = 'xmlns:xhtml="http://www.w3.org/1999/xhtml"'


def urlset(*locs: str, alternates: dict[str, str] | None = None) -> str:
    rows: list[str] = []
    for loc in locs:
        alt = (alternates or {}).get(loc)
        link = f'<xhtml:link rel="alternate" hreflang="fr" href="{alt}"/>' if alt else ""
        rows.append(f"<url><loc>{loc}</loc><lastmod>2026-01-0{len(rows) % 9 + 1}</lastmod>"
                    f"{link}</url>")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS} {XHTML}>{"".join(rows)}</urlset>'


def index(*locs: str) -> str:
    rows = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{rows}</sitemapindex>'


XML = {"Content-Type": "application/xml"}


def test_parse_sitemap_kinds_fields_and_junk() -> None:
    kind, entries = parse_sitemap(urlset("http://a.example/1", "http://a.example/2",
                                         alternates={"http://a.example/1": "http://a.example/fr/1"})
                                  .encode()) or ("", [])
    assert kind == "urlset"
    assert [e.loc for e in entries] == ["http://a.example/1", "http://a.example/2"]
    assert entries[0].fields == {"lastmod": "2026-01-01"}
    assert entries[0].alternates == ["http://a.example/fr/1"]
    parsed = parse_sitemap(index("http://a.example/s1.xml").encode())
    assert parsed is not None and parsed[0] == "sitemapindex"
    assert [e.loc for e in parsed[1]] == ["http://a.example/s1.xml"]
    # Not sitemaps: HTML, JSON, nothing, binary.
    for body in (b"<html><body>hi</body></html>", b'{"a": 1}', b"", b"\x00\xff" * 50):
        assert parse_sitemap(body) is None
    # Malformed but recoverable: the good entries are kept.
    broken = f"<urlset {NS}><url><loc>http://a.example/ok</loc></url><url><loc>http://a.exa"
    recovered = parse_sitemap(broken.encode())
    assert recovered is not None and [e.loc for e in recovered[1]][:1] == ["http://a.example/ok"]


def test_parse_sitemap_resolves_no_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file://{secret}">]>'
           f"<urlset {NS}><url><loc>http://a.example/&e;</loc></url></urlset>")
    parsed = parse_sitemap(xxe.encode())
    assert parsed is None or all("TOP-SECRET" not in e.loc for e in parsed[1])
    laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
              + f"]><urlset {NS}><url><loc>http://a.example/&i;</loc></url></urlset>")
    parsed = parse_sitemap(laughs.encode())  # returns at once, with nothing expanded
    assert parsed is None or all(len(e.loc) < 1000 for e in parsed[1])


class Shop(SitemapSpider):
    name = "sitemap_shop"
    sitemap_rules = [("/page/p", "parse_product"), ("/page/", "parse")]
    sitemap_follow = ["/sitemap-"]

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "kind": "page"}

    def parse_product(self, response: Response) -> Any:
        yield {"url": response.url, "kind": "product"}


async def test_robots_index_gzip_rules_and_follow(site: TestSite, tmp_path: Path) -> None:
    u = site.url
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nAllow: /\n"
                                             "Sitemap: /sitemap_index.xml\n")
    site.canned["/sitemap_index.xml"] = Canned(200, index(
        f"{u}/sitemap-a.xml", f"{u}/sitemap-b.xml.gz", f"{u}/skipped.xml"), XML)
    site.canned["/sitemap-a.xml"] = Canned(200, urlset(
        f"{u}/page/p1", f"{u}/page/about", "javascript:/page/x", f"{u}/other/x"), XML)
    site.canned["/sitemap-b.xml.gz"] = Canned(
        200, gzip.compress(urlset(f"{u}/page/p2", f"{u}/page/p1").encode()),
        {"Content-Type": "application/x-gzip"})

    class FromRobots(Shop):
        sitemap_urls = [f"{u}/robots.txt"]

        def parse_product(self, response: Response) -> Any:
            yield {"url": response.url, "kind": "product"}

        # A function of the class body, as Scrapy allows: called as the spider's method.
        sitemap_rules = [("/page/p", parse_product), ("/page/", "parse")]

    result, items = await crawl(FromRobots, tmp_path)
    assert sorted((i["kind"], i["url"].removeprefix(u)) for i in items) == [
        ("page", "/page/about"), ("product", "/page/p1"), ("product", "/page/p2")]
    assert site.stats.hits["/skipped.xml"] == 0  # not matched by sitemap_follow
    assert site.stats.hits["/other/x"] == 0  # no rule matches it
    assert site.stats.hits["/page/p1"] == 1  # listed twice, fetched once
    assert result.stats["links_skipped"] == 1  # the javascript: <loc>


async def test_alternates_filter_and_refusals(
    site: TestSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    u = site.url
    site.canned["/sm.xml"] = Canned(200, urlset(
        f"{u}/page/p1", f"{u}/page/old", alternates={f"{u}/page/p1": f"{u}/page/p1-fr"}), XML)
    site.canned["/not-a-sitemap"] = Canned(200, "<html><body>hello</body></html>",
                                           {"Content-Type": "text/html"})
    site.canned["/bomb.xml.gz"] = Canned(200, gzip.compress(b"\0" * 3_000_000),
                                         {"Content-Type": "application/gzip"})
    monkeypatch.setattr(sitemap_module, "SITEMAP_MAX_SIZE", 1_000_000)

    class Alternates(Shop):
        sitemap_urls = [f"{u}/sm.xml", f"{u}/not-a-sitemap", f"{u}/bomb.xml.gz", "ftp://x/s.xml"]
        sitemap_alternate_links = True

        def sitemap_filter(self, entries: Any) -> Any:
            return [e for e in entries if not e.loc.endswith("/old")]

    result, items = await crawl(Alternates, tmp_path)
    assert sorted(i["url"].removeprefix(u) for i in items) == ["/page/p1", "/page/p1-fr"]
    assert site.stats.hits["/page/old"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("not-a-sitemap: not a sitemap" in m for m in messages)
    bomb = [m for m in messages if "bomb.xml.gz" in m]
    assert bomb == [f"Ignoring sitemap {u}/bomb.xml.gz: decompressed body larger than 1000000"
                    " bytes"]
    assert any("Skipped sitemap URL 'ftp://x/s.xml'" in m for m in messages)
    assert result.reason == "finished"


def test_parse_sitemap_never_raises_on_mangled_bytes() -> None:
    """Seeded byte flips of a real sitemap (lxml's recovery then makes odd tag names, which
    once raised from QName): every input gives a result or None, never an exception."""
    import random

    rng = random.Random(5)
    base = bytearray(urlset("http://a.example/1", "http://a.example/2",
                            alternates={"http://a.example/1": "http://a.example/fr/1"}).encode())
    for _ in range(3000):
        mangled = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        parse_sitemap(bytes(mangled))
