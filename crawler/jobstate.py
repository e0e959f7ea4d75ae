"""The job database: one SQLite file per durable job, its group commit, output log and state.

:class:`JobDatabase` holds the ``sqlite3`` connection (standard library, WAL mode) that the
job's frontier (:class:`~crawler.frontier.sqlite.SqliteFrontier`, the queue tables) and the
job share, and the tables that are the job's rather than the queue's::

    outbox(id, data)  items committed with their request's ack but not yet in the output
    meta(key, value)  versions, spider name, done count, output offset, stats, spider state

Group commit. Operations (the frontier's add, lease, ack, ...) run on the event loop thread,
each whole, inside one open transaction; COMMIT, which writes the dirty pages to the WAL,
runs in a commit thread at most ``commit_interval`` (0.1 s) or ``commit_ops`` operations
after the first change, while operations wait for it (:meth:`JobDatabase.idle`). An
operation is never split across transactions, so a crash keeps a prefix of whole operations:
the acks of the last 0.1 s may be lost, and those requests are fetched again on resume
(leased rows go back to ready) and produce their items again; nothing of them was committed,
so nothing is duplicated. The ``finished`` flag is written in a transaction holding every
ack before it.

Exactly-once output. The committed state always satisfies: *the output file's first
``output_offset`` bytes hold exactly the items of the committed acks that are not in the
outbox.* How it is kept:

- an ack hands its request's items (encoded as the exporter encodes them) to
  :meth:`JobDatabase.take_items`, in the ack's transaction: they go into the outbox table if
  the transaction commits before they are drained, otherwise never into a table at all.
- :meth:`JobDatabase.drain` writes outbox rows and the transaction's items to the file
  (whole lines, one OS write per batch), deletes those rows, and notes the exporter's
  :meth:`~crawler.exporters.Exporter.tell`; the commit records it as ``output_offset``. The
  file is always written *before* the commit that records it.
- On resume, :meth:`JobDatabase.recover_output` cuts the file back to ``output_offset``:
  whatever lies beyond (a torn line, lines whose acks did not commit) goes, and the items of
  committed acks among it are still in the outbox and are written again, once.

Durability. ``synchronous=NORMAL`` in WAL mode: a commit is safe against a *process* crash
(kill -9, OOM, an exception) as soon as it returns, which is the guarantee here; a power
loss or OS crash may lose the last commits (the output file is not fsynced either; a file
left shorter than the recorded offset is reported by :meth:`~JobDatabase.recover_output`,
never guessed at). The WAL is checkpointed (which fsyncs) and truncated in the commit
thread too, so the event loop never waits on the disk.

One module of about 650 lines, on purpose: the output log's invariant is kept by the
commit itself (the commit that holds the acks also moves their undrained items into the
outbox and records the output offset), so the group commit and the output log are read and
changed together.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from .errors import JobDirError, OutputFailed
from .exporters import Exporter, format_for, open_exporter
from .frontier.codec import FORMAT_VERSION as REQUEST_FORMAT

__all__ = ["JOB_TABLES", "SCHEMA_VERSION", "JobDatabase", "StateSource", "check_job_database"]

logger = logging.getLogger(__name__)

#: Version of the job's tables (these and the queue's); a database of another version is
#: refused, never misread.
SCHEMA_VERSION = 2

#: Every table of a job database: the job's own and the frontier's queue.
JOB_TABLES = frozenset({"meta", "outbox", "requests", "seen"})

#: Returns ``(stats, spider_state)``, both JSON-serialisable dicts, for each commit.
StateSource = Callable[[], tuple[dict[str, Any], dict[str, Any]]]

#: Rows ``(key, value)`` of the meta table, written with every commit.
RowSource = Callable[[], list[tuple[str, Any]]]

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
)
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_DRAIN_BATCH = 512
_WAL_LIMIT = 64 << 20  # bytes of WAL at which the writer truncates it (see _bound_wal)
# orjson reads integers beyond 64 bits as floats; a line with such a run of digits is decoded
# by the standard library instead (exact, slower, rare).
_LONG_DIGITS = re.compile(rb"\d{19,}")


def _decode_item(raw: bytes) -> Any:
    if _LONG_DIGITS.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)


def check_job_database(conn: sqlite3.Connection, name: str, spider_name: str) -> dict[str, Any]:
    """The identity of an existing job database: a crawl job's (only our tables), written by
    this schema and request format, for ``spider_name``. Returns its ``meta`` table; raises
    :class:`JobDirError` starting with ``name`` (how the caller names the database) when the
    job cannot be resumed by this crawl."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables or not tables <= JOB_TABLES:
        raise JobDirError(f"{name} is an SQLite database, but not a crawl job's")
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    schema, requests = meta.get("schema_version"), meta.get("request_format")
    if (schema, requests) != (SCHEMA_VERSION, REQUEST_FORMAT):
        raise JobDirError(
            f"{name} was written by an incompatible version of the crawler (database schema "
            f"{schema!r}, request format {requests!r}; this version reads schema "
            f"{SCHEMA_VERSION}, request format {REQUEST_FORMAT})"
        )
    if meta.get("spider_name") != spider_name:
        raise JobDirError(
            f"{name} belongs to spider {meta.get('spider_name')!r}, not {spider_name!r}"
        )
    return meta


