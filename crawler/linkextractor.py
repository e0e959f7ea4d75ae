"""Links and the link extractor, with the semantics of Scrapy's ``LinkExtractor``.

``LinkExtractor(allow=..., deny=..., restrict_css=...).extract_links(response)`` returns the
:class:`Link` objects of a page in document order: every ``tags`` element's ``attrs`` value,
whitespace-stripped, joined with the page's base URL, passed through ``process_value``, then
kept when it is http(s)/ftp/file, matches an ``allow`` regex (any, when given), matches no
``deny`` regex, is on an ``allow_domains`` domain (subdomains included) and none of the
``deny_domains``, and does not end with one of ``deny_extensions`` (Scrapy's
:data:`IGNORED_EXTENSIONS` by default). ``unique`` drops repeats of a URL (the first is kept),
``canonicalize`` rewrites each URL with ``w3lib.url.canonicalize_url``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlparse

if TYPE_CHECKING:
    from parsel import Selector

    from .http import Response

__all__ = ["IGNORED_EXTENSIONS", "Link", "LinkExtractor"]

#: Extensions whose links are not extracted unless ``deny_extensions`` says otherwise
#: (Scrapy's list: archives, images, audio, video, office documents, binaries, scripts).
IGNORED_EXTENSIONS: list[str] = [
    "7z", "7zip", "bz2", "rar", "tar", "tar.gz", "xz", "zip",
    "mng", "pct", "bmp", "gif", "jpg", "jpeg", "png", "pst", "psp", "tif", "tiff", "ai", "drw",
    "dxf", "eps", "ps", "svg", "cdr", "ico", "webp",
    "mp3", "wma", "ogg", "wav", "ra", "aac", "mid", "au", "aiff",
    "3gp", "asf", "asx", "avi", "mov", "mp4", "mpg", "qt", "rm", "swf", "wmv", "m4a", "m4v",
    "flv", "webm",
    "xls", "xlsm", "xlsx", "xltm", "xltx", "potm", "potx", "ppt", "pptm", "pptx", "pps", "doc",
    "docb", "docm", "docx", "dotm", "dotx", "odt", "ods", "odg", "odp",
    "css", "pdf", "exe", "bin", "rss", "dmg", "iso", "apk", "jar", "sh", "rb", "js", "hta", "bat",
    "cpl", "msi", "msp", "py",
]  # fmt: skip

_SCHEMES = ("http", "https", "file", "ftp")
_HTML5_SPACE = " \t\n\r\x0c"


class Link:
    """A link found on a page: the absolute ``url``, the anchor ``text`` (the element's whole
    text content), the ``fragment`` and whether ``rel`` says ``nofollow``. Links are equal
    when all four are; ``response.follow(link)`` follows one."""

    __slots__ = ("url", "text", "fragment", "nofollow")

    def __init__(self, url: str, text: str = "", fragment: str = "", nofollow: bool = False):
        if not isinstance(url, str):
            raise TypeError(f"Link urls must be str objects, got {type(url).__name__}")
        self.url = url
        self.text = text
        self.fragment = fragment
        self.nofollow = nofollow

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Link):
            return NotImplemented
        return (self.url, self.text, self.fragment, self.nofollow) == (
            other.url, other.text, other.fragment, other.nofollow)

    def __hash__(self) -> int:
        return hash((self.url, self.text, self.fragment, self.nofollow))

    def __repr__(self) -> str:
        return (f"Link(url={self.url!r}, text={self.text!r}, fragment={self.fragment!r}, "
                f"nofollow={self.nofollow!r})")


def _as_list(value: Any) -> list[Any]:
    """Scrapy's ``arg_to_iter``: None → [], one string or pattern → [it], an iterable → list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, re.Pattern)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _regexes(value: Any) -> list[re.Pattern[str]]:
    return [x if isinstance(x, re.Pattern) else re.compile(x) for x in _as_list(value)]


def _from_domains(url: str, domains: Iterable[str]) -> bool:
    # As in Scrapy, the host is the URL's netloc: a port makes it another "domain".
    host = urlparse(url).netloc.lower()
    return bool(host) and any(host == d or host.endswith(f".{d}") for d in domains)


def _local_name(tag: object) -> str:
    text = str(tag)
    return text.rpartition("}")[2] if text.startswith("{") else text


