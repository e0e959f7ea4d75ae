"""Request and Response: what spiders build and what callbacks receive.

A :class:`Request` is immutable once built (use :meth:`Request.replace`); its URL is validated
at construction, so a relative or non-http(s) URL fails where it was written, not deep inside
the engine. A :class:`Response` decodes its text and builds its parsel ``Selector`` lazily,
once, on first use.

The module stays whole (about 700 lines) because the two classes are the one public surface a
spider sees and are read together: ``Response.follow``/``follow_all`` build Requests through the
same trusted constructor and link rules that ``Request`` defines, and splitting them would put
half of each contract in another file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast, overload
from urllib.parse import urlencode

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .encoding import decode_body
from .errors import InvalidURL
from .fingerprint import request_fingerprint
from .urls import _base_prefixes, canonical_url, parse_url

if TYPE_CHECKING:
    # parsel (and lxml) load on the first selector, not at import: `crawler list` and the
    # start of a crawl do not pay for them.
    from parsel import Selector, SelectorList

    from .linkextractor import Link
    from .stats import Stats

logger = logging.getLogger(__name__)

__all__ = ["Failure", "Request", "Response"]

#: A callback is a callable taking the response (plus ``cb_kwargs``), or the name of a spider
#: method. Names are what durable frontiers store.
Callback = Callable[..., Any] | str

_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_NO_STATUS: frozenset[int] = frozenset()
_FIELDS = (
    "url", "method", "headers", "body", "callback", "errback", "cb_kwargs", "meta",
    "priority", "dont_filter", "depth", "handle_status",
)


class Request:
    """One HTTP request to make, and what to do with its response.

    ``url`` must be absolute http(s) (``str`` or ``yarl.URL``); anything else raises
    :class:`crawler.errors.InvalidURL` (a ``ValueError``) naming the URL. ``body`` may be given
    as bytes/str, or as ``json=`` (serialised, ``Content-Type: application/json``, method POST
    unless given) or ``form=`` (url-encoded; in the query for GET, else the body of a POST).

    ``priority``: higher is fetched first; FIFO within a priority. ``dont_filter`` skips the
    duplicate filter. ``depth`` is set by the engine for requests yielded from a response.
    ``handle_status`` lists non-2xx statuses that still go to the callback. ``meta`` is a dict
    shared with the response, for middlewares and callbacks; ``cb_kwargs`` are passed to the
    callback as keyword arguments. ``cookies`` (Scrapy's: a dict or a list of name/value
    dicts) are sent in this request's Cookie header, besides the cookie jar's.

    ``browser=True`` renders the page in Chromium (:mod:`crawler.browser`); it is stored as
    ``meta["browser"]`` (``meta["playwright"]``, scrapy-playwright's key, works too), so it
    survives a durable frontier. ``browser=False`` opts out of a spider's or a crawl's
    ``browser`` default; None (the default) follows it.
    """

    # Slots and lazily created dicts: a million pending requests must fit in a few hundred MB.
    __slots__ = (
        "url", "method", "headers", "body", "callback", "errback", "_cb_kwargs", "_meta",
        "priority", "dont_filter", "depth", "handle_status", "_fingerprint", "_yurl",
    )

    url: str
    method: str
    headers: CIMultiDictProxy[str]
    body: bytes
    callback: Callback | None
    errback: Callback | None
    _cb_kwargs: dict[str, Any] | None
    _meta: dict[str, Any] | None
    priority: int
    dont_filter: bool
    depth: int
    handle_status: frozenset[int]
    _fingerprint: bytes | None
    _yurl: URL | None

    def __init__(
        self,
        url: str | URL,
        callback: Callback | None = None,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        json: Any = None,
        form: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        errback: Callback | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
        depth: int = 0,
        handle_status: Iterable[int] = (),
        cookies: Mapping[str, str] | Iterable[Mapping[str, Any]] | None = None,
        browser: bool | None = None,
    ) -> None:
        yurl = _checked_url(url)
        if browser is not None:
            meta = {**(meta or {}), "browser": bool(browser)}
        method = method.upper()
        hdrs = CIMultiDict(headers) if headers else None
        if cookies:
            hdrs = _with_cookies(hdrs, cookies)
        if json is not None or form is not None:
            if body is not None or (json is not None and form is not None):
                raise ValueError("give only one of body=, json= and form=")
            hdrs = hdrs if hdrs is not None else CIMultiDict()
            if json is not None:
                body = orjson.dumps(json)
                hdrs.setdefault("Content-Type", "application/json")
                method = "POST" if method == "GET" else method
            else:
                assert form is not None
                encoded = urlencode(list(form.items()) if isinstance(form, Mapping) else list(form))
                if method in ("GET", "HEAD"):
                    yurl = yurl.with_query(encoded) if not yurl.query_string else URL(
                        f"{yurl}&{encoded}", encoded=True
                    )
                else:
                    body = encoded
                    hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        set_ = object.__setattr__
        set_(self, "url", str(yurl))
        set_(self, "_yurl", yurl)
        set_(self, "method", method)
        set_(self, "headers", CIMultiDictProxy(hdrs) if hdrs else _EMPTY_HEADERS)
        set_(self, "body", body.encode() if isinstance(body, str) else (body or b""))
        set_(self, "callback", callback)
        set_(self, "errback", errback)
        set_(self, "_cb_kwargs", cb_kwargs or None)
        set_(self, "_meta", meta)
        set_(self, "priority", int(priority))
        set_(self, "dont_filter", bool(dont_filter))
        set_(self, "depth", int(depth))
        set_(self, "handle_status", frozenset(handle_status) if handle_status else _NO_STATUS)
        set_(self, "_fingerprint", None)

    @classmethod
    def from_trusted(
        cls, url: str, callback: Callback | None = None, *, depth: int = 0, priority: int = 0,
        dont_filter: bool = False,
    ) -> Request:
        """A plain GET (no headers, body, meta, cb_kwargs or errback) rebuilt from a URL a
        Request validated before: what a frontier stores of a :attr:`simple` request. The URL
        is not parsed again (:attr:`yurl` parses it on first use), so it must be ``str`` of a
        Request's ``url``; anything else belongs in the constructor."""
        self = object.__new__(cls)
        set_ = object.__setattr__
        set_(self, "url", url)
        set_(self, "_yurl", None)
        set_(self, "method", "GET")
        set_(self, "headers", _EMPTY_HEADERS)
        set_(self, "body", b"")
        set_(self, "callback", callback)
        set_(self, "errback", None)
        set_(self, "_cb_kwargs", None)
        set_(self, "_meta", None)
        set_(self, "priority", priority)
        set_(self, "dont_filter", dont_filter)
        set_(self, "depth", depth)
        set_(self, "handle_status", _NO_STATUS)
        set_(self, "_fingerprint", None)
        return self

    @property
    def simple(self) -> bool:
        """True for a GET without headers, body, errback, meta, cb_kwargs or handle_status:
        one that its URL, callback, depth, priority and dont_filter describe whole, so a
        frontier may keep just those and rebuild it with :meth:`from_trusted`."""
        return not (
            self.method != "GET" or self.headers or self.body or self.errback or self._meta
            or self._cb_kwargs or self.handle_status
        )

    @property
    def has_meta(self) -> bool:
        """Whether :attr:`meta` holds anything; reading this never creates the dict (most
        requests have none, and the framework asks on every request)."""
        return bool(self._meta)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Request is immutable; use request.replace({name}=...)")

    @property
    def yurl(self) -> URL:
        """The URL as a ``yarl.URL`` (parsed once; a frontier's compact form keeps only the
        string, and it is parsed again on first use)."""
        yurl = self._yurl
        if yurl is None:
            yurl = URL(self.url, encoded=True)
            object.__setattr__(self, "_yurl", yurl)
        return yurl

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form data shared with the response and middlewares (created on first use)."""
        meta = self._meta
        if meta is None:
            meta = {}
            object.__setattr__(self, "_meta", meta)
        return meta

    @property
    def cb_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the callback."""
        kw = self._cb_kwargs
        if kw is None:
            kw = {}
            object.__setattr__(self, "_cb_kwargs", kw)
        return kw

    @property
    def fingerprint(self) -> bytes:
        """Dedup key: method, canonical URL and body, hashed. Computed once."""
        fp = self._fingerprint
        if fp is None:
            fp = request_fingerprint(self.method, canonical_url(self.yurl), self.body)
            object.__setattr__(self, "_fingerprint", fp)
        return fp

    def set_header(self, name: str, value: str) -> None:
        """Set one header on this request, in place: what a downloader middleware's
        ``process_request`` usually does (then it returns None). Headers are not part of
        the fingerprint; ``request.meta[key] = value`` sets a meta key in place the same way."""
        headers = CIMultiDict(self.headers)
        headers[name] = value
        object.__setattr__(self, "headers", CIMultiDictProxy(headers))

    def replace(self, **changes: Any) -> Request:
        """A copy with ``changes`` applied; ``meta`` and ``cb_kwargs`` are copied, not shared.

        Changing only ``depth`` and ``priority`` (what the engine does to each request a
        callback yields) copies the fields as they are, without validating the URL again: the
        copy has the same fingerprint, which it keeps."""
        if changes.keys() <= _ORDER_FIELDS:
            return self._reordered(changes.get("depth", self.depth),
                                   changes.get("priority", self.priority))
        kwargs: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        kwargs["meta"] = dict(self.meta)
        kwargs["cb_kwargs"] = dict(self.cb_kwargs)
        kwargs["url"] = self.yurl
        kwargs.update(changes)
        return Request(**kwargs)

    def _reordered(self, depth: int, priority: int) -> Request:
        new = object.__new__(Request)
        set_ = object.__setattr__
        for name in _COPIED_SLOTS:
            set_(new, name, getattr(self, name))
        meta, cb_kwargs = self._meta, self._cb_kwargs
        set_(new, "_meta", dict(meta) if meta is not None else None)
        set_(new, "_cb_kwargs", dict(cb_kwargs) if cb_kwargs is not None else None)
        set_(new, "depth", int(depth))
        set_(new, "priority", int(priority))
        return new

    def __repr__(self) -> str:
        return f"<{self.method} {self.url}>"


#: replace() changes that keep the URL and fingerprint: a copy without a second validation.
_ORDER_FIELDS = frozenset({"depth", "priority"})
_COPIED_SLOTS = tuple(
    name for name in Request.__slots__
    if name not in ("_meta", "_cb_kwargs", "depth", "priority")
)


def _with_cookies(
    hdrs: CIMultiDict[str] | None, cookies: Mapping[str, str] | Iterable[Mapping[str, Any]]
) -> CIMultiDict[str]:
    """Scrapy's ``cookies=`` (a dict, or a list of ``{"name": ..., "value": ...}``) as this
    request's Cookie header; the crawl's cookie jar adds its own to it."""
    pairs = (list(cookies.items()) if isinstance(cookies, Mapping)
             else [(c["name"], c["value"]) for c in cookies])
    out = hdrs if hdrs is not None else CIMultiDict()
    given = out.get("Cookie")
    text = "; ".join(f"{k}={v}" for k, v in pairs)
    out["Cookie"] = f"{given}; {text}" if given else text
    return out


def _checked_url(url: str | URL) -> URL:
    if type(url) is URL and url.scheme in ("http", "https") and url.raw_host:
        return url
    return parse_url(url)


_T = TypeVar("_T")


class _once(Generic[_T]):
    """``functools.cached_property`` without its lock: Python 3.11 takes a per-class RLock on
    every first access, and a page's Response computes four such values (base URL, text,
    selector, link base). The value is stored in the instance's ``__dict__``, which then
    shadows this (non-data) descriptor: later reads are plain attribute lookups."""

    def __init__(self, fn: Callable[[Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _once[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type[Any] | None = None) -> _T | _once[_T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class Response:
    """A downloaded response, handed to the request's callback.

    ``text`` is decoded once: the Content-Type charset, else a BOM, else ``<meta charset>``,
    else UTF-8, with undecodable bytes replaced (it never raises). ``css()``/``xpath()`` use one
    parsel ``Selector`` built on first use. ``meta`` is the request's meta.
    """

    __slots__ = (
        "url", "status", "headers", "body", "request", "stats", "known", "known_links",
        "__dict__",
    )

    #: The frontier's "was this fingerprint added already" check, set by the engine when its
    #: frontier offers one (None: unknown). :meth:`follow_all` skips the links it knows
    #: before building a Request for them: most links of a page are usually repeats.
    known: Callable[[bytes], bool] | None
    #: The links (as :meth:`follow_all` keys them) that :attr:`known` said yes to, shared by
    #: the responses of one crawl (None: not remembered). A yes stays true, since a frontier
    #: never forgets a fingerprint it took, so a link met again costs one set lookup.
    known_links: set[str] | None

    #: The live Playwright page of a rendered request that asked for it
    #: (``meta["browser_page"]``); the framework closes it after the callback. None otherwise.
    page: Any = None

    def __init__(
        self,
        url: str,
        status: int,
        headers: CIMultiDictProxy[str] | Mapping[str, str] | None = None,
        body: bytes = b"",
        request: Request | None = None,
        *,
        stats: Stats | None = None,
    ) -> None:
        self.url = url
        self.status = status
        if headers is None:
            self.headers = _EMPTY_HEADERS
        elif isinstance(headers, CIMultiDictProxy):
            self.headers = headers
        else:
            self.headers = CIMultiDictProxy(CIMultiDict(headers))
        self.body = body
        self.request = request if request is not None else Request(url)
        self.stats = stats
        self.known = None
        self.known_links = None

    def __repr__(self) -> str:
        return f"<{self.status} {self.url}>"

    @property
    def meta(self) -> dict[str, Any]:
        """The request's ``meta`` dict, where ``meta["depth"]`` is the request's depth as
        Scrapy's depth middleware sets it (put there on first look, not for every request)."""
        request = self.request
        meta = request.meta
        if "depth" not in meta:
            meta["depth"] = request.depth
        return meta

    @property
    def cb_kwargs(self) -> dict[str, Any]:
        """The request's ``cb_kwargs`` (the keyword arguments its callback receives)."""
        return self.request.cb_kwargs

    @_once
    def yurl(self) -> URL:
        """The response URL as a ``yarl.URL`` (the base for relative links)."""
        return URL(self.url, encoded=True)

    @property
    def redirect_chain(self) -> list[str]:
        """URLs this response was redirected through, oldest first (empty without redirects)."""
        return list(self.request.meta.get("redirect_urls", ()))

    @_once
    def _decoded(self) -> tuple[str, str]:
        return decode_body(self.body, self.headers.get("Content-Type"))

    @property
    def text(self) -> str:
        """The body decoded to str (never raises; bad bytes become U+FFFD)."""
        return self._decoded[0]

    @property
    def encoding(self) -> str:
        """The codec :attr:`text` was decoded with."""
        return self._decoded[1]

    @_once
    def selector(self) -> Selector:
        """The parsel Selector over :attr:`text`, built once."""
        ctype = self.headers.get("Content-Type", "")
        kind = "xml" if ("xml" in ctype and "html" not in ctype) else "html"
        return _selector_class()(root=_parse_tree(self.text, kind, self.url), type=kind,
                                 base_url=self.url)

    def css(self, query: str) -> SelectorList[Selector]:
        return self.selector.css(query)

    def xpath(self, query: str, **namespaces: Any) -> SelectorList[Selector]:
        return self.selector.xpath(query, **namespaces)

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return orjson.loads(self.body)

    def urljoin(self, url: str) -> str:
        """``url`` resolved against this response's URL (or its ``<base href>``)."""
        return str(self._base.join(URL(url)))

    @_once
    def _base(self) -> URL:
        # <base href> changes how every relative link on the page resolves, as in browsers.
        if b"<base" in self.body[:8192] or b"<BASE" in self.body[:8192]:
            href = self.selector.xpath("//base/@href").get()
            if href:
                try:
                    return parse_url(href.strip(), self.yurl)
                except InvalidURL:
                    pass
        return self.yurl

    def follow(
        self, url: str | URL | Selector | Link, callback: Callback | None = None, **kwargs: Any
    ) -> Request | None:
        """A Request for ``url`` (a href, a URL, a :class:`~crawler.linkextractor.Link`, or an
        ``<a>``/``<link>`` Selector or an attribute Selector), resolved against this page, with
        ``depth`` one more than this response's request.

        A link that cannot be an http(s) URL (``mailto:``, ``javascript:``, malformed, ...)
        returns ``None`` with a debug log and the ``links_skipped`` stat: a bad link never stops
        a crawl. ``None`` yielded from a callback is ignored.
        """
        if not isinstance(url, (str, URL)) and isinstance(getattr(url, "url", None), str):
            url = url.url  # type: ignore[union-attr]  # a Link
        href = url if isinstance(url, (str, URL)) else _href_of(url)  # type: ignore[arg-type]
        if href is None:
            self._skip_link(url, "no href on the selected element")
            return None
        try:
            target = href if isinstance(href, URL) else parse_url(href.strip(), self._base)
        except InvalidURL as exc:
            self._skip_link(href, exc.reason)
            return None
        kwargs.setdefault("depth", self.request.depth + 1)
        return Request(target, callback, **kwargs)

    def follow_all(
        self,
        hrefs: Iterable[str | URL | Selector | Link] | None = None,
        callback: Callback | None = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Request]:
        """Requests for every link in ``hrefs`` (as :meth:`follow` takes them), or in the
        elements matched by ``css`` / ``xpath`` (``<a>``/``<link>`` elements give their href;
        attribute selections give their value). ``callback`` may be given positionally, as in
        Scrapy (as is its ``urls=`` name for ``hrefs``). Bad links are skipped, as in
        :meth:`follow`.

        When the engine gave this response its frontier's :attr:`known` check, a plain GET link
        whose request the frontier already has (or that appears twice in ``hrefs``) gets no
        Request at all: it would be dropped as a duplicate anyway, and it is counted as one
        (``duplicates_filtered``). ``dont_filter=True``, another method or a body turn this off.

        The result is an iterator, as Scrapy's is: each Request is built when it is taken, so
        a page with a million links never holds a million Requests, and the links already
        taken (and handed to the frontier by the engine) are known to the check above by the
        time the later ones are looked at. The arguments are checked, and ``css`` / ``xpath``
        evaluated, when it is called. ``list(response.follow_all(...))`` gives a list.
        """
        if hrefs is None and "urls" in kwargs:
            hrefs = kwargs.pop("urls")
        if sum(x is not None for x in (hrefs, css, xpath)) != 1:
            raise ValueError("follow_all() takes exactly one of hrefs, css= and xpath=")
        links: Iterable[str | URL | Selector | Link | None]
        if css is not None:
            links = _css_links(self.selector, css)  # strings from lxml: no Selector per link
        elif xpath is not None:
            links = self.selector.xpath(xpath)
        else:
            assert hrefs is not None
            links = hrefs
        known = self.known
        if known is not None and not _FINGERPRINT_KWARGS.isdisjoint(kwargs):
            known = None  # another fingerprint than a plain GET's, or no dedup at all
        if known is None:
            return self._follow_each(links, callback, kwargs)
        return self._follow_new(links, callback, kwargs, known)

    def _follow_each(
        self, links: Iterable[str | URL | Selector | Link | None], callback: Callback | None,
        kwargs: dict[str, Any],
    ) -> Iterator[Request]:
        for href in links:
            request = self._follow_link(href, callback, kwargs)
            if request is not None:
                yield request

    def _follow_link(
        self, href: str | URL | Selector | Link | None, callback: Callback | None,
        kwargs: dict[str, Any],
    ) -> Request | None:
        if href is None:
            self._skip_link(href, "no href on the selected element")
            return None
        return self.follow(href, callback, **kwargs)

    def _follow_new(
        self, links: Iterable[str | URL | Selector | Link | None], callback: Callback | None,
        kwargs: dict[str, Any], known: Callable[[bytes], bool],
    ) -> Iterator[Request]:
        """follow_all for links the frontier does not know yet (plain GETs, deduplicated).

        A link seen before is recognised by a key its URL depends on alone, through a bounded
        memo of fingerprints: one concatenation and two lookups, no URL parsing. The key is
        the origin plus the link for ``/path`` links (the same on every page of the origin),
        the link itself for a plain absolute ``http(s)://host...`` one, and the page's base
        plus the link for anything else.

        The fingerprints yielded from this page are remembered too, in a set cleared when it
        reaches :data:`_PAGE_SEEN_SIZE`: the engine hands a callback's requests to the
        frontier in batches smaller than that, so a repeat further down a huge page is known
        to the frontier by then, and one that slips through is dropped by the frontier.

        A link whose fingerprint the frontier said it has goes into :attr:`known_links` (when
        the engine gave one), bounded like the memo: met again, on any page of the crawl, it
        costs one set lookup and no question to the frontier."""
        origin, page = self._link_keys
        memo = _LINK_FINGERPRINTS
        # Links known to the frontier (see known_links); a page of its own without the engine.
        confirmed = self.known_links if self.known_links is not None else set()
        batch: set[bytes] = set()
        repeats = 0
        try:
            for href in links:
                key = None
                asked = False  # known() said no to this link's fingerprint already
                if type(href) is str:
                    if origin is not None and href[:1] == "/" and href[1:2] != "/":
                        key = origin + href  # "/x" means the same on every page of the origin
                    elif (
                        href.startswith(("http://", "https://"))
                        and href[href.find("//") + 2:][:1] not in ("/", "")
                        and href.isprintable()  # no tab or newline, which would be removed
                    ):
                        key = href  # resolved without the base
                    else:
                        key = page + href
                    if key in confirmed:
                        repeats += 1
                        continue
                    fp = memo.get(key)
                    if fp is not None:
                        if fp in batch:
                            repeats += 1
                            continue
                        if known(fp):
                            if len(confirmed) >= _LINK_MEMO_SIZE:
                                confirmed.clear()
                            confirmed.add(key)
                            repeats += 1
                            continue
                        asked = True
                request = self._follow_link(href, callback, kwargs)
                if request is None:
                    continue
                fp = request.fingerprint
                if key is not None:
                    if len(memo) >= _LINK_MEMO_SIZE:
                        memo.clear()
                    memo[key] = fp
                if fp in batch:
                    repeats += 1
                    continue
                if not asked and known(fp):
                    if key is not None:
                        if len(confirmed) >= _LINK_MEMO_SIZE:
                            confirmed.clear()
                        confirmed.add(key)
                    repeats += 1
                    continue
                if len(batch) >= _PAGE_SEEN_SIZE:
                    batch.clear()
                batch.add(fp)
                yield request
        finally:
            if repeats and self.stats is not None:
                self.stats.inc("duplicates_filtered", repeats)

    @_once
    def _link_keys(self) -> tuple[str | None, str]:
        """What :meth:`_follow_new` keys this page's links by: the origin of its base (for
        ``/path`` links; None when the base is not http(s)) and the base plus a NUL."""
        base = self._base
        prefixes = _base_prefixes(base)
        return (prefixes[0] if prefixes is not None else None), f"{base}\0"

    def _skip_link(self, href: object, reason: str) -> None:
        logger.debug("Skipped link %r on %s: %s", href, self.url, reason)
        if self.stats is not None:
            self.stats.inc("links_skipped")


#: follow_all() arguments that change a request's fingerprint from a plain GET's or turn dedup
#: off: with any of them, links are not checked against the frontier's known ones.
_FINGERPRINT_KWARGS = frozenset({"method", "body", "json", "form", "dont_filter"})
#: Link text made absolute (see :meth:`Response._follow_new`) → its fingerprint; cleared when
#: full. Shared by every response of the process: links repeat across pages.
_LINK_FINGERPRINTS: dict[str, bytes] = {}
_LINK_MEMO_SIZE = 100_000
#: Fingerprints one follow_all() remembers of its own links (see Response._follow_new).
_PAGE_SEEN_SIZE = 10_000


@lru_cache(maxsize=1)
def _selector_class() -> type[Selector]:
    """parsel's Selector, with a ``get()`` that returns a string result (``::text``,
    ``::attr()``) at once: parsel hands it to ``lxml.etree.tostring``, which refuses a string,
    and returns ``str()`` of it from the ``TypeError`` handler, the most common ``get()`` of a
    spider paying for an exception (about 0.8 us each). The selectors a query returns are of
    this class too (parsel builds them with ``self.__class__``), and its ``css()`` is
    :func:`_select_css`."""
    from parsel import Selector

    defaults = Selector._default_namespaces

    class PageSelector(Selector):
        __slots__ = ()

        def get(self) -> Any:
            root = self.root
            if type(root) is str:
                return root
            return super().get()

        extract = get

        def css(self, query: str) -> SelectorList[Self]:
            selected = _select_css(self, query, defaults)
            if selected is None:  # registered namespaces, or a text selector: parsel's way
                return super().css(query)
            return cast("SelectorList[Self]", self.selectorlist_cls(selected))

    PageSelector.__name__ = PageSelector.__qualname__ = "Selector"
    return PageSelector


def _select_css(selector: Selector, query: str, defaults: dict[str, str]) -> list[Any] | None:
    """What parsel's ``selector.css(query)`` selects (translate, then ``xpath()``: selectors
    of the same class, expression, namespaces and kind, the same errors), with the translation
    and the compiled XPath looked up once per query and kind rather than rebuilt from the
    namespaces on each call. None when parsel must answer: namespaces registered, or a
    selector of text."""
    root = selector.root
    kind = selector.type
    if (kind != "html" and kind != "xml") or selector.namespaces != defaults \
            or not hasattr(root, "xpath"):
        return None
    from lxml import etree

    xpath = _css_to_xpath(query, kind)
    try:
        result = _compiled_xpath(xpath)(root)
    except etree.XPathError as exc:
        raise ValueError(f"XPath error: {exc} in {xpath}") from exc
    if not isinstance(result, list):
        result = [result]
    cls, namespaces = selector.__class__, selector.namespaces
    return [cls(root=x, _expr=xpath, namespaces=namespaces, type=kind) for x in result]


@lru_cache(maxsize=1024)
def _css_to_xpath(css: str, kind: str) -> str:
    """A CSS query as parsel translates it for a selector of ``kind``."""
    from parsel.csstranslator import GenericTranslator, HTMLTranslator

    translator = GenericTranslator() if kind == "xml" else HTMLTranslator()
    return translator.css_to_xpath(css)


@lru_cache(maxsize=1024)
def _compiled_xpath(xpath: str) -> Any:
    """``xpath`` compiled as parsel compiles it for a selector with its default namespaces
    (of which a query translated from CSS uses none), with plain strings as results."""
    from lxml import etree
    from parsel import Selector

    namespaces = {prefix: uri for prefix, uri in Selector._default_namespaces.items()
                  if f"{prefix}:" in xpath}
    return etree.XPath(xpath, namespaces=namespaces, smart_strings=False)


#: The lxml parsers of this thread, one per kind ("html", "xml"), reused for every page.
_parsers = threading.local()


def _parse_tree(text: str, kind: str, base_url: str) -> Any:
    """The lxml tree ``parsel.Selector(text=text, type=kind, base_url=base_url)`` builds (see
    ``parsel.selector.create_root_node``: the text stripped, NULs removed, UTF-8 bytes parsed
    with ``recover`` and ``huge_tree``), with a parser reused from page to page: parsel makes
    a new one per document, which costs about as much as parsing a small page. A parser may
    serve one thread at a time, hence one per thread."""
    parser = getattr(_parsers, kind, None)
    if parser is None:
        from lxml.html import HTMLParser
        from parsel.selector import SafeXMLParser

        parser_class: type[Any] = SafeXMLParser if kind == "xml" else HTMLParser
        parser = parser_class(recover=True, encoding="utf-8", huge_tree=True)
        setattr(_parsers, kind, parser)
    from lxml import etree

    body = text.strip().replace("\x00", "").encode("utf-8") or b"<html/>"
    root = etree.fromstring(body, parser=parser, base_url=base_url)
    if root is None:  # only comments, say: parsel's empty document
        root = etree.fromstring(b"<html/>", parser=parser, base_url=base_url)
    return root


def _css_links(selector: Selector, css: str) -> list[str | None]:
    """The links of the elements ``css`` selects, as :func:`_href_of` reads them, evaluated on
    the lxml tree directly: parsel would wrap every match in a Selector first. The document is
    walked once; an element gives its href (or src) read from the lxml element."""
    matches = _compiled_xpath(_css_to_xpath(css, selector.type))(selector.root)
    if not isinstance(matches, list):
        return [str(matches)]  # a number, a boolean: the value itself, as a Selector's root
    from lxml.html import HtmlElement

    out: list[str | None] = []
    for node in matches:
        if type(node) is not str:
            # The common element, an HTML one with an href, read inline; the rest by _link_of.
            href = node.get("href") if type(node) is HtmlElement else None
            node = href if href is not None else _link_of(node)
        out.append(node)
    return out


def _link_of(node: Any) -> str | None:
    if isinstance(node, str):  # a str subclass (smart strings)
        return str(node)
    tag = getattr(node, "tag", None)
    if not isinstance(tag, str):  # a comment or processing instruction
        return None
    value: str | None = node.get("href")
    if value is None and tag in ("img", "script", "iframe", "source"):
        value = node.get("src")
    return value


def _href_of(sel: Selector) -> str | None:
    """The link a selector stands for: an element's href/src, or an attribute/text value
    (None for anything else, which the caller skips as a bad link)."""
    root = getattr(sel, "root", None)
    if isinstance(root, str):  # an attribute or text node selected directly
        return root
    tag = getattr(root, "tag", None)
    if root is None or not isinstance(tag, str):
        return None
    value: str | None = root.get("href")
    if value is None and tag in ("img", "script", "iframe", "source"):
        value = root.get("src")
    return value


ExcType = type[BaseException]


class Failure:
    """What an errback receives: the exception ``value``, the ``request``, and the
    ``response`` when there was one (an :class:`~crawler.errors.HttpError`). Mirrors the parts
    of Scrapy's Failure that errbacks use (``failure.check(HttpError)``)."""

    __slots__ = ("value", "request", "response")

    def __init__(self, value: BaseException, request: Request, response: Response | None = None):
        self.value = value
        self.request = request
        self.response = response

    @property
    def type(self) -> ExcType:
        """The exception's class."""
        return type(self.value)

    def check(self, *types: ExcType) -> ExcType | None:
        """The first of ``types`` the exception is an instance of, else None."""
        for t in types:
            if isinstance(self.value, t):
                return t
        return None

    def __repr__(self) -> str:
        return f"<Failure {type(self.value).__name__}: {self.value} for {self.request.url}>"
