"""The second downloader: pages rendered in Chromium through Playwright.

A request is rendered when its ``meta["browser"]`` (or scrapy-playwright's
``meta["playwright"]``) is true, or, when the request says nothing, when the spider's
``browser`` attribute or the ``browser`` setting is. It goes through the same frontier,
duplicate filter, robots.txt, per-host slot, middlewares, retries and stats as any other: only
the one exchange the downloader performs is replaced by a navigation in a browser page.

The pool (:class:`BrowserPool`): one Chromium per crawl, started by the first rendered request
(a crawl that renders nothing never imports Playwright); at most ``browser_concurrency`` pages
at once; one browser context per crawl and proxy, holding the cookies, renewed after
``browser_recycle_pages`` pages with its cookies and local storage carried over; a new page per
request, closed after it. A crashed renderer or browser, or a page that does not close, costs
the requests in flight a retry and the browser a restart; it never stalls the crawl.

Request options, all in ``meta`` and all plain JSON (so a durable or shared frontier stores
them): ``browser_wait`` (``commit``, ``domcontentloaded``, ``load``, ``networkidle``),
``browser_wait_for`` (a CSS selector), ``browser_timeout`` (this request's total deadline;
``download_timeout`` and the ``timeout`` setting otherwise), ``browser_actions`` (see
:func:`run_action`), ``browser_screenshot`` / ``browser_pdf`` (true, or
``{"full_page": false}`` for a screenshot; the path lands in ``meta["screenshot"]`` /
``meta["pdf"]``), ``browser_page`` (``response.page`` is the live page, closed after the
callback; scrapy-playwright's ``playwright_include_page`` too) and scrapy-playwright's
``playwright_page_methods`` (objects with ``method``, ``args`` and ``kwargs``).

Why one module of about 860 lines: most of it is :class:`BrowserPool`, one class whose parts
(launching and restarting Chromium, the contexts per proxy and their recycling with the
storage carried over, the page per request with its routes, waits, actions and the exchange it
returns) share the same lock, browser, contexts and page states, and are correct only
together: a restart must see every context and page in flight. Cut in two, each half would
reach into the other's state. What stands apart is small and next to its one user: finding
the executable (:func:`find_executable`, :func:`check_browser`), the page actions
(:func:`run_action`, which works on the pool's page state) and the translation of Playwright's
errors and headers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import (
    BlockedAddress,
    BrowserError,
    BrowserUnavailable,
    ConnectError,
    DownloadError,
    DownloadTimeout,
    ProtocolError,
    RedirectError,
    ResponseTooLarge,
)
from .http import Request, Response
from .netguard import blocked_literal, is_blocked_ip
from .settings import Settings
from .stats import Stats

if TYPE_CHECKING:
    from playwright._impl._api_structures import SetCookieParam, StorageStateCookie
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, StorageState
    from playwright.async_api import Response as PageResponse

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "BROWSER_NAMES",
    "LAUNCH_ARGS",
    "BrowserPool",
    "check_browser",
    "find_executable",
    "renders",
]

#: Executables looked for on PATH when ``browser_executable`` is not set, in this order.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Chromium's own background traffic (updates, sync, field trials, QUIC probes) is useless to a
#: crawl and is refused by closed networks: turned off.
LAUNCH_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB: renderers would crash
)
#: The page actions :func:`run_action` knows.
ACTIONS = ("click", "fill", "scroll", "evaluate", "wait", "wait_for")

_INSTALL = (
    "pip install 'crawler[browser]' for Playwright, and a Chromium from the system's "
    "packages (apt-get install chromium), or set browser_executable"
)
# How long closing a page or a browser may take before it counts as hung.
_CLOSE_TIMEOUT = 5.0
_LAUNCH_TIMEOUT = 30.0
# Network quiet for this long counts as idle (as Playwright's networkidle).
_QUIET = 0.5
# networkidle is the load event and then this module's own quiet-network wait (capped).
_WAIT_UNTIL: dict[str, Literal["commit", "domcontentloaded", "load"]] = {
    "commit": "commit", "domcontentloaded": "domcontentloaded", "load": "load",
    "networkidle": "load",
}
_DROPPED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def renders(request: Request, default: bool) -> bool:
    """Whether ``request`` is rendered in the browser: its ``meta["browser"]`` or
    ``meta["playwright"]`` when set, else ``default`` (the spider's or the crawl's)."""
    if request.has_meta:
        meta = request.meta
        value = meta.get("browser")
        if value is None:
            value = meta.get("playwright")
        if value is not None:
            return bool(value)
    return default


def find_executable(configured: str | None) -> str:
    """The Chromium to drive: ``browser_executable`` when set, else the first of
    :data:`BROWSER_NAMES` on PATH. Raises :class:`BrowserUnavailable` naming what to
    install."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise BrowserUnavailable(
                f"browser_executable {configured!r} is not an executable file; {_INSTALL}"
            )
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise BrowserUnavailable(
        f"pages are to be rendered but no Chromium was found on PATH "
        f"({', '.join(BROWSER_NAMES)}); {_INSTALL}"
    )


