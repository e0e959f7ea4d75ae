"""The demo site: a deterministic local web site for ``crawler demo``, the README's examples
and the benchmarks.

One aiohttp application serves, on 127.0.0.1 only (never on a public address):

* ``/`` — the bookstore of :mod:`crawler.demobooks` (books.toscrape.com's HTML);
* ``/quotes/`` — the quotes site of :mod:`crawler.demoquotes` (quotes.toscrape.com's);
* ``/shop/`` — the scalable shop of :mod:`crawler.demoshop`;
* ``/links?n=K`` — a page of K links ``/page/0`` .. ``/page/{K-1}``; ``/page/{name}`` (any name)
  a small page whose ``h1.page`` says ``Page {name}``.

Everything is derived from integers by string formatting, so pages cost microseconds and the
same page is byte-identical across runs. Every request is recorded in :class:`SiteStats`
(hits per path, in-flight per host and overall with their maxima, a log).

Use it as ``async with DemoSite() as site: ... site.url ...``, from sync code (subprocess
tests, the CLI demo) as ``with run_in_thread() as site: ...``, or standalone with
``python -m crawler.demosite --port 8000``. Tests extend it (fault endpoints, canned
responses) by subclassing and with ``routes=``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import html
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from .demobooks import CATEGORIES, Bookstore, expected_books
from .demoquotes import QUOTES_CSRF_TOKEN, QuotesSite, expected_quotes
from .demoshop import Shop, expected_shop_items, write_static_shop

__all__ = [
    "CATEGORIES",
    "QUOTES_CSRF_TOKEN",
    "DemoSite",
    "Hit",
    "QuotesSite",
    "SiteStats",
    "expected_books",
    "expected_quotes",
    "expected_shop_items",
    "html_page",
    "int_param",
    "main",
    "quotes_routes",
    "run_in_thread",
    "serve_in_thread",
    "write_static_shop",
]

logger = logging.getLogger(__name__)

_HTML = {"Content-Type": "text/html; charset=utf-8"}

# --------------------------------------------------------------------------------------------
# Instrumentation
# --------------------------------------------------------------------------------------------


class Hit(NamedTuple):
    """One request as the server saw it."""

    time: float  #: time.monotonic() when the request arrived
    path: str  #: request path, without the query string
    host: str  #: host name from the Host header, lower-cased, port dropped


@dataclass(slots=True)
class SiteStats:
    """Counters kept by the site for every request (including 404s).

    Hosts are keyed by the Host header's host name without the port (``"127.0.0.1"``,
    ``"localhost"``), so one server reached under several names counts each name apart.
    A request is in flight from the moment its handler starts until it has returned, was
    cancelled because the client went away, or raised. ``log`` keeps the last million hits.
    """

    inflight: int = 0
    max_inflight: int = 0
    inflight_by_host: dict[str, int] = field(default_factory=dict)
    max_inflight_by_host: dict[str, int] = field(default_factory=dict)
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    log: collections.deque[Hit] = field(default_factory=lambda: collections.deque(maxlen=1_000_000))

    @property
    def total(self) -> int:
        """Number of requests received since the last reset."""
        return sum(self.hits.values())

    def reset(self) -> None:
        """Forget hits and log; maxima restart from what is in flight right now."""
        self.hits.clear()
        self.log.clear()
        self.max_inflight = self.inflight
        self.max_inflight_by_host = {h: n for h, n in self.inflight_by_host.items() if n}


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if ":" in host else host



# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------


def html_page(page: str | None) -> web.Response:
    """``page`` as an HTML response, or a 404 for None."""
    if page is None:
        raise web.HTTPNotFound()
    return web.Response(body=page.encode("utf-8"), headers=_HTML)


def int_param(request: web.Request, name: str, default: int | None = None) -> int:
    """The integer in the path or the query called ``name`` (``default`` when absent); a 400
    when it is missing without a default or is not an integer."""
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing parameter {name}")
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"parameter {name} must be an integer") from None



def _check_loopback(host: str) -> str:
    """Return the address to bind for ``host``; refuse anything that is not loopback."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DemoSite binds IP literals only, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"DemoSite never binds a non-loopback address, got {host!r}")
    return host



