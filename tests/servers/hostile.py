"""A raw asyncio HTTP/1.1 server that breaks HTTP in ways aiohttp's server cannot."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import random
import socket
import struct
from typing import Self

__all__ = ["HostileServer", "hostile_page"]


def hostile_page(i: int) -> bytes:
    """The body :class:`HostileServer` serves for ``/page/{i}``: 2 to 10 KB of HTML whose
    end marker proves it complete (a truncated copy is never equal to it)."""
    filler = hashlib.blake2b(str(i).encode(), digest_size=32).hexdigest()
    repeat = 30 + (i * 7919) % 130
    return (
        f"<!DOCTYPE html>\n<html><head><title>page {i}</title></head><body>\n"
        f'<h1 id="n">{i}</h1>\n<p>{filler * repeat}</p>\n<p id="end">end of page {i}</p>\n'
        "</body></html>\n"
    ).encode()


class HostileServer:
    """A raw asyncio HTTP/1.1 server on 127.0.0.1 that misbehaves in ways aiohttp's server
    cannot: it writes bytes on the socket itself. Use as ``async with HostileServer() as h``.

    Paths (any method; the query string is ignored unless noted):

    * ``/ok``: a small valid 200 response.
    * ``/page/{i}``: :func:`hostile_page` ``(i)``, keep-alive. With ``reset_rate`` > 0 each
      request is, at random (``seed``), reset before the headers or in the middle of the
      body with that probability (half each).
    * ``/long-header?size=N``: a header line of N bytes (default 100,000).
    * ``/many-headers?n=N``: N header fields (default 5,000).
    * ``/no-colon``: a header line without a colon.
    * ``/bad-status/{kind}``: an invalid status line: ``word`` (``HTTP/1.1 OK``), ``code``
      (``HTTP/1.1 2000 OK``), ``garbage`` (not HTTP at all), ``empty`` (a blank line).
    * ``/reset-before-headers``: a TCP reset (RST) once the request is read.
    * ``/reset-mid-body``: headers announcing 10,000 bytes, 5,000 of them, then a reset.
    * ``/short-body``: ``Content-Length: 100``, 10 bytes, then a clean close (FIN).
    * ``/chunked-cut``: a chunked body closed (FIN) before its last chunk.
    * ``/no-length?bytes=N``: 200 with neither Content-Length nor chunking, N bytes, close.
    * ``/silent``: reads the request and never answers.

    ``hits`` counts requests by path; ``resets`` counts the resets of ``/page/``.
    """

    __test__ = False

    def __init__(self, *, reset_rate: float = 0.0, seed: int = 0) -> None:
        self.reset_rate = reset_rate
        self.hits: collections.Counter[str] = collections.Counter()
        self.resets = 0
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            self._closing.set()
            for writer in list(self._writers):
                writer.transport.abort()
            # Connection handlers are tasks of asyncio's server that close() leaves running;
            # with their sockets aborted and the closing event set, they all return.
            tasks = list(self._tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("HostileServer is not started")
        return f"http://127.0.0.1:{self._port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else "/"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                path, _, query = target.partition("?")
                params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                self.hits[path] += 1
                if not await self._answer(path, params, writer):
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _answer(self, path: str, params: dict[str, str], w: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is finished with."""
        if path == "/ok":
            return await self._send(w, 200, [], b"ok\n")
        if path.startswith("/page/"):
            i = int(path.rsplit("/", 1)[1])
            body = hostile_page(i)
            if self.reset_rate and self._rng.random() < self.reset_rate:
                self.resets += 1
                if self._rng.random() < 0.5:
                    _reset(w)
                    return False
                head = _head(200, [("Content-Type", "text/html; charset=utf-8"),
                                   ("Content-Length", str(len(body)))])
                w.write(head + body[: len(body) // 2])
                await w.drain()
                await asyncio.sleep(0.005)  # let the client read the first half
                _reset(w)
                return False
            return await self._send(w, 200, [("Content-Type", "text/html; charset=utf-8")], body)
        if path == "/long-header":
            size = int(params.get("size", 100_000))
            return await self._send(w, 200, [("X-Long", "x" * size)], b"ok\n")
        if path == "/many-headers":
            n = int(params.get("n", 5000))
            return await self._send(w, 200, [(f"X-H{k}", "v") for k in range(n)], b"ok\n")
        if path == "/no-colon":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nThis line has no colon\r\n\r\nok\n")
            await w.drain()
            return True
        if path.startswith("/bad-status/"):
            kind = path.rsplit("/", 1)[1]
            line = {
                "word": b"HTTP/1.1 OK",
                "code": b"HTTP/1.1 2000 OK",
                "garbage": b"\x00\x01\x02 this is not HTTP",
                "empty": b"",
            }.get(kind, b"HTTP/1.1 OK")
            w.write(line + b"\r\nContent-Length: 3\r\n\r\nok\n")
            await w.drain()
            return False
        if path == "/reset-before-headers":
            _reset(w)
            return False
        if path == "/reset-mid-body":
            w.write(_head(200, [("Content-Length", "10000")]) + b"x" * 5000)
            await w.drain()
            await asyncio.sleep(0.01)
            _reset(w)
            return False
        if path == "/short-body":
            w.write(_head(200, [("Content-Length", "100")]) + b"0123456789")
            await w.drain()
            w.close()
            return False
        if path == "/chunked-cut":
            w.write(_head(200, [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n")
            await w.drain()
            w.close()
            return False
        if path == "/no-length":
            n = int(params.get("bytes", 1000))
            w.write(_head(200, [("Content-Type", "application/octet-stream"),
                                ("Connection", "close")]))
            block = b"x" * 65536
            while n > 0:
                w.write(block[: min(n, len(block))])
                n -= len(block)
                await w.drain()
            w.close()
            return False
        if path == "/silent":
            await self._closing.wait()  # until the server closes
            return False
        return await self._send(w, 404, [], b"not found\n")

    @staticmethod
    async def _send(
        w: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> bool:
        w.write(_head(status, [*headers, ("Content-Length", str(len(body)))]) + body)
        await w.drain()
        return True


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a clean FIN."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()
