"""The frontier contract (crawler/frontier/base.py), once, for every backend: memory, SQLite
(a real database file) and Redis (a real server). A rule that holds for one backend holds for
all of them, or this suite fails.

Times: a delay is checked by a lease that must return nothing *before* it passes (right after
the lease that started it) and the request *after* sleeping longer than it, never by timing a
call against an upper bound.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.frontier.base import Frontier, Lease
from crawler.frontier.memory import MemoryFrontier
from crawler.frontier.redis import RedisFrontier, frontier_purge
from crawler.frontier.sqlite import SqliteFrontier
from crawler.http import Request
from crawler.slots import Slots

MakeFrontier = Callable[..., Awaitable[Frontier]]

BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeFrontier]:
    """``await make(concurrency_per_host=..., download_delay=...)``: a new, opened frontier of
    the backend under test, closed at the end."""
    kind = request.param
    opened: list[Frontier] = []
    # A sync fixture: asked for here only when the backend needs it (no Redis, no skip).
    redis_url: str | None = request.getfixturevalue("redis_url") if kind == "redis" else None
    crawl_id = uuid.uuid4().hex

    async def factory(concurrency_per_host: int = 8, download_delay: float = 0.0) -> Frontier:
        frontier: Frontier
        if kind == "memory":
            frontier = MemoryFrontier(Slots(concurrency_per_host, download_delay))
            await frontier.open()
        elif kind == "sqlite":
            frontier = SqliteFrontier(
                tmp_path / f"job{len(opened)}.db", spider_name="s",
                slots=Slots(concurrency_per_host, download_delay),
            )
            await frontier.open()
        else:
            assert redis_url is not None
            frontier = RedisFrontier(
                redis_url, spider_name="conformance", crawl_id=crawl_id,
                concurrency_per_host=concurrency_per_host, download_delay=download_delay,
            )
            await frontier.open()
        opened.append(frontier)
        await frontier.mark_seeded()
        return frontier

    try:
        yield factory
    finally:
        for frontier in opened:
            await frontier.close()
        if redis_url is not None:
            await frontier_purge(redis_url, "conformance", crawl_id)


def req(url: str, **kwargs: Any) -> Request:
    return Request(url if "://" in url else f"http://a.test/{url}", **kwargs)


def urls(leases: list[Lease]) -> list[str]:
    return [lease.request.url for lease in leases]


def hosts(leases: list[Lease]) -> list[str]:
    return [lease.request.yurl.host or "" for lease in leases]


# ------------------------------------------------------------------------- the queue


async def test_add_deduplicates_and_dont_filter_skips_it(make: MakeFrontier) -> None:
    f = await make()
    assert await f.add([req("1"), req("2"), req("1")]) == 2
    assert await f.add([req("2")]) == 0
    assert await f.add([req("2", dont_filter=True)]) == 1
    assert (await f.counts()).pending == 3


async def test_priority_first_then_fifo_within_a_host(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=10)
    await f.add([req("low1"), req("high1", priority=5), req("low2"), req("high2", priority=5)])
    got = await f.lease(10)
    assert urls(got) == [req(p).url for p in ("high1", "high2", "low1", "low2")]


async def test_across_hosts_the_best_priority_goes_first(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    await f.add([req("http://a.test/1"), req("http://b.test/1", priority=3),
                 req("http://c.test/1", priority=1)])
    assert hosts(await f.lease(3)) == ["b.test", "c.test", "a.test"]


async def test_a_lease_holds_a_place_of_its_host(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=2)
    await f.add([req(str(i)) for i in range(5)])
    first = await f.lease(10)
    assert len(first) == 2  # the host's two places
    assert await f.lease(10) == []
    wait = f.next_ready_in()
    assert wait is None or wait >= 0  # nothing before an ack here
    await f.ack(first[0])
    again = await f.lease(10)
    assert len(again) == 1
    counts = await f.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (2, 2, 1)


async def test_a_busy_host_never_blocks_another(make: MakeFrontier) -> None:
    """Head-of-line blocking: 300 requests of one host ahead of one of another host."""
    f = await make(concurrency_per_host=1)
    await f.add([req(f"http://big.test/{i}") for i in range(300)])
    await f.add([req("http://small.test/1")])
    assert sorted(hosts(await f.lease(10))) == ["big.test", "small.test"]


async def test_equal_priorities_are_served_fairly(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    for host in "abc":
        await f.add([req(f"http://{host}.test/{i}") for i in range(3)])
    rounds = []
    for _ in range(3):
        leases = await f.lease(10)
        rounds.append(sorted(hosts(leases)))
        for lease in leases:
            await f.ack(lease)
    assert rounds == [["a.test", "b.test", "c.test"]] * 3


async def test_a_host_delay_spaces_its_leases_and_not_the_others(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=4, download_delay=0.3)
    await f.add([req(f"http://a.test/{i}") for i in range(2)])
    await f.add([req(f"http://b.test/{i}") for i in range(2)])
    first = await f.lease(10)
    assert sorted(hosts(first)) == ["a.test", "b.test"]  # one each: the next waits its delay
    assert await f.lease(10) == []
    wait = f.next_ready_in()
    assert wait is not None and wait > 0.1
    await asyncio.sleep(0.35)
    assert sorted(hosts(await f.lease(10))) == ["a.test", "b.test"]


async def test_a_paused_host_waits_alone(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    await f.add([req("http://slow.test/1"), req("http://ok.test/1")])
    f.slots.pause("slow.test", 3600)
    assert hosts(await f.lease(10)) == ["ok.test"]
    assert await f.lease(10) == []


async def test_a_held_host_starts_again_when_released(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    await f.add([req("http://h.test/1"), req("http://h.test/2")])
    [first] = await f.lease(10)
    slot = f.slots.hold("h.test")
    await f.ack(first)
    assert await f.lease(10) == []
    f.slots.unhold(slot)
    assert urls(await f.lease(10)) == ["http://h.test/2"]


async def test_a_crawl_delay_raises_the_floor(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=4)
    await f.add([req(str(i)) for i in range(3)])
    [first, *_] = await f.lease(1)
    f.slots.raise_min_delay("a.test", 0.3)
    await f.ack(first)
    assert await f.lease(10) == []
    await asyncio.sleep(0.35)
    assert len(await f.lease(10)) == 1


# ------------------------------------------------------------------ lease outcomes


async def test_ack_adds_children_and_finishes(make: MakeFrontier) -> None:
    f = await make()
    await f.add([req("root")])
    [lease] = await f.lease(1)
    assert await f.ack(lease, [req("c1"), req("c2"), req("root")]) == 2
    children = await f.lease(10)
    assert sorted(urls(children)) == [req("c1").url, req("c2").url]
    assert not await f.is_finished()
    for c in children:
        await f.ack(c)
    assert await f.is_finished()
    counts = await f.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (0, 0, 3)


async def test_a_doubled_ack_changes_nothing_and_raises_nothing(make: MakeFrontier) -> None:
    f = await make()
    await f.add([req("a")])
    [lease] = await f.lease(1)
    await f.ack(lease)
    assert await f.ack(lease, [req("child")]) == 1  # its children are still added
    await f.reschedule(lease, lease.request, 0)  # no longer held: left alone
    await f.release([lease])
    counts = await f.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (1, 0, 1)


async def test_reschedule_waits_its_delay(make: MakeFrontier) -> None:
    f = await make()
    await f.add([req("a")])
    [lease] = await f.lease(1)
    await f.reschedule(lease, lease.request.replace(meta={"retry_times": 1}), 0.3)
    assert await f.lease(1) == []
    assert not await f.is_finished()
    await asyncio.sleep(0.35)
    [again] = await f.lease(1)
    assert again.request.meta["retry_times"] == 1


async def test_release_puts_back_at_once(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=2)
    await f.add([req("1"), req("2"), req("3")])
    leases = await f.lease(2)
    await f.release(leases)
    assert (await f.counts()).in_flight == 0
    assert urls(await f.lease(2)) == urls(leases)  # they were first, they are first again


async def test_next_ready_in(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    await f.add([req("1"), req("2")])
    assert f.next_ready_in() == 0
    assert len(await f.lease(2)) == 1
    # The host is busy: not "now" (None: not before a lease ends; a shared frontier may
    # say when to look again).
    wait = f.next_ready_in()
    assert wait is None or wait > 0


async def test_many_hosts_each_lease_one(make: MakeFrontier) -> None:
    f = await make(concurrency_per_host=1)
    await f.add([req(f"http://h{h}.test/{i}") for h in range(50) for i in range(4)])
    first = await f.lease(1000)
    assert len(first) == 50 and len(set(hosts(first))) == 50
    for lease in first:
        await f.ack(lease)
    assert len(await f.lease(1000)) == 50