def check_browser(settings: Settings) -> str:
    """Check, without starting anything, that Playwright and a Chromium are installed;
    returns the executable. Raises :class:`BrowserUnavailable` naming what is missing."""
    if importlib.util.find_spec("playwright") is None:
        raise BrowserUnavailable(f"pages are to be rendered but Playwright is not installed; "
                                 f"{_INSTALL}")
    return find_executable(settings.browser_executable)


@dataclass(slots=True)
class _Context:
    """One browser context: its pages share cookies. Retired after ``recycle`` pages and
    closed when its last page is."""

    context: BrowserContext
    proxy: str | None
    generation: int
    opened: int = 0
    active: int = 0
    retired: bool = False
    idle: list[_Tab] = field(default_factory=list)


def _overrides(request: Request) -> bool:
    """Whether the request's first navigation needs its own method, body or headers."""
    return request.method != "GET" or bool(request.body) or bool(request.headers)


@dataclass(slots=True)
class _PageState:
    """What the page's events tell while a request renders."""

    crashed: bool = False
    inflight: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    console_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Tab:
    """A page and the state of the request it serves now (its listeners read ``state``)."""

    page: Page
    state: _PageState = field(default_factory=_PageState)


class BrowserPool:
    """One Chromium per crawl, started by the first :meth:`fetch`; use as an async context
    manager (the exit closes the browser). ``files_dir`` is where screenshots and PDFs go.

    :meth:`fetch` renders one request and returns the :class:`~crawler.http.Response`: the
    DOM after the page settled, with the main navigation's status and headers, and the
    page's URL. It raises :class:`BrowserUnavailable` when no browser can be started, and a
    :class:`~crawler.errors.DownloadError` for anything else that fails.
    """

    def __init__(self, settings: Settings, stats: Stats, *, files_dir: Path) -> None:
        self.settings = settings
        self.stats = stats
        self.files_dir = files_dir
        self._limit = asyncio.Semaphore(min(settings.browser_concurrency, settings.concurrency))
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._generation = 0
        self._contexts: dict[str | None, _Context] = {}
        self._unavailable: BrowserUnavailable | None = None
        self._held: dict[Request, tuple[_Tab, _Context]] = {}
        self._blocked = frozenset(settings.browser_block_resources)
        self._block_private = settings.block_private_addresses
        self._proxy_host = URL(settings.proxy).host if settings.proxy else None
        self._resolved: dict[str, bool] = {}
        self._carried: dict[str | None, StorageState] = {}  # storage state of a retired context

    async def __aenter__(self) -> BrowserPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def started(self) -> bool:
        """Whether the browser runs (it starts with the first rendered request)."""
        return self._browser is not None

    @property
    def full(self) -> bool:
        """Whether every one of the ``browser_concurrency`` pages is taken."""
        return self._limit.locked()

    @property
    def holds_pages(self) -> bool:
        """Whether a page handed to a callback (``browser_page``) is still open."""
        return bool(self._held)

    async def close(self) -> None:
        for request in list(self._held):
            await self.release(request)
        await self._stop_browser()
        if self._playwright is not None:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self._playwright.stop()
            except Exception as exc:  # shutting down: nothing left to save
                logger.warning("Stopping Playwright failed: %s", exc)
            self._playwright = None

    # ------------------------------------------------------------------ the browser

    async def _start(self) -> Browser:
        """The running browser; the first call (and the first after a crash) launches it."""
        async with self._lock:
            browser = self._browser
            if browser is not None and browser.is_connected():
                return browser
            if self._unavailable is not None:
                raise self._unavailable
            first = self._generation == 0
            if browser is not None:
                await self._stop_browser()
            try:
                self._browser = await self._launch()
            except BrowserUnavailable as exc:
                if first:
                    self._unavailable = exc
                    logger.error("%s", exc)
                raise
            self._generation += 1
            if not first:
                self.stats.inc("browser/restarts")
                logger.warning("Browser restarted (restart %d)", self._generation - 1)
            self._browser.on("disconnected", self._on_disconnected)
            return self._browser

    async def _launch(self) -> Browser:
        executable = check_browser(self.settings)
        if self._playwright is None:
            from playwright.async_api import async_playwright

            self._playwright = await async_playwright().start()
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if root and self._generation == 0:
            logger.warning("Running as root: Chromium is started with --no-sandbox (its renderer "
                           "sandbox cannot run as root); run as another user to keep it")
        options: dict[str, Any] = {
            "executable_path": executable,
            "headless": True,
            "chromium_sandbox": not root,
            "args": list(LAUNCH_ARGS),
            "handle_sigint": False,  # the crawl's own signal handling stops it gracefully
            "handle_sigterm": False,
        }
        proxy = self._proxy(self.settings.proxy)
        if proxy is not None:
            options["proxy"] = proxy
        from playwright.async_api import Error as PlaywrightError

        try:
            async with asyncio.timeout(_LAUNCH_TIMEOUT):
                browser = await self._playwright.chromium.launch(**options)
        except (PlaywrightError, TimeoutError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else "timed out"
            raise BrowserUnavailable(f"Chromium ({executable}) did not start: {message}; "
                                     f"{_INSTALL}") from exc
        logger.info("Browser started: Chromium %s (%s)", browser.version, executable)
        self.stats.inc("browser/launches")
        return browser

    def _on_disconnected(self, browser: Browser) -> None:
        if browser is self._browser:
            self.stats.inc("browser/disconnects")
            logger.warning("The browser went away (crashed or killed): restarting it on the "
                           "next rendered request")
            self._contexts.clear()

    async def _stop_browser(self) -> None:
        browser, self._browser = self._browser, None
        self._contexts.clear()
        if browser is None:
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await browser.close()
        except Exception as exc:
            # A hung browser: stopping the Playwright driver kills the processes it launched.
            logger.warning("Closing the browser failed (%s): stopping its driver", exc)
            playwright, self._playwright = self._playwright, None
            if playwright is not None:
                try:
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await playwright.stop()
                except Exception as stop_exc:
                    logger.warning("Stopping Playwright failed: %s", stop_exc)

    def _proxy(self, url: str | None) -> dict[str, str] | None:
        if not url:
            return None
        parsed = URL(url)
        proxy = {
            "server": str(parsed.with_user(None).with_path("")),
            # Chromium sends nothing to localhost through a proxy unless told so; the
            # crawl's proxy is for every request.
            "bypass": "<-loopback>",
        }
        if parsed.user:
            proxy["username"] = parsed.user
            proxy["password"] = parsed.password or ""
        return proxy

    async def _context(self, proxy: str | None) -> _Context:
        browser = await self._start()
        ctx = self._contexts.get(proxy)
        if ctx is not None and not ctx.retired and ctx.generation == self._generation:
            return ctx
        async with self._lock:
            ctx = self._contexts.get(proxy)
            if ctx is not None and not ctx.retired and ctx.generation == self._generation:
                return ctx
            s = self.settings
            headers = {k: v for k, v in s.default_headers.items() if k.lower() != "accept"}
            options: dict[str, Any] = {
                "user_agent": s.user_agent,
                "ignore_https_errors": not s.verify_tls,
                "accept_downloads": False,
                "service_workers": "block",  # they would answer requests out of the routes' reach
                "extra_http_headers": headers,
            }
            # On the context too, not only at launch: route.fetch (block_private_addresses)
            # goes through the context's proxy only.
            context_proxy = self._proxy(proxy or s.proxy)
            if context_proxy is not None:
                options["proxy"] = context_proxy
            carried = self._carried.pop(proxy, None)
            if carried is not None and s.cookies:
                options["storage_state"] = carried
            context = await browser.new_context(**options)
            if self._blocked or self._block_private:
                await context.route("**/*", self._route)
            ctx = _Context(context, proxy, self._generation)
            self._contexts[proxy] = ctx
            self.stats.inc("browser/contexts")
            return ctx

    async def _route(self, route: Route) -> None:
        """Every request the browser makes: blocked resource types and, with
        ``block_private_addresses``, hosts that resolve to private addresses are refused."""
        request = route.request
        if request.resource_type in self._blocked:
            self.stats.inc("browser/blocked_resources")
            await route.abort("blockedbyclient")
            return
        if not self._block_private:
            await route.fallback()
            return
        if await self._private(request.url):
            await self._refuse(route, request.url)
            return
        # Routes never see the hops of a redirect the browser follows: the chain is walked
        # here first, every target checked, and the first answer handed to the browser.
        first = await route.fetch(max_redirects=0)
        response, url = first, request.url
        for _ in range(self.settings.max_redirects):
            location = response.headers.get("location")
            if not (300 <= response.status < 400 and location):
                break
            url = str(URL(url, encoded=True).join(URL(location)))
            if await self._private(url):
                await self._refuse(route, url)
                return
            response = await route.fetch(url=url, max_redirects=0)
        await route.fulfill(response=first)

    async def _refuse(self, route: Route, url: str) -> None:
        self.stats.inc("browser/blocked_addresses")
        logger.debug("Browser request to a blocked address refused: %s", url)
        await route.abort("addressunreachable")

    async def _private(self, url: str) -> bool:
        """Whether ``url``'s host is, or resolves only to, blocked addresses (the configured
        proxy is exempt, as in the HTTP downloader)."""
        host = URL(url, encoded=True).raw_host or ""
        if not host or URL(url, encoded=True).scheme not in ("http", "https", "ws", "wss"):
            return False
        if host == self._proxy_host:
            return False
        if blocked_literal(host):
            return True
        known = self._resolved.get(host)
        if known is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
            except OSError:
                return False  # unresolvable: the browser's own lookup fails too
            known = all(is_blocked_ip(str(info[4][0])) for info in infos)
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[host] = known
        return known

    # ------------------------------------------------------------------ one request

    async def fetch(self, request: Request) -> Response:
        """Render ``request`` (see the class docstring)."""
        if self._unavailable is not None:
            raise self._unavailable
        meta = request.meta
        deadline = float(
            meta.get("browser_timeout") or meta.get("download_timeout") or self.settings.timeout
        )
        keep = bool(meta.get("browser_page") or meta.get("playwright_include_page"))
        await self._limit.acquire()  # waiting for a free page is not part of the deadline
        ctx: _Context | None = None
        tab: _Tab | None = None
        state = _PageState()
        handed = reuse = False
        try:
            try:
                ctx = await self._context(meta.get("proxy"))
            except BrowserUnavailable as exc:
                if self._unavailable is not None:
                    raise
                # It ran before: a failed restart is this request's failure, retried later.
                raise BrowserError(request.url, f"the browser could not be restarted: {exc}"
                                   ) from exc
            except Exception as exc:  # the browser went away while a context was made
                raise self._translate(exc, request.url, state) from exc
            ctx.active += 1
            ctx.opened += 1
            if ctx.opened >= self.settings.browser_recycle_pages or not self.settings.cookies:
                self._retire(ctx)
            try:
                async with asyncio.timeout(deadline):
                    tab = await self._tab(ctx)
                    tab.state = state
                    response = await self._render(tab.page, request, state)
            except TimeoutError:
                self.stats.inc("browser/timeouts")
                raise DownloadTimeout(
                    request.url, f"page not rendered within its {deadline:g} s deadline"
                ) from None
            except DownloadError:
                raise
            except Exception as exc:
                raise self._translate(exc, request.url, state) from exc
            if keep:
                response.page = tab.page
                self._held[request] = (tab, ctx)
                handed = True
            # A page that did its work is navigated again by the next request; one that
            # failed, carried a request's own method or headers, or was handed out is closed.
            reuse = not handed and not _overrides(request)
            return response
        finally:
            if state.console_errors:
                self.stats.inc("browser/console_errors", len(state.console_errors))
            if not handed:
                await self._put_back(tab, ctx, reuse)
                self._limit.release()

    async def release(self, request: Request) -> None:
        """Close the page handed to ``request``'s callback (``browser_page``), if any."""
        held = self._held.pop(request, None)
        if held is None:
            return
        tab, ctx = held
        try:
            await self._put_back(tab, ctx, reuse=False)
        finally:
            self._limit.release()

    async def _tab(self, ctx: _Context) -> _Tab:
        """An idle page of ``ctx``, or a new one (a new page costs a renderer process)."""
        while ctx.idle:
            tab = ctx.idle.pop()
            if not tab.page.is_closed():
                return tab
        page = await ctx.context.new_page()
        tab = _Tab(page)
        self._watch(tab)
        return tab

    async def _put_back(self, tab: _Tab | None, ctx: _Context | None, reuse: bool) -> None:
        """The page is done: idle for the next request (``reuse``) or closed; a retired
        context whose last page this was hands its cookies over and closes."""
        if ctx is None:
            return
        ctx.active -= 1
        try:
            if tab is not None:
                page = tab.page
                keep = (reuse and not ctx.retired and not tab.state.crashed
                        and ctx.generation == self._generation and not page.is_closed())
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    if keep:
                        # about:blank stops the page's scripts and timers while it waits.
                        await page.goto("about:blank", timeout=0)
                        ctx.idle.append(tab)
                    else:
                        await page.close()
            if ctx.retired and ctx.active == 0:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self._hand_over(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if ctx.generation != self._generation or self._browser is None:
                return  # the browser this page belonged to is gone already
            if tab is not None and tab.state.crashed:
                return
            # A page or context that does not close: the browser is hung. A new one for the
            # requests to come; the ones in flight on the old one fail and are retried.
            self.stats.inc("browser/hung")
            logger.warning("A browser page did not close (%s: %s): restarting the browser",
                           type(exc).__name__, exc)
            async with self._lock:
                if ctx.generation == self._generation:
                    await self._stop_browser()

    def _retire(self, ctx: _Context) -> None:
        """Give out no more pages of ``ctx``: the next request opens a new context. Its
        cookies and local storage go over when its last page closes (:meth:`_hand_over`)."""
        ctx.retired = True
        if self._contexts.get(ctx.proxy) is ctx:
            del self._contexts[ctx.proxy]

    async def _hand_over(self, ctx: _Context) -> None:
        """A retired context's state to its successor (or to the next one made), then close
        it."""
        if self.settings.cookies:
            state = await ctx.context.storage_state()
            successor = self._contexts.get(ctx.proxy)
            if successor is not None and successor.generation == ctx.generation:
                cookies = state.get("cookies")
                if cookies:
                    await successor.context.add_cookies(_cookie_params(cookies))
            else:
                self._carried[ctx.proxy] = _merged(self._carried.get(ctx.proxy), state)
        await ctx.context.close()

    def _watch(self, tab: _Tab) -> None:
        """Listen to the page's events once; they go to the state of the request it serves."""

        def on_request(_: Any) -> None:
            state = tab.state
            state.inflight += 1
            state.last_activity = time.monotonic()

        def on_done(_: Any) -> None:
            state = tab.state
            state.inflight = max(0, state.inflight - 1)
            state.last_activity = time.monotonic()

        def on_console(message: Any) -> None:
            # Resources refused on purpose (browser_block_resources) are not the page's errors.
            if message.type == "error" and "ERR_BLOCKED_BY_CLIENT" not in message.text:
                tab.state.console_errors.append(message.text)

        def on_crash(_: Any) -> None:
            tab.state.crashed = True

        page = tab.page
        page.on("request", on_request)
        page.on("requestfinished", on_done)
        page.on("requestfailed", on_done)
        page.on("console", on_console)
        page.on("pageerror", lambda error: tab.state.console_errors.append(str(error)))
        page.on("crash", on_crash)

    async def _render(self, page: Page, request: Request, state: _PageState) -> Response:
        meta = request.meta
        if _overrides(request):
            await self._navigation_overrides(page, request)
        wait = str(meta.get("browser_wait") or self.settings.browser_wait)
        until = _WAIT_UNTIL.get(wait)
        if until is None:
            error = BrowserError(request.url, f"browser_wait {wait!r} is not one of "
                                              f"{', '.join(_WAIT_UNTIL)}")
            error.retryable = False
            raise error
        navigation = await page.goto(request.url, wait_until=until, timeout=0)
        if navigation is None:
            raise ProtocolError(request.url, "the browser made no request for this URL")
        if wait == "networkidle":
            await self._settle(state)
        selector = meta.get("browser_wait_for")
        if selector:
            await page.wait_for_selector(str(selector), state="attached", timeout=0)
        results: list[Any] = []
        for action in meta.get("browser_actions") or ():
            result = await run_action(page, action, state, self._settle, request.url)
            if result is not None:
                results.append(result)
        for method in meta.get("playwright_page_methods") or ():
            result = await _page_method(page, method, request.url)
            if result is not None:
                results.append(result)
        if results:
            meta["browser_results"] = results
        if state.crashed:
            self.stats.inc("browser/crashes")
            raise BrowserError(request.url, "the page's renderer crashed")
        await self._save_files(page, request)
        content = await page.content()
        body = content.encode("utf-8")
        if len(body) > self.settings.max_response_size:
            raise ResponseTooLarge(request.url, f"rendered DOM of {len(body)} bytes over "
                                                f"max_response_size")
        self._count_redirects(request, navigation)
        if state.console_errors:
            meta["browser_console_errors"] = state.console_errors[:100]
        self.stats.inc("browser/pages")
        self.stats.inc("bytes", len(body))
        headers = await _headers(navigation)
        return Response(page.url, navigation.status, headers, body, request, stats=self.stats)

    async def _navigation_overrides(self, page: Page, request: Request) -> None:
        """The request's method, body and headers go with its first navigation only."""
        pending = [True]

        async def override(route: Route) -> None:
            if pending[0] and route.request.is_navigation_request() and (
                route.request.frame == page.main_frame
            ):
                pending[0] = False
                headers = {**route.request.headers, **{k.lower(): v for k, v in
                                                        request.headers.items()}}
                await route.fallback(
                    method=request.method, headers=headers, post_data=request.body or None
                )
                return
            await route.fallback()

        await page.route("**/*", override)

    async def _settle(self, state: _PageState) -> None:
        """Wait until the page made no request for :data:`_QUIET` seconds, at most
        ``browser_idle_timeout``; a page that keeps polling is read as it is then."""
        cap = time.monotonic() + self.settings.browser_idle_timeout
        while True:
            now = time.monotonic()
            quiet_for = now - state.last_activity
            if (state.inflight == 0 and quiet_for >= _QUIET) or state.crashed:
                return
            if now >= cap:
                self.stats.inc("browser/idle_capped")
                return
            await asyncio.sleep(min(0.1, cap - now))

    def _count_redirects(self, request: Request, navigation: PageResponse) -> None:
        chain: list[str] = []
        hop = navigation.request.redirected_from
        while hop is not None:
            chain.append(hop.url)
            hop = hop.redirected_from
        if not chain:
            return
        chain.reverse()
        meta = request.meta
        urls = [*meta.get("redirect_urls", ()), *chain]
        if len(urls) > self.settings.max_redirects:
            raise RedirectError(request.url,
                                f"more than max_redirects={self.settings.max_redirects}")
        meta["redirect_urls"] = urls
        self.stats.inc("redirects", len(chain))
        self.stats.inc("redirects/browser", len(chain))

    async def _save_files(self, page: Page, request: Request) -> None:
        meta = request.meta
        shot = meta.get("browser_screenshot")
        pdf = meta.get("browser_pdf")
        if not shot and not pdf:
            return
        self.files_dir.mkdir(parents=True, exist_ok=True)
        name = request.fingerprint.hex()[:20]
        if shot:
            options = shot if isinstance(shot, dict) else {}
            path = self.files_dir / f"{name}.png"
            await page.screenshot(path=str(path), full_page=bool(options.get("full_page", True)),
                                  timeout=0)
            meta["screenshot"] = str(path)
            self.stats.inc("browser/screenshots")
        if pdf:
            path = self.files_dir / f"{name}.pdf"
            await page.pdf(path=str(path))
            meta["pdf"] = str(path)
            self.stats.inc("browser/pdfs")

    def _translate(self, exc: BaseException, url: str, state: _PageState) -> DownloadError:
        """The project's exception for a Playwright one."""
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        lower = text.lower()
        if state.crashed or "crash" in lower:
            self.stats.inc("browser/crashes")
            return BrowserError(url, "the page's renderer crashed")
        if "has been closed" in lower or "target closed" in lower or (
            self._browser is not None and not self._browser.is_connected()
        ):
            self.stats.inc("browser/crashes")
            return BrowserError(url, f"the page or the browser went away ({first})")
        if "download is starting" in lower:
            error: DownloadError = BrowserError(url, "the page is a download; downloads are "
                                                     "refused in the browser")
            error.retryable = False
            return error
        if "err_blocked_by_client" in lower or "err_address_unreachable" in lower:
            if self._block_private:
                return BlockedAddress(url, "the host is a blocked address")
            error = BrowserError(url, f"the browser refused the page ({first})")
            error.retryable = False
            return error
        if "err_timed_out" in lower:
            return DownloadTimeout(url, first)
        if "net::err_cert" in lower or "err_ssl" in lower:
            error = ConnectError(url, f"TLS error in the browser ({first})")
            error.retryable = False
            return error
        if "net::err_" in lower:
            return ConnectError(url, first)
        return BrowserError(url, first)


async def run_action(
    page: Page,
    action: Any,
    state: _PageState,
    settle: Callable[[_PageState], Any],
    url: str,
) -> Any:
    """Run one page action, a JSON object with one of these keys:

    - ``{"click": "css"}``: click the element, then wait for the network to go quiet;
    - ``{"fill": "css", "value": "text"}``: type into a form field;
    - ``{"scroll": N}``: scroll to the bottom N times, waiting for the network to go quiet
      after each (infinite scroll); ``true`` is once;
    - ``{"evaluate": "js expression"}``: its JSON result goes to ``meta["browser_results"]``;
    - ``{"wait": seconds}``: sleep;
    - ``{"wait_for": "css"}``: wait until the element is in the DOM.

    Returns what ``evaluate`` gave, else None. An unknown action is a
    :class:`~crawler.errors.BrowserError` that is not retried.
    """
    if not isinstance(action, dict) or len(set(action) & set(ACTIONS)) != 1:
        error = BrowserError(url, f"page action {action!r} must be an object with one of "
                                  f"the keys {', '.join(ACTIONS)}")
        error.retryable = False
        raise error
    if "click" in action:
        await page.click(str(action["click"]), timeout=0)
        await settle(state)
    elif "fill" in action:
        await page.fill(str(action["fill"]), str(action.get("value", "")), timeout=0)
    elif "scroll" in action:
        times = 1 if action["scroll"] is True else int(action["scroll"])
        for _ in range(times):
            await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            # The page's scroll handler starts its request on a later tick.
            await asyncio.sleep(0.05)
            await settle(state)
    elif "evaluate" in action:
        return await page.evaluate(str(action["evaluate"]))
    elif "wait" in action:
        await asyncio.sleep(float(action["wait"]))
    else:
        await page.wait_for_selector(str(action["wait_for"]), state="attached", timeout=0)
    return None


async def _page_method(page: Page, method: Any, url: str) -> Any:
    """scrapy-playwright's ``PageMethod``: ``page.<method>(*args, **kwargs)``, awaited."""
    name = getattr(method, "method", None)
    target = getattr(page, name, None) if isinstance(name, str) and not name.startswith("_") \
        else None
    if not callable(target):
        error = BrowserError(url, f"playwright_page_methods: {method!r} names no page method")
        error.retryable = False
        raise error
    result = target(*getattr(method, "args", ()), **getattr(method, "kwargs", {}))
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    method.result = result  # as scrapy-playwright does
    return None


def _merged(older: StorageState | None, newer: StorageState) -> StorageState:
    """Two retired contexts' states as one (contexts retired side by side each hold the
    cookies their own pages got): the newer cookie wins per name, domain and path."""
    if older is None:
        return newer
    cookies = {(c["name"], c["domain"], c["path"]): c for c in older.get("cookies", [])}
    cookies.update({(c["name"], c["domain"], c["path"]): c for c in newer.get("cookies", [])})
    origins = {o["origin"]: o for o in older.get("origins", [])}
    origins.update({o["origin"]: o for o in newer.get("origins", [])})
    return {"cookies": list(cookies.values()), "origins": list(origins.values())}


def _cookie_params(cookies: list[StorageStateCookie]) -> list[SetCookieParam]:
    """A saved context's cookies in the form a new context takes them."""
    out: list[SetCookieParam] = []
    for c in cookies:
        param: SetCookieParam = {
            "name": c["name"], "value": c["value"], "domain": c["domain"], "path": c["path"],
            "expires": c["expires"], "httpOnly": c["httpOnly"], "secure": c["secure"],
            "sameSite": c["sameSite"],
        }
        out.append(param)
    return out


async def _headers(navigation: PageResponse) -> CIMultiDictProxy[str]:
    """The main navigation's headers, describing the body handed on: the DOM as UTF-8."""
    headers: CIMultiDict[str] = CIMultiDict()
    for pair in await navigation.headers_array():
        if pair["name"].lower() not in _DROPPED_HEADERS:
            headers.add(pair["name"], pair["value"])
    ctype = headers.get("Content-Type", "text/html").split(";")[0].strip() or "text/html"
    headers["Content-Type"] = f"{ctype}; charset=utf-8"
    return CIMultiDictProxy(headers)