class LinkExtractor:
    """Extract links from responses; see the module docstring for the rules. Arguments are
    Scrapy's (``allow``, ``deny``, ``allow_domains``, ``deny_domains``, ``restrict_xpaths``,
    ``restrict_css``, ``restrict_text``, ``tags``, ``attrs``, ``deny_tags``, ``deny_attrs``,
    ``canonicalize``, ``unique``, ``process_value``, ``deny_extensions``, ``strip``); each
    takes one value or a list, and ``'*'`` in ``tags``/``attrs`` means every one."""

    def __init__(
        self,
        allow: Any = (),
        deny: Any = (),
        allow_domains: str | Iterable[str] = (),
        deny_domains: str | Iterable[str] = (),
        restrict_xpaths: str | Iterable[str] = (),
        tags: str | Iterable[str] | None = ("a", "area"),
        attrs: str | Iterable[str] | None = ("href",),
        canonicalize: bool = False,
        unique: bool = True,
        process_value: Callable[[Any], Any] | None = None,
        deny_extensions: str | Iterable[str] | None = None,
        restrict_css: str | Iterable[str] = (),
        strip: bool = True,
        restrict_text: Any = None,
        deny_tags: str | Iterable[str] = (),
        deny_attrs: str | Iterable[str] = (),
    ) -> None:
        self.tags = set(_as_list(tags))
        self.attrs = set(_as_list(attrs))
        self.deny_tags = set(_as_list(deny_tags))
        self.deny_attrs = set(_as_list(deny_attrs))
        self.allow_res = _regexes(allow)
        self.deny_res = _regexes(deny)
        self.allow_domains = {d.lower() for d in _as_list(allow_domains)}
        self.deny_domains = {d.lower() for d in _as_list(deny_domains)}
        self.restrict_xpaths: tuple[str, ...] = tuple(_as_list(restrict_xpaths))
        css = _as_list(restrict_css)
        if css:
            from cssselect import HTMLTranslator  # parsel's own dependency

            translator = HTMLTranslator()
            self.restrict_xpaths += tuple(translator.css_to_xpath(c) for c in css)
        self.canonicalize = canonicalize
        self.unique = unique
        self.process_value = process_value if callable(process_value) else None
        if deny_extensions is None:
            deny_extensions = IGNORED_EXTENSIONS
        self.deny_extensions = {f".{e}" for e in _as_list(deny_extensions)}
        self.strip = strip
        self.restrict_text = _regexes(restrict_text)

    def extract_links(self, response: Response) -> list[Link]:
        """The links of ``response`` that pass every filter, in document order."""
        from w3lib.html import get_base_url

        base_url = get_base_url(response.text[:4096], response.url, response.encoding)
        if self.restrict_xpaths:
            docs: list[Selector] = [
                sub for xpath in self.restrict_xpaths for sub in response.xpath(xpath)]
        else:
            docs = [response.selector]
        links: list[Link] = []
        for doc in docs:
            links.extend(link for link in self._links_in(doc, response, base_url)
                         if self._allowed(link))
        if self.canonicalize:
            from w3lib.url import canonicalize_url

            for link in links:
                link.url = canonicalize_url(link.url)
        return _unique(links) if self.unique else links

    def matches(self, url: str) -> bool:
        """Whether ``url`` passes the domain and allow/deny filters (Scrapy's ``matches``)."""
        if self.allow_domains and not _from_domains(url, self.allow_domains):
            return False
        if self.deny_domains and _from_domains(url, self.deny_domains):
            return False
        allowed = any(r.search(url) for r in self.allow_res) if self.allow_res else True
        return allowed and not any(r.search(url) for r in self.deny_res)

    def _scan(self, allowed: set[str], denied: set[str], name: str) -> bool:
        return name not in denied and ("*" in allowed or name in allowed)

    def _links_in(self, doc: Selector, response: Response, base_url: str) -> Iterator[Link]:
        from lxml import etree
        from w3lib.url import safe_url_string

        root = doc.root
        if not hasattr(root, "iter"):  # a text or attribute selection holds no elements
            return
        links: list[Link] = []
        for el in root.iter(etree.Element):
            if not self._scan(self.tags, self.deny_tags, _local_name(el.tag)):
                continue
            for attr, value in el.attrib.items():
                if not self._scan(self.attrs, self.deny_attrs, str(attr)):
                    continue
                try:
                    if self.strip:
                        value = value.strip(_HTML5_SPACE)
                    url: Any = urljoin(base_url, value)
                except ValueError:
                    continue
                if self.process_value is not None:
                    url = self.process_value(url)
                    if url is None:
                        continue
                try:
                    url = urljoin(response.url, safe_url_string(url, encoding=response.encoding))
                except ValueError:
                    continue
                rel = el.get("rel")
                nofollow = rel is not None and "nofollow" in rel.replace(",", " ").split()
                links.append(Link(url, "".join(el.itertext()) or "", nofollow=nofollow))
        yield from (_unique(links) if self.unique else links)

    def _allowed(self, link: Link) -> bool:
        url = link.url
        if urlparse(url).scheme not in _SCHEMES:
            return False
        if self.allow_res and not any(r.search(url) for r in self.allow_res):
            return False
        if self.deny_res and any(r.search(url) for r in self.deny_res):
            return False
        if self.allow_domains and not _from_domains(url, self.allow_domains):
            return False
        if self.deny_domains and _from_domains(url, self.deny_domains):
            return False
        if self.deny_extensions:
            path = urlparse(url).path.lower()
            if any(path.endswith(ext) for ext in self.deny_extensions):
                return False
        return not self.restrict_text or any(r.search(link.text) for r in self.restrict_text)


def _unique(links: list[Link]) -> list[Link]:
    seen: set[str] = set()
    out: list[Link] = []
    for link in links:
        if link.url not in seen:
            seen.add(link.url)
            out.append(link)
    return out
