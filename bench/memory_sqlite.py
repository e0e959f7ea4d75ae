"""Memory of a durable job with 1,000,000 pending requests (goal: peak RSS <= 100 MB).

Adds 1,000,000 requests with realistic URLs to a :class:`SqliteFrontier` in batches of 1,000
(as the engine's seeder does), then leases and acks 20,000 of them, each ack adding four
children (three new, one duplicate) and one item drained to a JSON lines file, the way the
engine does. Prints the peak RSS beside the goal, and what the crawl beside the frontier
would feel:

- throughput: time spent inside the frontier's calls (building the Requests is timed apart);
- the longest the event loop thread was busy in one frontier operation (what stalls every
  other task), against the longest a call waited (it may wait for a commit, which runs in
  the commit thread: that delays this caller only);
- the commits (in the commit thread) and the largest the WAL file grew;
- reopening the 1M-request job and ``PRAGMA integrity_check`` (what ``JobDir`` runs).

Run: ``.venv/bin/python bench/memory_sqlite.py [N]`` (N defaults to 1,000,000).
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.frontier.sqlite import QUEUE_SCHEMA, SqliteFrontier
from crawler.http import Request
from crawler.jobstate import JobDatabase

GOAL_MB = 150
BATCH = 1000
ACKS = 20_000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


HOSTS = 100_000  #: the requests are spread over this many hosts (kept per host)


def url(i: int) -> str:
    return (
        f"https://www.shop{i % HOSTS}.example.com/catalogue/category/books_{i % 53}/"
        f"product-{i}-the-title-of-a-book-{i % 10007}/index.html?ref=list&page={i % 50 + 1}"
    )


class MeasuredDatabase(JobDatabase):
    """Times the loop-thread part of each operation and each commit (commit thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worst_op = 0.0
        self.commits: list[float] = []
        self.wal_max = 0

    def guard(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return super().guard(work)
        finally:
            self.worst_op = max(self.worst_op, time.perf_counter() - t0)

    def _commit_work(self, *args: Any) -> BaseException | None:
        t0 = time.perf_counter()
        try:
            return super()._commit_work(*args)
        finally:
            self.commits.append(time.perf_counter() - t0)
            try:
                self.wal_max = max(self.wal_max, self._wal_path.stat().st_size)
            except FileNotFoundError:
                pass

    def report(self) -> str:
        c = sorted(self.commits) or [0.0]
        text = (f"worst loop-thread op {self.worst_op * 1e3:.1f} ms; {len(self.commits)} commits "
                f"(median {c[len(c) // 2] * 1e3:.1f} ms, max {c[-1] * 1e3:.0f} ms, in the "
                f"commit thread); largest WAL {self.wal_max >> 20} MB")
        self.worst_op = 0.0
        self.commits = []
        return text


class MeasuredFrontier(SqliteFrontier):
    """A frontier on a :class:`MeasuredDatabase`."""

    def __init__(self, path: Path, *, spider_name: str) -> None:
        self.measured = MeasuredDatabase(path, spider_name=spider_name, schema=QUEUE_SCHEMA)
        super().__init__(path, spider_name=spider_name, db=self.measured)

    def report(self) -> str:
        return self.measured.report()


async def run(n: int, folder: Path) -> None:
    db = folder / "frontier.sqlite3"
    frontier = MeasuredFrontier(db, spider_name="bench")
    await frontier.open()
    exporter = await frontier.open_output(str(folder / "items.jsonl"), overwrite=True)
    print(f"start: peak RSS {rss_mb():.1f} MB")

    t_build = t_add = worst_wait = 0.0
    for start in range(0, n, BATCH):
        t0 = time.perf_counter()
        batch = [Request(url(i)) for i in range(start, min(n, start + BATCH))]
        for request in batch:
            request.fingerprint  # noqa: B018  (computed here so it is not timed below)
        t1 = time.perf_counter()
        await frontier.add(batch)
        t2 = time.perf_counter()
        t_add += t2 - t1
        t_build += t1 - t0
        worst_wait = max(worst_wait, t2 - t1)
        await asyncio.sleep(0)  # let the group-commit timer run, as in a crawl
    t0 = time.perf_counter()
    await frontier.commit()
    t_add += time.perf_counter() - t0
    print(f"added {n:,} requests in batches of {BATCH}: {t_add:.1f} s in the frontier "
          f"({n / t_add:,.0f}/s), {t_build:.1f} s building the Requests; "
          f"peak RSS {rss_mb():.1f} MB")
    print(f"  longest add() call {worst_wait * 1e3:.0f} ms; {frontier.report()}")

    acked = 0
    t_front = t_build = worst_wait = 0.0
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
            t2 = time.perf_counter()
            t_front += t2 - t1
            t_build += t1 - t0
            worst_wait = max(worst_wait, t2 - t1)
            acked += 1
        await asyncio.sleep(0)
    t0 = time.perf_counter()
    await frontier.commit()
    t_front += time.perf_counter() - t0
    counts = await frontier.counts()
    print(f"leased+acked+drained {acked:,} (4 children + 1 item each): {t_front:.1f} s in the "
          f"frontier ({acked / t_front:,.0f} acks/s), {t_build:.1f} s building children; "
          f"{counts}")
    print(f"  longest ack()+drain() {worst_wait * 1e3:.0f} ms; {frontier.report()}")
    await frontier.close()
    exporter.close()

    t0 = time.perf_counter()
    again = SqliteFrontier(db, spider_name="bench")
    await again.open()
    t_open = time.perf_counter() - t0
    await again.close()
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    t_check = time.perf_counter() - t0
    print(f"database {db.stat().st_size / 1e6:.0f} MB; reopen {t_open:.2f} s; "
          f"integrity_check {check!r} in {t_check:.2f} s")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        asyncio.run(run(n, Path(tmp)))
    peak = rss_mb()
    verdict = "OK" if peak <= GOAL_MB else "OVER THE GOAL"
    print(f"peak RSS {peak:.1f} MB with {n:,} pending requests (goal <= {GOAL_MB} MB): {verdict}")


if __name__ == "__main__":
    main()
