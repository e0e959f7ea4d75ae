"""The test server: the demo site with fault endpoints and canned responses.

:class:`TestSite` serves everything :class:`crawler.demosite.DemoSite` serves, plus endpoints
that misbehave on purpose, listed in its docstring. A test that needs an endpoint of its own
passes it as ``TestSite(routes=[web.get(path, handler)])``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from crawler.demosite import DemoSite, int_param

__all__ = ["Canned", "TestSite"]

_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _float_param(request: web.Request, name: str, default: float) -> float:
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"parameter {name} must be a number") from None
    if not 0 <= value <= 3600:
        raise web.HTTPBadRequest(text=f"parameter {name} must be within 0..3600")
    return value


class TestSite(DemoSite):
    """The demo site (see :class:`crawler.demosite.DemoSite` for its arguments, ``routes=``
    included) with fault endpoints, as an async context manager.

    Fault endpoints (any method unless noted):

    * ``/status/{code}``: answers that status; the body says ``status <code>``. ``?location=``
      adds a Location header.
    * ``/redirect/{n}``: ``n`` hops of ``302`` (``?status=301|303|307|308``) with a relative
      Location (``/redirect/{n-1}``), then ``/redirect/0`` answers 200.
    * ``/redirect-to?url=...&status=302``: one redirect to ``url``, as given.
    * ``/redirect-loop/{key}`` and ``/redirect-loop/{key}/b``: redirect to each other forever.
    * ``/delay/{seconds}``: answers 200 after the delay (at most 3600 s).
    * ``/hang``: accepts the request and never answers; when the site closes, the connection
      is cut without a response.
    * ``/headers-then-hang``: sends status and headers (``Content-Length: 100``), never a body.
    * ``/trickle?bytes=N&interval=1.0``: ``Content-Length: N``, then one byte per interval.
    * ``/drop``: closes the connection before sending anything. Note that aiohttp's client
      resends an idempotent request once on a dropped connection, so a GET shows 2 hits.
    * ``/truncated``: announces ``Content-Length: 100``, sends 10 bytes, closes.
    * ``/flaky/{key}?fail=N&status=503&retry_after=S``: the first N requests for ``key``
      answer ``status`` (with ``Retry-After: S`` when given), later ones 200 with JSON
      ``{"key": ..., "attempt": ...}``. Counters are per key and cleared by ``reset_stats()``.
    * ``/echo``: JSON ``{"method", "path", "url", "query", "headers", "cookies", "body"}``;
      header names are lower-cased, ``body`` is the request body decoded as UTF-8.
    * ``/set-cookie?name=value&...``: sets each pair as a cookie (path ``/``); JSON body.
    * ``/json``: a fixed JSON document (non-ASCII included).
    * ``/bytes/{n}``: ``n`` bytes of ``x`` (``?chunked=1``: no Content-Length).
    * ``/robots.txt``: 404 unless canned.

    Decompression bombs are served by the routes of :func:`tests.servers.bombs.bomb_routes`.

    Canned responses: ``site.canned[path] = Canned(status, body, headers, delay)`` answers
    ``path`` (without query) with that response, before any route (``/robots.txt`` too). A
    list of Canned is served one per request, the last one repeating.
    """

    __test__ = False  # not a pytest test class, despite the name

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
        super().__init__(books=books, quotes=quotes, shop_products=shop_products, host=host,
                         hosts=hosts, port=port, ssl_context=ssl_context, routes=routes)
        #: Canned responses by path; see the class docstring.
        self.canned: dict[str, Canned | list[Canned]] = {}
        self._flaky: dict[str, int] = {}
        self._closing = asyncio.Event()

    async def close(self) -> None:
        """Stop serving; requests still hanging or delayed are cut off."""
        self._closing.set()
        await super().close()

    def _reset(self) -> None:
        super()._reset()
        self._flaky.clear()

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        canned = self._canned(request.path)
        if canned is not None:
            return await canned.respond()
        return await handler(request)

    def _canned(self, path: str) -> Canned | None:
        entry = self.canned.get(path)
        if entry is None or isinstance(entry, Canned):
            return entry
        if not entry:
            return None
        return entry.pop(0) if len(entry) > 1 else entry[0]

    def _add_routes(self, app: web.Application) -> None:
        super()._add_routes(app)
        r = app.router
        r.add_route("*", r"/status/{code:\d+}", self._status)
        r.add_route("*", r"/redirect/{n:\d+}", self._redirect)
        r.add_route("*", "/redirect-to", self._redirect_to)
        r.add_route("*", "/redirect-loop/{key}", self._redirect_loop)
        r.add_route("*", "/redirect-loop/{key}/b", self._redirect_loop)
        r.add_route("*", "/delay/{seconds}", self._delay)
        r.add_route("*", "/hang", self._hang)
        r.add_route("*", "/headers-then-hang", self._headers_then_hang)
        r.add_route("*", "/trickle", self._trickle)
        r.add_route("*", "/drop", self._drop)
        r.add_route("*", "/truncated", self._truncated)
        r.add_route("*", "/flaky/{key}", self._flaky_handler)
        r.add_route("*", "/echo", self._echo)
        r.add_route("*", "/set-cookie", self._set_cookie)
        r.add_get("/json", self._json)
        r.add_get(r"/bytes/{n:\d+}", self._bytes)

    # -- faults ----------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        code = int_param(request, "code")
        if not 200 <= code <= 599:
            raise web.HTTPBadRequest(text="status must be within 200..599")
        headers = dict(_TEXT)
        if "location" in request.query:
            headers["Location"] = request.query["location"]
        body = None if code in (204, 304) else f"status {code}\n".encode()
        return web.Response(status=code, body=body, headers=headers)

    @staticmethod
    def _redirect_status(request: web.Request) -> int:
        status = int_param(request, "status", 302)
        if status not in (301, 302, 303, 307, 308):
            raise web.HTTPBadRequest(text="status must be one of 301 302 303 307 308")
        return status

    def _redirect_response(self, status: int, location: str) -> web.Response:
        body = f"redirecting to {location}\n".encode()
        return web.Response(status=status, body=body, headers={**_TEXT, "Location": location})

    async def _redirect(self, request: web.Request) -> web.Response:
        n = int_param(request, "n")
        status = self._redirect_status(request)
        if n <= 0:
            return web.Response(body=b"redirect chain done\n", headers=_TEXT)
        query = f"?status={status}" if "status" in request.query else ""
        return self._redirect_response(status, f"/redirect/{n - 1}{query}")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        url = request.query.get("url")
        if url is None:
            raise web.HTTPBadRequest(text="missing parameter url")
        return self._redirect_response(self._redirect_status(request), url)

    async def _redirect_loop(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        target = (
            f"/redirect-loop/{key}" if request.path.endswith("/b") else f"/redirect-loop/{key}/b"
        )
        return self._redirect_response(302, target)

    async def _delay(self, request: web.Request) -> web.Response:
        seconds = _float_param(request, "seconds", 0.0)
        await asyncio.sleep(seconds)
        return web.Response(body=f"delayed {seconds:g}s\n".encode(), headers=_TEXT)

    async def _never_answer(self, request: web.Request) -> NoReturn:
        """Wait until the client leaves (aiohttp then cancels the handler, since the runner
        has handler_cancellation) or the site closes, which cuts the connection."""
        await self._closing.wait()
        if request.transport is not None:
            request.transport.close()
        await asyncio.Future()  # cancelled once aiohttp sees the connection is gone
        raise AssertionError("unreachable")

    async def _hang(self, request: web.Request) -> web.Response:
        await self._never_answer(request)

    async def _headers_then_hang(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = 100
        await response.prepare(request)  # a StreamResponse sends its headers right here
        await self._never_answer(request)

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        size = int_param(request, "bytes", 10)
        interval = _float_param(request, "interval", 1.0)
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = size
        await response.prepare(request)
        for _ in range(size):
            await asyncio.sleep(interval)
            await response.write(b"x")
        await response.write_eof()
        return response

    async def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        await self._never_answer(request)

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"0123456789")
        if request.transport is not None:
            request.transport.close()  # close() still sends what is buffered; abort() would not
        await self._never_answer(request)

    async def _flaky_handler(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        fail = int_param(request, "fail", 1)
        status = int_param(request, "status", 503)
        attempt = self._flaky.get(key, 0) + 1
        self._flaky[key] = attempt
        body = json.dumps({"key": key, "attempt": attempt}).encode()
        headers = {"Content-Type": "application/json"}
        if attempt <= fail:
            retry_after = request.query.get("retry_after")
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            return web.Response(status=status, body=body, headers=headers)
        return web.Response(body=body, headers=headers)

    async def _echo(self, request: web.Request) -> web.Response:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = await request.read()
        document = {
            "method": request.method,
            "path": request.path,
            "url": str(request.url),
            "query": dict(request.query),
            "headers": headers,
            "cookies": dict(request.cookies),
            "body": raw.decode("utf-8", "replace"),
        }
        return web.json_response(document)

    async def _set_cookie(self, request: web.Request) -> web.Response:
        response = web.json_response(dict(request.query))
        for name, value in request.query.items():
            response.set_cookie(name, value, path="/")
        return response

    async def _json(self, request: web.Request) -> web.Response:
        document = {
            "name": "testsite",
            "unicode": "Café 東京 Ελλάδα",
            "items": [{"id": i, "square": i * i} for i in range(1, 6)],
        }
        return web.json_response(document, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        n = int_param(request, "n")
        chunked = request.query.get("chunked") == "1"
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = n
        await response.prepare(request)
        block = b"x" * 65536
        remaining = n
        while remaining > 0:
            await response.write(block[: min(remaining, len(block))])
            remaining -= len(block)
        await response.write_eof()
        return response



@dataclass(slots=True)
class Canned:
    """A fixed response for :attr:`TestSite.canned`: ``body`` (str is sent as UTF-8),
    ``headers`` as given (no Content-Type added; a list of pairs may repeat a name, as
    Set-Cookie does), after ``delay`` seconds."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    delay: float = 0.0

    async def respond(self) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
        return web.Response(status=self.status, body=body, headers=CIMultiDict(self.headers))

