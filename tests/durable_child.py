"""A durable crawl at the frontier level, run as a child process by the kill soak.

Usage::

    python tests/durable_child.py JOBDIR OUTPUT NODES [--pace SECONDS] [--commit-interval S]

Crawls a synthetic graph of NODES pages through a job directory, the SQLite frontier and a
JSON lines exporter, the way the engine does: lease a batch, "process" each request, ack it
with its children and items, drain. Page ``i`` yields one item ``{"node": i, ...}`` and links
to a few other pages, many of them already seen. Every 13th page fails on its first
delivery and is rescheduled with a short delay, as a retry. ``spider.state``-like counters
go through :meth:`SqliteFrontier.track_state`.

Prints ``ready`` once the job is open (the parent starts its kill timer then) and
``already finished`` (exit 0) for a job that has nothing left to do; exits 0 when the crawl
is finished. ``--pace`` sleeps between batches so a kill lands in the middle of the crawl.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from typing import Any

from crawler.frontier.base import Lease
from crawler.frontier.sqlite import SqliteFrontier
from crawler.http import Request
from crawler.jobdir import JobDir

BASE = "http://site.test/node/"


def node_of(request: Request) -> int:
    return int(request.url.rsplit("/", 1)[1])


def links(i: int, nodes: int) -> list[int]:
    """Page i's links: the next page (so every page is reached), and some that repeat."""
    out = [(i * 7 + 3) % nodes, i // 2, (i * i) % nodes]
    if i + 1 < nodes:
        out.append(i + 1)
    return out


async def process(
    frontier: SqliteFrontier, exporter: Any, lease: Lease, nodes: int, state: dict[str, Any]
) -> None:
    request = lease.request
    i = node_of(request)
    if i % 13 == 0 and not request.meta.get("retry_times"):
        retry = request.replace(meta={"retry_times": 1})
        await frontier.reschedule(lease, retry, 0.02)
        return
    children = [Request(f"{BASE}{j}", "parse") for j in links(i, nodes)]
    item = {"node": i, "url": request.url, "price": Decimal("1.10"), "title": f"page {i}"}
    await frontier.ack(lease, children, [item])
    # Counted right after the ack returns, with no await in between: every commit's state
    # snapshot matches the acks it commits.
    state["items"] = state.get("items", 0) + 1
    await frontier.drain(exporter)


async def crawl(jobdir: str, output: str, nodes: int, pace: float, commit_interval: float) -> int:
    with JobDir(jobdir, "soak", output, "jsonl") as job:
        if job.finished:
            print("already finished", flush=True)
            return 0
        frontier = job.frontier(commit_interval=commit_interval)
        await frontier.open()
        try:
            exporter = await frontier.open_output(output, overwrite=True)
            try:
                _, state = frontier.load_state()
                frontier.track_state(lambda: ({}, state))
                if not frontier.seeded:
                    await frontier.add([Request(f"{BASE}0", "parse")])
                    await frontier.mark_seeded()
                print("ready", flush=True)
                while not await frontier.is_finished():
                    leases = await frontier.lease(16)
                    if not leases:
                        await asyncio.sleep(min(frontier.next_ready_in() or 0.005, 0.05))
                        continue
                    for lease in leases:
                        await process(frontier, exporter, lease, nodes, state)
                    await asyncio.sleep(pace)
                await frontier.finish("finished")
            finally:
                exporter.close()
        finally:
            await frontier.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobdir")
    parser.add_argument("output")
    parser.add_argument("nodes", type=int)
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--commit-interval", type=float, default=0.1)
    args = parser.parse_args()
    return asyncio.run(
        crawl(args.jobdir, args.output, args.nodes, args.pace, args.commit_interval)
    )


if __name__ == "__main__":
    sys.exit(main())
