"""A shared crawl's worker slots: what the engine reports about a host is recorded for the
next script call (pauses and holds urgently), and the local slots behave as the base ones."""

from __future__ import annotations

import orjson

from crawler.frontier.redis_slots import RedisSlots
from crawler.slots import Slots


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def slots_with_clock() -> tuple[RedisSlots, Clock, list[int]]:
    slots = RedisSlots(concurrency=4, delay=0.0)
    clock = Clock()
    slots.clock = clock
    urgent: list[int] = []
    slots.on_urgent = lambda: urgent.append(1)
    return slots, clock, urgent


def test_hold_and_unhold_are_sent_at_once() -> None:
    slots, _clock, urgent = slots_with_clock()
    slot = slots.hold("h")
    assert slots.renew_holds()
    assert orjson.loads(slots.take_changes()) == {"h": {"h": 1}}
    slots.unhold(slot)
    assert orjson.loads(slots.take_changes()) == {"h": {"h": 0}}
    assert len(urgent) == 2
    assert not slots.renew_holds() and not slots.has_changes
    slots.unhold(slot)  # not held any more: nothing to send
    assert slots.take_changes() == ""


def test_a_pause_asked_while_held_outlives_the_hold() -> None:
    slots, clock, _urgent = slots_with_clock()
    slot = slots.hold("h")
    slots.pause("h", 30)
    assert slot.paused_until == float("inf")
    slots.unhold(slot)
    assert slot.paused_until == 130.0
    clock.now = 110.0
    # Sent as the seconds left: the server adds its own clock.
    assert orjson.loads(slots.take_changes()) == {"h": {"h": 0, "p": 20.0}}


def test_unhold_drops_an_idle_slot_like_the_base_slots() -> None:
    for slots in (RedisSlots(4, 0.0), Slots(4, 0.0)):
        slot = slots.hold("h")
        slots.unhold(slot)
        assert slot.paused_until == 0.0
        slots._sweep(slots.clock() + 1)
        assert slots.get("h") is None, type(slots).__name__


def test_delays_go_with_the_next_call_without_urging() -> None:
    slots, clock, urgent = slots_with_clock()
    slots.raise_min_delay("h", 2.0)
    slot = slots.slot("h")
    assert (slot.min_delay, slot.delay) == (2.0, 2.0)
    slot.delay = 3.0
    slots.changed(slot)
    slots.started("h")
    clock.now = 101.5
    assert orjson.loads(slots.take_changes()) == {"h": {"m": 2.0, "d": 3.0, "s": 1.5}}
    assert urgent == []


def test_like_keeps_redis_slots_and_takes_over_defaults() -> None:
    redis_slots = RedisSlots(3, 0.5)
    assert RedisSlots.like(redis_slots) is redis_slots
    base = Slots(5, 1.0, on_new=lambda slot: None)
    made = RedisSlots.like(base)
    assert (made.concurrency, made.delay, made.on_new) == (5, 1.0, base.on_new)
