"""Local stand-ins for quotes.toscrape.com and books.toscrape.com, reached as an HTTP proxy.

A crawler pointed at this server as its proxy (``-s proxy=http://127.0.0.1:PORT`` here,
``http_proxy=`` for Scrapy) asks for ``http://quotes.toscrape.com/page/2/`` and gets the
page of the bundled test site (:mod:`crawler.testsite`) for that host: the quotes site with
its links at the root, or the bookstore. Any other host answers 404.

    python bench/scrapy_compat/site.py --port 8800
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

from crawler.testsite import TestSite, _QuotesSite, quotes_routes

QUOTES_HOST = "quotes.toscrape.com"
BOOKS_HOST = "books.toscrape.com"
#: Books in the local bookstore (the real one has 1000; 200 keeps 25 x 2 crawls short).
BOOKS = 200
QUOTES = 100


def make_app(books: int = BOOKS, quotes: int = QUOTES) -> web.Application:
    app = web.Application()
    quotes_app = web.Application()
    quotes_routes(quotes_app, _QuotesSite(quotes, root="/"))

    async def no_robots(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    quotes_app.router.add_get("/robots.txt", no_robots)
    app.add_domain(QUOTES_HOST, quotes_app)
    app.add_domain(BOOKS_HOST, TestSite(books=books, quotes=1, shop_products=1)._make_app())
    return app


@contextlib.contextmanager
def serving(port: int = 0) -> Iterator[int]:
    """Serve in a thread; yields the port."""
    ready = threading.Event()
    state: dict[str, object] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(make_app(), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        state["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield int(state["port"])  # type: ignore[call-overload]
    finally:
        loop = state["loop"]
        loop.call_soon_threadsafe(loop.stop)  # type: ignore[attr-defined]
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8800)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None)


if __name__ == "__main__":
    main()
