"""The slots of one worker of a shared (Redis) crawl: what the engine learns about a host
(a Retry-After pause, a robots.txt being fetched or unreachable, a Crawl-delay, AutoThrottle's
delay) is recorded here and sent to Redis, where the crawl's schedule of hosts lives (see
:mod:`crawler.frontier.redis_lua`), so every worker follows it."""

from __future__ import annotations

import math
from collections.abc import Callable

import orjson

from ..slots import Slot, Slots

__all__ = ["RedisSlots"]


class RedisSlots(Slots):
    """The slots of one worker of a shared crawl. The schedule itself is kept in Redis (see
    the module docstring): what the engine reports here is recorded and sent with the
    worker's next script call, so every worker follows it.

    - :meth:`pause` (Retry-After, robots.txt unreachable), :meth:`hold` and :meth:`unhold`
      (robots.txt being fetched) are urgent: ``on_urgent`` is called to send them at once.
      A hold lasts ``lease_timeout`` on the server and the heartbeat renews it, so a worker
      that dies holding a host does not freeze it.
    - :meth:`raise_min_delay` (Crawl-delay) and :meth:`changed` (AutoThrottle's delay) go
      with the next call (the engine reschedules or acks right after).

    The local slots only carry what the engine reads and writes (``delay``, ``min_delay``
    for AutoThrottle and the robots.txt check) and this worker's leases of the host
    (``active``); idle ones are dropped as :class:`~crawler.slots.Slots` does.
    """

    def __init__(self, concurrency: int = 8, delay: float = 0.0) -> None:
        super().__init__(concurrency, delay)
        self.on_urgent: Callable[[], None] | None = None
        #: The delay of a host that no worker reported on yet: AutoThrottle's start delay
        #: once a slot was made with it (``on_new``), else ``delay``.
        self.fresh_delay = delay
        self._changes: dict[str, dict[str, float]] = {}
        self._holding: set[str] = set()

    @classmethod
    def like(cls, slots: Slots) -> RedisSlots:
        """``slots`` itself if it is a RedisSlots, else new RedisSlots with its defaults."""
        if isinstance(slots, RedisSlots):
            return slots
        made = cls(slots.concurrency, slots.delay)
        made.on_new = slots.on_new
        return made

    def slot(self, key: str) -> Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = super().slot(key)
            if self.on_new is not None and slot.min_delay == self.delay:
                self.fresh_delay = slot.delay
        return slot

    def _note(self, key: str, change: dict[str, float], *, urgent: bool = False) -> None:
        self._changes.setdefault(key, {}).update(change)
        if urgent and self.on_urgent is not None:
            self.on_urgent()

    def changed(self, slot: Slot) -> None:
        change: dict[str, float] = {"d": slot.delay}
        if slot.concurrency != self.concurrency:
            change["c"] = slot.concurrency
        self._note(slot.key, change)

    def pause(self, key: str, seconds: float) -> Slot:
        slot = self.slot(key)
        until = self.clock() + seconds
        if until > self._paused.get(key, 0.0):
            self._paused[key] = until
            if slot.paused_until != math.inf:
                slot.paused_until = until
            self._note(key, {"p": until}, urgent=True)
        return slot

    def hold(self, key: str) -> Slot:
        slot = self.slot(key)
        slot.paused_until = math.inf
        self._holding.add(key)
        self._note(key, {"h": 1}, urgent=True)
        return slot

    def _unheld(self, slot: Slot) -> None:
        # A pause asked meanwhile still holds on the server too: it is another field.
        self._holding.discard(slot.key)
        self._note(slot.key, {"h": 0}, urgent=True)

    def raise_min_delay(self, key: str, delay: float) -> Slot:
        slot = self.slot(key)
        if delay > slot.min_delay:
            slot.min_delay = delay
            slot.delay = max(slot.delay, delay)
            self._note(key, {"m": delay})
        return slot

    def ended(self, key: str) -> None:
        """One of this worker's leases of ``key`` ended: its slot is idle once none is left
        (kept a while if it learnt a delay, see :meth:`Slots._sweep`)."""
        slot = self._slots.get(key)
        if slot is not None and slot.active > 0:
            self.finished(slot)

    def tidy(self) -> None:
        """Drop the idle slots whose time has come (cheap when none has)."""
        if self._idle:
            self._sweep(self.clock())

    def renew_holds(self) -> bool:
        """Record the holds still in force again (the heartbeat sends them: a hold lasts
        ``lease_timeout`` on the server). True when there are any."""
        for key in self._holding:
            self._note(key, {"h": 1})
        return bool(self._holding)

    @property
    def has_changes(self) -> bool:
        return bool(self._changes)

    def take_changes(self) -> str:
        """The recorded changes as the scripts' JSON argument ('' for none), forgotten here.
        A pause is sent as the seconds left (the server adds its own clock)."""
        if not self._changes:
            return ""
        changes, self._changes = self._changes, {}
        now = self.clock()
        for change in changes.values():
            if "p" in change:
                change["p"] = max(0.0, change["p"] - now)
            if "s" in change:
                change["s"] = max(0.0, now - change["s"])
        return orjson.dumps(changes).decode()

    def started(self, key: str) -> None:
        """A request of ``key`` went out now: its host's delay counts from here on the
        server too (sent as "this many seconds ago" with the next call, usually the ack of
        that request, before which the host's place is not free again)."""
        super().started(key)
        slot = self._slots.get(key)
        delay = self.delay if slot is None else max(slot.delay, slot.min_delay)
        if delay > 0:
            self._note(key, {"s": self.clock()})
