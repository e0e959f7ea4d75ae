"""A slow server for the latency scenarios, run in its own process (its own GIL).

    python bench/latency_server.py [--hosts 127.0.0.1,127.0.0.2,...] [--port 0]

Binds every given loopback address on one port and prints that port as its first line.

- ``/delay/{seconds}``: 200 after ``seconds`` (the query string is ignored).
- ``/stats``: JSON ``{"hits", "max_inflight", "max_inflight_by_host", "min_gap",
  "min_gap_by_host", "repeats", "first_at", "last_at"}`` of the ``/delay/`` requests since
  start or the last ``/reset``; hosts are keyed by the Host header's name (port dropped);
  ``min_gap`` is the shortest time between the arrivals of two requests to one host (None
  before a host had two), ``repeats`` the requests for a URL (path and query) already asked
  for; ``first_at``/``last_at`` are ``time.time()`` when the first request arrived and the
  last response was ready. Nothing else is counted.
- ``/reset``: clears the counters.
- anything else, ``/robots.txt`` included: an immediate 404.

A ``/delay/`` request is in flight from its arrival until its response is written (or its
connection closed). Its arrival is when the kernel received it (``SO_TIMESTAMPNS``, read
with each ``recvmsg``), not when this process got round to it: on a loaded machine the
server's own scheduling shifted arrivals by up to 15 ms, which made two requests look
closer together than the crawler sent them. Where the kernel gives no stamp, the time of
the read stands in.

A small HTTP/1.1 server of its own for that reason (aiohttp's reads its sockets with
``recv``, which drops the stamps): keep-alive, one request at a time per connection,
``Content-Length`` bodies read and ignored; a chunked body gets 501 and the connection
closed.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's number; Python lacks the name
STAMP_SPACE = socket.CMSG_SPACE(16)
MAX_HEAD = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 501: "Not Implemented"}


@dataclass(slots=True)
class Counters:
    hits: int = 0
    first_at: float | None = None  #: time.time() when the first /delay/ request arrived
    last_at: float | None = None  #: time.time() when the last /delay/ response was ready
    inflight: int = 0
    max_inflight: int = 0
    inflight_by_host: Counter[str] = field(default_factory=Counter)
    max_inflight_by_host: dict[str, int] = field(default_factory=dict)
    last_arrival: dict[str, float] = field(default_factory=dict)
    min_gap_by_host: dict[str, float] = field(default_factory=dict)
    urls: set[str] = field(default_factory=set)
    repeats: int = 0

    def arrived(self, host: str, url: str, at: float) -> None:
        """A /delay/ request for ``url`` reached ``host`` at ``at`` (time.time())."""
        self.hits += 1
        if self.first_at is None:
            self.first_at = at
        last = self.last_arrival.get(host)
        if last is not None:
            gap = at - last
            if gap < self.min_gap_by_host.get(host, float("inf")):
                self.min_gap_by_host[host] = gap
        self.last_arrival[host] = at
        if url in self.urls:
            self.repeats += 1
        else:
            self.urls.add(url)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        by_host = self.inflight_by_host
        by_host[host] += 1
        if by_host[host] > self.max_inflight_by_host.get(host, 0):
            self.max_inflight_by_host[host] = by_host[host]

    def answered(self, host: str) -> None:
        self.inflight -= 1
        self.inflight_by_host[host] -= 1
        self.last_at = time.time()

    def stats(self) -> dict[str, object]:
        return {
            "hits": self.hits,
            "max_inflight": self.max_inflight,
            "max_inflight_by_host": self.max_inflight_by_host,
            "min_gap": min(self.min_gap_by_host.values(), default=None),
            "min_gap_by_host": self.min_gap_by_host,
            "repeats": self.repeats,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    def reset(self) -> None:
        self.hits = 0
        self.last_arrival.clear()
        self.min_gap_by_host.clear()
        self.urls.clear()
        self.repeats = 0
        self.first_at = self.last_at = None
        self.max_inflight = self.inflight
        self.max_inflight_by_host = {h: n for h, n in self.inflight_by_host.items() if n}


@dataclass(slots=True)
class Exchange:
    """One request as read: what the answer needs."""

    method: str
    target: str
    host: str
    close: bool  #: the client asked for the connection to end after it
    at: float  #: time.time() of its arrival
    status: int = 0  #: set when the request cannot be served (400, 501)

    @property
    def counted(self) -> bool:
        """A /delay/ request: counted from its arrival until it is answered."""
        return self.status == 0 and self.target.startswith("/delay/")


def parse_head(head: bytes, at: float) -> tuple[Exchange, int]:
    """The exchange of a request head (without its blank line) and its body's length."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return Exchange("GET", "/", "", True, at, status=400), 0
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return Exchange(method, target, "", True, at, status=400), 0
        headers[name.strip().lower()] = value.strip()
    host = headers.get("host", "")
    host = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    connection = headers.get("connection", "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Exchange(method, target, host, True, at, status=501), 0
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return Exchange(method, target, host, True, at, status=400), 0
    return Exchange(method, target, host, close, at), max(length, 0)


def response(status: int, body: bytes, content_type: str, *, close: bool,
             head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body)


class Connection:
    """One client connection: reads with the kernel's stamps, answers in order."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.buffer = bytearray()
        self.body_left = 0  #: bytes of the current request's body still to skip
        self.waiting: deque[Exchange] = deque()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        server.loop.add_reader(sock.fileno(), self.readable)

    def readable(self) -> None:
        try:
            data, ancillary, _flags, _address = self.sock.recvmsg(65536, STAMP_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        at = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                at = sec + nsec / 1e9
        self.feed(data, time.time() if at is None else at)

    def feed(self, data: bytes, at: float) -> None:
        self.buffer += data
        while True:
            if self.body_left:
                skipped = min(self.body_left, len(self.buffer))
                del self.buffer[:skipped]
                self.body_left -= skipped
                if self.body_left:
                    return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.waiting.append(Exchange("GET", "/", "", True, at, status=400))
                    self.buffer.clear()
                    self.answer()
                return
            exchange, self.body_left = parse_head(bytes(self.buffer[:end]), at)
            del self.buffer[:end + 4]
            if exchange.counted:
                self.server.counters.arrived(exchange.host, exchange.target, at)
            self.waiting.append(exchange)
            self.answer()
            if exchange.close:
                return

    def answer(self) -> None:
        if self.task is None:
            self.task = self.server.loop.create_task(self.answer_all())

    async def answer_all(self) -> None:
        try:
            while self.waiting:
                exchange = self.waiting.popleft()
                data = await self.server.handle(exchange)
                await self.server.loop.sock_sendall(self.sock, data)
                if exchange.close:
                    self.close()
                    return
        except OSError:
            self.close()
        finally:
            self.task = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.loop.remove_reader(self.sock.fileno())
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()  # a client gone: its request is no longer in flight
        for exchange in self.waiting:
            if exchange.counted:
                self.server.counters.answered(exchange.host)
        self.waiting.clear()
        self.sock.close()
        self.server.connections.discard(self)


class Server:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.counters = Counters()
        self.listeners: list[socket.socket] = []
        self.connections: set[Connection] = set()

    def listen(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.listeners.append(sock)
        self.loop.add_reader(sock.fileno(), self.accept, sock)

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of descriptors, or the client already gone
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                pass  # no kernel stamps: the time of the read stands in
            self.connections.add(Connection(self, sock))

    async def handle(self, exchange: Exchange) -> bytes:
        close, head_only = exchange.close, exchange.method == "HEAD"
        if exchange.status:
            message = REASONS[exchange.status].encode()
            return response(exchange.status, message, "text/plain", close=True)
        path = exchange.target.partition("?")[0]
        if exchange.counted:
            try:
                try:
                    seconds = float(path[len("/delay/"):])
                except ValueError:
                    return response(400, b"bad delay", "text/plain", close=close)
                await asyncio.sleep(seconds)
                return response(200, b"ok\n", "text/plain; charset=utf-8", close=close,
                                head_only=head_only)
            finally:
                self.counters.answered(exchange.host)
        if path == "/stats":
            body = json.dumps(self.counters.stats()).encode()
            return response(200, body, "application/json", close=close, head_only=head_only)
        if path == "/reset":
            self.counters.reset()
            return response(200, b"reset\n", "text/plain", close=close, head_only=head_only)
        return response(404, b"404: Not Found", "text/plain", close=close, head_only=head_only)

    def close(self) -> None:
        for sock in self.listeners:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners.clear()
        for connection in list(self.connections):
            connection.close()


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve(hosts: list[str], port: int) -> None:
    for h in hosts:
        if not ipaddress.ip_address(h).is_loopback:
            raise SystemExit(f"refusing to bind a non-loopback address: {h}")
    server = Server(asyncio.get_running_loop())
    for attempt in range(20):
        chosen = port or _free_port(hosts[0])
        try:
            for h in hosts:
                server.listen(h, chosen)
        except OSError:
            server.close()
            if port or attempt == 19:
                raise
            continue
        break
    print(chosen, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="slow server for the latency benchmarks")
    p.add_argument("--hosts", default="127.0.0.1", help="comma-separated loopback addresses")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args(argv)
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    try:
        if args.no_uvloop:
            asyncio.run(serve(hosts, args.port))
        else:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(serve(hosts, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