def quotes_routes(app: web.Application, site: QuotesSite) -> None:
    """Add the quotes site's routes under ``site.root`` to ``app``."""
    root = site.root
    cookie = "quotes_session"

    def user(request: web.Request) -> str | None:
        return request.cookies.get(cookie) or None

    async def page(request: web.Request) -> web.Response:
        return html_page(site.page(int_param(request, "page", 1), user(request)))

    async def tag(request: web.Request) -> web.Response:
        return html_page(site.tag(request.match_info["tag"], int_param(request, "page", 1),
                              user(request)))

    async def author(request: web.Request) -> web.Response:
        return html_page(site.author(request.match_info["slug"], user(request)))

    async def add_slash(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"{request.path}/")

    async def login_form(request: web.Request) -> web.Response:
        return html_page(site.login())

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf_token") != QUOTES_CSRF_TOKEN:
            return html_page(site.login("Error while logging in: invalid CSRF token."))
        name = str(form.get("username") or "")
        if not name:
            return html_page(site.login("Error while logging in: please, provide your username."))
        response = web.HTTPFound(root)
        response.set_cookie(cookie, name, path="/")
        raise response

    async def logout(request: web.Request) -> web.Response:
        response = web.HTTPFound(root)
        response.del_cookie(cookie, path="/")
        raise response

    async def api(request: web.Request) -> web.Response:
        return web.json_response(site.api(int_param(request, "page", 1)))

    r = app.router
    r.add_get(root, page)
    r.add_get(rf"{root}page/{{page:\d+}}/", page)
    r.add_get(f"{root}tag/{{tag}}", add_slash)  # as the real site's /tag/humor
    r.add_get(f"{root}tag/{{tag}}/", tag)
    r.add_get(rf"{root}tag/{{tag}}/page/{{page:\d+}}/", tag)
    r.add_get(f"{root}author/{{slug}}", author)
    r.add_get(f"{root}author/{{slug}}/", author)
    r.add_get(f"{root}login", login_form)
    r.add_post(f"{root}login", login)
    r.add_get(f"{root}logout", logout)
    r.add_get(f"{root}api/quotes", api)



