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

    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        await frontier.add([Request(url(i)) for i in range(start, min(n, start + BATCH))])
        await asyncio.sleep(0)  # let the group commit timer run, as in a crawl
    await frontier.commit()
    t_add = time.perf_counter() - t0
    print(f"added {n:,} requests in {t_add:.1f} s ({n / t_add:,.0f}/s); "
          f"peak RSS {rss_mb():.1f} MB")

    acked = 0
    t0 = time.perf_counter()
    while acked < ACKS:
        leases = await frontier.lease(64)
        for lease in leases:
            i = n + acked * 4
            children = [Request(url(i + k if k < 3 else acked)) for k in range(4)]
            item = {"url": lease.request.url, "title": f"book {acked}", "price": "51.77"}
            await frontier.ack(lease, children, [item])
            await frontier.drain(exporter)
            acked += 1
        await asyncio.sleep(0)
    t_ack = time.perf_counter() - t0
    counts = await frontier.counts()
    print(f"leased+acked {acked:,} (4 children, 1 item each) in {t_ack:.1f} s "
          f"({acked / t_ack:,.0f} acks/s incl. building the children); {counts}")
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
