"""What the frontier contract's own types promise (crawler/frontier/base.py): a Lease and
the counts. The behaviour every backend keeps is tested once in test_frontier.py."""

from __future__ import annotations

import dataclasses

import pytest

from crawler.frontier import Frontier, FrontierCounts, Lease, MemoryFrontier
from crawler.http import Request


def test_a_lease_is_a_first_delivery_until_told_otherwise() -> None:
    request = Request("http://a.test/")
    lease = Lease(request, key=7)
    assert (lease.request, lease.key, lease.deliveries, lease.host) == (request, 7, 1, "")
    again = Lease(request, key="k", deliveries=3, host="a.test")
    assert (again.deliveries, again.host) == (3, "a.test")


def test_a_lease_has_fixed_fields() -> None:
    lease = Lease(Request("http://a.test/"), key=1)
    with pytest.raises(AttributeError):
        lease.extra = 1  # type: ignore[attr-defined]  # slots: no other attribute
    assert [f.name for f in dataclasses.fields(Lease)] == ["request", "key", "deliveries",
                                                          "host"]


def test_counts_have_no_dead_requests_unless_given() -> None:
    assert FrontierCounts(pending=1, in_flight=2, done=3) == FrontierCounts(1, 2, 3, 0)
    assert FrontierCounts(0, 0, 0, dead=4).dead == 4


async def test_the_memory_frontier_keeps_the_contract_types() -> None:
    frontier: Frontier = MemoryFrontier()
    await frontier.open()
    assert frontier.seeded is False and frontier.lease_batch >= 1
    assert await frontier.add([Request("http://a.test/")]) == 1
    leases = await frontier.lease(5)
    assert [type(lease) for lease in leases] == [Lease]
    assert leases[0].host == "a.test" and leases[0].deliveries == 1
    # A doubled ack changes nothing and raises nothing; the children are still added.
    assert await frontier.ack(leases[0]) == 0
    assert await frontier.ack(leases[0], [Request("http://a.test/child")]) == 1
    counts = await frontier.counts()
    assert isinstance(counts, FrontierCounts)
    assert (counts.pending, counts.in_flight, counts.done, counts.dead) == (1, 0, 1, 0)
    assert frontier.next_ready_in() == 0
    await frontier.close()
