"""The Redis frontier: one crawl shared by many workers on many machines, nothing lost.

Every worker runs the same spider against the same Redis; together they hold one queue per
host, one dedup set, one schedule of hosts with their politeness state, and one stats record,
all under the key prefix ``crawler:<spider>:<crawl_id>:`` (``crawl_id`` may be empty:
``crawler:<spider>::``).

The keys and the Lua scripts that change them are described in
:mod:`crawler.frontier.redis_lua` (one script per state change, atomic on the server);
:mod:`crawler.frontier.redis_conn` is the connection with its retries,
:mod:`crawler.frontier.redis_slots` the per-host reports, and
:mod:`crawler.frontier.redis_admin` the ``crawler frontier`` commands. What is left here is
one class, :class:`RedisFrontier`, longer than this package's usual module: the frontier
contract, the worker's lifecycle (joining, seeding, heartbeat) and the batching of its calls
all read and write the same lease bookkeeping (the leases held, those being settled), which
split across modules would have to be shared through private attributes.

Per-host politeness is the cluster's: a worker never leases a request of a host that other
workers keep at its concurrency, or whose delay since the last start (by any worker) has not
passed, and nobody sleeps on a gate while holding leases. What the engine learns about a host
(:class:`RedisSlots`: a Retry-After pause, a robots.txt being fetched or unreachable, a
Crawl-delay, AutoThrottle's delay) goes to Redis with the worker's next script call, or at
once (a short "policy" call) for pauses and holds, so every worker follows it.

Seeding: the first worker to open claims ``P:seeder`` and runs the spider's ``start()``; the
others see :attr:`RedisFrontier.seeded` True and skip it, and do not finish while the seeder is
alive and has not called ``mark_seeded``. If the seeder stops or dies first, the next worker
to open takes the claim over and seeds again (dedup drops what was already added).

Every time is the Redis server's ``TIME``, so workers on machines whose clocks disagree still
agree on expiries, delays and pauses. Scripts are redis-py ``Script`` objects: after a Redis
restart (empty script cache) the NOSCRIPT reply makes them load again. The scripts build the

  every request is processed at least once; a worker killed mid-request causes that request
  (and its items) to be processed at most once more per kill. :class:`crawler.dedup.ItemKeyDedup`
  and :func:`crawler.dedup.merge_outputs` remove the repeated items. The places a dead worker
  held on its hosts come back with its leases, and its holds (robots.txt fetches) end
  ``lease_timeout`` after its last heartbeat: no host stays frozen.
- A worker never deletes shared state when it stops or crashes: leases stay leased (they expire
  back to pending), the queues and the seen set stay. Only :func:`frontier_purge` deletes keys.
- Redis unreachable: every call goes through :meth:`RedisConnection.call`, which logs one
  warning per outage, retries with exponential backoff (0.1 s doubling to 5 s) and continues
  when Redis answers again. A call retried after a lost reply is harmless: ``add`` and ``ack``
  are idempotent through the seen set and the lease state (a ``dont_filter`` request added
  twice is the exception); a lost ``lease`` reply leaves requests leased to this worker, which
  expire back to pending (one extra delivery counted).
- The crawl's state vanished (Redis restarted without persistence, a failover to a replica
  that had nothing, the crawl purged while it ran): the crawl marker is gone or another, and
  every script refuses to run. The worker raises :class:`~crawler.errors.FrontierLost` from
  its next lease or finish check (acks after that change nothing), so the engine stops and
  the run fails (exit 1) with a message saying so, instead of re-crawling from an empty
  Redis and reporting "finished". Configure Redis with ``--appendonly yes`` for crawls that
  must survive a Redis restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import orjson
from redis import exceptions as rexc

from ..errors import ConfigError, FrontierLost
from ..http import Request
from ..slots import Slots
from ..tasks import stop_task
from ..urls import host_key
from .base import FrontierCounts, FrontierKit, Lease
from .codec import decode_request, encode_request
from .redis_admin import frontier_crawls, frontier_purge, frontier_status
from .redis_conn import RETRYABLE, RedisConnection
from .redis_lua import LOST, Keys, crawl_prefix, parse_stats, source
from .redis_slots import RedisSlots

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ..exporters import Exporter
    from ..settings import Settings

__all__ = [
    "RedisConnection",
    "RedisFrontier",
    "RedisSlots",
    "crawl_prefix",
    # The ``crawler frontier`` commands live in redis_admin; importable from here as well.
    "frontier_crawls",
    "frontier_purge",
    "frontier_status",
]

logger = logging.getLogger(__name__)

#: Most requests one script call moves (reclaims, promotions, adds): keeps each call short,
#: since Redis runs one script at a time for every worker.
_BATCH = 1000
#: Most acks sent in one script call.
_ACK_BATCH = 100
#: Fingerprints a worker remembers as in the seen set (16 bytes each, about 80 with the set).
_KNOWN_MAX = 250_000
#: Links a worker remembers other workers sent (see :attr:`RedisFrontier.known_links`).
_LINKS_MAX = 100_000
#: Polling interval bounds while other workers hold work (see next_ready_in).
_POLL_MIN = 0.05
_POLL_MAX = 0.2
#: Stats keys that are not counters: computed when read, or gauges of one process.
_NOT_COUNTERS = frozenset(
    {"elapsed", "pages_per_second", "items_per_second", "start_time", "finish_time",
     "pending", "in_flight", "finish_reason"}
)


def default_worker_id() -> str:
    """``<hostname>-<pid>-<4 hex>``: unique per process, readable in ``frontier status``, and
    usable in a file name (the output path's ``{worker}``)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"





@dataclass(slots=True)
class _Hint:
    """What this process last learned about the shared queue, for the sync next_ready_in."""

    ready: bool = False  # a host was ready at the last look
    leased: int = 0  # leases other workers hold (this worker's own end with a wake-up)
    wake_at: float | None = None  # monotonic time the earliest waiting host or retry is due
    empty_polls: int = 0
    #: Nothing was pending or delayed anywhere at the last look: only leases of other workers
    #: hold the crawl up (its last pages, or pages whose children come next).
    tail: bool = False
    #: An ack call that leased just said nothing more is ready for this worker; the next
    #: lease takes that answer instead of asking again (see ``prefetch``).
    answered: bool = False


@dataclass(slots=True)
class _Snapshot:
    pending: int
    delayed: int
    leased: int
    done: int
    dead: int
    seeding: int  # 0: not waiting for start requests, 1: another worker adds them, 2: it died


def _entries(requests: Sequence[Request]) -> list[bytes]:
    """Each request as ``enqueue_packed`` in ``lua/enqueue.lua`` reads it: b'f' and its
    fingerprint (b'n' for dont_filter), its queue score, its host, its link (the URL of a
    GET without a body, whose fingerprint is its URL's, else nothing) and its stored JSON,
    the last four after newlines (none of the first three has one)."""
    return [
        b"".join((b"n" if request.dont_filter else b"f" + request.fingerprint,
                  str(-request.priority).encode(), b"\n", host_key(request.yurl).encode(),
                  b"\n", request.url.encode() if request.method == "GET" and not request.body
                  else b"", b"\n", encode_request(request)))
        for request in requests
    ]


def _pack(fields: list[bytes]) -> bytes:
    """``fields`` as one script argument, each its length, ':' and its bytes (``fields`` in
    ``lua/enqueue.lua``): a batch costs the client and the server one argument, not one per
    request."""
    return b"".join([b"%d:%b" % (len(field), field) for field in fields])


@dataclass(slots=True)
class _Ack:
    """An ack waiting for the next ack script call."""

    key: bytes
    children: Sequence[Request]
    done: asyncio.Future[list[int] | None]


def _host_of(key: bytes) -> str:
    """The host in a request id (``<16 digits>@<host>``)."""
    return key[17:].decode()



class RedisFrontier:
    """A :class:`~crawler.frontier.base.Frontier` shared by every worker of one crawl.

    ``url``: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``spider_name`` and ``crawl_id`` name the crawl (key prefix ``crawler:<spider>:<crawl_id>:``).
    ``lease_timeout``: seconds a lease lives without a heartbeat; the heartbeat renews this
    worker's leases every ``lease_timeout / 3``. ``max_deliveries``: a request leased more
    often than this without an outcome (ack, reschedule, release) is dead-lettered.
    ``worker_id``: this worker's name in ``frontier status`` (default
    ``<hostname>-<pid>-<hex>``). ``concurrency_per_host`` and ``download_delay``: the
    politeness of a host no worker reported anything else for (every worker of a crawl
    should use the same); ``slots`` instead gives them as the defaults of a
    :class:`~crawler.slots.Slots` (a :class:`RedisSlots` is used as it is, another one's
    defaults and ``on_new`` are taken over: use :attr:`slots` afterwards).
    ``prefetch``: each ack call also leases as many requests as it acks (the places it
    frees, hosts with a delay excepted), handed out by the next :meth:`lease` without a round
    trip, and when that call found nothing more for this worker, the next lease after them
    returns ``[]`` on that answer instead of asking again; for a worker that keeps leasing
    (the crawl's engine), not for a caller that counts what is in flight after acking.
    Leases fetched so and not handed out are released by :meth:`close`.

    ``outbox`` is False: the engine writes a request's items before calling :meth:`ack`, so a
    worker killed between the two repeats that request's items once more (at-least-once).
    Call :meth:`open` before use and :meth:`close` at the end; close never deletes shared
    state, and leases still held then expire back to pending.
    """

    #: Each lease is a round trip: the engine asks once several places are free.
    lease_batch = 8
    outbox = False
    stores_requests = True

    def __init__(
        self,
        url: str,
        *,
        spider_name: str,
        crawl_id: str = "",
        lease_timeout: float = 60.0,
        max_deliveries: int = 5,
        worker_id: str | None = None,
        concurrency_per_host: int = 8,
        download_delay: float = 0.0,
        slots: Slots | None = None,
        prefetch: bool = False,
    ) -> None:
        if lease_timeout <= 0:
            raise ConfigError(f"lease_timeout must be > 0, got {lease_timeout}")
        if max_deliveries < 1:
            raise ConfigError(f"max_deliveries must be >= 1, got {max_deliveries}")
        self.spider_name = spider_name
        self.crawl_id = crawl_id
        self.prefix = crawl_prefix(spider_name, crawl_id)
        self.lease_timeout = float(lease_timeout)
        self.max_deliveries = max_deliveries
        self.worker_id = worker_id or default_worker_id()
        self._slots = (RedisSlots(concurrency_per_host, download_delay) if slots is None
                       else RedisSlots.like(slots))
        self._slots.on_urgent = self._urge
        #: The engine reports pauses, holds and delays here (see :class:`RedisSlots`).
        self.slots: Slots = self._slots
        # CLIENT SETNAME refuses spaces; the name shows in Redis's CLIENT LIST.
        client_name = "crawler:" + re.sub(r"\s", "_", self.worker_id)
        self.connection = RedisConnection(url, client_name=client_name)
        self._k = Keys.for_prefix(self.prefix)
        conn = self.connection
        self._add_script = conn.script(source("add"))
        self._lease_script = conn.script(source("lease"))
        self._ack_script = conn.script(source("ack"))
        self._reschedule_script = conn.script(source("reschedule"))
        self._release_script = conn.script(source("release"))
        self._policy_script = conn.script(source("policy"))
        self._heartbeat_script = conn.script(source("heartbeat"))
        self._dead_letter_script = conn.script(source("dead_letter"))
        self._merge_script = conn.script(source("merge_stats"))
        self._open_script = conn.script(source("open"))
        self._counts_script = conn.script(source("counts"))
        self._seeded = False
        self._marker = b""  # the crawl marker this worker joined (P:crawl)
        self._epoch = "0"
        self._lost: FrontierLost | None = None
        self._held: set[bytes] = set()  # ids this worker leased and has not settled
        self._settling: set[bytes] = set()  # ids with an ack/reschedule/release in flight
        self._hint = _Hint()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._policy_task: asyncio.Task[None] | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._acks: deque[_Ack] = deque()
        self.prefetch = prefetch
        #: Called right before acks leave for Redis. The runner points it at the outputs'
        #: :meth:`~crawler.feeds.FeedSet.settle`: the items the engine handed over before
        #: acking are stored by then, however their writes were batched.
        self.before_ack: Callable[[], None] | None = None
        #: Leases an ack call brought back, not handed out yet (they are in _held).
        self._prefetched: deque[Lease] = deque()
        self._ack_wanted = asyncio.Event()
        self._changes_lock = asyncio.Lock()
        self._known: set[bytes] = set()  # fingerprints already in the seen set
        #: Links (URLs of plain GETs) whose requests other workers added, as each ack call
        #: brings them back: the engine hands this set to its responses (see
        #: Response.known_links), so a link another worker sent costs no Request here.
        self.known_links: set[str] = set()
        self._links_cursor = 0  # how far this worker has read P:links
        self._urgent = asyncio.Event()
        self._merged: dict[str, float] = {}  # stats already added to the shared record
        self._started = time.time()
        self._opened = False
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, spider_name: str, *, worker_id: str | None = None
    ) -> RedisFrontier:
        """The frontier the settings describe: ``frontier_url``, ``crawl_id``,
        ``lease_timeout``, ``max_deliveries``, ``concurrency_per_host``, ``download_delay``."""
        url = settings.frontier_url
        if not url:
            raise ConfigError("frontier_url is not set: give --frontier redis://host:port/db")
        return cls(
            url,
            spider_name=spider_name,
            crawl_id=settings.crawl_id,
            lease_timeout=settings.lease_timeout,
            max_deliveries=settings.max_deliveries,
            worker_id=worker_id,
            concurrency_per_host=settings.concurrency_per_host,
            download_delay=settings.download_delay,
            prefetch=True,
        )

    def __repr__(self) -> str:
        return (f"<RedisFrontier {self.connection.display_url} {self.prefix!r} "
                f"worker={self.worker_id!r}>")

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Register this worker, join (or start) the crawl and start its heartbeat. Waits
        (with warnings) while Redis is unreachable."""
        await self._beat(register=True)
        k = self._k
        claim, marker, ready, leased, wake_in = await self.connection.call(
            "open", self._open_script,
            keys=[k.seeded, k.seeder, k.workers, k.workerinfo, k.crawl, k.ready, k.leased,
                  k.wait, k.delayed],
            args=[self.worker_id, self.lease_timeout, secrets.token_hex(8)],
        )
        hint = self._hint
        hint.ready, hint.leased = int(ready) > 0, int(leased)
        wait = float(wake_in)
        hint.wake_at = time.monotonic() + wait if wait >= 0 else None
        self._marker = marker
        self._epoch = marker.split(b":", 1)[0].decode()
        self._seeded = claim != b"mine"
        if claim == b"other":
            logger.info("Joining crawl %s: another worker adds the start requests", self.prefix)
        self._opened = True
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_loop(), name=f"frontier-heartbeat-{self.worker_id}"
        )
        self._policy_task = asyncio.create_task(
            self._policy_loop(), name=f"frontier-policy-{self.worker_id}"
        )
        self._ack_task = asyncio.create_task(
            self._ack_loop(), name=f"frontier-acks-{self.worker_id}"
        )

    async def close(self) -> None:
        """Stop the heartbeat and disconnect. Shared state is left as it is: leases still
        held expire back to pending after ``lease_timeout``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in (self._heartbeat_task, self._policy_task, self._ack_task):
            await stop_task(task)
        self._heartbeat_task = self._policy_task = self._ack_task = None
        while self._acks:
            self._acks.popleft().done.cancel()
        unused = list(self._prefetched)
        self._prefetched.clear()
        try:
            if self._opened and self._lost is None:
                # Best effort and bounded: a worker must be able to stop while Redis is down
                # (prefetched leases not released then expire back to pending).
                async with asyncio.timeout(2.0):
                    await self.release(unused)
                    await self._mark_stopped()
        except RETRYABLE as exc:  # TimeoutError included
            logger.debug("Could not mark worker %s stopped: %s", self.worker_id, exc)
        finally:
            await self.connection.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _worker_info(self, stopped: bool = False) -> bytes:
        info: dict[str, Any] = {
            "host": socket.gethostname(), "pid": os.getpid(),
            "lease_timeout": self.lease_timeout, "started": self._started,
        }
        if stopped:
            info["stopped"] = time.time()
        return orjson.dumps(info)

    async def _mark_stopped(self) -> None:
        await self.connection.client.hset(
            self._k.workerinfo, self.worker_id, self._worker_info(stopped=True)
        )

    async def _heartbeat_loop(self) -> None:
        interval = self.lease_timeout / 3
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                if self._lost is not None:
                    return
                await self._beat()
                if self._slots.renew_holds():
                    await self._send_policy()
            except asyncio.CancelledError:
                raise
            except FrontierLost:
                return  # the next lease or finish check says so
            except Exception:
                # Never let the heartbeat die quietly: that would let every lease expire.
                logger.exception("Heartbeat of worker %s failed", self.worker_id)

    async def _beat(self, *, register: bool = False) -> None:
        """Refresh this worker's entry in ``workers`` and extend its leases."""
        k = self._k
        held = list(self._held)
        info = self._worker_info() if register else b""
        for start in range(0, max(len(held), 1), _BATCH):
            chunk = held[start:start + _BATCH]
            try:
                lost: list[bytes] = await self.connection.call(
                    "heartbeat", self._heartbeat_script,
                    keys=[k.leased, k.owner, k.workers, k.workerinfo, k.crawl],
                    args=[self.worker_id, self.lease_timeout, info, self._marker, *chunk],
                )
            except rexc.ResponseError as exc:
                if not str(exc).startswith(LOST):
                    raise
                raise self._lose() from None
            # Settled meanwhile (an ack that ran between the snapshot and the script) is not
            # lost; anything else expired before this heartbeat (Redis was away, or the loop
            # was blocked for longer than lease_timeout): another worker may have it now.
            lost = [i for i in lost if i in self._held and i not in self._settling]
            if lost:
                for key in lost:
                    self._forget(key)
                logger.warning("Worker %s lost %d leases (expired, handed to another worker)",
                               self.worker_id, len(lost))

    def _urge(self) -> None:
        self._urgent.set()

    async def _policy_loop(self) -> None:
        """Send pauses and holds at once, unless a call that carries them goes first."""
        while not self._closed:
            await self._urgent.wait()
            self._urgent.clear()
            await asyncio.sleep(0)  # a reschedule right after a pause carries it
            try:
                if self._slots.has_changes:
                    await self._send_policy()
            except asyncio.CancelledError:
                raise
            except FrontierLost:
                return
            except Exception:
                logger.exception("Sending host politeness of worker %s failed", self.worker_id)

    async def _send_policy(self) -> None:
        await self._run("policy", self._policy_script)

    # ---------------------------------------------------------------- scripts

    async def _run(self, what: str, script: AsyncScript, *args: Any) -> Any:
        """Run a host-aware script (see ``lua/hosts.lua``) with this worker's defaults and the
        politeness changes recorded since the last call. Raises FrontierLost when the
        crawl's state vanished."""
        if self._lost is not None:
            raise self._lost
        if not self._slots.has_changes:
            return await self._call(what, script, "", args)
        # One call carrying changes at a time, so they reach Redis in the order they were
        # made: a hold sent on one connection must not land after its unhold sent on another.
        async with self._changes_lock:
            return await self._call(what, script, self._slots.take_changes(), args)

    async def _call(self, what: str, script: AsyncScript, changes: str,
                    args: Sequence[Any]) -> Any:
        slots = self._slots
        head = [self.prefix, self._marker, self._epoch, changes, slots.concurrency,
                slots.fresh_delay, slots.delay, self.lease_timeout]
        try:
            return await self.connection.run_script(what, script, [*head, *args])
        except rexc.ResponseError as exc:
            if not str(exc).startswith(LOST):
                raise
            raise self._lose() from None

    def _lose(self) -> FrontierLost:
        if self._lost is None:
            self._lost = FrontierLost(
                f"the crawl's state in Redis vanished: {self._k.crawl} is gone or belongs to "
                f"another crawl now (Redis at {self.connection.display_url} restarted without "
                "its data, failed over to a replica that did not have it, or the crawl was "
                "purged while running). Stopping: continuing would crawl again from nothing. "
                "Run Redis with --appendonly yes to survive restarts; purge the crawl "
                "(`crawler frontier purge`) and start again"
            )
            self._held.clear()
        return self._lost

    async def _quiet(self, what: str, script: AsyncScript, *args: Any) -> Any:
        """:meth:`_run` for calls that end leases (ack, reschedule, release): once the crawl
        is lost they change nothing and return None; the next lease raises."""
        try:
            return await self._run(what, script, *args)
        except FrontierLost:
            return None

    # ---------------------------------------------------------------- protocol

    async def add(self, requests: Sequence[Request]) -> int:
        added = 0
        for start in range(0, len(requests), _BATCH):
            batch = self._unknown(requests[start:start + _BATCH])
            if not batch:
                continue  # all sent before: nothing for Redis to decide
            reply = await self._quiet("add", self._add_script, _pack(_entries(batch)))
            if reply is not None:
                self._learn(batch)
                added += int(reply[0])
                if self._links_cursor == int(reply[1]):  # up to date: skip its own links
                    self._links_cursor = int(reply[2])
        if added:
            self._hint.ready = True
        return added

    async def lease(self, limit: int) -> list[Lease]:
        """Leases an ack call brought back (``prefetch``) first, without a round trip; else
        a lease call."""
        if limit <= 0:
            return []
        hint = self._hint
        if self._prefetched:
            if self._lost is not None:
                raise self._lost
            take = min(limit, len(self._prefetched))
            return [self._prefetched.popleft() for _ in range(take)]
        if hint.answered:
            hint.answered = False
            if not hint.ready:
                return []
        self._slots.tidy()
        reply: list[Any] = await self._run(
            "lease", self._lease_script,
            min(limit, _BATCH), self.worker_id, self.max_deliveries, _BATCH, self._mine(),
        )
        flat, pending, leased, ready, wake_in, reclaimed, dead = reply
        leases = await self._leases(flat)
        if int(pending):
            self._hint.tail = False
        if reclaimed:
            logger.info("Reclaimed %d requests whose lease expired (their worker stopped "
                        "heartbeating)", reclaimed)
        if dead:
            logger.warning("Dead-lettered %d requests leased %d times without being "
                           "acknowledged (see `crawler frontier status`)",
                           dead, self.max_deliveries)
        self._saw(ready, leased, wake_in)
        self._hint.empty_polls = 0 if leases else self._hint.empty_polls + 1
        return leases

    def _saw(self, ready: Any, leased: Any, wake_in: Any, acked: int = 0) -> None:
        """What a lease (or an ack that leased) saw of the shared queue, for next_ready_in;
        ``acked``: leases of this worker that call ended (still in ``_held`` meanwhile)."""
        hint = self._hint
        hint.ready = int(ready) > 0
        hint.leased = max(0, int(leased) - (len(self._held) - acked))
        wait = float(wake_in)
        hint.wake_at = time.monotonic() + wait if wait >= 0 else None

    async def _leases(self, flat: list[Any]) -> list[Lease]:
        """The leases of a script's reply ``{id, deliveries, raw, ...}``, now held here."""
        leases: list[Lease] = []
        for i in range(0, len(flat), 3):
            key: bytes = flat[i]
            try:
                request = decode_request(flat[i + 2])
            except ValueError as exc:
                # Unreadable (another version, a corrupt entry): leasing it again would fail
                # again on every worker, so it goes to the dead letters with the reason.
                logger.error("Dead-lettering stored request %s: %s", key.decode(), exc)
                await self._quiet("dead-letter", self._dead_letter_script, key,
                                  f"cannot decode the stored request: {exc}")
                continue
            self._held.add(key)
            host = _host_of(key)
            # The local slot is in use while the lease lasts (the engine reads and writes it:
            # AutoThrottle, Crawl-delay); made here, AutoThrottle starts it at once.
            self._slots.slot(host).active += 1
            leases.append(Lease(request, key, int(flat[i + 1]), host=host))
        return leases

    def _mine(self, ending: Sequence[bytes] = ()) -> bytes:
        """This worker's leases per host, for its share of each host's places (JSON);
        without those of ``ending`` (ids being acked in the same call)."""
        mine = {slot.key: slot.active for slot in self._slots if slot.active > 0}
        for key in ending:
            host = _host_of(key)
            if host in mine:
                mine[host] -= 1
        mine = {host: n for host, n in mine.items() if n > 0}
        return orjson.dumps(mine) if mine else b""

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        """Acks that arrive while another is on its way to Redis go together in the next
        script call (each is still one step with its children): under load a worker makes
        a fraction of a call per request."""
        key: bytes = lease.key
        # Children beyond one batch are enqueued first by add(): a crash in between leaves
        # them pending and the request leased, so it is redone and they dedup, nothing lost.
        head, rest = children[:_BATCH], children[_BATCH:]
        added = await self.add(rest) if rest else 0
        fresh = self._unknown(head)
        # _settle without its context manager: this runs once per page.
        self._settling.add(key)
        try:
            if self._ack_task is None:  # not opened: no batching
                sent = await self._send_acks(0, b"", [key, b"%d" % len(fresh),
                                                      *_entries(fresh)])
                reply = None if sent is None else sent[0]
            else:
                done: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
                self._acks.append(_Ack(key, fresh, done))
                self._ack_wanted.set()
                reply = await done
        finally:
            self._settled((key,))
        if reply is None:
            return added
        self._learn(fresh)
        added += int(reply[0])
        if self._ack_task is None:
            self._hint.ready = True  # its host has a free place again, or children came
        if not reply[1]:
            logger.debug("Late ack of %s: already done by another worker", lease.request.url)
        return added

    async def _ack_loop(self) -> None:
        """Send the queued acks, as many as fit in one script call at a time."""
        acks = self._acks
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            while acks:
                batch: list[_Ack] = []
                fields: list[bytes] = []
                while acks and len(batch) < _ACK_BATCH and len(fields) < _BATCH:
                    ack = acks.popleft()
                    batch.append(ack)
                    fields += (ack.key, b"%d" % len(ack.children), *_entries(ack.children))
                # The places these acks free are leased again in the same call: one for one,
                # so what this worker holds (handed out or not) never grows through acks.
                want = len(batch) if self.prefetch else 0
                mine = self._mine([ack.key for ack in batch]) if want else b""
                try:
                    sent = await self._send_acks(want, mine, fields)
                    reply: list[int] | None = None
                    if sent is not None:
                        reply = sent[0]
                        if len(sent) > 3:
                            flat, ready, leased, wake_in = sent[3:]
                            self._prefetched.extend(await self._leases(flat))
                            self._saw(ready, leased, wake_in, acked=len(batch))
                            self._hint.answered = True
                        else:
                            self._hint.ready = True  # their hosts have free places again
                except asyncio.CancelledError:
                    for ack in batch:
                        ack.done.cancel()
                    raise
                except Exception as exc:
                    for ack in batch:
                        if not ack.done.done():
                            ack.done.set_exception(exc)
                    continue
                for n, ack in enumerate(batch):
                    if not ack.done.done():
                        ack.done.set_result(None if reply is None else reply[2 * n:2 * n + 2])

    async def _send_acks(self, want: int, mine: bytes, fields: list[bytes]) -> list[Any] | None:
        """One ack script call (``fields``: each ack's id, its children's count and its
        children), after :attr:`before_ack`; None once the crawl is lost. What other workers
        added since the last call is learnt from the reply (its second and third parts)."""
        if self.before_ack is not None:
            self.before_ack()
        sent: list[Any] | None = await self._quiet(
            "ack", self._ack_script, want, self.worker_id, self.max_deliveries, mine,
            _pack(fields), self._links_cursor)
        if sent is not None:
            self._links_cursor = int(sent[1])
            if sent[2]:
                self._learn_links(sent[2])
        return sent

    def _learn_links(self, entries: list[bytes]) -> None:
        """Entries of ``P:links`` (a fingerprint, then the link of a plain GET, if any):
        requests in the seen set, which this worker need not send again."""
        self._remember(entry[:16] for entry in entries)
        links = self.known_links
        if len(links) > _LINKS_MAX:
            links.clear()  # bounded as _known: a link forgotten is sent once more
        links.update(entry[16:].decode() for entry in entries if len(entry) > 16)

    def known(self, fingerprint: bytes) -> bool:
        """Whether this worker already added a request with this fingerprint (Redis took it:
        it is in the crawl's seen set for good). False says nothing: the seen set on the
        server decides in :meth:`add` and :meth:`ack`."""
        return fingerprint in self._known

    def _unknown(self, requests: Sequence[Request]) -> Sequence[Request]:
        """``requests`` without those this worker already sent to Redis: their fingerprints
        are in the seen set for good, so they are duplicates (most links of a page are)."""
        known = self._known
        if not known:
            return requests
        return [r for r in requests if r.dont_filter or r.fingerprint not in known]

    def _learn(self, sent: Sequence[Request]) -> None:
        self._remember(r.fingerprint for r in sent if not r.dont_filter)

    def _remember(self, fingerprints: Iterable[bytes]) -> None:
        """Add ``fingerprints`` (in the seen set) to those this worker does not send again."""
        known = self._known
        if len(known) > _KNOWN_MAX:
            known.clear()  # bounded memory: forgetting only costs sending them again
        known.update(fingerprints)

    async def drain(self, exporter: Exporter) -> int:
        return 0

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        key: bytes = lease.key
        with self._settle([key]):
            moved = await self._quiet(
                "reschedule", self._reschedule_script,
                key, self.worker_id, encode_request(request), str(-request.priority),
                max(0.0, delay),
            )
        if not moved:
            logger.debug("Reschedule of %s ignored: its lease is not held any more",
                         request.url)
            return
        hint = self._hint
        hint.ready = True  # its host has a free place again
        if delay > 0:
            due = time.monotonic() + delay
            hint.wake_at = due if hint.wake_at is None else min(hint.wake_at, due)

    async def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        keys = [lease.key for lease in leases]
        with self._settle(keys):
            for start in range(0, len(keys), _BATCH):
                await self._quiet("release", self._release_script, self.worker_id,
                                  *keys[start:start + _BATCH])
        self._hint.ready = True

    def next_ready_in(self) -> float | None:
        """From what the last :meth:`lease` (and later calls of this process) saw: 0 when a
        host was ready; the time until the earliest waiting host (its delay or pause) or
        delayed request; a polling interval while other workers hold leases, since their
        acks may free a host or add requests, or they may expire: 0.05 s growing to 0.2 s
        while requests wait for their hosts, 0.05 s once nothing is pending or delayed (the
        crawl ends, or goes on, with those leases' acks: a worker sleeping 0.2 s then would
        keep the command running that much after the crawl's last page); None when nothing
        is due (the crawl looked finished, or only this worker's own leases hold the rest
        back)."""
        hint = self._hint
        if hint.ready:
            return 0.0
        waits: list[float] = []
        if hint.wake_at is not None:
            waits.append(max(0.0, hint.wake_at - time.monotonic()))
        if hint.leased:
            polls = 0 if hint.tail else min(hint.empty_polls, 8)
            waits.append(min(_POLL_MIN * 2 ** polls, _POLL_MAX))
        return min(waits) if waits else None

    @property
    def seeded(self) -> bool:
        """False for the one worker that adds the crawl's start requests (the first to open,
        or the one taking over from a seeder that stopped or died before finishing); True for
        every other worker, which then does not run ``start()``."""
        return self._seeded

    async def mark_seeded(self) -> None:
        """Record that every start request was added: no worker seeds this crawl again."""
        if self._lost is None:
            await self.connection.call("mark seeded", self.connection.client.set,
                                       self._k.seeded, b"1")
        self._seeded = True

    async def _snapshot(self) -> _Snapshot:
        if self._lost is not None:
            raise self._lost
        k = self._k
        try:
            reply: list[int] = await self.connection.call(
                "counts", self._counts_script,
                keys=[k.npending, k.delayed, k.leased, k.done, k.dead, k.seeded, k.seeder,
                      k.workers, k.workerinfo, k.crawl],
                args=[self.worker_id, self.lease_timeout, self._marker],
            )
        except rexc.ResponseError as exc:
            if not str(exc).startswith(LOST):
                raise
            raise self._lose() from None
        return _Snapshot(*(int(x) for x in reply))

    async def counts(self) -> FrontierCounts:
        """Across the cluster: pending (queued and delayed), in flight (leased by any
        worker, dead ones included until their leases expire), done, dead-lettered."""
        s = await self._snapshot()
        return FrontierCounts(pending=s.pending + s.delayed, in_flight=s.leased, done=s.done,
                              dead=s.dead)

    async def is_finished(self) -> bool:
        """Nothing pending, nothing delayed and nothing leased by any worker (a dead worker's
        leases count until they expire and are redone), and no other live worker still
        adding start requests."""
        s = await self._snapshot()
        hint = self._hint
        hint.leased = max(0, s.leased - len(self._held))
        hint.tail = not s.pending and not s.delayed
        if not s.pending:
            hint.ready = False
        elif hint.wake_at is None and not s.leased:
            hint.ready = True  # only an inconsistent view explains this: look again
        if not s.delayed and not s.pending:
            hint.wake_at = None
        if s.pending or s.delayed or s.leased:
            return False
        if s.seeding == 1:
            hint.leased = max(hint.leased, 1)  # poll: the seeder's requests are coming
            return False
        if s.seeding == 2:
            logger.error(
                "Crawl %s ends without all its start requests: the worker adding them stopped "
                "or died first. Start a worker again to add the rest (the others dedup).",
                self.prefix,
            )
        return True

    @contextlib.contextmanager
    def _settle(self, keys: list[bytes]) -> Iterator[None]:
        """Around a call that ends leases: the heartbeat stops counting them as held."""
        self._settling.update(keys)
        try:
            yield
        finally:
            self._settled(keys)

    def _settled(self, keys: Sequence[bytes]) -> None:
        """The call that ended ``keys`` returned (or failed): they are no longer held."""
        self._settling.difference_update(keys)
        for key in keys:
            self._forget(key)

    def _forget(self, key: bytes) -> None:
        """A lease of this worker ended (or was lost): its host's local slot may go idle."""
        if key in self._held:
            self._held.discard(key)
            self._slots.ended(_host_of(key))

    # ---------------------------------------------------------------- shared stats

    async def merge_stats(self, stats: dict[str, Any]) -> None:
        """Add this worker's counters to the crawl's shared stats record.

        ``stats`` is this worker's cumulative stats (e.g. ``Stats.to_dict()``); only what
        changed since the previous call is added, so call it periodically and at the end.
        Integer counters are summed (HINCRBY), float counters too, ``max_*`` keys keep the
        maximum; derived values (rates, times) and gauges are skipped.
        """
        if self._lost is not None:
            return  # nothing to add to: the crawl's record is gone
        ops: list[str | int | float] = []
        merged = dict(self._merged)
        for key, value in stats.items():
            if key in _NOT_COUNTERS or isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)):
                continue
            if key.startswith("max_"):
                if value > merged.get(key, float("-inf")):
                    ops += ["m", key, value]
                    merged[key] = value
                continue
            delta = value - merged.get(key, 0)
            if delta:
                ops += ["i" if isinstance(value, int) else "f", key, delta]
                merged[key] = value
        if ops:
            await self.connection.call("merge-stats", self._merge_script,
                                       keys=[self._k.stats], args=ops)
        self._merged = merged

    async def shared_stats(self) -> dict[str, int | float]:
        """The crawl's shared stats record: every worker's merged counters, plus
        ``frontier/reclaimed`` and ``frontier/dead_lettered``."""
        raw: dict[Any, Any] = await self.connection.call(
            "stats", self.connection.client.hgetall, self._k.stats
        )
        return parse_stats(raw)


def shared_frontier(settings: Settings, spider_name: str, output: str | None) -> FrontierKit:
    """The frontier shared by the workers of ``settings.frontier_url`` (a
    :data:`~.base.BuildFrontier`)."""
    frontier = RedisFrontier.from_settings(settings, spider_name)
    return FrontierKit(frontier, shared=frontier)
