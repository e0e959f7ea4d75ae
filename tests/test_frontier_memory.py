"""MemoryFrontier's own behaviour (crawler/frontier/memory.py): the compact form a waiting
request takes and gives back, the order of its lanes, its seen-set. The contract every backend
keeps is tested once in test_frontier.py."""

from __future__ import annotations

from typing import Any

from crawler.frontier.memory import MemoryFrontier
from crawler.http import Request, Response
from crawler.slots import Slots
from crawler.spider import Spider


class _Spider(Spider):
    name = "m"

    def parse_item(self, response: Response) -> Any:
        return None


def _one_host(concurrency: int = 1000) -> MemoryFrontier:
    return MemoryFrontier(Slots(concurrency, 0.0))


async def _drain(frontier: MemoryFrontier) -> list[Request]:
    out: list[Request] = []
    while leases := await frontier.lease(1000):
        out += [lease.request for lease in leases]
        for lease in leases:
            await frontier.ack(lease)
    return out


async def test_a_compact_request_comes_back_as_it_went_in() -> None:
    spider = _Spider()
    frontier = _one_host()
    sent = [
        Request("http://a.test/x?q=1", callback=spider.parse_item, depth=3),
        Request("http://a.test/y", callback="parse_item", dont_filter=True),
        Request("http://a.test/z"),
        Request("https://a.test:8443/other-origin", depth=1),  # same host, other origin
    ]
    await frontier.add(sent)
    got = await _drain(frontier)
    assert [(r.url, r.depth, r.dont_filter, r.priority, r.method) for r in got] == [
        (r.url, r.depth, r.dont_filter, r.priority, r.method) for r in sent]
    # A spider method comes back by its name: the engine resolves names on the spider.
    assert [r.callback for r in got] == ["parse_item", "parse_item", None, None]


async def test_what_has_no_compact_form_stays_the_same_request_in_order() -> None:
    frontier = _one_host()
    plain = Request("http://a.test/1")
    post = Request("http://a.test/2", method="POST", body=b"x")
    meta = Request("http://a.test/3", meta={"k": 1})
    lambda_cb = Request("http://a.test/4", callback=lambda response: None)
    long = Request("http://a.test/" + "l" * 40_000)
    tail = Request("http://a.test/5")
    await frontier.add([plain, post, meta, lambda_cb, long, tail])
    got = await _drain(frontier)
    assert [r.url for r in got] == [r.url for r in (plain, post, meta, lambda_cb, long, tail)]
    assert got[1] is post and got[2] is meta and got[3] is lambda_cb and got[4] is long
    assert got[1].body == b"x" and got[2].meta == {"k": 1}


async def test_fifo_holds_over_many_entries_of_one_host() -> None:
    # Enough entries that the lane's buffer is cut back several times while it is read.
    frontier = _one_host(concurrency=7)
    sent = [f"http://a.test/page/{i}" + "x" * (i % 300) for i in range(3000)]
    await frontier.add([Request(u) for u in sent[:1500]])
    got: list[str] = []
    while len(got) < 1000:
        leases = await frontier.lease(7)
        got += [lease.request.url for lease in leases]
        for lease in leases:
            await frontier.ack(lease)
    await frontier.add([Request(u) for u in sent[1500:]])
    got += [r.url for r in await _drain(frontier)]
    assert got == sent


async def test_released_requests_go_back_in_front_in_their_order() -> None:
    frontier = _one_host()
    await frontier.add([Request(f"http://a.test/{i}") for i in range(6)])
    leases = await frontier.lease(3)
    await frontier.release(leases)
    assert [r.url for r in await _drain(frontier)] == [f"http://a.test/{i}" for i in range(6)]


async def test_a_retry_at_once_goes_first_and_keeps_its_changes() -> None:
    frontier = _one_host()
    await frontier.add([Request(f"http://a.test/{i}") for i in range(3)])
    lease = (await frontier.lease(1))[0]
    retry = lease.request.replace(meta={"retry_times": 1})
    await frontier.reschedule(lease, retry, 0)
    got = await _drain(frontier)
    assert [r.url for r in got] == [f"http://a.test/{i}" for i in range(3)]
    assert got[0].meta == {"retry_times": 1}


async def test_priorities_of_one_host_in_order_fifo_within_each() -> None:
    frontier = _one_host()
    order = [(0, "a"), (5, "b"), (-1, "c"), (5, "d"), (0, "e"), (9, "f"), (-1, "g")]
    await frontier.add([Request(f"http://a.test/{n}", priority=p) for p, n in order])
    got = [r.url.rsplit("/", 1)[1] for r in await _drain(frontier)]
    assert got == ["f", "b", "d", "a", "e", "c", "g"]
    assert [r.priority for r in await _drain(frontier)] == []


async def test_known_answers_from_the_seen_set() -> None:
    frontier = _one_host()
    seen = Request("http://a.test/seen")
    assert not frontier.known(seen.fingerprint)
    assert await frontier.add([seen, Request("http://a.test/seen")]) == 1
    assert frontier.known(seen.fingerprint)
    assert not frontier.known(Request("http://a.test/other").fingerprint)
    # dont_filter skips the seen-set both ways: added again, and not recorded.
    free = Request("http://a.test/free", dont_filter=True)
    assert await frontier.add([free, free]) == 2
    assert not frontier.known(free.fingerprint)


async def test_counts_follow_every_state() -> None:
    frontier = _one_host()
    await frontier.add([Request(f"http://a.test/{i}") for i in range(4)])
    leases = await frontier.lease(3)
    await frontier.ack(leases[0])
    await frontier.reschedule(leases[1], leases[1].request, 60)
    counts = await frontier.counts()
    assert (counts.pending, counts.in_flight, counts.done) == (2, 1, 1)
    assert not await frontier.is_finished()


def test_the_seen_table_keeps_every_fingerprint_through_its_growth() -> None:
    from hashlib import blake2b

    from crawler.frontier.memory import _Seen

    seen = _Seen(capacity=4)
    fps = [blake2b(str(i).encode(), digest_size=16).digest() for i in range(5000)]
    # Same low half, other high half: the same slot, told apart by the high half.
    twins = [bytes([i]) + b"\x00" * 7 + fps[0][8:] for i in range(1, 40)]
    assert all(seen.add(fp) for fp in fps + twins)
    assert not any(seen.add(fp) for fp in fps + twins)
    assert len(seen) == len(fps) + len(twins)
    assert all(fp in seen for fp in fps + twins)
    assert blake2b(b"other", digest_size=16).digest() not in seen
    zero = bytes(16)  # would read as an empty slot: kept apart
    assert zero not in seen and seen.add(zero) and zero in seen and not seen.add(zero)
    assert len(seen) == len(fps) + len(twins) + 1