class JobDatabase:
    """The connection of one job database, its group commit, output log and job state.

    ``path`` is the database file, created when missing with the job's tables and the
    statements of ``schema`` (the frontier's queue tables). Opening a database of another
    spider, of another :data:`SCHEMA_VERSION`, or a file that is not such a database raises
    :class:`~crawler.errors.JobDirError`.

    ``commit_interval``: the longest a change waits for its commit (0: commit after every
    operation). ``commit_ops``: commit earlier once that many operations wait.

    Use it from the event loop that opened it. After a database or output error it refuses
    all work (raises): the state on disk is intact, and resuming the job continues exactly.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        spider_name: str,
        schema: Sequence[str] = (),
        commit_interval: float = 0.1,
        commit_ops: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.spider_name = spider_name
        self._schema = tuple(schema)
        self._commit_interval = commit_interval
        self._commit_ops = commit_ops
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._committing: asyncio.Future[BaseException | None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ops = 0
        self._wal_path = Path(f"{self.path}-wal")
        self._broken: BaseException | None = None
        self._row_sources: list[RowSource] = []
        self._state_source: StateSource | None = None
        self._extra_sources: dict[str, Callable[[], Any]] = {}
        self._snapshot_failed = False
        self._resumed = False
        self.meta: dict[str, Any] = {}
        """The meta table as opened, updated with what :meth:`set_meta` committed since."""
        # The output: items acked in the open transaction and not yet written (they go to
        # the outbox table only if a commit comes first), rows in the outbox table, and the
        # exporter's tell() after the last drain.
        self._pending_items: list[bytes] = []
        self._stored_items = 0
        self._output_attached = False
        self._output_offset: int | None = None
        self._offset_dirty = False

    # ------------------------------------------------------------------ lifecycle

    async def open(self, recover: Callable[[sqlite3.Connection], None]) -> None:
        """Create or check the database, then run ``recover(connection)`` (the frontier
        loading its mirrors). Raises :class:`~crawler.errors.JobDirError` for a database
        that is not this spider's job of this version, or cannot be opened."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: COMMIT runs in the commit thread; the two threads never use
        # the connection at the same time (see idle()).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn = conn
        try:
            # WAL: a commit is one append to the log. synchronous=NORMAL: no fsync per
            # commit; safe against a process crash (the guarantee), not against power loss.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # 4 MiB page cache, bounded: the seen-set and queue indexes of a big job are read
            # through the OS page cache; a bigger cache here is process memory.
            conn.execute("PRAGMA cache_size=-4096")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # done in the commit thread instead
            self._prepare_schema(conn)
            recover(conn)
            offset = self.meta.get("output_offset")
            self._output_offset = int(offset) if offset is not None else None
            self._stored_items = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.OperationalError as exc:  # locked, read-only, I/O error, ...
            self._conn = None
            conn.close()
            raise JobDirError(f"cannot open the job database {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._conn = None
            conn.close()
            raise JobDirError(
                f"{self.path} is not a crawl job database, or is corrupt: {exc}"
            ) from exc
        except BaseException:
            self._conn = None
            conn.close()
            raise
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")

    def _prepare_schema(self, conn: sqlite3.Connection) -> None:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            for statement in (*_SCHEMA, *self._schema):
                conn.execute(statement)
            conn.executemany(_SET_META, [
                ("schema_version", SCHEMA_VERSION),
                ("request_format", REQUEST_FORMAT),
                ("spider_name", self.spider_name),
                ("created", time.time()),
                ("done", 0),
            ])
            conn.execute("COMMIT")
        else:
            self._resumed = True
        self.meta = check_job_database(conn, str(self.path), self.spider_name)

    async def close(self) -> None:
        """Commit what is pending and close. Idempotent."""
        conn = self._conn
        if conn is None:
            return
        try:
            if self._broken is None:
                await self.commit()
        finally:
            self._cancel_timer()
            if self._executor is not None:
                self._executor.shutdown(wait=True)  # a commit still running finishes first
                self._executor = None
            self._conn = None
            try:
                # Fold the WAL into the database: at rest the job is one file.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("Final checkpoint of %s failed: %s", self.path, exc)
            conn.close()

    @property
    def resumed(self) -> bool:
        """True when :meth:`open` found an existing job rather than creating the database."""
        return self._resumed

    @property
    def finished(self) -> bool:
        """True when a run of this job ended with reason ``"finished"`` (see :meth:`finish`)."""
        return bool(self.meta.get("finished"))

    @property
    def seeded(self) -> bool:
        """True once :meth:`mark_seeded` was committed."""
        return bool(self.meta.get("seeded"))

    # ------------------------------------------------------------ transactions
    #
    # Operations run on the loop thread: each is short (pages in the cache) and runs whole,
    # without awaiting in the middle, so it is never split across transactions. COMMIT is
    # what takes time (it writes the dirty pages to the WAL, and now and then a checkpoint
    # truncates the WAL), so it runs in a thread of its own; until it is done the
    # connection is that thread's, and operations wait for it in idle().

    async def idle(self) -> None:
        """Wait until no commit is running: then the connection is the loop thread's."""
        while (running := self._committing) is not None:
            if running.done():
                # Its done-callback (_commit_done) is scheduled but has not run yet; awaiting
                # a done future does not yield, so yield once to let it run instead of
                # spinning here forever.
                await asyncio.sleep(0)
            else:
                await asyncio.shield(running)

    def db(self) -> sqlite3.Connection:
        """The connection, inside a transaction (call only after :meth:`idle`)."""
        if isinstance(self._broken, OutputFailed):
            # The output failed: every later operation says so, the same way (the run ends,
            # the runner reports it once, the job resumes the items not written).
            raise OutputFailed(self._broken.output, self._broken.__cause__ or self._broken)
        if self._broken is not None:
            raise RuntimeError(
                f"the job database {self.path} failed earlier ({self._broken!r}); "
                "stop and resume the job"
            ) from self._broken
        conn = self._conn
        if conn is None:
            raise RuntimeError("SqliteFrontier used before open() or after close()")
        if not conn.in_transaction:
            conn.execute("BEGIN")
        return conn

    def guard(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in the transaction; a database error breaks the job."""
        conn = self.db()
        try:
            return work(conn)
        except sqlite3.Error as exc:
            self._break(exc)
            raise

    def _break(self, exc: BaseException) -> None:
        """Drop the open transaction and refuse further work. The output file may already
        hold items of that transaction: only a resume, which cuts the file back to the
        committed offset, can continue exactly-once."""
        self._broken = exc
        self._cancel_timer()
        conn = self._conn
        if conn is not None and self._committing is None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def changed(self) -> None:
        """One more operation is in the open transaction: commit it soon (group commit)."""
        self._ops += 1
        if self._ops >= self._commit_ops or self._commit_interval <= 0:
            self._start_commit()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._commit_interval, self._commit_from_timer
            )

    def _commit_from_timer(self) -> None:
        self._timer = None
        if self._committing is None:
            self._start_commit()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def track_rows(self, source: RowSource) -> None:
        """Write the meta rows ``source()`` returns (the frontier's done count) with every
        commit, so they always match what the commit holds."""
        self._row_sources.append(source)

    def _start_commit(self) -> asyncio.Future[BaseException | None] | None:
        """Start committing the open transaction in the commit thread, with the tracked
        rows, the output offset, the stats snapshot, and the items not drained yet (into the
        outbox table). Returns the running commit, None when there is nothing to commit."""
        self._cancel_timer()
        self._ops = 0
        conn = self._conn
        executor = self._executor
        if (
            conn is None or executor is None or self._broken is not None
            or self._committing is not None or not conn.in_transaction
        ):
            return self._committing
        rows: list[tuple[str, Any]] = []
        for source in self._row_sources:
            rows += source()
        if self._offset_dirty:
            rows.append(("output_offset", self._output_offset))
            self._offset_dirty = False
        if self._state_source is not None:
            rows += self._snapshot(self._state_source)
        for name, extra in self._extra_sources.items():
            try:
                rows.append((f"extra:{name}", orjson.dumps(extra(), default=str)))
            except (TypeError, ValueError) as exc:
                logger.error("Cannot save the job's %s state: %s", name, exc)
        pending, self._pending_items = self._pending_items, []
        running = asyncio.get_running_loop().run_in_executor(
            executor, self._commit_work, conn, pending, rows
        )
        self._committing = running
        running.add_done_callback(functools.partial(self._commit_done, len(pending)))
        return running

    def _commit_work(
        self, conn: sqlite3.Connection, pending: list[bytes], rows: list[tuple[str, Any]]
    ) -> BaseException | None:
        """In the commit thread. Returns the error instead of raising it: the loop thread
        handles it in :meth:`_commit_done`."""
        try:
            if pending:
                conn.executemany("INSERT INTO outbox (data) VALUES (?)", [(p,) for p in pending])
            conn.executemany(_SET_META, rows)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return exc
        self._bound_wal(conn)
        return None

    def _commit_done(self, stored: int, running: asyncio.Future[BaseException | None]) -> None:
        """On the loop thread, before anyone waiting for the commit resumes."""
        self._committing = None
        if running.cancelled():
            exc: BaseException | None = RuntimeError("the commit was cancelled")
        else:
            exc = running.exception() or running.result()
        if exc is not None:
            self._broken = exc
            self._cancel_timer()
            logger.error("Commit to %s failed, the crawl must stop (resuming it continues "
                         "exactly where the last commit left off): %r", self.path, exc)
            return
        self._stored_items += stored

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        """In the commit thread, after a commit: once the WAL has grown past
        :data:`_WAL_LIMIT`, copy it into the database and truncate it.

        SQLite's own automatic checkpoint would do this on the loop thread (it fsyncs:
        tens of milliseconds), and a checkpoint never starts the WAL over while a writer
        keeps appending to it, so it must run between two transactions: here.
        """
        try:
            size = os.stat(self._wal_path).st_size
        except FileNotFoundError:
            return
        if size < _WAL_LIMIT:
            return
        started = time.perf_counter()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.warning("Checkpoint of %s failed (tried again later): %s", self.path, exc)
            return
        logger.debug("Checkpointed %d MB of WAL of %s in %.1f ms", size >> 20, self.path,
                     (time.perf_counter() - started) * 1e3)

    def _snapshot(self, source: StateSource) -> list[tuple[str, Any]]:
        try:
            stats, state = source()
            return [
                ("stats", orjson.dumps(stats, default=str)),
                ("spider_state", _dump_state(state)),
            ]
        except (TypeError, ValueError) as exc:
            # A spider putting a set in its state must not stop the crawl's commits: it is
            # told once, and the last good snapshot stays.
            if not self._snapshot_failed:
                self._snapshot_failed = True
                logger.error("Cannot save the job's stats and spider state: %s", exc)
            return []

    async def commit(self) -> None:
        """Commit now what waits for the group commit, and wait until it is committed.
        Raises ``RuntimeError`` if the commit failed."""
        await self.idle()
        running = self._start_commit()
        if running is not None:
            await asyncio.shield(running)
        if self._broken is not None:
            self.db()  # raises, naming the failure

    # ------------------------------------------------------------------ the output

    @property
    def output_attached(self) -> bool:
        """Whether items are kept: an output was attached (:meth:`attach_output`)."""
        return self._output_attached

    @property
    def unwritten(self) -> bool:
        """Whether items committed or in the open transaction wait to be written."""
        return bool(self._pending_items or self._stored_items)

    def take_items(self, lines: list[bytes]) -> None:
        """Take encoded items into the open transaction (call in the operation that acks
        their request, after :meth:`idle`): written by the next :meth:`drain`, or kept in
        the outbox table by the next commit, whichever comes first."""
        self._pending_items += lines

    async def drain(self, exporter: Exporter) -> int:
        """Write the items not yet written to ``exporter``, oldest first: the outbox rows
        left by earlier commits, then the items of the open transaction. Returns how many.

        The rows are deleted and ``exporter.tell()`` noted in the open transaction, which
        commits *after* the write (see the module docstring). If the write fails, the
        job refuses further work and the error propagates.
        """
        if not self._output_attached:
            # Items reach the outbox only once open_output() has recorded where the output
            # starts; an exporter opened some other way cannot be cut back on resume.
            raise RuntimeError("SqliteFrontier.drain() before open_output()")
        if not self._stored_items and not self._pending_items:
            return 0
        await self.idle()
        conn = self.db()
        written = 0
        try:
            if self._stored_items:
                last = 0
                while batch := conn.execute(
                    "SELECT id, data FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (last, _DRAIN_BATCH),
                ).fetchall():
                    exporter.write([_decode_item(data) for _, data in batch])
                    last = batch[-1][0]
                    written += len(batch)
                conn.execute("DELETE FROM outbox WHERE id <= ?", (last,))
                self._stored_items = 0
            if self._pending_items:
                pending, self._pending_items = self._pending_items, []
                exporter.write([_decode_item(data) for data in pending])
                written += len(pending)
            exporter.flush()
            self._output_offset = exporter.tell()
            self._offset_dirty = True
        except BaseException as exc:
            self._break(exc)
            raise
        self.changed()
        return written

    def recover_output(self, path: str) -> bool:
        """Before the exporter is opened to append: cut ``path`` back to the offset the job
        recorded as known good. What is cut (a torn line, lines whose acks did not commit,
        lines written whose offset did not commit) is either not committed, so it will be
        produced again, or still in the outbox, so :meth:`drain` writes it again.

        Returns False for a job whose output has not started (nothing to recover). Raises
        :class:`~crawler.errors.JobDirError` when the file is missing or shorter than the
        offset: it was changed outside the job, and cannot be resumed exactly-once.
        """
        offset = self._output_offset
        if offset is None:
            return False
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            size = -1
        if size < offset:
            found = "missing" if size < 0 else f"only {size} bytes"
            raise JobDirError(
                f"output file {path} is {found}, but the job in {self.path.parent} has "
                f"recorded {offset} bytes written to it: it was truncated or replaced outside "
                "the job, so the crawl cannot resume without losing items; use a new job "
                "directory"
            )
        if size > offset:
            with open(path, "r+b", buffering=0) as f:
                f.truncate(offset)
            logger.info("Cut %s back to %d bytes, its last committed point (%d bytes after it "
                        "are written again from the job)", path, offset, size - offset)
        return True

    async def open_output(
        self, path: str, *, overwrite: bool = False, fields: Sequence[str] | None = None,
        wrap: Callable[[Exporter], Exporter] | None = None,
    ) -> Exporter:
        """Open the exporter for the job's output, and write the items that were committed
        but not written when the last run ended.

        A job whose output has started always appends, after :meth:`recover_output`
        (``overwrite`` is ignored: it would lose the items of earlier runs). Otherwise the
        file is opened as asked (``overwrite`` is ``-O``) and its size recorded as the start.
        Only outputs that can be cut back and appended are accepted: JSON lines and CSV
        files, not a ``.json`` array nor standard output (:class:`JobDirError`). ``wrap``
        turns the file's exporter into the one the items go to (the feeds around it).
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
            await self.idle()
            self.db()  # the offset commits in a transaction of its own, before any item
            self._output_offset = exporter.tell()
            self._offset_dirty = True
            await self.commit()
        if wrap is not None:
            exporter = wrap(exporter)
        await self.attach_output(exporter)
        return exporter

    async def attach_output(self, exporter: Exporter) -> None:
        """Take items for ``exporter`` from now on, and write what the outbox holds. Without
        :meth:`open_output`, for outputs that need no cutting back: writing an item twice
        must leave it once (a database feed keyed by each item's token)."""
        self._output_attached = True
        await self.drain(exporter)

    # ------------------------------------------------------------------ job state

    def track_state(self, source: StateSource | None) -> None:
        """Snapshot ``source()`` (stats, spider state) into every commit, so what is saved
        always matches the committed acks, even after a kill. None stops it."""
        self._state_source = source

    def track_extra(self, name: str, source: Callable[[], Any]) -> None:
        """Snapshot ``source()`` (JSON data, e.g. the robots.txt cache) into every commit
        under ``name``; :meth:`load_extra` gives it back on resume."""
        self._extra_sources[name] = source

    def load_extra(self, name: str) -> Any:
        """What :meth:`track_extra` saved under ``name`` by the last run, or None."""
        raw = self.meta.get(f"extra:{name}")
        return orjson.loads(raw) if raw else None

    async def save_state(self, stats: dict[str, Any], spider_state: dict[str, Any]) -> None:
        """Store the stats and the spider's ``state`` now, committed with what is pending.
        Raises ``TypeError`` if ``spider_state`` is not JSON-serialisable."""
        await self.set_meta({
            "stats": orjson.dumps(stats, default=str),
            "spider_state": _dump_state(spider_state),
        })

    def load_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``(stats, spider_state)`` the job had when it was opened (or last given to
        :meth:`save_state`); empty dicts for a new job."""
        meta = self.meta
        stats = orjson.loads(meta["stats"]) if meta.get("stats") else {}
        state = orjson.loads(meta["spider_state"]) if meta.get("spider_state") else {}
        return stats, state

    async def mark_seeded(self) -> None:
        """Record (and commit) that every start request has been added (:attr:`seeded`)."""
        await self.set_meta({"seeded": 1})

    async def finish(self, reason: str, queue_finished: Callable[[], bool]) -> None:
        """Record how this run ended, and commit. Reason ``"finished"`` with
        ``queue_finished()`` (nothing pending or in flight) and nothing unwritten marks the
        job :attr:`finished`: run again, it has nothing to do."""
        values: dict[str, Any] = {"finish_reason": reason}
        await self.idle()  # a running commit may still be moving items to the outbox
        if reason == "finished" and queue_finished() and not self.unwritten:
            values["finished"] = 1
        await self.set_meta(values)

    async def set_meta(self, values: dict[str, Any]) -> None:
        """Write ``values`` into the meta table and commit them with what is pending."""
        rows = list(values.items())
        await self.idle()
        self.guard(lambda conn: conn.executemany(_SET_META, rows))
        await self.commit()
        self.meta.update(values)


def _dump_state(state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state)
    except TypeError as exc:
        raise TypeError(f"spider.state must be JSON-serialisable for a job to keep it: {exc}") \
            from exc
