"""The Redis frontier against a real Redis: the frontier contract across workers, atomic dedup,
lease expiry and dead letters, Redis restarts, scheduling by host across workers (concurrency,
delays, pauses, holds), a crawl whose state vanished."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from crawler.errors import FrontierLost
from crawler.feeds import open_feeds
from crawler.frontier.base import Lease
from crawler.frontier.redis import RedisFrontier
from crawler.frontier.redis_admin import frontier_purge, frontier_status
from crawler.http import Request, Response
from crawler.runner import run_spider
from crawler.settings import FeedOptions
from crawler.slots import Slot
from crawler.spider import Spider

from .conftest import make_settings
from .redis_util import RedisServer
from .servers import Canned, TestSite

if TYPE_CHECKING:
    from collections.abc import Callable

    from .redis_util import RedisCrawl


PROJECT_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.redis


def urls(leases: list[Lease]) -> list[str]:
    return [lease.request.url for lease in leases]


async def drain(frontier: RedisFrontier, limit: int = 100) -> list[Lease]:
    """Lease everything that is ready now."""
    out: list[Lease] = []
    while batch := await frontier.lease(limit):
        out += batch
    return out


# ------------------------------------------------------------------------------ contract


async def test_priority_then_fifo_across_workers(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request("http://h/a0"), Request("http://h/b5", priority=5)])
    await b.add([Request("http://h/c0"), Request("http://h/d5", priority=5)])
    await a.add([Request("http://h/e1", priority=1), Request("http://h/f-3", priority=-3)])
    leased = await b.lease(2) + await a.lease(10)
    assert urls(leased) == [
        "http://h/b5", "http://h/d5", "http://h/e1", "http://h/a0", "http://h/c0", "http://h/f-3"
    ]
    assert all(lease.deliveries == 1 for lease in leased)


async def test_request_round_trips(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier()
    sent = Request("http://h/p?q=1", "parse_item", method="POST", body=b"x=1",
                   headers={"X-A": "b"}, meta={"k": [1, 2]}, cb_kwargs={"n": 3}, priority=2,
                   depth=4, errback="on_error")
    await f.add([sent])
    (lease,) = await f.lease(5)
    got = lease.request
    assert (got.url, got.method, got.body, got.headers["X-A"], got.meta, got.cb_kwargs) == (
        sent.url, "POST", b"x=1", "b", {"k": [1, 2]}, {"n": 3})
    assert (got.callback, got.errback, got.priority, got.depth) == ("parse_item", "on_error", 2, 4)
    assert got.fingerprint == sent.fingerprint


async def test_dedup_and_dont_filter(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    assert await a.add([Request("http://h/1"), Request("http://h/1"), Request("http://h/2")]) == 2
    assert await b.add([Request("http://h/1"), Request("http://h/2#frag")]) == 0
    assert await b.add([Request("http://h/1", dont_filter=True)] * 2) == 2
    # dont_filter does not mark the URL seen: a first normal add of a new URL still counts.
    assert await a.add([Request("http://h/3", dont_filter=True), Request("http://h/3")]) == 2
    assert (await a.counts()).pending == 6


async def test_known_answers_what_this_worker_added(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    fp = Request("http://h/1").fingerprint
    assert not a.known(fp)
    await a.add([Request("http://h/1"), Request("http://h/x", dont_filter=True)])
    assert a.known(fp)
    assert not a.known(Request("http://h/x").fingerprint)  # dont_filter: never recorded seen
    assert not b.known(fp)  # not sent by b: the seen set in Redis decides
    assert await b.add([Request("http://h/1")]) == 0
    (lease,) = [x for x in await drain(b) if x.request.url == "http://h/1"]
    await b.ack(lease, [Request("http://h/2")])
    assert b.known(Request("http://h/2").fingerprint)
    # A link this worker knows is skipped before a Request is built; the others still are.
    response = Response("http://h/1", 200, {"Content-Type": "text/html"},
                        b'<a href="/2">two</a><a href="/3">three</a>')
    response.known = b.known
    assert [r.url for r in response.follow_all(css="a")] == ["http://h/3"]


async def test_links_other_workers_added_come_back_with_acks(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request("http://h/a"), Request("http://h/b")])
    leases = await drain(a)
    form = Request("http://h/form", method="POST", body=b"q=1")
    await a.ack(leases[0], [Request("http://h/2"), form, Request("http://h/x", dont_filter=True)])
    # b's ack brings back what a added: the fingerprints, and the link of the plain GET.
    await b.add([Request("http://h/c")])
    (c,) = await b.lease(1)
    await b.ack(c)
    assert "http://h/2" in b.known_links and "http://h/form" not in b.known_links
    assert b.known(Request("http://h/2").fingerprint) and b.known(form.fingerprint)
    assert not b.known(Request("http://h/x").fingerprint)  # dont_filter: never recorded seen
    # A worker is not sent back its own links: a learns only the one b added.
    await a.ack(leases[1])
    assert a.known_links == {"http://h/c"}
    # A link another worker sent is skipped without a question to the frontier.
    response = Response("http://h/c", 200, {"Content-Type": "text/html"},
                        b'<a href="/2">two</a><a href="/3">three</a>')
    response.known = lambda fp: False
    response.known_links = b.known_links
    assert [r.url for r in response.follow_all(css="a")] == ["http://h/3"]


async def test_a_worker_behind_the_kept_links_reads_from_the_oldest_kept(
    redis_crawl: RedisCrawl,
) -> None:
    a = await redis_crawl.frontier()
    await a.add([Request("http://h/root")])
    (root,) = await a.lease(1)
    await a.ack(root, [Request(f"http://h/{n}") for n in range(5)])
    # The list of links is kept short (hints only): here, trimmed to its last entry.
    redis_crawl.client().ltrim(f"{a.prefix}links", -1, -1)
    late = await redis_crawl.frontier()
    (one,) = await late.lease(1)
    await late.ack(one)
    assert late.known_links == {"http://h/4"}
    assert (await late.counts()).pending == 4  # dedup is the seen set's: nothing lost


async def test_a_unix_socket_url_is_a_shared_frontier(tmp_path: Path) -> None:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        settings = make_settings(frontier_url=f"unix://{sock}")
        frontier = RedisFrontier.from_settings(settings, "unix")
        async with frontier:
            await frontier.add([Request("http://h/1")])
            (lease,) = await frontier.lease(5)
            await frontier.ack(lease, [Request("http://h/2")])
            counts = await frontier.counts()
            assert (counts.done, counts.pending + counts.in_flight) == (1, 1)
    finally:
        proc.kill()
        proc.wait()


async def test_one_worker_seeds_others_wait_for_it(redis_crawl: RedisCrawl) -> None:
    seeder = await redis_crawl.frontier(seeded=False)
    joiner = await redis_crawl.frontier(seeded=False)
    assert (seeder.seeded, joiner.seeded) == (False, True)  # only the first runs start()
    # Nothing queued yet, but the seeder is alive and not done: the joiner must not finish.
    assert await joiner.lease(5) == []
    assert not await joiner.is_finished()
    assert joiner.next_ready_in() is not None
    await seeder.add([Request("http://h/start", dont_filter=True)])
    await seeder.mark_seeded()
    (lease,) = await joiner.lease(5)
    await joiner.ack(lease)
    assert await joiner.is_finished() and await seeder.is_finished()
    late = await redis_crawl.frontier(seeded=False)
    assert late.seeded  # a worker started after seeding does not seed again


async def test_seeding_is_taken_over_from_a_stopped_seeder(redis_crawl: RedisCrawl) -> None:
    seeder = await redis_crawl.frontier(seeded=False, lease_timeout=0.5)
    joiner = await redis_crawl.frontier(seeded=False, lease_timeout=0.5)
    assert not seeder.seeded and joiner.seeded
    await seeder.add([Request("http://h/1")])
    await seeder.close()  # stopped before mark_seeded (Ctrl-C during start())
    (lease,) = await joiner.lease(5)
    await joiner.ack(lease)
    assert await joiner.is_finished()  # ends (logging why), rather than waiting forever
    replacement = await redis_crawl.frontier(seeded=False, lease_timeout=0.5)
    assert not replacement.seeded  # takes the seeding over


async def test_ack_adds_children_deduplicated(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request("http://h/root"), Request("http://h/known")])
    (root,) = await a.lease(1)
    added = await a.ack(root, [Request("http://h/known"), Request("http://h/c1"),
                               Request("http://h/c1"), Request("http://h/root")])
    assert added == 1
    counts = await b.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (2, 0, 1)
    assert urls(await drain(b)) == ["http://h/known", "http://h/c1"]


async def test_reschedule_with_delay(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier()
    await f.add([Request("http://h/r")])
    (lease,) = await f.lease(1)
    retry = lease.request.replace(meta={"retry": 1})
    await f.reschedule(lease, retry, 0.4)
    assert await f.lease(5) == []
    wait = f.next_ready_in()
    assert wait is not None and 0 < wait <= 0.4
    assert not await f.is_finished()  # delayed counts as pending
    assert (await f.counts()).pending == 1
    await asyncio.sleep(wait + 0.05)
    (again,) = await f.lease(5)
    assert again.request.meta == {"retry": 1}
    assert again.deliveries == 1  # a retry is an outcome, not a lost delivery
    await f.reschedule(again, again.request, 0)  # no delay: ready at once
    assert f.next_ready_in() == 0
    assert urls(await f.lease(5)) == ["http://h/r"]


async def test_release_puts_back_in_order(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier()
    await f.add([Request(f"http://h/{i}") for i in range(4)])
    first = await f.lease(3)
    await f.release(first)
    again = await f.lease(10)
    assert urls(again) == ["http://h/0", "http://h/1", "http://h/2", "http://h/3"]
    assert [lease.deliveries for lease in again] == [1, 1, 1, 1]


async def test_finished_only_when_no_worker_holds_anything(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request("http://h/only")])
    (lease,) = await a.lease(5)
    # B sees an empty queue while A holds a lease: it must wait (poll), not finish.
    assert await b.lease(5) == []
    assert not await b.is_finished()
    wait = b.next_ready_in()
    assert wait is not None and wait > 0
    for _ in range(5):  # however long it polls: the crawl may end with A's next ack
        assert await b.lease(5) == [] and not await b.is_finished()
        assert b.next_ready_in() == 0.05
    counts = await b.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (0, 1, 0)
    await a.ack(lease, [Request("http://h/child")])
    (child,) = await b.lease(5)
    assert not await a.is_finished()
    await b.ack(child)
    assert await a.is_finished() and await b.is_finished()
    assert b.next_ready_in() is None
    assert (await a.counts()).done == 2


async def test_polls_back_off_while_requests_wait_for_a_full_host(
    redis_crawl: RedisCrawl,
) -> None:
    """Unlike the crawl's tail (above): requests are pending, on a host another worker keeps
    at its concurrency, so the polls slow down to 0.2 s."""
    a = await redis_crawl.frontier(concurrency_per_host=2)
    b = await redis_crawl.frontier(concurrency_per_host=2)
    await a.add([Request(f"http://h.test/{i}") for i in range(5)])
    assert len(await a.lease(10)) == 2
    waits = []
    for _ in range(4):
        assert await b.lease(10) == [] and not await b.is_finished()
        waits.append(b.next_ready_in())
    assert waits == [0.1, 0.2, 0.2, 0.2]


async def test_late_ack_after_expiry_counts_once(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier(lease_timeout=0.3)
    b = await redis_crawl.frontier(lease_timeout=0.3)
    await a.add([Request("http://h/slow")])
    (lease_a,) = await a.lease(1)
    await a.close()  # A stops heartbeating while still processing
    await asyncio.sleep(0.4)
    (lease_b,) = await b.lease(1)
    assert lease_b.deliveries == 2
    await a.connection.client.ping()  # A's client reconnects on use
    assert await a.ack(lease_a, [Request("http://h/from-a")]) == 1
    assert await b.ack(lease_b, [Request("http://h/from-a")]) == 0
    counts = await b.counts()
    assert (counts.done, counts.in_flight, counts.pending) == (1, 0, 1)
    await a.connection.aclose()


async def test_heartbeat_keeps_leases(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier(lease_timeout=0.9)
    b = await redis_crawl.frontier(lease_timeout=0.9)
    await a.add([Request("http://h/long")])
    (lease,) = await a.lease(1)
    await asyncio.sleep(2.0)  # over 2 lease timeouts, renewed every 0.3 s
    assert await b.lease(5) == []
    await a.ack(lease)
    assert await b.is_finished()


async def test_shared_stats(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.merge_stats({"requests": 5, "status/200": 4, "bytes": 10.5, "max_depth": 3,
                         "elapsed": 2.0, "finish_reason": "finished", "pages_per_second": 2.5})
    await a.merge_stats({"requests": 8, "status/200": 4, "bytes": 11.0, "max_depth": 2})
    await b.merge_stats({"requests": 2, "max_depth": 5})
    stats = await b.shared_stats()
    assert stats == {"requests": 10, "status/200": 4, "bytes": 11.0, "max_depth": 5}


async def test_a_requests_items_are_stored_before_its_ack_reaches_redis(
    redis_crawl: RedisCrawl, tmp_path: Path
) -> None:
    # A shared crawl gathers its output and writes it in batches: the items of every page
    # whose ack is about to leave are written first (FeedSet.settle), so a kill -9 at any
    # moment can lose no item of a request Redis counts as done.
    out, db = tmp_path / "items.jsonl", tmp_path / "items.db"
    feeds = open_feeds({str(out): FeedOptions(), f"sqlite:///{db}?table=items": FeedOptions()},
                       model=None, error_timeout=5.0,
                       buffer_items=100, gather=True, raise_errors=False, write_through=True,
                       prefix="t", resumed=False)
    f = await redis_crawl.frontier(prefetch=True)
    client = redis_crawl.client()
    seen_at_ack: list[tuple[int, int, int]] = []

    def settle() -> None:
        feeds.settle()
        lines = len(out.read_bytes().splitlines())
        with sqlite3.connect(db) as conn:
            rows = int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
        seen_at_ack.append((lines, rows, int(client.get(redis_crawl.key("done")) or 0)))

    f.before_ack = settle
    try:
        await f.add([Request(f"http://a.test/{i}") for i in range(3)])
        leases = await drain(f)
        for n, lease in enumerate(leases):
            feeds.write([{"n": n}], lease.request, 0)
        assert out.read_bytes() == b""  # gathered, not written yet
        await asyncio.gather(*(f.ack(lease) for lease in leases))
        # The ack call found its acks' items in the file and committed in the table, and
        # Redis not told yet.
        assert seen_at_ack and seen_at_ack[0] == (3, 3, 0)
        assert int(client.get(redis_crawl.key("done")) or 0) == 3
        assert [orjson.loads(line)["n"] for line in out.read_bytes().splitlines()] == [0, 1, 2]
    finally:
        feeds.close()
        client.close()


# ------------------------------------------------------------------ atomic dedup at scale


async def test_two_workers_add_same_10000_urls_concurrently(redis_crawl: RedisCrawl) -> None:
    # No per-host limit in the way: every request is leased at the end, without acks.
    a = await redis_crawl.frontier(concurrency_per_host=10_000)
    b = await redis_crawl.frontier(concurrency_per_host=10_000)
    requests = [Request(f"http://site{i % 7}.test/page/{i}") for i in range(10_000)]

    async def add_all(frontier: RedisFrontier, seed: int) -> int:
        # Each worker in its own random order, in small batches: the two interleave all along
        # and keep colliding on URLs the other one is adding at the same moment.
        mine = list(requests)
        random.Random(seed).shuffle(mine)
        total = 0
        for start in range(0, len(mine), 100):
            total += await frontier.add(mine[start:start + 100])
        return total

    added_a, added_b = await asyncio.gather(add_all(a, 1), add_all(b, 2))
    assert added_a + added_b == 10_000
    assert added_a > 0 and added_b > 0  # both took part
    client = redis_crawl.client()
    try:
        assert int(client.get(redis_crawl.key("npending")) or 0) == 10_000
        assert sum(client.zcard(redis_crawl.key(f"q:site{i}.test")) for i in range(7)) == 10_000
        assert client.scard(redis_crawl.key("seen")) == 10_000
        assert client.hlen(redis_crawl.key("data")) == 10_000
    finally:
        client.close()
    leased = await drain(a, 1000)
    assert sorted(urls(leased)) == sorted(r.url for r in requests)


# --------------------------------------------------------------------- expiry, dead letters


_CHILD = """
import asyncio, sys
from crawler.frontier.redis import RedisFrontier
from crawler.frontier.redis_admin import frontier_purge, frontier_status
async def main():
    f = RedisFrontier(sys.argv[1], spider_name=sys.argv[2], crawl_id=sys.argv[3],
                      lease_timeout=1.0, worker_id="doomed")
    await f.open()
    leases = await f.lease(3)
    print(" ".join(l.request.url for l in leases), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_killed_worker_leases_go_to_another_worker(redis_crawl: RedisCrawl) -> None:
    b = await redis_crawl.frontier(lease_timeout=1.0)
    await b.add([Request(f"http://h/{i}") for i in range(5)])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id],
        stdout=subprocess.PIPE, cwd=PROJECT_ROOT,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        held = line.decode().split()
        assert held == ["http://h/0", "http://h/1", "http://h/2"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    rest = await b.lease(10)
    assert urls(rest) == ["http://h/3", "http://h/4"]
    assert not await b.is_finished()  # the dead worker's leases still count
    deadline = time.monotonic() + 10
    reclaimed: list[Lease] = []
    while not reclaimed and time.monotonic() < deadline:
        await asyncio.sleep(b.next_ready_in() or 0.05)
        reclaimed = await b.lease(10)
    assert urls(reclaimed) == held
    assert [lease.deliveries for lease in reclaimed] == [2, 2, 2]
    for lease in rest + reclaimed:
        await b.ack(lease)
    assert await b.is_finished()
    status = await frontier_status(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    states = {w["id"]: w["state"] for w in status["workers"]}
    assert states == {"doomed": "lost", b.worker_id: "alive"}
    assert status["stats"]["frontier/reclaimed"] == 3


async def test_poison_request_is_dead_lettered_and_crawl_goes_on(redis_crawl: RedisCrawl) -> None:
    timeout = 0.3
    seed = await redis_crawl.frontier(lease_timeout=timeout, max_deliveries=2)
    await seed.add([Request("http://h/poison", priority=1), Request("http://h/fine")])
    # Two workers in a row lease the poison request and die (stop heartbeating) with it.
    for _ in range(2):
        victim = await redis_crawl.frontier(lease_timeout=timeout, max_deliveries=2)
        assert urls(await victim.lease(1)) == ["http://h/poison"]
        await victim.close()
        await asyncio.sleep(timeout + 0.1)
    # The third lease would be its third delivery: dead-lettered, and the crawl goes on.
    survivor = await redis_crawl.frontier(lease_timeout=timeout, max_deliveries=2)
    leased = await survivor.lease(10)
    assert urls(leased) == ["http://h/fine"]
    await survivor.ack(leased[0])
    assert await survivor.is_finished()
    counts = await survivor.counts()
    assert (counts.done, counts.dead) == (1, 1)
    status = await frontier_status(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    (dead,) = status["dead_letters"]
    assert dead["url"] == "http://h/poison"
    assert "2 times without being acknowledged" in dead["reason"]
    assert status["dead_lettered"] == 1


async def test_unreadable_request_is_dead_lettered_and_frees_its_host(
    redis_crawl: RedisCrawl,
) -> None:
    f = await redis_crawl.frontier(concurrency_per_host=1)
    await f.add([Request("http://h.test/bad"), Request("http://h.test/good")])
    client = redis_crawl.client()
    try:
        bad_id = "0000000000000001@h.test"  # the first request's id: its number, its host
        assert client.hexists(redis_crawl.key("data"), bad_id)
        client.hset(redis_crawl.key("data"), bad_id, b'{"v": 999}')  # another version's
    finally:
        client.close()
    assert await f.lease(10) == []  # the unreadable one went to the dead letters...
    assert urls(await f.lease(10)) == ["http://h.test/good"]  # ...and freed h.test's place
    status = await frontier_status(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    assert status["dead_lettered"] == 1
    assert "cannot decode" in status["dead_letters"][0]["reason"]


# ----------------------------------------------------------------------------- outage


async def _crawl_graph(frontier: RedisFrontier, seen: list[str], n: int) -> None:
    """A worker loop like the engine's: page i links to 2i+1 and 2i+2 below n."""
    while True:
        leases = await frontier.lease(8)
        if not leases:
            if await frontier.is_finished():
                return
            await asyncio.sleep(frontier.next_ready_in() or 0.05)
            continue
        for lease in leases:
            i = int(lease.request.url.rsplit("/", 1)[1])
            await asyncio.sleep(random.uniform(0, 0.004))
            seen.append(lease.request.url)
            kids = [Request(f"http://h/{j}") for j in (2 * i + 1, 2 * i + 2) if j < n]
            await frontier.ack(lease, kids)


async def test_redis_restart_mid_crawl_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
    redis_server: Callable[..., RedisServer],
) -> None:
    caplog.set_level(logging.WARNING, logger="crawler.frontier")
    # Our own server (never the shared one), persisting every write so a kill loses nothing.
    server = redis_server(appendonly=True, dir=tmp_path)
    server.start()
    n = 400
    url = server.url(0)
    workers = [RedisFrontier(url, spider_name="restart", lease_timeout=1.5) for _ in range(2)]
    for w in workers:
        await w.open()
    assert not workers[0].seeded and workers[1].seeded
    await workers[0].add([Request("http://h/0")])
    await workers[0].mark_seeded()
    seen: list[str] = []
    tasks = [asyncio.create_task(_crawl_graph(w, seen, n)) for w in workers]
    while len(seen) < n // 3:
        await asyncio.sleep(0.01)
    server.kill()
    at_kill = len(seen)
    await asyncio.sleep(1.0)
    assert len(seen) <= at_kill + 16  # paused: at most what was already leased went on
    server.start()
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks)
    assert set(seen) == {f"http://h/{i}" for i in range(n)}
    counts = await workers[0].counts()
    assert (counts.done, counts.pending, counts.in_flight) == (n, 0, 0)
    for w in workers:
        await w.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("unreachable" in m for m in messages)
    assert any("is back" in m for m in messages)
    # One warning per outage and connection, not one per retry.
    assert sum("unreachable" in m for m in messages) <= 2


async def test_open_waits_for_redis_to_come_up(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server()  # a free port, nothing listening yet
    f = RedisFrontier(server.url(), spider_name="late")
    opening = asyncio.create_task(f.open())
    await asyncio.sleep(0.5)
    assert not opening.done()  # waiting, not crashed
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(20):
        await opening
    assert await f.add([Request("http://h/x")]) == 1
    await f.close()


# ------------------------------------------------------------------ scheduling by host


def hosts(leases: list[Lease]) -> list[str]:
    return [lease.host for lease in leases]


async def test_hosts_served_by_priority_then_longest_ready(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier(concurrency_per_host=1)
    await f.add([Request("http://a.test/1"), Request("http://a.test/2")])
    await asyncio.sleep(0.01)  # c becomes ready after a
    await f.add([Request("http://c.test/1"), Request("http://c.test/2")])
    await f.add([Request("http://b.test/1", priority=5)])
    leased = await f.lease(10)
    # One place per host: b (best priority), then a (ready longer than c), then c.
    assert urls(leased) == ["http://b.test/1", "http://a.test/1", "http://c.test/1"]
    assert hosts(leased) == ["b.test", "a.test", "c.test"]
    assert await f.lease(10) == []  # every host with pending requests is busy
    await f.ack(leased[2])
    assert urls(await f.lease(10)) == ["http://c.test/2"]


async def test_idle_hosts_leave_nothing_behind(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier(download_delay=0.2)
    await f.add([Request("http://a.test/1"), Request("http://b.test/1")])
    for lease in await f.lease(10):
        await f.ack(lease)
    client = redis_crawl.client()
    try:
        # The next allowed start still matters for a while, then the host is forgotten.
        assert 0 < client.pttl(redis_crawl.key("h:a.test")) <= 1210  # delay + margin + 1 s
        await asyncio.sleep(1.3)
        assert client.keys(redis_crawl.key("h:*")) == []
        assert client.keys(redis_crawl.key("q:*")) == []
        assert client.zcard(redis_crawl.key("ready")) == client.zcard(redis_crawl.key("wait")) == 0
    finally:
        client.close()
    await f.add([Request("http://a.test/2")])  # a host coming back starts afresh
    assert urls(await f.lease(10)) == ["http://a.test/2"]


async def test_two_workers_never_exceed_concurrency_per_host(redis_crawl: RedisCrawl) -> None:
    workers = [await redis_crawl.frontier(concurrency_per_host=2) for _ in range(2)]
    await workers[0].add([Request(f"http://{h}.test/{i}") for i in range(20) for h in "ab"])
    in_flight = {"a.test": 0, "b.test": 0}
    peak = dict(in_flight)
    done: list[str] = []

    async def work(frontier: RedisFrontier, seed: int) -> None:
        rnd = random.Random(seed)
        while not await frontier.is_finished():
            leases = await frontier.lease(10)
            if not leases:
                await asyncio.sleep(0.002)
                continue
            for lease in leases:
                in_flight[lease.host] += 1
                peak[lease.host] = max(peak[lease.host], in_flight[lease.host])

            async def finish(lease: Lease) -> None:
                await asyncio.sleep(rnd.uniform(0.001, 0.01))
                in_flight[lease.host] -= 1  # before the ack: never counts less than Redis
                done.append(lease.request.url)
                await frontier.ack(lease)

            await asyncio.gather(*(finish(lease) for lease in leases))

    async with asyncio.timeout(60):
        await asyncio.gather(*(work(f, i) for i, f in enumerate(workers)))
    assert sorted(done) == sorted(f"http://{h}.test/{i}" for i in range(20) for h in "ab")
    assert peak == {"a.test": 2, "b.test": 2}  # reached, never passed, across both workers


async def test_workers_asking_together_share_a_hosts_places(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier(concurrency_per_host=8)
    b = await redis_crawl.frontier(concurrency_per_host=8)
    await a.add([Request(f"http://h.test/{i}") for i in range(40)])
    held = await a.lease(100)
    assert len(held) == 8  # alone: every place of the host
    assert await b.lease(100) == []  # the host is full
    for lease in held[:4]:
        await a.ack(lease)
    # Both asked within the last second: each may hold half of the host's places. a holds 4.
    assert await a.lease(100) == []
    got = await b.lease(100)
    assert len(got) == 4
    for lease in [*held[4:], *got]:
        await (a if lease in held else b).ack(lease)
    await asyncio.sleep(1.1)  # b stopped asking: a has the whole host again
    assert len(await a.lease(100)) == 8


async def test_a_workers_share_holds_within_one_lease_call(redis_crawl: RedisCrawl) -> None:
    """The share counts what the call itself took: a worker asking for many requests gets its
    share of a host, not the whole host after popping it again."""
    a = await redis_crawl.frontier(concurrency_per_host=8)
    b = await redis_crawl.frontier(concurrency_per_host=8)
    assert await a.lease(100) == [] and await b.lease(100) == []  # both asking
    await a.add([Request(f"http://h.test/{i}") for i in range(40)])
    held = await a.lease(100)
    assert len(held) == 4  # two workers asking: half of the host's places each
    got = await b.lease(100)
    assert len(got) == 4
    assert await a.lease(100) == [] and await b.lease(100) == []
    assert a.next_ready_in() != 0  # nothing ready for a: its share is held
    for lease in held:
        await a.ack(lease)
    assert len(await a.lease(100)) == 4


async def test_an_ack_brings_back_the_next_leases(redis_crawl: RedisCrawl) -> None:
    """prefetch: the places an ack call frees are leased in the same call, held (in flight)
    by the worker, handed out by the next lease without another call; close releases those
    never handed out."""
    a = await redis_crawl.frontier(concurrency_per_host=4, prefetch=True)
    await a.add([Request(f"http://h.test/{i}") for i in range(10)])
    held = await a.lease(100)
    assert urls(held) == [f"http://h.test/{i}" for i in range(4)]
    for lease in held[:2]:
        await a.ack(lease)
    counts = await a.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (4, 4, 2)
    calls = redis_crawl.client().info("commandstats")["cmdstat_evalsha"]["calls"]
    got = await a.lease(100)
    assert urls(got) == ["http://h.test/4", "http://h.test/5"]
    assert redis_crawl.client().info("commandstats")["cmdstat_evalsha"]["calls"] == calls
    await a.ack(got[0])  # leases h.test/6, never handed out
    await a.close()
    b = await redis_crawl.frontier(concurrency_per_host=4)
    # Released by close, first in line again (not after the lease timeout); a's three other
    # leases still hold their places on the host.
    assert urls(await b.lease(100)) == ["http://h.test/6"]


async def test_an_ack_leases_nothing_of_a_host_with_a_delay(redis_crawl: RedisCrawl) -> None:
    """A request an ack brings back may wait a moment before it starts: hosts with a delay
    are left to a lease made when the engine starts what it gets."""
    a = await redis_crawl.frontier(download_delay=0.2, prefetch=True)
    await a.add([Request(f"http://slow.test/{i}") for i in range(3)])
    (first,) = await a.lease(10)
    await asyncio.sleep(0.25)
    await a.ack(first)
    assert (await a.counts()).in_flight == 0
    assert urls(await a.lease(10)) == ["http://slow.test/1"]


async def test_a_hosts_delay_holds_across_workers(redis_crawl: RedisCrawl) -> None:
    delay = 0.2
    workers = [await redis_crawl.frontier(download_delay=delay) for _ in range(3)]
    await workers[0].add([Request(f"http://slow.test/{i}") for i in range(6)])
    starts: list[float] = []

    async def work(frontier: RedisFrontier) -> None:
        while not await frontier.is_finished():
            leases = await frontier.lease(10)
            assert len(leases) <= 1  # a host with a delay starts one request at a time
            for lease in leases:
                starts.append(time.monotonic())
                await frontier.ack(lease)
            if not leases:
                wait = frontier.next_ready_in()
                await asyncio.sleep(min(wait if wait is not None else 0.05, 0.05))

    async with asyncio.timeout(30):
        await asyncio.gather(*(work(f) for f in workers))
    assert len(starts) == 6
    gaps = [b - a for a, b in itertools.pairwise(sorted(starts))]
    # delay apart on the server's clock; measured here, after each reply: a little slack.
    assert min(gaps) > delay - 0.03


async def test_delay_reported_by_one_worker_holds_for_the_others(
    redis_crawl: RedisCrawl,
) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request(f"http://h.test/{i}") for i in range(4)])
    first = await b.lease(10)
    assert len(first) == 4  # no delay yet: up to concurrency_per_host at once
    await b.release(first)
    slot = a.slots.slot("h.test")  # AutoThrottle moves a slot's delay, then reports it
    slot.delay = 30.0
    a.slots.changed(slot)
    a.slots.raise_min_delay("x.test", 30.0)  # a robots.txt Crawl-delay of another host
    await a.add([Request("http://x.test/1")])  # carries both
    (one,) = await b.lease(10)
    assert one.host == "h.test"  # x.test waits for its Crawl-delay from now on
    assert await b.lease(10) == []
    await b.ack(one)
    assert await b.lease(10) == []  # the next start of h.test waits 30 s
    wait = b.next_ready_in()
    assert wait is not None and 25 < wait <= 30  # the engine sleeps until then


async def test_autothrottle_start_delay_holds_for_new_hosts(redis_crawl: RedisCrawl) -> None:
    f = await redis_crawl.frontier()

    def start(slot: Slot) -> None:  # what AutoThrottle.start does with its start delay
        slot.delay = 30.0

    f.slots.on_new = start
    await f.add([Request("http://a.test/1")])
    await f.add([Request(f"http://b.test/{i}") for i in range(3)])
    (first,) = await f.lease(1)
    assert f.slots.slot(first.host).delay == 30.0  # its local slot was made at lease
    # From now on a host nobody reported on starts with that delay: one request, then wait.
    assert urls(await f.lease(10)) == ["http://b.test/0"]
    assert await f.lease(10) == []


async def test_a_paused_host_does_not_block_others(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request(f"http://busy.test/{i}", priority=9) for i in range(3)])
    await a.add([Request(f"http://calm.test/{i}") for i in range(3)])
    a.slots.pause("busy.test", 60)  # Retry-After: sent at once, not with a later call
    deadline = time.monotonic() + 5
    while await redis_crawl_host_field(redis_crawl, "busy.test", "p") is None:
        assert time.monotonic() < deadline, "the pause never reached Redis"
        await asyncio.sleep(0.01)
    leased = await drain(b)
    assert hosts(leased) == ["calm.test"] * 3  # despite busy.test's better priority
    wait = b.next_ready_in()
    assert wait is not None and 50 < wait <= 60
    status = await frontier_status(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    assert (status["pending"], status["hosts_ready"], status["hosts_waiting"]) == (3, 0, 1)


async def redis_crawl_host_field(crawl: RedisCrawl, host: str, field: str) -> bytes | None:
    client = crawl.client()
    try:
        value = await asyncio.to_thread(client.hget, crawl.key(f"h:{host}"), field)
        return value.encode() if isinstance(value, str) else value
    finally:
        client.close()


async def test_a_dead_workers_host_comes_back_after_lease_timeout(
    redis_crawl: RedisCrawl,
) -> None:
    timeout = 0.6
    dead = await redis_crawl.frontier(concurrency_per_host=1, lease_timeout=timeout)
    alive = await redis_crawl.frontier(concurrency_per_host=1, lease_timeout=timeout)
    await dead.add([Request(f"http://frozen.test/{i}") for i in range(3)])
    await dead.add([Request("http://held.test/1"), Request("http://other.test/1")])
    (taken,) = await dead.lease(1)
    assert taken.host == "frozen.test"
    dead.slots.hold("held.test")  # its robots.txt is being fetched: no request starts
    await dead.lease(0)  # (nothing leased; the hold goes with the next call anyway)
    await dead._send_policy()
    await dead.close()  # dies holding frozen.test's only place and held.test's hold
    assert hosts(await alive.lease(10)) == ["other.test"]
    assert await alive.lease(10) == []
    await asyncio.sleep(timeout + 0.1)
    back = await drain(alive)
    # The lease expired: its place is free and the request first again; the hold is over.
    assert sorted(urls(back)) == ["http://frozen.test/0", "http://held.test/1"]
    frozen = next(lease for lease in back if lease.host == "frozen.test")
    assert frozen.deliveries == 2
    await alive.ack(frozen)
    assert urls(await alive.lease(10)) == ["http://frozen.test/1"]


async def test_hold_and_unhold_across_workers(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    b = await redis_crawl.frontier()
    await a.add([Request("http://r.test/1"), Request("http://r.test/2")])
    slot = a.slots.hold("r.test")
    await a._send_policy()
    assert await b.lease(10) == []
    a.slots.unhold(slot)
    await a._send_policy()
    assert len(await b.lease(10)) == 2


class _Pages(Spider):
    """Requests every URL of ``urls``; one item per page."""

    name = "redistest"
    urls: list[str] = []

    async def start(self) -> Any:
        for url in self.urls:
            yield Request(url)

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}


async def test_two_engines_share_a_crawl_delay_learnt_from_robots(
    redis_crawl: RedisCrawl, site: TestSite, tmp_path: Path
) -> None:
    site.canned["/robots.txt"] = Canned(200, "User-agent: *\nCrawl-delay: 0.25\n")
    urls = [site.url_for(f"/page/{i}") for i in range(6)]
    settings = make_settings(frontier_url=redis_crawl.url, crawl_id=redis_crawl.crawl_id,
                             obey_robots=True, concurrency_per_host=8)
    outs = [tmp_path / f"w{i}.jsonl" for i in range(2)]
    async with asyncio.timeout(60):
        results = await asyncio.gather(*(
            run_spider(_Pages, settings, spider_args={"urls": urls}, output=str(out))
            for out in outs
        ))
    assert [r.reason for r in results] == ["finished", "finished"]
    items = [orjson.loads(line)["url"] for out in outs if out.exists()
             for line in out.read_bytes().splitlines()]
    assert sorted(items) == sorted(urls)
    starts = [t for t, path, _ in site.stats.log if path.startswith("/page/")]
    assert len(starts) == 6
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.25 s apart on Redis's clock whichever worker leased them; measured at the site,
    # after a trip through either worker: generous slack for a loaded machine.
    assert min(gaps) >= 0.15, gaps  # without it: a few ms
    assert site.stats.hits["/robots.txt"] <= 2  # each worker reads it once


# ------------------------------------------------------------------- crawl state vanished


async def test_crawl_state_vanished_is_noticed(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier(lease_timeout=0.6)  # a heartbeat every 0.2 s
    await a.add([Request("http://h/1"), Request("http://h/2")])
    (lease, _) = await a.lease(10)
    # What a Redis restart without persistence (or a purge during the crawl) leaves.
    await frontier_purge(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    await asyncio.sleep(0.5)  # heartbeats meanwhile notice it, and write nothing
    with pytest.raises(FrontierLost, match="vanished"):
        await a.is_finished()  # not "finished": nothing pending because nothing is left
    assert await a.ack(lease, [Request("http://h/3")]) == 0  # an ack changes nothing now
    with pytest.raises(FrontierLost, match="vanished"):
        await a.lease(10)
    await a.close()
    client = redis_crawl.client()
    try:
        # Nothing enqueued again, no worker entry written: the crawl is simply not there.
        assert client.keys(redis_crawl.key("*")) == []
    finally:
        client.close()
    # A worker that starts afterwards begins a new crawl; the old one still refuses.
    fresh = await redis_crawl.frontier()
    assert await fresh.add([Request("http://h/1")]) == 1
    with pytest.raises(FrontierLost):
        await a.counts()
