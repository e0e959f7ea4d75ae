"""The in-memory frontier: one process, nothing survives the process."""

from __future__ import annotations

import heapq
import itertools
import struct
import time
from array import array
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..http import Request
from ..slots import Slots
from ..spider import Spider
from ..urls import host_key
from .base import FrontierCounts, FrontierKit, Lease

if TYPE_CHECKING:
    from ..exporters import Exporter

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["MemoryFrontier", "memory_frontier"]


def memory_frontier(settings: Settings, spider_name: str, output: str | None) -> FrontierKit:
    """The in-memory frontier of a one-process crawl (a :data:`~.base.BuildFrontier`)."""
    return FrontierKit(MemoryFrontier(Slots.from_settings(settings)))

#: A pending request: a Request, or for the common simple GET its compact form (UTF-8 bytes:
#: 16 bytes less per request than a str).
_Entry = Request | bytes

#: The empty ``objs`` every lane starts with, never appended to.
_NO_OBJS: deque[Request] = deque()
#: Compact entries this long or longer stay a Request (the length must fit in two bytes).
_LONG = 0x8000
#: A 16-byte fingerprint as its high and low 64 bits, in one call.
_halves = struct.Struct(">QQ").unpack


class MemoryFrontier:
    """Pending requests kept per host (in the host's :class:`~crawler.slots.Slot`), a map of
    leases in flight, a count of done ones, and a seen-set of the 16-byte fingerprints (in
    one flat table, see :class:`_Seen`).

    Leasing asks :class:`~crawler.slots.Slots` for the next host that may start a request now
    and takes that host's best request: highest priority first, first in first out within a
    priority. A host's requests wait in *lanes*, one FIFO list per priority, best first (a
    host rarely has more than a few priorities; the best lane is kept inline). Requests
    rescheduled with a delay wait in a heap ordered by ready time and move to their host when
    their time comes.

    Memory: a million pending requests must fit in a few hundred MB, so the common request
    (a GET with no headers, body, meta, cb_kwargs or errback, whose callback is a method of
    the spider) waits as one UTF-8 ``bytes`` ``"url\\ncallback\\ndepth\\ndont_filter"`` (the URL
    without the scheme, host and port its host's requests share; the rest left out when it is
    the lane's usual) and becomes a Request again when leased. The entries of a lane share one
    ``bytearray`` (see :class:`_Lane`), which the garbage collector does not track either, so
    a big frontier does not slow every collection down. A host with pending requests costs
    its slot and one buffer per priority (a few hundred bytes).
    """

    lease_batch = 1
    known_links = None  # every link it has is answered by known()
    outbox = False
    stores_requests = False
    seeded = False

    def __init__(self, slots: Slots | None = None) -> None:
        self.slots = slots if slots is not None else Slots()
        self._pending = 0
        self._delayed: list[tuple[float, int, Request]] = []
        self._in_flight: dict[int, Lease] = {}
        self._seen = _Seen()
        self._seq = itertools.count()
        self._done = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _push(self, request: Request, *, front: bool = False) -> None:
        slot = self.slots.slot(host_key(request.yurl))
        priority = request.priority
        queue: _HostQueue | None = slot.queue
        if queue is None:
            queue = slot.queue = _HostQueue(request.url, priority)
        lane = queue.lane(priority)
        if front:
            lane.push_front(request)
        else:
            lane.append(_compact(request, queue.origin, lane))
        self._pending += 1
        self.slots.added(slot, 1, priority)

    def add_nowait(self, requests: Sequence[Request]) -> int:
        see = self._seen.add
        added = 0
        for request in requests:
            if not request.dont_filter and not see(request.fingerprint):
                continue
            self._push(request)
            added += 1
        return added

    async def add(self, requests: Sequence[Request]) -> int:
        return self.add_nowait(requests)

    def known(self, fingerprint: bytes) -> bool:
        """Whether a request with this fingerprint was added already (``add`` would drop
        another one): the engine hands this check to responses (see ``Response.known``)."""
        return fingerprint in self._seen


    def _promote(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            self._push(heapq.heappop(delayed)[2])

    async def lease(self, limit: int) -> list[Lease]:
        now = time.monotonic()
        if self._delayed:
            self._promote(now)
        out: list[Lease] = []
        slots = self.slots
        in_flight = self._in_flight
        while len(out) < limit:
            slot = slots.pick(now)
            if slot is None:
                break
            queue: _HostQueue = slot.queue
            origin = queue.origin
            want = min(slots.room(slot), limit - len(out))
            got = 0
            while got < want and queue:
                priority, shape = queue.priority, queue.shape
                entry = queue.pop()
                request = (
                    entry if isinstance(entry, Request)
                    else _expand(entry, priority, origin, shape)
                )
                lease = Lease(request, next(self._seq), host=slot.key)
                in_flight[lease.key] = lease
                out.append(lease)
                got += 1
            slots.taken(slot, got, queue.priority if queue else None, now)
        self._pending -= len(out)
        return out

    def _finish(self, lease: Lease) -> bool:
        if self._in_flight.pop(lease.key, None) is None:
            return False
        slot = self.slots.get(lease.host)
        if slot is not None:
            self.slots.finished(slot)
        return True

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        if self._finish(lease):
            self._done += 1
        return self.add_nowait(children) if children else 0

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        if not self._finish(lease):
            return
        if delay <= 0:
            self._push(request, front=True)
        else:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), request))

    async def release(self, leases: Sequence[Lease]) -> None:
        for lease in reversed(leases):  # each goes to the front: the first ends up first
            if self._finish(lease):
                self._push(lease.request, front=True)

    async def drain(self, exporter: Exporter) -> int:
        return 0

    async def mark_seeded(self) -> None:
        return None

    def next_ready_in(self) -> float | None:
        now = time.monotonic()
        wait = self.slots.next_ready_in(now)
        if self._delayed:
            due = max(0.0, self._delayed[0][0] - now)
            wait = due if wait is None else min(wait, due)
        return wait

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            pending=self._pending + len(self._delayed),
            in_flight=len(self._in_flight),
            done=self._done,
        )

    async def is_finished(self) -> bool:
        return not (self._pending or self._delayed or self._in_flight)


