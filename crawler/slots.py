"""Per-host politeness and the order in which hosts are served: the one home of per-host state.

Every host a crawl talks to has a :class:`Slot` (its key: the lower-case host name, see
:func:`crawler.urls.host_key`): how many of its requests may be in flight
(``concurrency_per_host``), the delay between two starts (``download_delay``, raised to the
host's robots.txt ``Crawl-delay``, moved above that by AutoThrottle), the next moment a request
may start, and a pause (``Retry-After``, a robots.txt that is being fetched or is unreachable).

:class:`Slots` keeps the slots and two heaps of the hosts that have pending requests:

- *ready*: hosts that may start a request now (a free place, the delay passed, not paused),
  ordered by the priority of their best pending request, then by how long they have been
  ready (equal priorities are served fairly: the host that waited longest goes first);
- *waiting*: hosts with a free place whose delay or pause has not passed, ordered by the
  moment it does.

A host at its concurrency limit is in neither; it is placed again when one of its requests
finishes. A frontier keeps its requests per host and asks :meth:`Slots.pick` which host to
serve next, so a lease costs O(log ready hosts) whatever the number of pending requests or of
hosts, and one busy host never blocks the others (no head-of-line blocking). Heap entries are
never removed in place: a change of a slot bumps its ``version`` and pushes a new entry; the
stale one is skipped when it reaches the top.

Times are ``time.monotonic()`` seconds. The engine reports to the slots what the frontier
cannot see: a pause (:meth:`Slots.pause`), a Crawl-delay (:meth:`Slots.raise_min_delay`), a
robots.txt fetch in progress (:meth:`Slots.hold`), a new AutoThrottle delay
(:meth:`Slots.changed`). A frontier shared by several processes (Redis) keeps the same state
on the server; it subclasses :class:`Slots` to learn of these changes.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["IDLE_KEEP", "Slot", "Slots", "spaced"]

_NOWHERE, _READY, _WAITING = 0, 1, 2

#: Seconds an idle slot with a learnt delay (Crawl-delay, AutoThrottle) is kept.
IDLE_KEEP = 60.0


def spaced(delay: float) -> float:
    """The time kept between two starts on a host with ``delay``: the delay plus 1 % of it
    (at most 10 ms), so that the server never sees a gap shorter than the delay when the
    first of the two waited longer on its way in (a new connection in the server's accept
    queue, a busy server), which it measures and we cannot."""
    return delay + min(delay * 0.01, 0.01)


@dataclass(slots=True, eq=False)
class Slot:
    """One host's politeness state. ``delay`` is the current delay between two starts
    (``min_delay`` is its floor: ``download_delay``, or a larger robots.txt Crawl-delay).

    The fields after ``paused_until`` belong to :class:`Slots` and to the frontier: how many
    requests of this host are pending (``pending``), the best of their priorities (``top``),
    and the frontier's own per-host queue (``queue``)."""

    key: str
    concurrency: int
    delay: float
    min_delay: float = 0.0
    #: Requests of this host leased and not yet acked, rescheduled or released.
    active: int = 0
    #: Earliest start of the next request: the last start plus ``delay``.
    next_start: float = 0.0
    #: No request starts before this (Retry-After, robots.txt unavailable); ``inf`` while held.
    paused_until: float = 0.0
    pending: int = 0
    top: int = 0
    queue: Any = None
    version: int = 0
    where: int = _NOWHERE
    mark: float = 0.0

    @property
    def ready_at(self) -> float:
        """When this host may start its next request, a free place assumed."""
        return max(self.next_start, self.paused_until)


