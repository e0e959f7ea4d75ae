"""The durable frontier: one SQLite file per job, exactly-once output across crashes.

Everything a job knows lives in one database (standard library ``sqlite3``, WAL mode)::

    requests(id, state, priority, seq, ready_at, deliveries, data)
        state 0 = ready, 1 = leased (in flight), 2 = delayed (a retry waiting for ready_at);
        a done request is deleted and only counted (meta ``done``): the seen-set below is
        what remembers it.
    seen(fp)        the 16-byte fingerprints of every request ever enqueued (the dedup set
                    lives on disk, not in memory)
    outbox(id, data)  items committed with their request's ack, not yet written to the output
    meta(key, value)  versions, spider name, done count, output offset, stats, spider state

Transactions. Every change is made on one connection, from the event loop thread, inside a
transaction that stays open for at most ``commit_interval`` seconds (or ``commit_ops``
operations) and then commits: group commit. One ack is never split across transactions, so
what a crash leaves is always a prefix of whole operations: the last few milliseconds of
acks may be lost, and those requests are then simply fetched again on resume (leased rows go
back to ready), producing their items again. Nothing of them was committed, so nothing is
duplicated. Counts and :meth:`SqliteFrontier.is_finished` describe the open transaction,
which is the state that commits next; the ``finished`` flag is only ever written in a
transaction that also holds every ack before it.

Exactly-once output. :meth:`SqliteFrontier.ack` stores a request's items in ``outbox`` in
the same transaction that deletes the request. :meth:`SqliteFrontier.drain` appends outbox
rows to the output file (whole lines, one OS write per batch), *then* records
``output_offset`` (the exporter's :meth:`~crawler.exporters.Exporter.tell`) and deletes the
rows, in the transaction. So the committed state always says: the file's first
``output_offset`` bytes hold exactly the items no longer in the outbox. Anything in the file
beyond that offset (a torn line, or lines whose offset record did not commit) is cut on
resume by :meth:`SqliteFrontier.recover_output`, and the outbox rows it came from, still
committed, are written again, once.

Durability. ``synchronous=NORMAL`` in WAL mode: a commit is safe as soon as it returns
against a *process* crash (kill -9, an exception, OOM), which is what this frontier
promises. An operating-system crash or power loss may lose the last commits; the output file
is not fsynced either, so after one the file may even be shorter than the recorded offset,
which :meth:`SqliteFrontier.recover_output` reports instead of guessing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import JobDirError
from ..exporters import Exporter, encode_item, format_for, open_exporter
from ..http import Request
from .base import FrontierCounts, Lease
from .codec import FORMAT_VERSION as REQUEST_FORMAT
from .codec import decode_request, encode_request

__all__ = ["SCHEMA_VERSION", "SqliteFrontier", "StateSource"]

logger = logging.getLogger(__name__)

#: Version of the tables below; a database of another version is refused, never misread.
SCHEMA_VERSION = 1

#: Returns ``(stats, spider_state)``, both JSON-serialisable dicts, for each commit.
StateSource = Callable[[], tuple[dict[str, Any], dict[str, Any]]]

_READY, _LEASED, _DELAYED = 0, 1, 2

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ready_at REAL NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
-- Partial indexes: leasing walks only ready rows in order, promotion only delayed ones.
CREATE INDEX requests_ready ON requests (priority DESC, seq) WHERE state = 0;
CREATE INDEX requests_delayed ON requests (ready_at) WHERE state = 2;
CREATE TABLE seen (fp BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE outbox (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

_SEE = "INSERT OR IGNORE INTO seen (fp) VALUES (?)"
_OUR_TABLES = frozenset({"meta", "requests", "seen", "outbox"})
_DRAIN_BATCH = 512
# orjson reads integers beyond 64 bits as floats; a line with such a long run of digits is
# decoded by the standard library instead (exact, slower, rare).
_LONG_DIGITS = re.compile(rb"\d{19,}")


def _decode_item(raw: bytes) -> Any:
    if _LONG_DIGITS.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)


class _Checkpointer:
    """Folds the WAL back into the database from a thread of its own, with its own
    connection. A checkpoint fsyncs; on the event loop thread that stalled the crawl for tens
    of milliseconds now and then. PASSIVE checkpoints never block the writer, and SQLite
    releases the GIL while it works."""

    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._commits = 0  # written by the loop thread, read here: a plain int is enough
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        self._commits += 1
        if self._commits % 64 == 0:  # a burst of commits: do not wait for the interval
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            done = 0
            while not self._stopping:
                self._wake.wait(self._interval)
                self._wake.clear()
                commits = self._commits
                if commits == done or self._stopping:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    done = commits
                except sqlite3.Error as exc:
                    logger.warning("Checkpoint of %s failed (retried later): %s", self._path, exc)
        finally:
            conn.close()


class SqliteFrontier:
    """A :class:`~crawler.frontier.base.Frontier` in one SQLite file, with an outbox.

    ``path`` is the database file (created with its tables if missing). ``spider_name`` is
    recorded at creation; opening a database of another spider, of another
    :data:`SCHEMA_VERSION`, or a file that is not such a database raises
    :class:`~crawler.errors.JobDirError`.

    ``commit_interval``: the longest an operation waits before its transaction commits
    (0 commits after every operation). ``commit_ops``: commit earlier once that many
    operations are waiting.

    Not thread-safe: use it from the event loop that opened it. Methods raise after a
    database error (the state on disk is intact; resume the job).
    """

    outbox = True

    def __init__(
        self,
        path: Path | str,
        *,
        spider_name: str,
        commit_interval: float = 0.02,
        commit_ops: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.spider_name = spider_name
        self._commit_interval = commit_interval
        self._commit_ops = commit_ops
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ops = 0
        self._broken: BaseException | None = None
        self._state_source: StateSource | None = None
        self._snapshot_failed = False
        # Mirrors of the database, exact for the open transaction: cheap counts and waits.
        self._ready = 0
        self._delayed = 0
        self._next_delayed_at: float | None = None  # time.time() of the earliest delayed
        self._leased: set[int] = set()
        self._done = 0
        self._seq = 0
        self._unwritten = 0  # outbox rows not yet drained
        self._last_written = 0
        self._output_offset: int | None = None
        self._output_attached = False
        self._resumed = False
        self._meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create or check the database, and put requests leased by a dead process back to
        ready. Raises :class:`~crawler.errors.JobDirError` for a database that is not this
        spider's job of this version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._conn = conn
            # WAL: readers never block the writer and a commit is one append to the log.
            # synchronous=NORMAL: no fsync per commit; safe against a process crash, which
            # is the guarantee (see the module docstring), not against power loss.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-8192")  # 8 MiB page cache, bounded
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the _Checkpointer thread does it
            self._prepare_schema(conn)
            self._recover(conn)
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise JobDirError(
                f"{self.path} is not a crawl job database, or is corrupt: {exc}"
            ) from exc
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("request_format", REQUEST_FORMAT),
                    ("spider_name", self.spider_name),
                    ("created", time.time()),
                    ("done", 0),
                    ("last_written", 0),
                ],
            )
            conn.execute("COMMIT")
            self._resumed = False
        elif "meta" not in tables or not tables <= _OUR_TABLES:
            raise JobDirError(f"{self.path} is an SQLite database, but not a crawl job's")
        else:
            self._resumed = True
        self._meta = dict(conn.execute("SELECT key, value FROM meta"))
        meta = self._meta
        if meta.get("schema_version") != SCHEMA_VERSION or meta.get("request_format") != (
            REQUEST_FORMAT
        ):
            raise JobDirError(
                f"{self.path} was written by an incompatible version (schema "
                f"v{meta.get('schema_version')}, requests v{meta.get('request_format')}); "
                f"this version reads schema v{SCHEMA_VERSION}, requests v{REQUEST_FORMAT}"
            )
        if meta.get("spider_name") != self.spider_name:
            raise JobDirError(
                f"{self.path} belongs to spider {meta.get('spider_name')!r}, "
                f"not {self.spider_name!r}"
            )

    def _recover(self, conn: sqlite3.Connection) -> None:
        """Load the mirrors; leased rows were in flight in a process that is gone."""
        recovered = conn.execute(
            "UPDATE requests SET state = ? WHERE state = ?", (_READY, _LEASED)
        ).rowcount
        if recovered:
            logger.info("Recovered %d requests that were in flight when the last run ended",
                        recovered)
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM requests GROUP BY state"))
        self._ready = counts.get(_READY, 0)
        self._delayed = counts.get(_DELAYED, 0)
        self._leased = set()
        self._seq = (conn.execute("SELECT MAX(seq) FROM requests").fetchone()[0] or 0) + 1
        self._next_delayed_at = self._min_delayed(conn)
        meta = self._meta
        self._done = int(meta.get("done") or 0)
        self._last_written = int(meta.get("last_written") or 0)
        offset = meta.get("output_offset")
        self._output_offset = int(offset) if offset is not None else None
        self._unwritten = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE id > ?", (self._last_written,)
        ).fetchone()[0]

    @staticmethod
    def _min_delayed(conn: sqlite3.Connection) -> float | None:
        value = conn.execute(
            "SELECT MIN(ready_at) FROM requests WHERE state = ?", (_DELAYED,)
        ).fetchone()[0]
        return float(value) if value is not None else None

    async def close(self) -> None:
        """Commit what is pending and close. Leased requests stay leased in the database
        (they go back to ready when the job is opened again)."""
        conn = self._conn
        if conn is None:
            return
        try:
            if self._broken is None:
                self._commit()
        finally:
            self._cancel_timer()
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            try:
                # Fold the WAL into the database so the job dir is one file at rest.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("Final checkpoint of %s failed: %s", self.path, exc)
            self._conn = None
            conn.close()

    @property
    def resumed(self) -> bool:
        """True when :meth:`open` found an existing job (not a new database)."""
        return self._resumed

    @property
    def finished(self) -> bool:
        """True when an earlier run of this job ended with reason ``"finished"``."""
        return bool(self._meta.get("finished"))

    @property
    def seeded(self) -> bool:
        """True when an earlier run recorded (:meth:`mark_seeded`) that all start requests
        were added, so a resume need not run ``start()`` again."""
        return bool(self._meta.get("seeded"))

    # ------------------------------------------------------------ transactions

    def _db(self) -> sqlite3.Connection:
        """The connection, inside a transaction."""
        if self._broken is not None:
            raise RuntimeError(
                f"the job database {self.path} failed earlier ({self._broken}); "
                "stop and resume the job"
            ) from self._broken
        conn = self._conn
        if conn is None:
            raise RuntimeError("SqliteFrontier used before open() or after close()")
        if not conn.in_transaction:
            conn.execute("BEGIN")
        return conn

    def _changed(self) -> None:
        """One operation is in the open transaction: commit it soon (group commit)."""
        self._ops += 1
        if self._ops >= self._commit_ops or self._commit_interval <= 0:
            self._commit()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._commit_interval, self._commit_soon
            )

    def _commit_soon(self) -> None:
        self._timer = None
        try:
            self._commit()
        except Exception:
            # Called from a timer: nobody awaits it. _broken makes the next call raise.
            logger.exception("Commit to %s failed", self.path)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _commit(self) -> None:
        """Commit the open transaction, with the done count and the stats snapshot.

        On a database error the transaction is rolled back and the frontier refuses further
        work: the output file may already hold items of the lost transaction, and only a
        resume (which cuts the file back to the committed offset) keeps it exactly-once.
        """
        self._cancel_timer()
        conn = self._conn
        if conn is None or self._broken is not None:
            return
        self._ops = 0
        if not conn.in_transaction:
            return
        rows: list[tuple[str, Any]] = [("done", self._done)]
        if self._state_source is not None:
            rows += self._snapshot(self._state_source)
        try:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)
            conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.committed()
        except BaseException as exc:
            self._break(exc)
            raise

    def _snapshot(self, source: StateSource) -> list[tuple[str, Any]]:
        try:
            stats, state = source()
            return [
                ("stats", orjson.dumps(stats, default=str)),
                ("spider_state", _dump_state(state)),
            ]
        except (TypeError, ValueError) as exc:
            # A spider putting a set in its state must not stop the crawl's commits; it is
            # told once, and the state of the last good snapshot is kept.
            if not self._snapshot_failed:
                self._snapshot_failed = True
                logger.error("Cannot save the job's stats and spider state: %s", exc)
            return []

    async def commit(self) -> None:
        """Commit now what is waiting for the group commit."""
        self._commit()

    # ------------------------------------------------------------------ the contract

    def _encode(self, requests: Sequence[Request]) -> list[tuple[bytes | None, int, bytes]]:
        """``(fingerprint or None for dont_filter, priority, data)`` per request. Done before
        any change, so an :class:`~crawler.errors.UnstorableRequest` leaves the job as it was."""
        return [
            (None if r.dont_filter else r.fingerprint, r.priority, encode_request(r))
            for r in requests
        ]

    def _insert(self, conn: sqlite3.Connection, rows: list[tuple[bytes | None, int, bytes]]) -> int:
        fresh: list[tuple[int, int, bytes]] = []
        seq = self._seq
        for fp, priority, data in rows:
            # INSERT OR IGNORE is the dedup test and the insert in one statement.
            if fp is not None and conn.execute(_SEE, (fp,)).rowcount != 1:
                continue
            fresh.append((priority, seq, data))
            seq += 1
        if fresh:
            conn.executemany(
                "INSERT INTO requests (state, priority, seq, data) VALUES (0, ?, ?, ?)", fresh
            )
        self._seq = seq
        self._ready += len(fresh)
        return len(fresh)

    async def add(self, requests: Sequence[Request]) -> int:
        if not requests:
            return 0
        rows = self._encode(requests)
        added: int = self._guard(lambda conn: self._insert(conn, rows))
        self._changed()
        return added

    def _guard(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in the transaction; a database error breaks the frontier."""
        conn = self._db()
        try:
            return work(conn)
        except sqlite3.Error as exc:
            self._break(exc)
            raise

    def _break(self, exc: BaseException) -> None:
        """Give up the open transaction and refuse further work (see :meth:`_commit`)."""
        self._broken = exc
        self._cancel_timer()
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _promote(self, conn: sqlite3.Connection) -> None:
        """Delayed requests whose time has come become ready."""
        moved = conn.execute(
            "UPDATE requests SET state = ? WHERE state = ? AND ready_at <= ?",
            (_READY, _DELAYED, time.time()),
        ).rowcount
        self._delayed -= moved
        self._ready += moved
        self._next_delayed_at = self._min_delayed(conn) if self._delayed else None

    async def lease(self, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        if not self._ready:
            due = self._next_delayed_at
            if due is None or due > time.time():
                return []

        def work(conn: sqlite3.Connection) -> list[tuple[int, int, int, int, bytes]]:
            if self._next_delayed_at is not None and self._next_delayed_at <= time.time():
                self._promote(conn)
            if not self._ready:
                return []
            rows: list[tuple[int, int, int, int, bytes]] = conn.execute(
                "UPDATE requests SET state = 1, deliveries = deliveries + 1 WHERE id IN ("
                " SELECT id FROM requests WHERE state = 0 ORDER BY priority DESC, seq LIMIT ?"
                ") RETURNING id, priority, seq, deliveries, data",
                (limit,),
            ).fetchall()
            return rows

        rows = self._guard(work)
        if not rows:
            return []
        self._changed()
        rows.sort(key=lambda row: (-row[1], row[2]))  # RETURNING does not keep the order
        self._ready -= len(rows)
        leased = self._leased
        out: list[Lease] = []
        for key, _priority, _seq, deliveries, data in rows:
            leased.add(key)
            out.append(Lease(decode_request(data), key, deliveries))
        return out

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        """Delete the request, add ``children`` and commit ``items`` to the outbox, as one
        step of one transaction. Raises ``KeyError`` for a lease not in flight (acked
        already); :class:`~crawler.errors.UnstorableRequest` or ``TypeError`` (an item that
        cannot be encoded) before changing anything."""
        key = lease.key
        if key not in self._leased:
            raise KeyError(key)
        rows = self._encode(children) if children else []
        lines = [(encode_item(item),) for item in items] if self._output_attached else []

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM requests WHERE id = ?", (key,))
            added = self._insert(conn, rows) if rows else 0
            if lines:
                conn.executemany("INSERT INTO outbox (data) VALUES (?)", lines)
            return added

        added: int = self._guard(work)
        self._leased.discard(key)
        self._done += 1
        self._unwritten += len(lines)
        self._changed()
        return added

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        key = lease.key
        if key not in self._leased:
            raise KeyError(key)
        data = encode_request(request)
        delayed = delay > 0
        ready_at = time.time() + delay if delayed else 0.0
        seq = self._seq

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE requests SET state = ?, priority = ?, seq = ?, ready_at = ?, data = ? "
                "WHERE id = ?",
                (_DELAYED if delayed else _READY, request.priority, seq, ready_at, data, key),
            )

        self._guard(work)
        self._seq = seq + 1
        self._leased.discard(key)
        if delayed:
            self._delayed += 1
            if self._next_delayed_at is None or ready_at < self._next_delayed_at:
                self._next_delayed_at = ready_at
        else:
            self._ready += 1
        self._changed()

    async def release(self, leases: Sequence[Lease]) -> None:
        """Back to ready unchanged, at their old place in the order (they were leased first,
        so they are fetched first again)."""
        keys = [(lease.key,) for lease in leases if lease.key in self._leased]
        if not keys:
            return
        self._guard(
            lambda conn: conn.executemany("UPDATE requests SET state = 0 WHERE id = ?", keys)
        )
        for (key,) in keys:
            self._leased.discard(key)
        self._ready += len(keys)
        self._changed()

    async def drain(self, exporter: Any) -> int:
        """Append the committed-or-pending outbox items to ``exporter`` in order, then record
        its :meth:`~crawler.exporters.Exporter.tell` as the known-good offset and delete the
        written rows, in the transaction (never the other way round: see the module
        docstring). Returns how many items were written."""
        if not self._unwritten:
            return 0
        conn = self._db()
        last = self._last_written
        written = 0
        try:
            while True:
                batch = conn.execute(
                    "SELECT id, data FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (last, _DRAIN_BATCH),
                ).fetchall()
                if not batch:
                    break
                exporter.write([_decode_item(data) for _, data in batch])
                last = batch[-1][0]
                written += len(batch)
            exporter.flush()
            offset = exporter.tell()
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("output_offset", offset), ("last_written", last)],
            )
            conn.execute("DELETE FROM outbox WHERE id <= ?", (last,))
        except BaseException as exc:
            # The file may now hold lines past the recorded offset; writing on would repeat
            # them. Only a resume (which cuts the file back) can continue exactly-once.
            self._break(exc)
            raise
        self._last_written = last
        self._output_offset = offset
        self._unwritten = 0
        self._changed()
        return written

    def next_ready_in(self) -> float | None:
        if self._ready:
            return 0.0
        if self._next_delayed_at is not None:
            return max(0.0, self._next_delayed_at - time.time())
        return None

    async def counts(self) -> FrontierCounts:
        return FrontierCounts(
            pending=self._ready + self._delayed, in_flight=len(self._leased), done=self._done
        )

    async def is_finished(self) -> bool:
        return not (self._ready or self._delayed or self._leased)

    # ------------------------------------------------------------------ the output

    def recover_output(self, path: str) -> bool:
        """Before the exporter is opened for append: cut ``path`` back to the offset the job
        recorded as known good (a torn line, or lines whose record did not commit; their
        items are still in the outbox and :meth:`drain` writes them again).

        Returns False for a job that has not started its output yet (nothing to recover).
        Raises :class:`~crawler.errors.JobDirError` when the file is missing or shorter than
        the recorded offset (changed outside the job: it cannot be resumed exactly-once).
        """
        offset = self._output_offset
        if offset is None:
            return False
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            size = -1
        if size < offset:
            found = "missing" if size < 0 else f"{size} bytes"
            raise JobDirError(
                f"output file {path} is {found}, but the job {self.path.parent} recorded "
                f"{offset} bytes written to it: it was truncated or replaced outside the job, "
                "so the crawl cannot resume without losing or repeating items"
            )
        if size > offset:
            with open(path, "r+b", buffering=0) as f:
                f.truncate(offset)
            logger.info("Cut %s back to %d bytes (the last committed point); %d bytes after "
                        "it are written again from the job", path, offset, size - offset)
        return True

    async def open_output(
        self, path: str, *, overwrite: bool, fields: Sequence[str] | None = None
    ) -> Exporter:
        """Open the exporter for this job's output and write the items committed but not
        yet written.

        A resumed job always appends, after :meth:`recover_output` (``overwrite`` is ignored:
        overwriting would lose the items of earlier runs). A new job opens the file as asked
        and records its size as the start. Only formats that can be cut back and appended
        are accepted: JSON lines and CSV, not a ``.json`` array nor standard output.
        """
        if path == "-" or format_for(path) == "json":
            raise JobDirError(
                f"a durable job cannot write to {path!r}: its output must be a .jsonl or .csv "
                "file, which can be cut back to the last committed item and appended"
            )
        if self.recover_output(path):
            exporter = open_exporter(path, overwrite=False, fields=fields)
        else:
            exporter = open_exporter(path, overwrite=overwrite, fields=fields)
            offset = exporter.tell()
            self._guard(lambda conn: conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('output_offset', ?)", (offset,)
            ))
            self._output_offset = offset
            self._commit()
        self._output_attached = True
        await self.drain(exporter)
        return exporter

    # ------------------------------------------------------------------ job state

    def track_state(self, source: StateSource | None) -> None:
        """Snapshot ``source()`` (stats, spider state) into every commit, so they are
        always consistent with the committed acks (a kill loses neither). None stops it."""
        self._state_source = source

    async def save_state(self, stats: dict[str, Any], spider_state: dict[str, Any]) -> None:
        """Store the stats and the spider's ``state`` now (committed with what is pending).
        Raises ``TypeError`` naming the problem if ``spider_state`` is not JSON-serialisable."""
        state = _dump_state(spider_state)
        rows = [("stats", orjson.dumps(stats, default=str)), ("spider_state", state)]
        self._guard(lambda conn: conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows
        ))
        self._commit()

    def load_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``(stats, spider_state)`` last committed; empty dicts for a new job."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("SqliteFrontier.load_state() before open()")
        meta = dict(conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('stats', 'spider_state')"
        ))
        stats = orjson.loads(meta["stats"]) if meta.get("stats") else {}
        state = orjson.loads(meta["spider_state"]) if meta.get("spider_state") else {}
        return stats, state

    async def mark_seeded(self) -> None:
        """Record that every start request has been added (see :attr:`seeded`)."""
        self._set_meta({"seeded": 1})

    async def finish(self, reason: str) -> None:
        """Record how this run ended and commit everything. ``"finished"`` with nothing
        pending or in flight marks the job finished: running it again does nothing."""
        values: dict[str, Any] = {"finish_reason": reason}
        if reason == "finished" and await self.is_finished() and not self._unwritten:
            values["finished"] = 1
        self._set_meta(values)

    def _set_meta(self, values: dict[str, Any]) -> None:
        rows = list(values.items())
        self._guard(lambda conn: conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows
        ))
        self._commit()
        self._meta.update(values)


def _dump_state(state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state)
    except TypeError as exc:
        raise TypeError(f"spider.state must be JSON-serialisable for a job to keep it: {exc}") from exc
