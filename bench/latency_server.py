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

A ``/delay/`` request is in flight from its arrival until its handler returns.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler


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
    gapidx: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def arrived(self, host: str, url: str) -> None:
        now = time.monotonic()
        last = self.last_arrival.get(host)
        if last is not None:
            gap = now - last
            if gap < self.min_gap_by_host.get(host, float("inf")):
                self.min_gap_by_host[host] = gap
                self.gapidx[host] = (url, round(now - self.t0, 3))
        self.last_arrival[host] = now
        if url in self.urls:
            self.repeats += 1
        else:
            self.urls.add(url)

    def reset(self) -> None:
        self.hits = 0
        self.last_arrival.clear()
        self.min_gap_by_host.clear()
        self.urls.clear()
        self.repeats = 0
        self.first_at = self.last_at = None
        self.max_inflight = self.inflight
        self.max_inflight_by_host = {h: n for h, n in self.inflight_by_host.items() if n}


def make_app(counters: Counters) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/delay/"):
            return await handler(request)
        host = request.host.rpartition(":")[0] or request.host
        counters.hits += 1
        counters.arrived(host, request.path_qs)
        if counters.first_at is None:
            counters.first_at = time.time()
        counters.inflight += 1
        counters.max_inflight = max(counters.max_inflight, counters.inflight)
        by_host = counters.inflight_by_host
        by_host[host] += 1
        if by_host[host] > counters.max_inflight_by_host.get(host, 0):
            counters.max_inflight_by_host[host] = by_host[host]
        try:
            return await handler(request)
        finally:
            counters.inflight -= 1
            by_host[host] -= 1
            counters.last_at = time.time()

    async def delay(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.match_info["seconds"]))
        return web.Response(text="ok\n")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "hits": counters.hits,
                "max_inflight": counters.max_inflight,
                "max_inflight_by_host": counters.max_inflight_by_host,
                "min_gap": min(counters.min_gap_by_host.values(), default=None),
                "min_gap_by_host": counters.min_gap_by_host,
                "repeats": counters.repeats,
                "gapidx": counters.gapidx,
                "first_at": counters.first_at,
                "last_at": counters.last_at,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        counters.reset()
        return web.Response(text="reset\n")

    app = web.Application(middlewares=[count])
    app.router.add_get("/delay/{seconds}", delay)
    app.router.add_get("/stats", stats)
    app.router.add_get("/reset", reset)
    return app


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve(hosts: list[str], port: int) -> None:
    for h in hosts:
        if not ipaddress.ip_address(h).is_loopback:
            raise SystemExit(f"refusing to bind a non-loopback address: {h}")
    runner = web.AppRunner(make_app(Counters()), access_log=None, handler_cancellation=True)
    await runner.setup()
    for attempt in range(20):
        chosen = port or _free_port(hosts[0])
        try:
            for h in hosts:
                await web.TCPSite(runner, h, chosen, backlog=1024).start()
        except OSError:
            for site in list(runner.sites):
                await site.stop()
            if port or attempt == 19:
                raise
            continue
        break
    print(chosen, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


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
