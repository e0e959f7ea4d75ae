"""The SQLite frontier: the frontier contract, recovery on reopen, and exactly-once output
(outbox drain, torn tails, uncommitted acks), on real database files; plus a kill -9 soak."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.errors import UnstorableRequest
from crawler.frontier.sqlite import SqliteFrontier
from crawler.http import Request

HERE = Path(__file__).resolve().parent


def req(path: str, **kwargs: Any) -> Request:
    return Request(f"http://example.com/{path}", **kwargs)


def paths(leases: list[Any]) -> list[str]:
    return [lease.request.url.rsplit("/", 1)[1] for lease in leases]


async def opened(path: Path, spider: str = "s", **kwargs: Any) -> SqliteFrontier:
    frontier = SqliteFrontier(path, spider_name=spider, **kwargs)
    await frontier.open()
    return frontier


def crash(frontier: SqliteFrontier) -> None:
    """What a kill -9 leaves behind: the open transaction never commits (closing a
    connection inside a transaction rolls it back, as SQLite does for a dead process)."""
    db = frontier.db
    db._cancel_timer()
    if db._executor is not None:
        db._executor.shutdown(wait=True)  # a commit already under way may land
    conn = db._conn
    assert conn is not None
    db._conn = None
    conn.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
async def frontier(tmp_path: Path) -> Any:
    f = await opened(tmp_path / "job.sqlite3")
    yield f
    await f.close()


# ------------------------------------------------------------------------- the contract


async def test_priority_then_fifo(frontier: SqliteFrontier) -> None:
    await frontier.add([req("a"), req("b", priority=5), req("c"), req("d", priority=5)])
    await frontier.add([req("e", priority=-1), req("f")])
    first = await frontier.lease(3)
    rest = await frontier.lease(10)
    assert paths(first) + paths(rest) == ["b", "d", "a", "c", "f", "e"]
    assert all(lease.deliveries == 1 for lease in first + rest)


async def test_dedup_by_fingerprint_and_dont_filter(frontier: SqliteFrontier) -> None:
    assert await frontier.add([req("a"), req("a"), req("b")]) == 2
    assert await frontier.add([req("a"), Request("http://EXAMPLE.com:80/b")]) == 0
    assert await frontier.add([req("a", dont_filter=True), req("a", dont_filter=True)]) == 2
    [lease] = await frontier.lease(1)
    # Children are deduplicated against everything seen, including done requests.
    assert await frontier.ack(lease, [req("a"), req("c"), req("c")]) == 1
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (4, 0, 1)


async def test_request_round_trips(frontier: SqliteFrontier) -> None:
    original = Request(
        "http://example.com/p?q=1", "parse_item", method="POST", body=b"x=1",
        headers={"X-A": "1"}, meta={"k": [1, 2]}, cb_kwargs={"n": 3}, priority=2, depth=4,
        handle_status=[404],
    )
    await frontier.add([original])
    [lease] = await frontier.lease(1)
    got = lease.request
    assert (got.url, got.callback, got.method, got.body) == (
        "http://example.com/p?q=1", "parse_item", "POST", b"x=1")
    assert (dict(got.headers), got.meta, got.cb_kwargs) == ({"X-A": "1"}, {"k": [1, 2]}, {"n": 3})
    assert (got.priority, got.depth, got.handle_status) == (2, 4, frozenset({404}))
    assert got.fingerprint == original.fingerprint


async def test_unstorable_request_fails_naming_the_field_and_changes_nothing(
    frontier: SqliteFrontier,
) -> None:
    with pytest.raises(UnstorableRequest, match="'meta'"):
        await frontier.add([req("a"), req("b", meta={"x": object()})])
    assert (await frontier.counts()).pending == 0
    await frontier.add([req("a")])
    [lease] = await frontier.lease(1)
    with pytest.raises(UnstorableRequest, match="'callback'"):
        await frontier.ack(lease, [req("c", callback=lambda r: None)])
    # Still in flight: nothing of the failed ack happened.
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (0, 1, 0)
    assert await frontier.ack(lease, [req("c")]) == 1


async def test_ack_twice_counts_once(frontier: SqliteFrontier) -> None:
    await frontier.add([req("a")])
    [lease] = await frontier.lease(1)
    await frontier.ack(lease)
    await frontier.ack(lease)  # the contract: a lease no longer held changes nothing
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (0, 0, 1)


async def test_delayed_reschedule(frontier: SqliteFrontier) -> None:
    await frontier.add([req("a"), req("b")])
    a, b = await frontier.lease(2)
    await frontier.reschedule(a, a.request.replace(meta={"retry_times": 1}), 0.3)
    await frontier.ack(b)
    assert await frontier.lease(5) == []
    wait = frontier.next_ready_in()
    assert wait is not None and 0 < wait <= 0.3
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (1, 0, 1)
    assert not await frontier.is_finished()
    await asyncio.sleep(wait + 0.01)
    assert frontier.next_ready_in() == 0.0
    [again] = await frontier.lease(5)
    assert again.request.meta == {"retry_times": 1}
    assert again.deliveries == 2
    await frontier.ack(again)
    assert await frontier.is_finished()
    assert frontier.next_ready_in() is None


async def test_reschedule_without_delay_goes_to_the_back(frontier: SqliteFrontier) -> None:
    await frontier.add([req("a"), req("b")])
    [a] = await frontier.lease(1)
    await frontier.reschedule(a, a.request, 0)
    assert paths(await frontier.lease(5)) == ["b", "a"]


async def test_release_keeps_the_place(frontier: SqliteFrontier) -> None:
    await frontier.add([req(x) for x in "abcd"])
    leased = await frontier.lease(3)
    await frontier.release(leased[1:])
    again = await frontier.lease(5)
    assert paths(again) == ["b", "c", "d"]
    assert [lease.deliveries for lease in again] == [2, 2, 1]


async def test_counts_and_is_finished(frontier: SqliteFrontier) -> None:
    assert await frontier.is_finished()
    assert frontier.next_ready_in() is None
    await frontier.add([req("a"), req("b")])
    assert not await frontier.is_finished()
    leases = await frontier.lease(2)
    assert not await frontier.is_finished()  # in flight is not finished
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (0, 2, 0)
    for lease in leases:
        await frontier.ack(lease)
    assert await frontier.is_finished()
    assert (await frontier.counts()).done == 2


# --------------------------------------------------------------------- reopen and crash


async def test_leased_requests_come_back_on_reopen(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db)
    await f.add([req(x) for x in "abcde"])
    a, *_ = await f.lease(3)
    await f.ack(a, [req("f")])
    await f.close()  # b and c stay leased, as when a process dies with them in flight

    f = await opened(db)
    assert f.resumed
    counts = await f.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (5, 0, 1)
    again = await f.lease(10)
    assert paths(again) == ["b", "c", "d", "e", "f"]  # recovered ones keep their place
    assert [lease.deliveries for lease in again] == [2, 2, 1, 1, 1]
    assert await f.add([req("a"), req("f")]) == 0  # the seen-set survived too
    await f.close()


async def test_uncommitted_acks_are_lost_whole(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db, commit_interval=60)
    await f.add([req("a"), req("b")])
    await f.commit()
    a, b = await f.lease(2)
    await f.ack(a, [req("c")])
    await f.commit()
    await f.ack(b, [req("d")])
    crash(f)  # the ack of b never committed

    f = await opened(db)
    counts = await f.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (2, 0, 1)
    assert sorted(paths(await f.lease(10))) == ["b", "c"]  # b again; its child d unknown
    assert await f.add([req("d")]) == 1
    await f.close()


async def test_delay_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db)
    await f.add([req("a")])
    [a] = await f.lease(1)
    await f.reschedule(a, a.request, 30)
    await f.close()
    f = await opened(db)
    assert await f.lease(1) == []
    wait = f.next_ready_in()
    assert wait is not None and 25 < wait <= 30
    await f.close()


@pytest.mark.slow
def test_kill_soak_exactly_once(tmp_path: Path) -> None:
    """A child crawls a synthetic 3,000-request graph through the frontier and a JSON lines
    exporter; it is SIGKILLed at random moments at least 10 times and restarted until it
    finishes. Every expected item must be in the output exactly once."""
    nodes = 3000
    jobdir, out = tmp_path / "job", tmp_path / "items.jsonl"
    # Commits every 20 ms (default 100 ms), so that the short runs between kills commit
    # some progress and the kills land all along the crawl.
    cmd = [sys.executable, str(HERE / "durable_child.py"), str(jobdir), str(out), str(nodes),
           "--pace", "0.008", "--commit-interval", "0.02"]
    rng = random.Random(4)
    kills = runs = 0
    while True:
        runs += 1
        assert runs < 60, "the crawl does not finish"
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready.startswith(b"ready"), (ready, child.communicate()[1])
        if kills < 12:
            time.sleep(rng.uniform(0.0, 0.4))
            child.kill()  # SIGKILL
        _, err = child.communicate(timeout=120)
        if child.returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert child.returncode == 0, err.decode()
        break
    assert kills >= 10

    lines = out.read_bytes().splitlines()
    items = [orjson.loads(line) for line in lines]  # every line parses
    counts = Counter(item["node"] for item in items)
    assert sorted(counts) == list(range(nodes))
    assert [n for n, c in counts.items() if c != 1] == []
    assert all(item["price"] == "1.10" for item in items)  # the Decimal, encoded once
    with sqlite3.connect(jobdir / "frontier.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        state = orjson.loads(conn.execute(
            "SELECT value FROM meta WHERE key = 'spider_state'").fetchone()[0])
    assert state["items"] == nodes  # spider state committed with the acks, across kills

    # A finished job run again does nothing.
    size = out.stat().st_size
    again = subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    assert b"already finished" in again.stdout
    assert out.stat().st_size == size
