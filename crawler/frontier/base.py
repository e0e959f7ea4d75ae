"""The frontier contract: where requests wait, and the states they move through.

Every request the crawl knows of is in exactly one state::

    add() ──► pending ──lease()──► in flight ──ack()──► done
                 ▲                     │
                 └─reschedule/release──┘

- ``add`` deduplicates and enqueues as one step (``dont_filter`` skips the dedup check).
- ``lease`` hands out requests whose *host* may start one now (see below).
- ``ack`` marks a leased request done and adds the requests it produced in the same step, so
  a crash can never leave a done request whose children were lost.
- ``reschedule`` puts a leased request back to pending, ready after a delay (retries);
  ``release`` puts leased requests back as they were (pause, shutdown).
- The crawl is finished when nothing is pending and nothing is in flight.

Scheduling by host. Requests wait per host (the slot key, :func:`crawler.urls.host_key`), and
each backend's ``slots`` (:class:`crawler.slots.Slots`) holds the hosts' politeness state. A
lease hands out only requests of hosts that may start one now: fewer leased requests than
``concurrency_per_host`` (a lease holds its place until it is acked, rescheduled or released),
the host's delay since its last lease passed, not paused. Among those hosts, the best priority
first, and among equal priorities the host that has been ready longest; within a host, the
best priority first, first in first out within a priority. A lease costs O(log ready hosts):
never a scan over pending requests or hosts. A shared backend holds the same state on its
server, so the limits hold across every process leasing from it.

Lost and doubled leases. Acking, rescheduling or releasing a lease that is no longer held (it
was acked already, or it expired and was handed to someone else) changes nothing about that
request and raises nothing; an ack's children are still added (deduplicated as always).

Backends: :mod:`.memory` (one process), :mod:`.sqlite` (durable jobs), :mod:`.redis`
(shared by many workers). The engine only uses this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

from ..http import Request
from ..slots import Slots

if TYPE_CHECKING:
    from ..exporters import Exporter
    from ..jobdir import JobDir
    from ..settings import Settings
    from .redis import RedisFrontier
    from .sqlite import SqliteFrontier

__all__ = ["BuildFrontier", "Frontier", "FrontierCounts", "FrontierKit", "Lease"]


@dataclass(slots=True)
class Lease:
    """A request handed out by :meth:`Frontier.lease`, until it is acked or put back.

    ``key`` identifies the lease inside its backend; ``deliveries`` counts how many times the
    request has been leased (1 the first time), so a request that keeps killing workers can be
    dead-lettered.
    """

    request: Request
    key: Any
    deliveries: int = 1
    #: The slot key of the request's host: the lease holds one of its places until it ends.
    host: str = ""


@dataclass(slots=True)
class FrontierCounts:
    pending: int
    in_flight: int
    done: int
    dead: int = 0


class Frontier(Protocol):
    """Where requests wait. All methods are coroutines except :meth:`next_ready_in`.

    ``outbox``: False for backends that leave items to the engine (it writes a request's items
    to the output *before* acking it: at-least-once). True for a backend that commits the items
    with the ack in one transaction and writes them out itself through :meth:`drain`
    (exactly-once output across crashes).
    """

    outbox: bool

    @property
    def known(self) -> Callable[[bytes], bool] | None:
        """``known(fingerprint)``: whether a request with this fingerprint was added already,
        answered in the process (no I/O), so responses skip known links before building a
        Request; None for a backend that cannot answer that cheaply."""

    @property
    def known_links(self) -> set[str] | None:
        """Links (URLs of plain GETs) whose requests the frontier learnt were added without
        being asked (another worker of a shared crawl sent them), or None: the engine hands
        the set to its responses as their known links, so follow_all() builds no Request for
        one."""

    #: The smallest number of free places worth a :meth:`lease` call: 1 for a backend in the
    #: process, more for one that pays a round trip per call.
    lease_batch: int
    #: The per-host politeness state this frontier schedules by; the engine reports pauses,
    #: Crawl-delays and AutoThrottle delays to it.
    slots: Slots
    #: True when requests are kept outside the process (encoded by :mod:`.codec`), so each
    #: request must be storable; the engine checks it where a spider yields the request.
    stores_requests: bool

    @property
    def seeded(self) -> bool:
        """Whether the start requests were all added already (a resumed job, or a worker
        joining a shared crawl): the engine then does not seed again."""

    async def mark_seeded(self) -> None:
        """Record that every start request has been added."""

    async def open(self) -> None:
        """Prepare the backend (create tables, connect). Called once before anything else."""

    async def close(self) -> None:
        """Release resources. Leased requests stay leased (a resume or another worker
        recovers them); call :meth:`release` first to hand them back."""

    async def add(self, requests: Sequence[Request]) -> int:
        """Enqueue the requests not seen before (or with ``dont_filter``); returns how many
        were enqueued. The others are duplicates and are dropped."""

    async def lease(self, limit: int) -> list[Lease]:
        """Up to ``limit`` requests whose hosts may start them now (see "Scheduling by
        host"), now in flight. Returns ``[]`` when none may start: nothing pending, or only
        requests of hosts that are busy, waiting for their delay or paused, or whose retry
        delay has not passed."""

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        """Mark a leased request done and add ``children`` (deduplicated), as one step; an
        ``outbox`` backend also commits ``items`` (plain dicts) in that step, others ignore
        them. Returns how many children were enqueued (the rest were duplicates)."""

    async def drain(self, exporter: Exporter) -> int:
        """``outbox`` backends: write committed items not yet written to ``exporter`` and
        record how far the output is known good; returns how many were written. Others: 0."""

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        """Put a leased request back to pending as ``request`` (e.g. with a retry count in its
        meta), ready after ``delay`` seconds."""

    async def release(self, leases: Sequence[Lease]) -> None:
        """Put leased requests back to pending unchanged, ready at once."""

    def next_ready_in(self) -> float | None:
        """Seconds until a lease could return a request: 0 when one could now, None when
        none will before a lease of this process ends (nothing pending, or every host with
        pending requests at its concurrency limit), as far as this process knows."""

    async def counts(self) -> FrontierCounts:
        """How many requests are pending, in flight and done."""

    async def is_finished(self) -> bool:
        """True when nothing is pending and nothing is in flight."""


@dataclass(slots=True)
class FrontierKit:
    """A frontier and what comes with its kind, as one :data:`BuildFrontier` function of
    that kind builds it; the crawl enters it as a context manager (leaving closes the job
    directory a durable kit holds; the frontier is opened and closed by the crawl).

    ``durable``: the frontier again, for a durable job (its outbox writes the output, it
    saves the stats, the spider's state and the hosts' pauses, and restores them on resume);
    ``job``: that job's locked directory. ``shared``: the frontier again, for one shared by
    many workers (a worker id, the cluster's stats). A memory kit has only ``frontier``.
    """

    frontier: Frontier
    durable: SqliteFrontier | None = None
    job: JobDir | None = None
    shared: RedisFrontier | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.job is not None:
            self.job.close()


#: One frontier kind's builder: ``(settings, spider_name, output)`` → its kit, not opened;
#: ``output`` is the one output file a durable job keeps exactly-once (None: none).
BuildFrontier = Callable[["Settings", str, "str | None"], FrontierKit]
