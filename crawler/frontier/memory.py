"""The in-memory frontier: one process, nothing survives the process."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Sequence
from typing import Any

from ..http import Request
from .base import FrontierCounts, Lease

__all__ = ["MemoryFrontier"]


class MemoryFrontier:
    """Priority heap of pending requests, a map of leases in flight, a count of done ones.

    Heap entries are ``(-priority, seq, request)``: higher priority first, FIFO within a
    priority because ``seq`` grows. Requests rescheduled with a delay wait in a second heap
    ordered by ready time and move over when their time comes. The seen-set holds 16-byte
    fingerprints.
    """

    outbox = False
    stores_requests = False
    seeded = False

    def __init__(self) -> None:
        self._ready: list[tuple[int, int, Request]] = []
        self._delayed: list[tuple[float, int, Request]] = []
        self._in_flight: dict[int, Lease] = {}
        self._seen: set[bytes] = set()
        self._seq = itertools.count()
        self._done = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _push(self, request: Request) -> None:
        heapq.heappush(self._ready, (-request.priority, next(self._seq), request))

    def add_nowait(self, requests: Sequence[Request]) -> int:
        seen = self._seen
        added = 0
        for request in requests:
            if not request.dont_filter:
                fp = request.fingerprint
                if fp in seen:
                    continue
                seen.add(fp)
            self._push(request)
            added += 1
        return added

    async def add(self, requests: Sequence[Request]) -> int:
        return self.add_nowait(requests)

    def _promote(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            self._push(heapq.heappop(delayed)[2])

    async def lease(self, limit: int) -> list[Lease]:
        if self._delayed:
            self._promote(time.monotonic())
        ready = self._ready
        out: list[Lease] = []
        while ready and len(out) < limit:
            request = heapq.heappop(ready)[2]
            lease = Lease(request, next(self._seq))
            self._in_flight[lease.key] = lease
            out.append(lease)
        return out

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        del self._in_flight[lease.key]
        self._done += 1
        return self.add_nowait(children) if children else 0

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        del self._in_flight[lease.key]
        if delay <= 0:
            self._push(request)
        else:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), request))

    async def release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            del self._in_flight[lease.key]
            self._push(lease.request)

    async def drain(self, exporter: Any) -> int:
        return 0

    async def mark_seeded(self) -> None:
        return None

    def next_ready_in(self) -> float | None:
        if self._ready:
            return 0.0
        if self._delayed:
            return max(0.0, self._delayed[0][0] - time.monotonic())
        return None

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            pending=len(self._ready) + len(self._delayed),
            in_flight=len(self._in_flight),
            done=self._done,
        )

    async def is_finished(self) -> bool:
        return not (self._ready or self._delayed or self._in_flight)