class _Seen:
    """A set of 16-byte fingerprints in two ``array("Q")`` (the high and low 64 bits) of one
    open-addressing table, at most half full: 16 to 32 bytes a fingerprint, where a ``set``
    of ints costs about 80 (the table and a 48-byte int object each). The low half is the
    slot (a fingerprint is a hash already); an all-zero fingerprint, which would read as an
    empty slot, is kept apart."""

    __slots__ = ("_hi", "_lo", "_mask", "_used", "_zero")

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._mask = capacity - 1
        self._hi = array("Q", bytes(8 * capacity))
        self._lo = array("Q", bytes(8 * capacity))
        self._used = 0
        self._zero = False

    def __len__(self) -> int:
        return self._used + self._zero

    def __contains__(self, fingerprint: bytes) -> bool:
        hi, lo = _halves(fingerprint)
        if not (hi or lo):
            return self._zero
        his, los, mask = self._hi, self._lo, self._mask
        i = lo & mask
        while True:
            h, low = his[i], los[i]
            if low == lo and h == hi:
                return True
            if not (h or low):
                return False
            i = (i + 1) & mask

    def add(self, fingerprint: bytes) -> bool:
        """Add ``fingerprint``; False when it was there already."""
        hi, lo = _halves(fingerprint)
        if not (hi or lo):
            new, self._zero = not self._zero, True
            return new
        his, los, mask = self._hi, self._lo, self._mask
        i = lo & mask
        while True:
            h, low = his[i], los[i]
            if low == lo and h == hi:
                return False
            if not (h or low):
                break
            i = (i + 1) & mask
        his[i], los[i] = hi, lo
        self._used += 1
        if self._used * 2 > mask:
            self._grow()
        return True

    def _grow(self) -> None:
        old_hi, old_lo = self._hi, self._lo
        capacity = 2 * len(old_hi)
        mask = capacity - 1
        his = array("Q", bytes(8 * capacity))
        los = array("Q", bytes(8 * capacity))
        for hi, lo in zip(old_hi, old_lo, strict=True):
            if hi or lo:
                i = lo & mask
                while his[i] or los[i]:
                    i = (i + 1) & mask
                his[i], los[i] = hi, lo
        self._hi, self._lo, self._mask = his, los, mask