class Slots:
    """The slots of one crawl and the schedule of its hosts (see the module docstring).

    ``concurrency`` and ``delay`` are the defaults of a new slot (``concurrency_per_host``,
    ``download_delay``); ``on_new`` is called with each new slot (AutoThrottle sets its start
    delay there)."""

    def __init__(
        self,
        concurrency: int = 8,
        delay: float = 0.0,
        *,
        on_new: Callable[[Slot], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.delay = delay
        self.on_new = on_new
        self.clock = clock
        self._slots: dict[str, Slot] = {}
        self._ready: list[tuple[float, int, int, Slot]] = []
        self._waiting: list[tuple[float, int, int, Slot]] = []
        # heap: (when to look again, seq, slot, whether it was given IDLE_KEEP)
        self._idle: list[tuple[float, int, Slot, bool]] = []
        self._seq = itertools.count()
        self._paused: dict[str, float] = {}  # key -> paused_until, for pauses()

    @classmethod
    def from_settings(cls, settings: Settings) -> Slots:
        return cls(settings.concurrency_per_host, settings.download_delay)

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Any:
        return iter(self._slots.values())

    def get(self, key: str) -> Slot | None:
        return self._slots.get(key)

    def slot(self, key: str) -> Slot:
        """The slot of ``key``, created with the defaults on first use."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = Slot(key, self.concurrency, self.delay, self.delay)
            if self.on_new is not None:
                self.on_new(slot)
            self._went_idle(slot)  # dropped later if it never gets a request
        return slot

    # ------------------------------------------------------------------ scheduling

    def place(self, slot: Slot, now: float | None = None) -> None:
        """Put ``slot`` where its state says: ready, waiting, or neither (nothing pending, or
        no free place). Cheap when nothing changed."""
        if slot.pending <= 0 or slot.active >= slot.concurrency:
            if slot.where != _NOWHERE:
                slot.where = _NOWHERE
                slot.version += 1
            return
        if now is None:
            now = self.clock()
        at = slot.ready_at
        if at > now:
            if slot.where == _WAITING and slot.mark == at:
                return
            slot.version += 1
            slot.where, slot.mark = _WAITING, at
            if at != math.inf:  # held: placed again when released
                heapq.heappush(self._waiting, (at, next(self._seq), slot.version, slot))
            return
        rank = -slot.top
        if slot.where == _READY and slot.mark == rank:
            return
        slot.version += 1
        slot.where, slot.mark = _READY, rank
        heapq.heappush(self._ready, (rank, next(self._seq), slot.version, slot))

    def pick(self, now: float | None = None) -> Slot | None:
        """The ready host to serve next (taken out of the ready heap: call :meth:`taken`
        after taking its requests), or None when no host may start a request now."""
        if now is None:
            now = self.clock()
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, _, version, slot = heapq.heappop(waiting)
            if version == slot.version:
                slot.where = _NOWHERE
                self.place(slot, now)
        if self._idle:
            self._sweep(now)
        ready = self._ready
        while ready:
            _, _, version, slot = heapq.heappop(ready)
            if version == slot.version:
                slot.where = _NOWHERE
                slot.version += 1
                return slot
        return None

    def room(self, slot: Slot) -> int:
        """How many requests ``slot`` may start at once now: one when it has a delay (the next
        waits for it), else its free places."""
        free = slot.concurrency - slot.active
        return min(free, 1) if slot.delay > 0 else free

    def taken(self, slot: Slot, n: int, top: int | None, now: float | None = None) -> None:
        """``n`` requests of ``slot`` were leased; ``top`` is the best priority of the ones
        still pending (None: none left)."""
        if now is None:
            now = self.clock()
        slot.active += n
        slot.pending -= n
        if top is not None:
            slot.top = top
        if slot.delay > 0:
            slot.next_start = now + spaced(slot.delay)
        self.place(slot, now)

    def started(self, key: str) -> None:
        """A request of ``key`` is being sent now: its delay counts from here, not from its
        lease (the time between the two, a connection to open or a busy event loop, must not
        shorten the gap the server sees)."""
        slot = self._slots.get(key)
        if slot is not None and slot.delay > 0:
            start = self.clock() + spaced(slot.delay)
            if start > slot.next_start:
                slot.next_start = start
                self.place(slot)

    def added(self, slot: Slot, n: int, priority: int) -> None:
        """``n`` requests of priority ``priority`` became pending on ``slot``."""
        if slot.pending <= 0 or priority > slot.top:
            slot.top = priority
        slot.pending += n
        self.place(slot)

    def finished(self, slot: Slot) -> None:
        """One leased request of ``slot`` is over (acked, rescheduled or released)."""
        slot.active -= 1
        if slot.pending:
            self.place(slot)
        elif not slot.active:
            self._went_idle(slot)

    def _learnt(self, slot: Slot) -> bool:
        return slot.delay != self.delay or slot.min_delay != self.delay

    def _went_idle(self, slot: Slot) -> None:
        now = self.clock()
        learnt = self._learnt(slot)
        at = max(slot.ready_at, now) + (IDLE_KEEP if learnt else 0.0)
        heapq.heappush(self._idle, (at, next(self._seq), slot, learnt))

    def _sweep(self, now: float) -> None:
        """Drop slots that have nothing left to remember: a crawl over a million hosts must
        not keep them all. A slot is kept while its delay or pause still matters, and a slot
        with a learnt delay (Crawl-delay, AutoThrottle) for :data:`IDLE_KEEP` seconds more
        (as Scrapy does); a Crawl-delay dropped with it is learnt again from the robots.txt
        rules. Only the slots whose time has come are looked at."""
        idle = self._idle
        while idle and idle[0][0] <= now:
            _, _, slot, kept = heapq.heappop(idle)
            if slot.pending or slot.active or self._slots.get(slot.key) is not slot:
                continue  # busy again (it goes idle again later), or dropped already
            if slot.ready_at > now or (self._learnt(slot) and not kept):
                self._went_idle(slot)  # paused again, or learnt a delay since it went idle
                continue
            del self._slots[slot.key]

    def next_ready_in(self, now: float | None = None) -> float | None:
        """Seconds until a host may start a request: 0 when one may now, None when no host
        with pending requests has a free place (the next ack changes that)."""
        ready, waiting = self._ready, self._waiting
        while ready and ready[0][2] != ready[0][3].version:
            heapq.heappop(ready)
        if ready:
            return 0.0
        while waiting and waiting[0][2] != waiting[0][3].version:
            heapq.heappop(waiting)
        if waiting:
            return max(0.0, waiting[0][0] - (self.clock() if now is None else now))
        return None

    # ------------------------------------------------------------ what the engine reports

    def changed(self, slot: Slot) -> None:
        """``slot``'s delay or concurrency was changed in place (AutoThrottle)."""
        self.place(slot)

    def pause(self, key: str, seconds: float) -> Slot:
        """No request of ``key`` starts for ``seconds`` (Retry-After, robots.txt unreachable):
        the other hosts go on."""
        slot = self.slot(key)
        until = self.clock() + seconds
        if until > self._paused.get(key, 0.0):
            self._paused[key] = until
        if until > slot.paused_until:
            slot.paused_until = until
            self.changed(slot)
        return slot

    def pauses(self) -> dict[str, float]:
        """The hosts paused now, each with the wall-clock time (``time.time()``) its pause
        ends: what a durable job saves so that a pause holds across a resume."""
        now, wall = self.clock(), time.time()
        for key in [k for k, until in self._paused.items() if until <= now]:
            del self._paused[key]
        return {key: round(wall + until - now, 3) for key, until in self._paused.items()}

    def restore_pauses(self, saved: dict[str, float]) -> None:
        """Pause again the hosts of :meth:`pauses` whose pause has not ended yet."""
        wall = time.time()
        for key, end in saved.items():
            if end > wall:
                self.pause(key, end - wall)

    def hold(self, key: str) -> Slot:
        """No request of ``key`` starts until :meth:`unhold` (its robots.txt is being fetched)."""
        slot = self.slot(key)
        slot.paused_until = math.inf
        self.changed(slot)
        return slot

    def unhold(self, slot: Slot) -> None:
        """End :meth:`hold` (its robots.txt is in); a no-op for a slot that is not held."""
        if slot.paused_until == math.inf:
            # A Retry-After pause asked meanwhile still holds.
            until = self._paused.get(slot.key, 0.0)
            slot.paused_until = until if until > self.clock() else 0.0
            slot.where = _NOWHERE
            self._unheld(slot)
            if not slot.pending and not slot.active:
                self._went_idle(slot)

    def _unheld(self, slot: Slot) -> None:
        """``slot``'s hold just ended: place it again (a subclass that keeps the schedule
        elsewhere reports it there instead)."""
        self.changed(slot)

    def raise_min_delay(self, key: str, delay: float) -> Slot:
        """A floor for the host's delay (robots.txt Crawl-delay); the next start waits for it,
        as the robots.txt fetch was a request to this host too."""
        slot = self.slot(key)
        if delay > slot.min_delay:
            slot.min_delay = delay
            slot.delay = max(slot.delay, delay)
            slot.next_start = max(slot.next_start, self.clock() + delay)
            self.changed(slot)
        return slot
