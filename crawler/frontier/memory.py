"""The in-memory frontier: one process, nothing survives the process."""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..http import Request
from ..spider import Spider
from .base import FrontierCounts, Lease

__all__ = ["MemoryFrontier"]

#: A pending request: a Request, or for the common simple GET its compact string form.
_Entry = Request | str


class MemoryFrontier:
    """Pending requests in one FIFO queue per priority, a map of leases in flight, a count of
    done ones, and a seen-set of 16-byte fingerprints.

    Highest priority first (a small heap of the priorities that have requests), first in
    first out within a priority. Requests rescheduled with a delay wait in a heap ordered by
    ready time and move over when their time comes.

    Memory: a million pending requests must fit in a few hundred MB, so the common request
    (a GET with no headers, body, meta, cb_kwargs or errback, whose callback is a method of
    the spider) waits as one string ``"url\\ncallback\\ndepth\\ndont_filter"`` and becomes a
    Request again when leased. Strings are not tracked by the garbage collector either, so a
    big frontier does not slow every collection down.
    """

    outbox = False
    stores_requests = False
    seeded = False

    def __init__(self) -> None:
        self._queues: dict[int, deque[_Entry]] = {}
        self._priorities: list[int] = []  # heap of -priority, one per non-empty queue
        self._pending = 0
        self._delayed: list[tuple[float, int, Request]] = []
        self._in_flight: dict[int, Lease] = {}
        self._seen: set[bytes] = set()
        #: ``known(fingerprint)``: whether a request with this fingerprint was added already
        #: (``add`` would drop another one). The engine hands it to responses (see
        #: ``Response.known``); the set's own method, as it runs for every link of a page.
        self.known: Callable[[bytes], bool] = self._seen.__contains__
        self._seq = itertools.count()
        self._done = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _push(self, request: Request) -> None:
        priority = request.priority
        queue = self._queues.get(priority)
        if queue is None:
            queue = self._queues[priority] = deque()
            heapq.heappush(self._priorities, -priority)
        queue.append(_compact(request))
        self._pending += 1

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
        out: list[Lease] = []
        priorities, queues = self._priorities, self._queues
        while priorities and len(out) < limit:
            priority = -priorities[0]
            queue = queues[priority]
            while queue and len(out) < limit:
                entry = queue.popleft()
                request = entry if isinstance(entry, Request) else _expand(entry, priority)
                lease = Lease(request, next(self._seq))
                self._in_flight[lease.key] = lease
                out.append(lease)
            if not queue:
                heapq.heappop(priorities)
                del queues[priority]
        self._pending -= len(out)
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
        if self._pending:
            return 0.0
        if self._delayed:
            return max(0.0, self._delayed[0][0] - time.monotonic())
        return None

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            pending=self._pending + len(self._delayed),
            in_flight=len(self._in_flight),
            done=self._done,
        )

    async def is_finished(self) -> bool:
        return not (self._pending or self._delayed or self._in_flight)


def _compact(request: Request) -> _Entry:
    """The string form of a simple request, or the request itself."""
    if (
        request.method != "GET" or request.headers or request.body or request.errback
        or request._meta or request._cb_kwargs or request.handle_status
    ):
        return request
    callback = request.callback
    if callback is None:
        name = ""
    elif isinstance(callback, str):
        name = callback
    else:
        owner = getattr(callback, "__self__", None)
        name = getattr(callback, "__name__", "")
        # Only a spider's own method can be found again by name (the engine resolves names
        # on the spider); anything else stays a Request.
        if not isinstance(owner, Spider) or getattr(owner, name, None) != callback:
            return request
    return f"{request.url}\n{name}\n{request.depth}\n{1 if request.dont_filter else ''}"


def _expand(entry: str, priority: int) -> Request:
    url, name, depth, dont_filter = entry.split("\n")
    return Request._trusted(url, name or None, int(depth), priority, bool(dont_filter))