class _Lane:
    """Pending requests of one priority, first in first out.

    Compact entries wait in one ``bytearray`` per lane, each behind a one- or two-byte
    length, read from ``pos``; the part before ``pos`` is cut off once it is half the
    buffer. That is about 40 bytes a request less than a list of ``bytes`` (no object header,
    no list pointer). A request that has no compact form (or is too long for one) is a
    zero-length record there and waits in ``objs``, in the same order. Requests put back in
    front (released, retried at once) wait in ``front``, last pushed first out.
    """

    __slots__ = ("priority", "blob", "pos", "objs", "front", "shape")

    def __init__(self, priority: int) -> None:
        self.priority = priority
        self.blob = bytearray()
        self.pos = 0
        self.objs = _NO_OBJS  # a lane's own deque once it holds a Request (a deque is big)
        self.front: list[Request] | None = None
        #: The ``"\ncallback\ndepth\ndont_filter"`` its compact entries share (most of a
        #: lane's requests have the same): an entry without it is the URL alone.
        self.shape = ""

    def take(self, other: _Lane) -> None:
        """Become ``other`` (its priority and requests)."""
        self.priority, self.blob, self.pos, self.objs, self.front, self.shape = (
            other.priority, other.blob, other.pos, other.objs, other.front, other.shape
        )

    def __bool__(self) -> bool:
        return self.pos < len(self.blob) or bool(self.front)

    def append(self, entry: _Entry) -> None:
        blob = self.blob
        if isinstance(entry, Request):  # _compact keeps a compact entry under _LONG bytes
            if self.objs is _NO_OBJS:
                self.objs = deque()
            self.objs.append(entry)
            blob.append(0)
            return
        n = len(entry)
        if n < 0x80:
            blob.append(n)
        else:
            blob.append(0x80 | n >> 8)
            blob.append(n & 0xFF)
        blob += entry

    def pop(self) -> _Entry:
        front = self.front
        if front:
            return front.pop()
        blob, pos = self.blob, self.pos
        n = blob[pos]
        if n & 0x80:
            n = (n & 0x7F) << 8 | blob[pos + 1]
            pos += 2
        else:
            pos += 1
        entry: _Entry
        if n == 0:
            entry = self.objs.popleft()
        else:
            entry = bytes(blob[pos:pos + n])
            pos += n
        if pos >= 4096 and pos * 2 >= len(blob):
            del blob[:pos]
            pos = 0
        self.pos = pos
        return entry

    def push_front(self, request: Request) -> None:
        if self.front is None:
            self.front = []
        self.front.append(request)


class _HostQueue(_Lane):
    """A host's pending requests: its best lane inline (most hosts have one priority, so
    one object and one list a host), the others in ``rest`` best first, and the origin
    (``scheme://host:port``) of its first request, which its compact entries leave out.

    Invariant: the inline lane is empty only when ``rest`` is None."""

    __slots__ = ("origin", "rest")

    def __init__(self, url: str, priority: int) -> None:
        super().__init__(priority)
        cut = url.find("/", url.find("//") + 2)
        self.origin = url[:cut] if cut > 0 else ""
        self.rest: list[_Lane] | None = None

    def lane(self, priority: int) -> _Lane:
        """The lane of ``priority``, made if needed."""
        if priority == self.priority:
            return self
        if not self:  # empty, so no other lane either: take the new priority
            self.take(_Lane(priority))
            return self
        rest = self.rest
        if priority > self.priority:  # a new best: the inline lane moves to rest
            moved = _Lane(self.priority)
            moved.take(self)
            self.rest = [moved, *(rest or ())]
            self.take(_Lane(priority))
            return self
        if rest is None:
            rest = self.rest = []
        for i, lane in enumerate(rest):
            if lane.priority == priority:
                return lane
            if lane.priority < priority:
                rest.insert(i, lane := _Lane(priority))
                return lane
        rest.append(lane := _Lane(priority))
        return lane

    def pop(self) -> _Entry:
        entry = super().pop()
        if not self and self.rest:
            self.take(self.rest.pop(0))
            if not self.rest:
                self.rest = None
        return entry


def _compact(request: Request, origin: str, lane: _Lane) -> _Entry:
    """The compact form of a simple request, or the request itself. It leaves out
    what the host's requests share: the URL's ``origin`` (when it starts with it), and the
    callback, depth and dont_filter when they are the ``lane``'s usual ones."""
    if not request.simple:
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
    url = request.url
    if origin and url.startswith(origin) and url[len(origin):len(origin) + 1] == "/":
        url = url[len(origin):]
    shape = f"\n{name}\n{request.depth}\n{1 if request.dont_filter else ''}"
    if not lane.shape:
        lane.shape = shape
    entry = (url if shape == lane.shape and "\n" not in url else url + shape).encode()
    return entry if len(entry) < _LONG else request


def _expand(entry: bytes, priority: int, origin: str, shape: str) -> Request:
    text = entry.decode()
    if "\n" not in text:
        text += shape
    url, name, depth, dont_filter = text.split("\n")
    if url[:1] == "/":
        url = origin + url
    return Request.from_trusted(url, name or None, depth=int(depth), priority=priority,
                                dont_filter=bool(dont_filter))
