"""Sitemaps: :class:`SitemapSpider` crawls the pages a site lists in its sitemaps.

As in Scrapy, ``sitemap_urls`` may name sitemaps (``urlset``), sitemap indexes
(``sitemapindex``) or ``robots.txt`` files (whose ``Sitemap:`` lines are read with protego);
gzip-compressed sitemaps (``sitemap.xml.gz`` served as a file, not as a Content-Encoding)
are decompressed here. Page URLs go to the callback of the first ``sitemap_rules`` pattern
that matches; index entries are followed when a ``sitemap_follow`` pattern matches.

Safety: the XML parser resolves no entities and fetches nothing (no XXE, no billion laughs),
recovers from malformed markup, and a sitemap over the 50 MB the protocol allows, compressed
or not, is refused with a warning; a ``<loc>`` that is not an http(s) URL is skipped and
counted as ``links_skipped``, as a bad link on a page is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .decompress import BodyDecoder
from .errors import DownloadError
from .http import Request, Response
from .spider import Spider

__all__ = ["SitemapEntry", "SitemapSpider", "parse_sitemap"]

logger = logging.getLogger(__name__)

#: The largest sitemap the protocol allows, uncompressed (sitemaps.org).
SITEMAP_MAX_SIZE = 50 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class SitemapEntry:
    """One ``<url>`` or ``<sitemap>`` of a sitemap: its ``loc``, its other child elements by
    local name (``lastmod``, ``changefreq``, ``priority``...) and, for pages, the
    ``xhtml:link rel="alternate"`` URLs."""

    loc: str
    fields: dict[str, str] = field(default_factory=dict)
    alternates: list[str] = field(default_factory=list)


def parse_sitemap(body: bytes) -> tuple[str, list[SitemapEntry]] | None:
    """``(kind, entries)`` of a sitemap document, ``kind`` being ``"urlset"`` or
    ``"sitemapindex"``; None when ``body`` is not a sitemap."""
    from lxml import etree  # parsel's dependency, loaded by the first sitemap

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, recover=True, remove_comments=True,
        remove_pis=True, huge_tree=False,
    )
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError:
        return None
    if root is None or not isinstance(root.tag, str):
        return None
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        return None
    entries: list[SitemapEntry] = []
    for element in root:
        if not isinstance(element.tag, str):
            continue
        loc = ""
        fields: dict[str, str] = {}
        alternates: list[str] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            if name == "link":
                href = child.get("href")
                if child.get("rel") == "alternate" and href:
                    alternates.append(href.strip())
            elif name == "loc":
                loc = (child.text or "").strip()
            else:
                fields[name] = (child.text or "").strip()
        if loc:
            entries.append(SitemapEntry(loc, fields, alternates))
    return kind, entries


def _local(tag: str) -> str:
    """A tag's local name: ``{namespace}url`` -> ``url`` (no validation: lxml's recovery
    can yield tag names QName would refuse)."""
    return tag.rpartition("}")[2]


class SitemapSpider(Spider):
    """A spider whose start is a site's sitemaps.

    - ``sitemap_urls``: sitemap, sitemap index or ``robots.txt`` URLs.
    - ``sitemap_rules``: ``(regex, callback)`` pairs; a page URL goes to the callback (a
      method name or a method) of the first regex found in it. Default: every page to
      ``parse``.
    - ``sitemap_follow``: regexes; an index entry is followed when one is found in its URL.
      Default: every entry.
    - ``sitemap_alternate_links``: also crawl the ``xhtml:link`` alternates of each page.
    - :meth:`sitemap_filter`: override to drop entries, e.g. by ``lastmod``.
    """

    sitemap_urls: ClassVar[list[str]] = []
    sitemap_rules: ClassVar[list[tuple[str, str | Callable[..., Any]]]] = [("", "parse")]
    sitemap_follow: ClassVar[list[str]] = [""]
    sitemap_alternate_links: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rules = [(re.compile(pattern), self._method_name(callback))
                       for pattern, callback in self.sitemap_rules]
        self._follow = [re.compile(pattern) for pattern in self.sitemap_follow]

    def _method_name(self, callback: str | Callable[..., Any]) -> str | Callable[..., Any]:
        """A function of this class, as written in a class-level ``sitemap_rules`` list, is
        named (it is the spider's method; a name is also what a durable frontier stores)."""
        name = getattr(callback, "__name__", None)
        if isinstance(name, str) and getattr(type(self), name, None) is callback:
            return name
        return callback

    def start_requests(self) -> Iterable[Request]:
        return self._first_requests(self.sitemap_urls, "_parse_sitemap", "sitemap URL")

    def sitemap_filter(self, entries: list[SitemapEntry]) -> Iterable[SitemapEntry]:
        """The entries to crawl of one sitemap (all by default)."""
        return entries

    def _parse_sitemap(self, response: Response) -> Iterator[Request]:
        if response.yurl.path.endswith("/robots.txt"):
            from protego import Protego

            # follow_all skips a bad URL and counts it as links_skipped, as on any page.
            yield from response.follow_all(Protego.parse(response.text).sitemaps,
                                           callback="_parse_sitemap")
            return
        body = _sitemap_body(response)
        if body is None:
            return  # too large or corrupt: said already
        parsed = parse_sitemap(body)
        if parsed is None:
            self.logger.warning("Ignoring %s: not a sitemap", response.url)
            return
        kind, entries = parsed
        entries = list(self.sitemap_filter(entries))
        if kind == "sitemapindex":
            follow = [e.loc for e in entries if any(p.search(e.loc) for p in self._follow)]
            yield from response.follow_all(follow, callback="_parse_sitemap")
            return
        for entry in entries:
            urls = [entry.loc, *entry.alternates] if self.sitemap_alternate_links else [entry.loc]
            for url in urls:
                callback = next((cb for rule, cb in self._rules if rule.search(url)), None)
                if callback is not None:
                    yield from response.follow_all([url], callback=callback)


def _sitemap_body(response: Response) -> bytes | None:
    """The XML of a sitemap response, gunzipped when it is a ``.gz`` file; None (logged)
    when it is too large or corrupt."""
    body = response.body
    if not body.startswith(_GZIP_MAGIC):
        if len(body) <= SITEMAP_MAX_SIZE:
            return body
        logger.warning("Ignoring sitemap %s: over 50 MB", response.url)
        return None
    decoder = BodyDecoder("gzip", SITEMAP_MAX_SIZE, response.url)
    try:
        return decoder.feed(body) + decoder.finish()
    except DownloadError as exc:  # over the limit once inflated, or corrupt
        logger.warning("Ignoring sitemap %s: %s", response.url, exc.detail)
        return None
