"""Peak RSS with N requests pending in the in-memory frontier (run as its own process).

    python bench/memory_frontier.py [--requests 1000000] [--no-uvloop]

Builds realistic pending requests the way a crawl does (absolute URLs of about 80 characters
over 100,000 hosts (``--hosts``; the frontier keeps them per host), a bound-method callback,
depth 2, added in batches of 1,000 through ``MemoryFrontier.add``, which fingerprints each one
for dedup) and keeps them all pending.
Prints one JSON line: ``{"requests", "pending", "baseline_rss_mb", "peak_rss_mb",
"bytes_per_request", "seconds"}``; ``peak_rss_mb`` is the process's peak RSS (``ru_maxrss``),
``baseline_rss_mb`` the RSS after the imports, before the first request. bench/run.py reads
the last line, and expects the same shape from bench/memory_sqlite.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
from typing import Any

import orjson

from crawler.frontier.memory import MemoryFrontier
from crawler.http import Request, Response
from crawler.spider import Spider


class _Spider(Spider):
    name = "memory"

    def parse_product(self, response: Response) -> Any:
        return None


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


HOSTS = 100_000


def realistic_url(i: int, hosts: int = HOSTS) -> str:
    """A distinct, shop-like URL of about 80 characters on one of ``hosts`` hosts."""
    return (
        f"https://shop{i % hosts}.example-store.com/catalogue/"
        f"category-{i % 97}/product-{i:07d}/index.html?ref=list"
    )


async def fill(n: int, batch: int = 1000, hosts: int = HOSTS) -> MemoryFrontier:
    spider = _Spider()
    frontier = MemoryFrontier()
    await frontier.open()
    for start in range(0, n, batch):
        requests = [
            # A bound method per request, as response.follow(..., callback=self.parse_x) makes.
            Request(realistic_url(i, hosts), callback=spider.parse_product, depth=2)
            for i in range(start, min(n, start + batch))
        ]
        await frontier.add(requests)
    return frontier


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="peak RSS of the in-memory frontier")
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--hosts", type=int, default=HOSTS)
    p.add_argument("--no-uvloop", action="store_true", help="run on asyncio's own loop")
    args = p.parse_args(argv)
    loop_factory = None
    if not args.no_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    gc.collect()
    baseline = _rss_mb()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        t0 = time.perf_counter()
        frontier = runner.run(fill(args.requests, hosts=args.hosts))
        seconds = time.perf_counter() - t0
        counts = runner.run(frontier.counts())
    peak = max(_peak_rss_mb(), _rss_mb())
    result = {
        "requests": args.requests,
        "pending": counts.pending,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "bytes_per_request": round((peak - baseline) * 2**20 / max(1, args.requests)),
        "seconds": round(seconds, 2),
    }
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
