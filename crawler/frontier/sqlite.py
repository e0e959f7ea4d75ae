"""The durable frontier: the queue of a job, in the job's SQLite database.

The queue's tables live in the job database (:class:`crawler.jobstate.JobDatabase`, which
holds the connection, the group commit, the output log and the job state)::

    requests(id, state, host, priority, seq, ready_at, deliveries, data)
        state 0 = ready, 1 = leased (in flight), 2 = delayed (a retry waiting for ready_at);
        ``host`` is the slot key: leasing takes a host's best ready rows (see below);
        ``data`` is the request in the versioned JSON of :mod:`.codec`. A done request is
        deleted and only counted (meta ``done``): the seen-set remembers it.
    seen(fp)          the 16-byte fingerprint of every request ever enqueued: the dedup set
                      lives on disk, not in memory

Scheduling by host. Which host is served next is decided in memory by :attr:`SqliteFrontier.
slots` (:mod:`crawler.slots`), which holds per host the number of ready rows and their best
priority (rebuilt from the table in one grouped query on open); a lease then reads that
host's best rows through the index ``(host, priority DESC, seq)``. A host's pause
(Retry-After) is saved with the job state and holds again on resume; its Crawl-delay comes
back with the saved robots.txt rules.

Transactions. Every operation (add, lease, ack, ...) runs whole inside the job database's
open transaction and is committed by its group commit (see :mod:`crawler.jobstate`): a
crash keeps a prefix of whole operations. Counts and :meth:`SqliteFrontier.is_finished`
describe the open transaction, the state that commits next.

Exactly-once output. :meth:`SqliteFrontier.ack` deletes the request and hands its items to
the job database in the same operation, so a callback's output and its request's ack
commit in one transaction; :meth:`SqliteFrontier.drain` and the output methods are the job
database's (see :mod:`crawler.jobstate` for the invariant and how a resume keeps it).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..exporters import Exporter, encode_item
from ..http import Request
from ..jobstate import SCHEMA_VERSION, JobDatabase, StateSource, check_job_database
from ..slots import Slots
from ..urls import host_key
from .base import FrontierCounts, Lease
from .codec import decode_request, encode_request

__all__ = ["QUEUE_SCHEMA", "SCHEMA_VERSION", "SqliteFrontier", "StateSource", "check_job_database"]

logger = logging.getLogger(__name__)

_READY, _LEASED, _DELAYED = 0, 1, 2

#: A request as stored: fingerprint (None for dont_filter), host, priority, data.
_Row = tuple[bytes | None, str, int, bytes]

#: The queue's tables, created with the job database (:data:`crawler.jobstate.JOB_TABLES`).
QUEUE_SCHEMA = (
    (
        "CREATE TABLE requests ("
        " id INTEGER PRIMARY KEY, state INTEGER NOT NULL, host TEXT NOT NULL,"
        " priority INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, ready_at REAL NOT NULL DEFAULT 0,"
        " deliveries INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL)"
    ),
    # Partial indexes: leasing walks only a host's ready rows in order, promotion only
    # delayed ones.
    "CREATE INDEX requests_ready ON requests (host, priority DESC, seq) WHERE state = 0",
    "CREATE INDEX requests_delayed ON requests (ready_at) WHERE state = 2",
    "CREATE TABLE seen (fp BLOB PRIMARY KEY) WITHOUT ROWID",
)

_LEASE = (
    "UPDATE requests SET state = 1, deliveries = deliveries + 1 WHERE id IN ("
    " SELECT id FROM requests WHERE state = 0 AND host = ? ORDER BY priority DESC, seq LIMIT ?"
    ") RETURNING id, priority, seq, deliveries, data"
)
_TOP = (
    "SELECT priority FROM requests WHERE state = 0 AND host = ?"
    " ORDER BY priority DESC, seq LIMIT 1"
)
_INSERT_REQUEST = (
    "INSERT INTO requests (state, host, priority, seq, data) VALUES (0, ?, ?, ?, ?)"
)
_SEEN_CHUNK = 500  # fingerprints per INSERT (SQLite allows 32766 parameters)

def _see_sql(n: int) -> str:
    # RETURNING lists the fingerprints actually inserted, i.e. the ones never seen before:
    # the dedup test and the insert, for a whole batch, in one statement.
    values = ",".join(["(?)"] * n)
    return f"INSERT INTO seen (fp) VALUES {values} ON CONFLICT DO NOTHING RETURNING fp"




class SqliteFrontier:
    """A :class:`~crawler.frontier.base.Frontier` in one SQLite file, with an outbox.

    ``path`` is the database file, created with its tables when missing. ``spider_name`` is
    recorded at creation; opening a database of another spider, of another
    :data:`SCHEMA_VERSION`, or a file that is not such a database raises
    :class:`~crawler.errors.JobDirError`. ``commit_interval`` and ``commit_ops`` tune the
    group commit (:class:`~crawler.jobstate.JobDatabase`). ``db``: the job database to keep
    the queue in (one is made from the arguments above when None); the frontier opens and
    closes it. Its output and job-state methods are reachable here too, as the runner and
    the durable kit use them.

    Order: highest priority first, FIFO within a priority; a released request keeps its
    place, a rescheduled one goes to the back. Items given to :meth:`ack` are kept only once
    an output is attached with :meth:`open_output` (a crawl without output drops them).

    Use it from the event loop that opened it. After a database or output error it refuses
    all work (raises): the state on disk is intact, and resuming the job continues exactly.
    """

    lease_batch = 1
    known_links = None  # every link it has is answered by known()
    known = None  # the seen-set is on disk: dedup happens in add()
    outbox = True
    stores_requests = True

    def __init__(
        self,
        path: Path | str,
        *,
        spider_name: str,
        commit_interval: float = 0.1,
        commit_ops: int = 1000,
        slots: Slots | None = None,
        db: JobDatabase | None = None,
    ) -> None:
        self.path = Path(path)
        self.slots = slots if slots is not None else Slots()
        self.spider_name = spider_name
        #: The job database: the connection, group commit, output log and job state.
        self.db = db if db is not None else JobDatabase(
            self.path, spider_name=spider_name, schema=QUEUE_SCHEMA,
            commit_interval=commit_interval, commit_ops=commit_ops,
        )
        self.db.track_rows(lambda: [("done", self._done)])
        # Mirrors of the database, exact for the open transaction: cheap counts and waits.
        self._ready = 0
        self._delayed = 0
        self._next_delayed_at: float | None = None  # time.time() of the earliest delayed
        self._leased: set[int] = set()
        self._done = 0
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create or check the database, and put requests leased by a dead process back to
        ready. Raises :class:`~crawler.errors.JobDirError` for a database that is not this
        spider's job of this version."""
        await self.db.open(self._recover)

    def _recover(self, conn: sqlite3.Connection) -> None:
        """Load the mirrors. Leased rows were in flight in a process that is gone: they go
        back to ready, at their old place in the order."""
        recovered = conn.execute("UPDATE requests SET state = 0 WHERE state = 1").rowcount
        if recovered:
            logger.info("Recovered %d requests that were in flight when the last run ended",
                        recovered)
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM requests GROUP BY state"))
        self._ready = counts.get(_READY, 0)
        self._delayed = counts.get(_DELAYED, 0)
        self._leased = set()
        slots = self.slots
        for host, n, top in conn.execute(
            "SELECT host, COUNT(*), MAX(priority) FROM requests WHERE state = 0 GROUP BY host"
        ):
            slots.added(slots.slot(host), n, top)
        self._seq = (conn.execute("SELECT MAX(seq) FROM requests").fetchone()[0] or 0) + 1
        self._next_delayed_at = self._min_delayed(conn)
        self._done = int(self.db.meta.get("done") or 0)

    @staticmethod
    def _min_delayed(conn: sqlite3.Connection) -> float | None:
        value = conn.execute("SELECT MIN(ready_at) FROM requests WHERE state = 2").fetchone()[0]
        return float(value) if value is not None else None

    async def close(self) -> None:
        """Commit what is pending and close. Leased requests stay leased in the database
        (they go back to ready when the job is opened again). Idempotent.

        The per-host state is let go of too (a fresh :class:`Slots` of the same defaults
        takes its place): it mirrors the database, and :meth:`open` builds it again from
        there, so a job of many hosts reopened in one process never holds it twice."""
        try:
            await self.db.close()
        finally:
            old = self.slots
            self.slots = Slots(old.concurrency, old.delay, on_new=old.on_new, clock=old.clock)

    @property
    def resumed(self) -> bool:
        """True when :meth:`open` found an existing job rather than creating the database."""
        return self.db.resumed

    @property
    def finished(self) -> bool:
        """True when a run of this job ended with reason ``"finished"`` (see :meth:`finish`)."""
        return self.db.finished

    @property
    def seeded(self) -> bool:
        """True once :meth:`mark_seeded` was committed: every start request was added, so a
        resume need not run ``start()`` again."""
        return self.db.seeded

    async def commit(self) -> None:
        """Commit now what waits for the group commit, and wait until it is committed.
        Raises ``RuntimeError`` if the commit failed."""
        await self.db.commit()

    # ------------------------------------------------------------------ the contract

    @staticmethod
    def _encode(requests: Sequence[Request]) -> list[_Row]:
        """``(fingerprint, or None for dont_filter; host; priority; data)`` per request,
        computed before any change, so an :class:`~crawler.errors.UnstorableRequest` leaves
        the job as it was."""
        return [
            (None if r.dont_filter else r.fingerprint, host_key(r.yurl), r.priority,
             encode_request(r))
            for r in requests
        ]

    def _insert(self, conn: sqlite3.Connection, rows: list[_Row]) -> int:
        fps = [fp for fp, _, _, _ in rows if fp is not None]
        new: set[bytes] = set()
        for start in range(0, len(fps), _SEEN_CHUNK):
            chunk = fps[start:start + _SEEN_CHUNK]
            new.update(row[0] for row in conn.execute(_see_sql(len(chunk)), chunk))
        fresh: list[tuple[str, int, int, bytes]] = []
        seq = self._seq
        for fp, host, priority, data in rows:
            if fp is not None:
                if fp not in new:
                    continue
                new.discard(fp)  # the same request twice in one batch: only the first
            fresh.append((host, priority, seq, data))
            seq += 1
        if len(fresh) == 1:
            conn.execute(_INSERT_REQUEST, fresh[0])
        elif fresh:
            conn.executemany(_INSERT_REQUEST, fresh)
        self._seq = seq
        self._ready += len(fresh)
        slots = self.slots
        for host, priority, _, _ in fresh:
            slots.added(slots.slot(host), 1, priority)
        return len(fresh)

    async def add(self, requests: Sequence[Request]) -> int:
        """Enqueue the requests not seen before (or ``dont_filter``), as one step. Raises
        :class:`~crawler.errors.UnstorableRequest` naming the field, and then adds none.

        Cost: each request not ``dont_filter`` is one lookup in the on-disk seen-set. On a
        job of a million requests, a batch of 1,000 holds the loop for tens of
        milliseconds; batches of a few hundred keep the crawl responsive.
        """
        if not requests:
            return 0
        rows = self._encode(requests)
        await self.db.idle()
        added: int = self.db.guard(lambda conn: self._insert(conn, rows))
        self.db.changed()
        return added

    def _promote(self, conn: sqlite3.Connection) -> None:
        """Delayed requests whose time has come become ready (keeping their place)."""
        moved = conn.execute(
            "UPDATE requests SET state = 0 WHERE state = 2 AND ready_at <= ?"
            " RETURNING host, priority", (time.time(),)
        ).fetchall()
        slots = self.slots
        for host, priority in moved:
            slots.added(slots.slot(host), 1, priority)
        self._delayed -= len(moved)
        self._ready += len(moved)
        self._next_delayed_at = self._min_delayed(conn) if self._delayed else None

    async def lease(self, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        due = self._next_delayed_at
        if not self._ready and (due is None or due > time.time()):
            return []
        await self.db.idle()
        due = self._next_delayed_at
        promote = due is not None and due <= time.time()
        slots = self.slots
        now = slots.clock()

        def work(conn: sqlite3.Connection) -> list[tuple[str, int, int, int, int, bytes]]:
            if promote:
                self._promote(conn)
            out: list[tuple[str, int, int, int, int, bytes]] = []
            while len(out) < limit and (slot := slots.pick(now)) is not None:
                host = slot.key
                want = min(slots.room(slot), limit - len(out))
                rows = conn.execute(_LEASE, (host, want)).fetchall()
                rows.sort(key=lambda row: (-row[1], row[2]))  # RETURNING keeps no order
                out += [(host, *row) for row in rows]
                top = None
                if slot.pending > len(rows):
                    found = conn.execute(_TOP, (host,)).fetchone()
                    top = found[0] if found is not None else None
                if top is None:
                    slot.pending = len(rows)  # none left, whatever the count said
                if rows:
                    slots.taken(slot, len(rows), top, now)
                else:
                    slots.place(slot, now)
            return out

        rows = self.db.guard(work)
        if rows or promote:
            self.db.changed()
        self._ready -= len(rows)
        leased = self._leased
        out: list[Lease] = []
        for host, key, _priority, _seq, deliveries, data in rows:
            leased.add(key)
            out.append(Lease(decode_request(data), key, deliveries, host))
        return out

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        """Delete the request, add ``children`` and take ``items`` for the output, as one
        step of one transaction. A lease not in flight (acked already) only adds its
        children. Raises :class:`~crawler.errors.UnstorableRequest` or ``TypeError`` (an item
        that cannot be encoded) before changing anything."""
        key = lease.key
        rows = self._encode(children) if children else []
        lines = [encode_item(item) for item in items] if self.db.output_attached else []
        await self.db.idle()
        held = key in self._leased  # checked after the wait: another caller may have acked

        def work(conn: sqlite3.Connection) -> int:
            if held:
                conn.execute("DELETE FROM requests WHERE id = ?", (key,))
            return self._insert(conn, rows) if rows else 0

        added: int = self.db.guard(work)
        if held:
            self._end_lease(lease)
            self._done += 1
            self.db.take_items(lines)
        self.db.changed()
        return added

    def _end_lease(self, lease: Lease) -> None:
        self._leased.discard(lease.key)
        slot = self.slots.get(lease.host)
        if slot is not None:
            self.slots.finished(slot)

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        """Back to pending as ``request``, at the back of its priority, ready after
        ``delay`` seconds (wall clock, so the delay survives a restart). A lease not in
        flight is left alone."""
        key = lease.key
        if key not in self._leased:
            return
        data = encode_request(request)
        delayed = delay > 0
        host = host_key(request.yurl)
        await self.db.idle()
        if key not in self._leased:
            return
        ready_at = time.time() + delay if delayed else 0.0
        seq = self._seq
        self.db.guard(lambda conn: conn.execute(
            "UPDATE requests SET state = ?, host = ?, priority = ?, seq = ?, ready_at = ?,"
            " data = ? WHERE id = ?",
            (_DELAYED if delayed else _READY, host, request.priority, seq, ready_at, data, key),
        ))
        self._seq = seq + 1
        self._end_lease(lease)
        if delayed:
            self._delayed += 1
            if self._next_delayed_at is None or ready_at < self._next_delayed_at:
                self._next_delayed_at = ready_at
        else:
            self._ready += 1
            self.slots.added(self.slots.slot(host), 1, request.priority)
        self.db.changed()

    async def release(self, leases: Sequence[Lease]) -> None:
        """Back to ready unchanged, at their old place in the order (they were leased first,
        so they are fetched first again)."""
        await self.db.idle()
        held = [lease for lease in leases if lease.key in self._leased]
        if not held:
            return
        keys = [(lease.key,) for lease in held]
        self.db.guard(
            lambda conn: conn.executemany("UPDATE requests SET state = 0 WHERE id = ?", keys)
        )
        slots = self.slots
        for lease in held:
            self._end_lease(lease)
            slots.added(slots.slot(lease.host), 1, lease.request.priority)
        self._ready += len(keys)
        self.db.changed()

    async def drain(self, exporter: Exporter) -> int:
        """Write the items not yet written to ``exporter`` (:meth:`JobDatabase.drain
        <crawler.jobstate.JobDatabase.drain>`); returns how many."""
        return await self.db.drain(exporter)

    def next_ready_in(self) -> float | None:
        wait = self.slots.next_ready_in() if self._ready else None
        if self._next_delayed_at is not None:
            due = max(0.0, self._next_delayed_at - time.time())
            wait = due if wait is None else min(wait, due)
        return wait

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            pending=self._ready + self._delayed, in_flight=len(self._leased), done=self._done
        )

    async def is_finished(self) -> bool:
        return not (self._ready or self._delayed or self._leased)

    # ------------------------------------------------------------ the job's output and state
    #
    # The job database's (crawler.jobstate), reachable through the frontier the durable kit
    # hands out; finish() adds what only the queue knows: whether anything is left.

    def recover_output(self, path: str) -> bool:
        """:meth:`JobDatabase.recover_output <crawler.jobstate.JobDatabase.recover_output>`."""
        return self.db.recover_output(path)

    async def open_output(
        self, path: str, *, overwrite: bool = False, fields: Sequence[str] | None = None,
        wrap: Callable[[Exporter], Exporter] | None = None,
    ) -> Exporter:
        """:meth:`JobDatabase.open_output <crawler.jobstate.JobDatabase.open_output>`."""
        return await self.db.open_output(path, overwrite=overwrite, fields=fields, wrap=wrap)

    async def attach_output(self, exporter: Exporter) -> None:
        """:meth:`JobDatabase.attach_output <crawler.jobstate.JobDatabase.attach_output>`."""
        await self.db.attach_output(exporter)

    def track_state(self, source: StateSource | None) -> None:
        """:meth:`JobDatabase.track_state <crawler.jobstate.JobDatabase.track_state>`."""
        self.db.track_state(source)

    def track_extra(self, name: str, source: Callable[[], Any]) -> None:
        """:meth:`JobDatabase.track_extra <crawler.jobstate.JobDatabase.track_extra>`."""
        self.db.track_extra(name, source)

    def load_extra(self, name: str) -> Any:
        """:meth:`JobDatabase.load_extra <crawler.jobstate.JobDatabase.load_extra>`."""
        return self.db.load_extra(name)

    async def save_state(self, stats: dict[str, Any], spider_state: dict[str, Any]) -> None:
        """:meth:`JobDatabase.save_state <crawler.jobstate.JobDatabase.save_state>`."""
        await self.db.save_state(stats, spider_state)

    def load_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`JobDatabase.load_state <crawler.jobstate.JobDatabase.load_state>`."""
        return self.db.load_state()

    async def mark_seeded(self) -> None:
        """Record (and commit) that every start request has been added (:attr:`seeded`)."""
        await self.db.mark_seeded()

    async def finish(self, reason: str) -> None:
        """Record how this run ended, and commit. Reason ``"finished"`` with nothing
        pending, in flight or unwritten marks the job :attr:`finished`: run again, it has
        nothing to do."""
        await self.db.finish(
            reason, lambda: not (self._ready or self._delayed or self._leased)
        )
