"""The downloader: one shared aiohttp session, one HTTP exchange per call.

It fetches exactly one hop (redirects, retries and per-host scheduling belong to the engine),
enforces the timeouts and ``max_response_size`` while streaming and after decompression, and
translates every aiohttp/OS exception into :mod:`crawler.errors` here, in one place.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import ClientRequest, ClientResponse
from aiohttp.connector import Connection
from yarl import URL

from .browser import BrowserPool, renders
from .decompress import BodyDecoder
from .errors import (
    BlockedAddress,
    ConnectError,
    DownloadError,
    DownloadTimeout,
    InvalidURL,
    OutOfFiles,
    ProtocolError,
    ResponseTooLarge,
)
from .http import Request, Response
from .netguard import GuardedResolver, SafeCookieJar, blocked_literal
from .settings import Settings
from .stats import Stats
from .urls import host_key

logger = logging.getLogger(__name__)

__all__ = ["MAX_HEADERS", "MAX_HEADER_SIZE", "Downloader"]

#: Longest status line or header field accepted, in bytes; a longer one is a ProtocolError.
MAX_HEADER_SIZE = 32 * 1024
#: Most header fields accepted in one response; more is a ProtocolError.
MAX_HEADERS = 256


class Downloader:
    """Owns the crawl's single ``aiohttp.ClientSession`` (and so its cookie jar and
    connection pool). Use as an async context manager; :meth:`fetch` does one exchange.

    Limits it enforces on every exchange: ``timeout`` (total, body included),
    ``connect_timeout``, ``read_timeout`` (silence between reads), ``max_response_size``
    (while streaming and after decompression), :data:`MAX_HEADER_SIZE` and
    :data:`MAX_HEADERS`, and with ``block_private_addresses`` the address checks of
    :mod:`crawler.netguard`. ``resolver`` replaces aiohttp's default DNS resolver (tests use
    it to give names to 127.0.0.1); the private-address guard wraps it. ``on_sent`` is called
    with a request's slot key once its headers are on the wire: a host's delay between two
    requests counts from there (:meth:`crawler.slots.Slots.started`), so the time to open a
    connection or a busy event loop never shortens the gap the server sees.

    ``browser`` is the pool that renders the requests :func:`crawler.browser.renders`
    picks, with ``render_default`` (the spider's or the crawl's ``browser``) for a request
    that says nothing; it starts with the first of them, and this block's exit closes it.
    """

    def __init__(
        self,
        settings: Settings,
        stats: Stats,
        *,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        on_sent: Callable[[str], None] | None = None,
        browser: BrowserPool | None = None,
        render_default: bool = False,
    ) -> None:
        self.settings = settings
        self._on_sent = on_sent
        self.browser = browser
        self._render_default = render_default
        self.stats = stats
        self._limit = settings.max_response_size
        self._block_private = settings.block_private_addresses
        self._base_resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._ssl: bool | ssl.SSLContext = True
        if not settings.verify_tls:
            logger.warning("verify_tls = false: TLS certificates are NOT verified in this crawl")
            self._ssl = False

    async def __aenter__(self) -> Downloader:
        s = self.settings
        # The engine's per-host slots are the real limits; the connector's are a backstop
        # against a bug there opening thousands of sockets.
        connector = aiohttp.TCPConnector(
            limit=s.concurrency * 2,
            limit_per_host=s.concurrency_per_host * 2,
            ttl_dns_cache=300,
            ssl=self._ssl,
            resolver=self._resolver(),
        )
        headers = dict(s.default_headers)
        headers["User-Agent"] = s.user_agent
        # Every coding BodyDecoder handles (aiohttp on its own would not offer zstd).
        headers.setdefault("Accept-Encoding", "gzip, deflate, br, zstd")
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            cookie_jar=self._cookie_jar(),
            timeout=self._timeout(s.timeout),
            auto_decompress=False,  # decompressed here, with the size limit applied
            proxy=s.proxy,
            max_line_size=MAX_HEADER_SIZE,
            max_field_size=MAX_HEADER_SIZE,
            max_headers=MAX_HEADERS,
            request_class=_sent_request_class(self._on_sent) if self._on_sent else ClientRequest,
        )
        return self

    def _timeout(self, total: float) -> aiohttp.ClientTimeout:
        """The timeouts of a request whose whole exchange must end within ``total`` seconds
        (the connect and read timeouts never exceed it)."""
        s = self.settings
        return aiohttp.ClientTimeout(
            total=total,
            sock_connect=min(s.connect_timeout, total),
            sock_read=min(s.read_timeout, total),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.browser is not None:
                await self.browser.close()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    def _cookie_jar(self) -> aiohttp.abc.AbstractCookieJar:
        if not self.settings.cookies:
            return aiohttp.DummyCookieJar()
        # unsafe=True: crawls often target IP-address hosts, which the default jar ignores.
        # The subclass refuses cookies scoped to a public suffix (Domain=co.uk).
        return SafeCookieJar(unsafe=True)

    def _resolver(self) -> aiohttp.abc.AbstractResolver | None:
        if not self._block_private:
            return self._base_resolver
        proxy_host = URL(self.settings.proxy).host if self.settings.proxy else None
        # The configured proxy is resolved as it is: it is often on a private address, and
        # the target host names are then resolved by the proxy, out of our reach.
        return GuardedResolver(
            self._base_resolver or aiohttp.DefaultResolver(),
            exempt=[proxy_host] if proxy_host else (),
        )

    def browser_busy(self, request: Request) -> bool:
        """Whether ``request`` is to be rendered and every browser page is taken: the engine
        then puts it back for a moment rather than let a worker wait (plain requests go on)."""
        browser = self.browser
        return (
            browser is not None
            and (self._render_default or request.has_meta)  # cheap: most requests stop here
            and browser.full
            and renders(request, self._render_default)
        )

    @property
    def holds_pages(self) -> bool:
        """Whether a browser page handed to a callback (``meta["browser_page"]``) is open."""
        return self.browser is not None and self.browser.holds_pages

    async def release_page(self, request: Request) -> None:
        """Close the browser page handed to ``request``'s callback, if any."""
        if self.browser is not None:
            await self.browser.release(request)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Downloader used outside its 'async with' block")
        return self._session

    async def fetch(self, request: Request, *, truncate: int | None = None) -> Response:
        """Perform one HTTP exchange for ``request`` (no redirect following).

        Returns the Response with its whole (decompressed) body, whatever the status. Raises a
        :class:`~crawler.errors.DownloadError` subclass on any failure. With ``truncate``, the
        body is cut after that many decoded bytes and the rest is not read (robots.txt), so
        a larger body is not an error.

        A request to render (see :func:`crawler.browser.renders`) is a navigation in the
        browser pool instead, never with ``truncate``.
        """
        if self.browser is not None and truncate is None and (
            self._render_default or request.has_meta
        ) and renders(request, self._render_default):
            if self._on_sent is not None:  # the navigation starts now
                self._on_sent(host_key(request.yurl))
            return await self.browser.fetch(request)
        url = request.url
        yurl = request.yurl
        if self._block_private and blocked_literal(yurl.raw_host or ""):
            # aiohttp never asks the resolver about an IP literal: checked here.
            raise BlockedAddress(url, f"{yurl.raw_host} is a blocked address")
        kwargs: dict[str, Any] = {"allow_redirects": False}
        if request.headers:
            kwargs["headers"] = request.headers
        if request.body:
            kwargs["data"] = request.body
        if request.has_meta:
            meta = request.meta
            proxy = meta.get("proxy")
            if proxy:
                kwargs["proxy"] = proxy
            deadline = meta.get("download_timeout")  # Scrapy's key: this request's deadline
            if deadline:
                kwargs["timeout"] = self._timeout(float(deadline))
        started = time.monotonic()
        try:
            async with self.session.request(request.method, yurl, **kwargs) as resp:
                if truncate is None:
                    body = await self._read_body(resp, url)
                else:
                    body = await self._read_prefix(resp, url, truncate)
                status = resp.status
                headers = resp.headers
        except BlockedAddress as exc:
            if exc.url == url:
                raise
            raise BlockedAddress(url, exc.detail) from None  # the resolver only knew the host
        except DownloadError:
            if truncate is None:
                self.stats.host_failed(host_key(yurl))
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if truncate is None:
                self.stats.host_failed(host_key(yurl))
            raise _translate(exc, url) from exc
        self.stats.inc("bytes", len(body))
        if truncate is None:  # pages, not robots.txt: per-host figures for the report
            self.stats.host_response(host_key(yurl), status, time.monotonic() - started)
        # Redirects are not followed here, so the response URL is the request's.
        return Response(url, status, headers, body, request, stats=self.stats)

    async def _read_body(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        limit = self._limit
        length = resp.content_length
        if length is not None and length > limit:
            raise ResponseTooLarge(url, f"Content-Length {length} over max_response_size {limit}")
        encoding = resp.headers.get("Content-Encoding")
        if (encoding is None or encoding.strip().lower() == "identity") and length is not None:
            # Fast path: the size is known and allowed; aiohttp checks the length it reads.
            return await resp.read()
        decoder = BodyDecoder(encoding, limit, url)
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > limit:
                raise ResponseTooLarge(url, f"body over max_response_size {limit} bytes")
            out = decoder.feed(chunk)
            if out:
                chunks.append(out)
        tail = decoder.finish()
        if tail:
            chunks.append(tail)
        return b"".join(chunks)

    async def _read_prefix(self, resp: aiohttp.ClientResponse, url: str, size: int) -> bytes:
        """The first ``size`` decoded bytes of the body; reading stops there."""
        # Room past `size` so the chunk that crosses it is kept rather than refused; a
        # compressed chunk inflating beyond that ends the prefix at the chunks before it.
        decoder = BodyDecoder(resp.headers.get("Content-Encoding"), size + (1 << 20), url)
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in resp.content.iter_any():
                out = decoder.feed(chunk)
                chunks.append(out)
                total += len(out)
                if total >= size:
                    break
            else:
                decoder.finish()
        except ResponseTooLarge:
            pass
        return b"".join(chunks)[:size]


def _sent_request_class(on_sent: Callable[[str], None]) -> type[ClientRequest]:
    """aiohttp's request class, calling ``on_sent`` with the slot key once the request line
    and headers are written (for a body, once its writing started). A subclass rather than a
    ``TraceConfig``: a trace makes aiohttp await a dozen signals per request, and this is the
    only one the crawl needs."""

    class SentRequest(ClientRequest):
        async def send(self, conn: Connection) -> ClientResponse:
            response = await super().send(conn)
            on_sent(host_key(self.url))
            return response

    return SentRequest


def _translate(exc: BaseException, url: str) -> DownloadError | InvalidURL:
    """The project's exception for an aiohttp/OS/asyncio one."""
    detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return DownloadTimeout(url, f"connect timeout ({detail})")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return DownloadTimeout(url, f"read timeout ({detail})")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return DownloadTimeout(url, "total deadline passed")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProtocolError(url, f"truncated or malformed body ({detail})")
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp reports unparsable status lines and headers as response errors, with a
        # multi-line message quoting the bad bytes: one line of it is enough for a log.
        message = " ".join(str(exc.message or detail).split())
        if len(message) > 200:
            message = message[:200] + "..."
        return ProtocolError(url, f"malformed response ({message})")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = ConnectError(url, f"TLS certificate not valid ({detail})")
        error.retryable = False  # the same certificate would fail again
        return error
    if isinstance(exc, (aiohttp.InvalidUrlClientError, aiohttp.NonHttpUrlClientError)):
        return InvalidURL(url, detail)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
            return OutOfFiles(url, detail)
        error = ConnectError(url, detail)
        error.unreachable = _unreachable(exc)
        return error
    if isinstance(exc, (ValueError, UnicodeError)):
        return ProtocolError(url, detail)
    return DownloadError(url, detail)


def _unreachable(exc: BaseException) -> str:
    """Why a host cannot be reached at all (refused, or its name does not resolve), or ""
    for a connection error that says nothing about the host (a reset, a timeout)."""
    os_error = getattr(exc, "os_error", exc)
    if isinstance(os_error, socket.gaierror):
        return f"name does not resolve ({os_error.strerror or os_error})"
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    return ""
