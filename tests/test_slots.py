"""Slots on their own: the schedule of hosts, pauses, holds and the dropping of idle slots,
with a fake clock (the schedule is a pure function of the time it is given)."""

from __future__ import annotations

import pytest

from crawler.slots import IDLE_KEEP, Slots, spaced


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_hosts_by_priority_then_by_wait() -> None:
    clock = Clock()
    slots = Slots(1, 0.0, clock=clock)
    for key, priority in (("a", 0), ("b", 5), ("c", 0)):
        slots.added(slots.slot(key), 1, priority)
    order = []
    while (slot := slots.pick()) is not None:
        order.append(slot.key)
        slots.taken(slot, 1, None)
    assert order == ["b", "a", "c"]


def test_a_delay_moves_the_host_to_the_waiting_heap() -> None:
    clock = Clock()
    slots = Slots(4, 2.0, clock=clock)
    slot = slots.slot("a")
    slots.added(slot, 3, 0)
    assert slots.pick() is slot
    slots.taken(slot, 1, 0)
    assert slots.pick() is None
    assert slots.next_ready_in() == pytest.approx(spaced(2.0)) == 2.01  # delay + 10 ms margin
    clock.now += 2.0
    assert slots.pick() is None
    clock.now += 0.01
    assert slots.pick() is slot


def test_started_counts_the_delay_from_the_send() -> None:
    clock = Clock()
    slots = Slots(1, 1.0, clock=clock)
    slot = slots.slot("a")
    slots.added(slot, 2, 0)
    slots.taken(slots.pick() or slot, 1, 0)
    clock.now += 0.7  # the request took this long to go out
    slots.started("a")
    slots.finished(slot)
    clock.now += 0.5
    assert slots.pick() is None  # 1 s after the send, not after the lease
    clock.now += spaced(1.0) - 0.5
    assert slots.pick() is slot


def test_spacing_margin_is_one_percent_at_most_10_ms() -> None:
    assert spaced(0.5) == 0.505 and spaced(3.0) == 3.01 and spaced(0.0) == 0.0


def test_pause_hold_and_unhold() -> None:
    clock = Clock()
    slots = Slots(1, 0.0, clock=clock)
    slot = slots.slot("a")
    slots.added(slot, 1, 0)
    held = slots.hold("a")
    assert slots.pick() is None and slots.next_ready_in() is None
    slots.pause("a", 30)  # a Retry-After while held: still holds after unhold
    slots.unhold(held)
    assert slots.pick() is None
    clock.now += 30
    assert slots.pick() is slot


def test_pauses_survive_as_wall_clock_times() -> None:
    clock = Clock()
    slots = Slots(clock=clock)
    slots.pause("a", 100)
    saved = slots.pauses()
    again = Slots()
    again.restore_pauses(saved)
    assert (slot := again.get("a")) is not None and slot.paused_until > again.clock()


def test_idle_slots_are_dropped_learnt_ones_later() -> None:
    clock = Clock()
    slots = Slots(1, 0.0, clock=clock)
    plain, learnt = slots.slot("plain"), slots.raise_min_delay("learnt", 5.0)
    for slot in (plain, learnt):
        slots.added(slot, 1, 0)
        slots.taken(slots.pick() or slot, 1, None)
        slots.finished(slot)
    clock.now += 6
    slots.pick()
    assert slots.get("plain") is None and slots.get("learnt") is learnt
    clock.now += IDLE_KEEP
    slots.pick()
    assert slots.get("learnt") is None
