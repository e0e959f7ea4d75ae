"""Local stand-ins for quotes.toscrape.com and books.toscrape.com, reached as an HTTP proxy.

A crawler pointed at this server as its proxy (``-s proxy=http://127.0.0.1:PORT`` here,
``http_proxy=`` / ``https_proxy=`` for Scrapy) asks for ``http://quotes.toscrape.com/page/2/``
or ``https://books.toscrape.com/`` and gets the page of the bundled test site
(:mod:`crawler.demosite`) for that host: the quotes site with its links at the root, or the
bookstore. Any other host answers 404.

The proxy is a small forwarder in front of an aiohttp application: a plain request in
absolute form (``GET http://host/path``) is passed on in origin form (an empty path is
``/``, as real proxies read it), one request per connection; ``CONNECT host:443`` is answered,
TLS is terminated with a self-signed certificate made here for both host names (crawlers
must not verify it: ``-s verify_tls=false``; Scrapy does not verify by default), and what
comes through the tunnel is piped to the application.

    python bench/scrapy_compat/site.py --port 8800
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from crawler.demosite import DemoSite as TestSite
from crawler.demosite import QuotesSite as _QuotesSite
from crawler.demosite import quotes_routes

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


def tls_context(folder: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for both host names."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=toscrape.com",
         "-addext", f"subjectAltName=DNS:{QUOTES_HOST},DNS:{BOOKS_HOST}"],
        check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Proxy:
    """The forwarder: see the module docstring."""

    def __init__(self, app_port: int, context: ssl.SSLContext) -> None:
        self.app_port = app_port
        self.context = context

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            try:
                await writer.start_tls(self.context)
            except (ssl.SSLError, ConnectionError, OSError):
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.app_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(
            (b"connection:", b"proxy-connection:", b"keep-alive:"))]
        forwarded = b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *headers,
                                  b"Connection: close", b"", b""])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.app_port)
        up_writer.write(forwarded)
        await up_writer.drain()
        # One request per connection: the body (if any) follows, the answer goes back, the
        # application closes (Connection: close) and so does this side.
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _serve(port: int, started: asyncio.Future[int], stop: asyncio.Event) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app_port = runner.addresses[0][1]
    with tempfile.TemporaryDirectory() as folder:
        proxy = Proxy(app_port, tls_context(Path(folder)))
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", port)
        started.set_result(server.sockets[0].getsockname()[1])
        async with server:
            await stop.wait()
    await runner.cleanup()


@contextlib.contextmanager
def serving(port: int = 0) -> Iterator[int]:
    """Serve in a thread; yields the proxy's port."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[int] = loop.create_future()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(_serve(port, started, stop),), daemon=True)
    thread.start()
    ready = threading.Event()
    started.add_done_callback(lambda _: ready.set())
    ready.wait(30)
    try:
        yield started.result()
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8800)
    args = parser.parse_args()

    async def forever() -> None:
        loop = asyncio.get_running_loop()
        started: asyncio.Future[int] = loop.create_future()
        task = asyncio.create_task(_serve(args.port, started, asyncio.Event()))
        print(f"proxy on 127.0.0.1:{await started}")
        await task

    asyncio.run(forever())


if __name__ == "__main__":
    main()