class DemoSite:
    """The demo site, as an async context manager.

    ``DemoSite(books=1000, quotes=100, shop_products=20_000, host="127.0.0.1", port=0)``:
    ``port=0`` picks a free port; ``ssl_context=`` serves https instead of http.
    ``hosts=("127.0.0.1", "127.0.0.2")`` binds several loopback
    addresses on the same port (Linux routes all of 127.0.0.0/8 to the loopback interface), so
    tests can reach one server as several hosts; with one bound address, ``127.0.0.1`` and
    ``localhost`` already are two host names for it. Only loopback addresses are accepted.
    ``routes=`` adds routes (``aiohttp.web.get(path, handler)`` and the like) after the
    site's own.

    Attributes once entered: ``url`` (``"http://127.0.0.1:PORT"``, no trailing slash),
    ``port``, ``stats`` (:class:`SiteStats`), ``url_for(path, host=None)``, ``reset_stats()``.

    A subclass adds routes in :meth:`_add_routes`, answers before any route in
    :meth:`_handle` (the request is already counted) and clears its own state in
    :meth:`_reset`.
    """

    def __init__(
        self,
        *,
        books: int = 1000,
        quotes: int = 100,
        shop_products: int = 20_000,
        host: str = "127.0.0.1",
        hosts: Sequence[str] | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        routes: Iterable[web.AbstractRouteDef] = (),
    ) -> None:
        self._hosts = [_check_loopback(h) for h in (hosts or [host])]
        self._ssl = ssl_context
        if not self._hosts:
            raise ValueError("DemoSite needs at least one host to bind")
        self._requested_port = port
        self._port: int | None = None
        self._bookstore = Bookstore(books)
        self._quotes = QuotesSite(quotes)
        self._shop = Shop(shop_products)
        self._extra_routes = list(routes)
        self.stats = SiteStats()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve. With several hosts and port 0, all share the first one's port."""
        self._loop = asyncio.get_running_loop()
        # handler_cancellation: a client that goes away must end its request here too, or the
        # in-flight counters would keep counting hung requests forever.
        runner = web.AppRunner(
            self._make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await runner.setup()
        self._runner = runner
        try:
            for attempt in range(10):
                port = self._requested_port
                try:
                    for i, address in enumerate(self._hosts):
                        site = web.TCPSite(runner, address, port, ssl_context=self._ssl)
                        await site.start()
                        if i == 0 and port == 0:
                            port = runner.addresses[0][1]
                    self._port = port
                    break
                except OSError:
                    # Port 0 was free on the first address but taken on another: start over.
                    for s in list(runner.sites):
                        await s.stop()
                    if self._requested_port or len(self._hosts) == 1 or attempt == 9:
                        raise
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        logger.debug("demo site serving on %s", self.url)

    async def close(self) -> None:
        """Stop serving; requests still in flight are cut off."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DemoSite is not started")
        return self._port

    @property
    def host(self) -> str:
        """The first bound address."""
        return self._hosts[0]

    @property
    def url(self) -> str:
        """``http://<first host>:<port>`` without a trailing slash."""
        return self.url_for("", None)

    def url_for(self, path: str = "/", host: str | None = None) -> str:
        """Absolute URL of ``path`` on this site, reached as ``host`` (default the first)."""
        name = host or self._hosts[0]
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{name}:{self.port}{path}"

    def reset_stats(self) -> None:
        """Clear hits and log (and a subclass's state, see :meth:`_reset`); maxima restart
        from the current in-flight.

        Safe to call from another thread than the site's (see :func:`run_in_thread`).
        """
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and loop is not running and loop.is_running():
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def reset() -> None:
                self._reset()
                done.set_result(None)

            loop.call_soon_threadsafe(reset)
            done.result(timeout=10)
        else:
            self._reset()


    def _reset(self) -> None:
        """Forget what was counted; a subclass clears its own state too."""
        self.stats.reset()

    # -- application -----------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        stats = self.stats

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            host = _host_name(request.headers.get("Host", ""))
            path = request.path
            stats.hits[path] += 1
            stats.log.append(Hit(time.monotonic(), path, host))
            stats.inflight += 1
            stats.max_inflight = max(stats.max_inflight, stats.inflight)
            n = stats.inflight_by_host.get(host, 0) + 1
            stats.inflight_by_host[host] = n
            if n > stats.max_inflight_by_host.get(host, 0):
                stats.max_inflight_by_host[host] = n
            try:
                return await self._handle(request, handler)
            finally:
                stats.inflight -= 1
                stats.inflight_by_host[host] -= 1

        app = web.Application(middlewares=[record])
        self._add_routes(app)
        app.router.add_routes(self._extra_routes)
        return app

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer a request once it is counted: by its route here; a subclass may answer
        first."""
        return await handler(request)

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        # bookstore
        r.add_get("/", self._home)
        r.add_get("/index.html", self._home)
        r.add_get(r"/catalogue/page-{page:\d+}.html", self._catalogue)
        r.add_get("/catalogue/category/books_1/index.html", self._category)
        r.add_get(r"/catalogue/category/books_1/page-{page:\d+}.html", self._category)
        r.add_get("/catalogue/category/books/{cat}/index.html", self._category)
        r.add_get(r"/catalogue/category/books/{cat}/page-{page:\d+}.html", self._category)
        r.add_get("/catalogue/{slug}/index.html", self._detail)
        # quotes
        r.add_get("/quotes", self._quotes_redirect)
        quotes_routes(app, self._quotes)
        # shop
        r.add_get("/shop", self._shop_redirect)
        r.add_get("/shop/", self._shop_index)
        r.add_get(r"/shop/list/{n:\d+}.html", self._shop_listing)
        r.add_get(r"/shop/p/{id:\d+}.html", self._shop_product)
        # plain pages
        r.add_get("/links", self._links)
        r.add_get("/page/{name}", self._page)

    # -- bookstore -------------------------------------------------------------------------

    async def _home(self, request: web.Request) -> web.Response:
        return html_page(self._bookstore.catalogue(1, home=True))

    async def _catalogue(self, request: web.Request) -> web.Response:
        return html_page(self._bookstore.catalogue(int_param(request, "page"), home=False))

    async def _category(self, request: web.Request) -> web.Response:
        page = int_param(request, "page", 1)
        return html_page(self._bookstore.category(request.match_info.get("cat"), page))

    async def _detail(self, request: web.Request) -> web.Response:
        return html_page(self._bookstore.detail(request.match_info["slug"]))

    # -- quotes ----------------------------------------------------------------------------

    async def _quotes_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/quotes/")

    # -- shop ------------------------------------------------------------------------------

    async def _shop_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/shop/")

    async def _shop_index(self, request: web.Request) -> web.Response:
        return html_page(self._shop.index())

    async def _shop_listing(self, request: web.Request) -> web.Response:
        return html_page(self._shop.listing(int_param(request, "n")))

    async def _shop_product(self, request: web.Request) -> web.Response:
        return html_page(self._shop.product(int_param(request, "id")))

    # -- plain pages -----------------------------------------------------------------------

    async def _links(self, request: web.Request) -> web.Response:
        n = int_param(request, "n", 10)
        links = "".join(f'<li><a href="/page/{i}">page {i}</a></li>\n' for i in range(n))
        return html_page(
            f"<!DOCTYPE html>\n<html><head><title>{n} links</title></head>\n"
            f"<body>\n<ul>\n{links}</ul>\n</body></html>\n"
        )

    async def _page(self, request: web.Request) -> web.Response:
        name = html.escape(request.match_info["name"])
        return html_page(
            f"<!DOCTYPE html>\n<html><head><title>Page {name}</title></head>\n"
            f'<body><h1 class="page">Page {name}</h1></body></html>\n'
        )


# --------------------------------------------------------------------------------------------
# Running it from sync code and from the command line
# --------------------------------------------------------------------------------------------

_SiteT = TypeVar("_SiteT", bound=DemoSite)


@contextlib.contextmanager
def serve_in_thread(make: Callable[[], _SiteT]) -> Iterator[_SiteT]:
    """Serve the site ``make()`` builds from a daemon thread with its own event loop.

    For callers without a running loop (subprocess tests, ``crawler demo``). The site is
    built and started in that thread when the block is entered (an error doing so is raised
    here) and closed (and the thread joined) when it is left.
    """
    started = threading.Event()
    failure: list[BaseException] = []
    holder: list[_SiteT] = []
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        try:
            site = make()
            await site.start()
        except Exception as exc:
            failure.append(exc)
            started.set()
            return
        event = asyncio.Event()
        holder.append(site)
        stop.append(event)
        loop_box.append(asyncio.get_running_loop())
        started.set()
        try:
            await event.wait()
        finally:
            await site.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="demosite", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield holder[0]
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(timeout=30)


def run_in_thread(**kwargs: Any) -> contextlib.AbstractContextManager[DemoSite]:
    """Serve a :class:`DemoSite` (keyword arguments go to it) from a daemon thread: see
    :func:`serve_in_thread`."""
    return serve_in_thread(lambda: DemoSite(**kwargs))


async def _serve_forever(site: DemoSite) -> None:
    async with site:
        # The first line is the bare base URL, for scripts that start the site and read it.
        print(site.url, flush=True)
        print(
            f"bookstore {site.url}/  quotes {site.url}/quotes/  shop {site.url}/shop/"
            "  (Ctrl-C to stop)",
            flush=True,
        )
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crawler.demosite``: serve the site until Ctrl-C (the first line printed is
    the base URL), or with ``--write-shop DIR`` write the static shop and exit."""
    parser = argparse.ArgumentParser(
        prog="python -m crawler.demosite", description="Serve the bundled demo site."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--books", type=int, default=1000, help="number of books")
    parser.add_argument("--quotes", type=int, default=100, help="number of quotes")
    parser.add_argument("--shop", type=int, default=20_000, help="number of shop products")
    parser.add_argument(
        "--write-shop", metavar="DIR", help="write the shop as static files into DIR and exit"
    )
    args = parser.parse_args(argv)
    if args.write_shop:
        count = write_static_shop(args.write_shop, args.shop)
        print(f"wrote {count} files under {args.write_shop}")
        return 0
    try:
        site = DemoSite(
            books=args.books,
            quotes=args.quotes,
            shop_products=args.shop,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_forever(site))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
