"""Memory of a durable job with 1,000,000 pending requests (goal: peak RSS <= 150 MB).

Adds 1,000,000 requests with realistic URLs to a :class:`SqliteFrontier` in batches of 1,000
(as the engine's seeder does), then leases and acks 20,000 of them, each ack adding four
children (mostly new, some duplicates) and one item drained to a JSON lines file, the way the
engine does. Prints the peak RSS beside the goal, the times, the ack throughput, and what
opening the job again costs (recovery of a 1M-request database, and the job directory's
``PRAGMA integrity_check``).

Run: ``.venv/bin/python bench/memory_sqlite.py [N]`` (N defaults to 1,000,000).
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from crawler.frontier.sqlite import SqliteFrontier
from crawler.http import Request

GOAL_MB = 150
BATCH = 1000
ACKS = 20_000


def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LoopLag:
    """The longest the event loop was held up (a 5 ms sleep that overshoots), and the
    largest the WAL file got: what a crawl running beside the frontier would feel."""

    def __init__(self, wal: Path) -> None:
        self.worst = 0.0
        self.wal_max = 0
        self._wal = wal

    async def run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - t0 - 0.005)
            try:
                self.wal_max = max(self.wal_max, self._wal.stat().st_size)
            except FileNotFoundError:
                pass


def url(i: int) -> str:
    shop = i % 977
    return (
        f"https://www.shop{shop}.example.com/catalogue/category/books_{i % 53}/"
        f"product-{i}-the-title-of-a-book-{i % 10007}/index.html?ref=list&page={i % 50 + 1}"
    )


async def run(n: int, folder: Path) -> None:
    out = folder / "items.jsonl"
    frontier = SqliteFrontier(folder / "frontier.sqlite3", spider_name="bench")
    await frontier.open()
    exporter = await frontier.open_output(str(out), overwrite=True)
    print(f"start: peak RSS {rss_mb():.1f} MB")
    lag = LoopLag(folder / "frontier.sqlite3-wal")
    lag_task = asyncio.create_task(lag.run())

    t_build = t_add = 0.0
    for start in range(0, n, BATCH):
        t0 = time.perf_counter()
        batch = [Request(url(i)) for i in range(start, min(n, start + BATCH))]
        for request in batch:
            request.fingerprint  # noqa: B018  (computed here so it is not counted below)
        t1 = time.perf_counter()
        await frontier.add(batch)
        t_add += time.perf_counter() - t1
        t_build += t1 - t0
        await asyncio.sleep(0)  # let the group commit timer run, as in a crawl
    t1 = time.perf_counter()
    await frontier.commit()
    t_add += time.perf_counter() - t1
    print(f"added {n:,} requests: {t_add:.1f} s in the frontier ({n / t_add:,.0f}/s), "
          f"{t_build:.1f} s building the Requests; peak RSS {rss_mb():.1f} MB; "
          f"worst loop lag {lag.worst * 1e3:.0f} ms, largest WAL {lag.wal_max >> 20} MB")
    lag.worst = 0.0

    acked = 0
    t_front = t_build = 0.0
    while acked < ACKS:
        t0 = time.perf_counter()
        leases = await frontier.lease(64)
        t_front += time.perf_counter() - t0
        for lease in leases:
            t0 = time.perf_counter()
            i = n + acked * 4
            children = [Request(url(i + k if k < 3 else acked)) for k in range(4)]
            for child in children:
                child.fingerprint  # noqa: B018
            item = {"url": lease.request.url, "title": f"book {acked}", "price": "51.77"}
            t1 = time.perf_counter()
            await frontier.ack(lease, children, [item])
            await frontier.drain(exporter)
            t_front += time.perf_counter() - t1
            t_build += t1 - t0
            acked += 1
        await asyncio.sleep(0)
    t0 = time.perf_counter()
    await frontier.commit()
    t_front += time.perf_counter() - t0
    counts = await frontier.counts()
    print(f"leased+acked {acked:,} (4 children + 1 item each): {t_front:.1f} s in the frontier "
          f"({acked / t_front:,.0f} acks/s), {t_build:.1f} s building children; "
          f"worst loop lag {lag.worst * 1e3:.0f} ms, largest WAL {lag.wal_max >> 20} MB; {counts}")
    lag_task.cancel()
    await frontier.close()
    exporter.close()

    t0 = time.perf_counter()
    again = SqliteFrontier(folder / "frontier.sqlite3", spider_name="bench")
    await again.open()
    t_open = time.perf_counter() - t0
    await again.close()
    t0 = time.perf_counter()
    conn = sqlite3.connect(folder / "frontier.sqlite3")
    check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    t_check = time.perf_counter() - t0
    size = (folder / "frontier.sqlite3").stat().st_size / 1e6
    print(f"database {size:.0f} MB; reopen {t_open:.2f} s; integrity_check {check!r} "
          f"in {t_check:.2f} s")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        asyncio.run(run(n, Path(tmp)))
    peak = rss_mb()
    verdict = "OK" if peak <= GOAL_MB else "OVER THE GOAL"
    print(f"peak RSS {peak:.1f} MB with {n:,} pending requests (goal <= {GOAL_MB} MB): {verdict}")


if __name__ == "__main__":
    main()
