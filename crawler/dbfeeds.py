"""Database outputs: items as rows of an SQLite or PostgreSQL table.

A :class:`TableFeed` owns one writer thread and one connection. The event loop hands items
over a page at a time (:meth:`TableFeed.write_page`, which only keeps them) and turns them
into rows a batch at a time, in its own thread (Python work done in the writer thread would
make the loop wait for the GIL each time the thread takes it; a batch at a time, the loop
spends a third of what it spent on each page's few items); the rows go to a bounded
buffer, and the thread only drives the database, writing the buffer in batches, one
transaction per batch (``INSERT ... ON CONFLICT DO UPDATE``). Only the items of a crawl too
slow to fill a batch in ``_LINGER`` seconds are made rows by the writer thread.
:meth:`TableFeed.flush` waits until everything handed over is committed, which is what a
durable job needs before it records the items as written.

The table. With the spider's ``item_model`` it has one typed column per field::

    str -> text   int -> bigint   float -> double precision   Decimal -> numeric
    bool -> boolean   datetime -> timestamptz   date -> date   lists, dicts, models -> jsonb

(SQLite: TEXT, INTEGER, REAL, TEXT, INTEGER, TEXT, TEXT, TEXT in a STRICT table), plus
``crawled_at`` (when the item was scraped) and ``crawl_token``. Without a model the item goes
whole into one ``item`` column (jsonb / TEXT), and the key fields get columns of their own.
A missing table is created; an existing one must have these columns with these types, else
the run stops before the first request naming the difference (``-O`` drops and recreates it).

Idempotence. Every row carries a ``crawl_token``: the crawl's id (the job, the shared crawl,
or this run), a hash of the request (:func:`crawler.feeds.request_ref`) and the item's index
among that request's items.
Without ``key`` the token is the unique key of the table, with ``key`` the key fields are:
either way writing the same item again
(a durable job replaying what it had not recorded as written, a shared crawl redelivering a
request of a dead worker) updates its row instead of adding one.

Faults. A connection lost (the server restarted, the network) is retried with backoff,
with one warning, while the buffer holds at most ``buffer_items`` items (a write beyond it
waits: the crawl pauses). After ``error_timeout`` seconds without a successful write the feed
fails: :attr:`TableFeed.failure` says why and :attr:`TableFeed.not_written` how many items
were not stored. A row the column types cannot hold (a NUL character in PostgreSQL text, an
integer beyond 64 bits) is an invalid item written to ``invalid_path`` (JSON lines), not a
failed batch.

``asyncpg`` is imported only by a PostgreSQL output (``pip install 'crawler[postgres]'``).
The two databases' connections are in :mod:`crawler.dbbackends`; this module holds the
table's shape, the conversion of values and the feed with its writer thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import threading
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .dbbackends import Backend, PostgresBackend, SqliteBackend, error_reason
from .errors import ConfigError, CrawlerError
from .exporters import InvalidItemWriter, encode_item
from .feeds import request_ref

if TYPE_CHECKING:
    from .http import Request

__all__ = ["Column", "FeedFailed", "TableFeed", "TableSpec", "table_spec"]

logger = logging.getLogger(__name__)

_INT64 = (-(2**63), 2**63 - 1)
_LINGER = 0.25  # seconds an item may wait for its batch in an in-memory crawl


class FeedFailed(CrawlerError):
    """A feed could not write (raised from :meth:`TableFeed.flush` in a durable job)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  #: a key of crawler.dbbackends.PG_TYPES


@dataclasses.dataclass(frozen=True, slots=True)
class TableSpec:
    """The table a feed writes: ``schema`` (None: the default one), ``name``, the item
    columns (``whole_item``: one ``item`` column holds the item, the others are key fields),
    and the ``key`` fields (empty: ``crawl_token`` is the key)."""

    schema: str | None
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    whole_item: bool

    @property
    def shown(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def conflict(self) -> tuple[str, ...]:
        return self.key or ("crawl_token",)


def _kind(annotation: Any) -> str:
    """The column kind for a field's annotation (``X | None`` is X, nullable)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _kind(rest[0])
        return "json"
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return "text"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer"
        return "json"
    if origin is not None:  # list[str], dict[str, int], tuple, set ...
        return "json"
    if not isinstance(annotation, type):
        return "json"
    if issubclass(annotation, bool):
        return "boolean"
    if issubclass(annotation, enum.Enum):
        members = [m.value for m in annotation]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in members):
            return "integer"
        return "text"
    if issubclass(annotation, int):
        return "integer"
    if issubclass(annotation, float):
        return "float"
    if issubclass(annotation, Decimal):
        return "numeric"
    if issubclass(annotation, dt.datetime):
        return "timestamp"
    if issubclass(annotation, dt.date):
        return "date"
    if issubclass(annotation, (list, dict, tuple, set, frozenset, BaseModel)):
        return "json"
    return "text"  # str, URLs, UUIDs, paths: their text


def table_spec(
    table: str, model: type[BaseModel] | None, key: Sequence[str],
    fields: Sequence[str] | None = None,
) -> TableSpec:
    """The table for ``model`` (None: the whole item in one column), named ``table``
    (``schema.name`` or ``name``). Raises :class:`ConfigError` for a key or field the model
    does not have."""
    schema, _, name = table.rpartition(".")
    if not name:
        raise ConfigError(f"empty table name in {table!r}")
    key = tuple(key)
    reserved = {"crawled_at", "crawl_token", "item"}
    if model is not None:
        known = dict(model.model_fields)
        chosen = list(fields) if fields else list(known)
        unknown = [f for f in [*chosen, *key] if f not in known]
        if unknown:
            raise ConfigError(f"table {table}: the item model {model.__name__} has no field "
                              f"{', '.join(map(repr, unknown))}")
        chosen += [k for k in key if k not in chosen]
        columns = tuple(Column(f, _kind(known[f].annotation)) for f in chosen)
        whole = False
    else:
        columns = tuple(Column(k, "text") for k in key)
        whole = True
    clash = [c.name for c in columns if c.name in reserved and not (whole and c.name == "item")]
    if clash:
        raise ConfigError(f"table {table}: field name {clash[0]!r} is a column the crawler "
                          "adds itself (crawled_at, crawl_token, item)")
    return TableSpec(schema or None, name, columns, key, whole)


# -- values --------------------------------------------------------------------------------


class _Unstorable(ValueError):
    pass


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    raise _Unstorable(f"not a date-time: {value!r}")


def _convert(kind: str, value: Any, sqlite: bool) -> Any:
    """``value`` as the driver wants it for a column of ``kind`` (items from a durable job's
    outbox come back as JSON: a Decimal as a string, a datetime as ISO text). Raises
    :class:`_Unstorable` for a value the column cannot hold."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        if kind == "text":
            text = value if isinstance(value, str) else (
                encode_item(value).decode() if isinstance(value, (dict, list)) else str(value))
            if not sqlite and "\x00" in text:
                raise _Unstorable("a NUL character, which PostgreSQL text cannot hold")
            return text
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise _Unstorable(f"not an integer: {value!r}")
            number = int(value)
            if not _INT64[0] <= number <= _INT64[1]:
                raise _Unstorable(f"integer {number} does not fit in 64 bits")
            return number
        if kind == "float":
            return float(value)
        if kind == "numeric":
            exact = value if isinstance(value, Decimal) else Decimal(str(value))
            return str(exact) if sqlite else exact
        if kind == "boolean":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise _Unstorable(f"not a boolean: {value!r}")
                value = value.lower() in ("true", "1")
            return int(bool(value)) if sqlite else bool(value)
        if kind == "timestamp":
            stamp = _to_datetime(value)
            return stamp.isoformat() if sqlite else stamp
        if kind == "date":
            day = dt.date.fromisoformat(value) if isinstance(value, str) else value
            if isinstance(day, dt.datetime):
                day = day.date()
            if not isinstance(day, dt.date):
                raise _Unstorable(f"not a date: {value!r}")
            return day.isoformat() if sqlite else day
        return _json_text(value, sqlite)
    except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
        if isinstance(exc, _Unstorable):
            raise
        raise _Unstorable(f"{type(value).__name__} {value!r} is not a {kind}: {exc}") from exc


def _json_text(value: Any, sqlite: bool) -> str:
    """``value`` as the text of a json column (called directly for a whole item: this runs
    for every item)."""
    try:
        text = encode_item(value).decode()
    except (ValueError, TypeError) as exc:  # a circular reference
        raise _Unstorable(f"{type(value).__name__} is not JSON: {exc}") from exc
    if not sqlite and "\\u0000" in text:
        raise _Unstorable("a NUL character, which PostgreSQL jsonb cannot hold")
    return text


# -- the feed ------------------------------------------------------------------------------


class TableFeed:
    """An output into a table; see the module docstring. Built with :meth:`sqlite` or
    :meth:`postgresql`, then :meth:`open` (which raises :class:`ConfigError` before the crawl
    starts when the database or the table cannot be used)."""

    def __init__(
        self, backend: Backend, name: str, *, invalid_path: str, error_timeout: float,
        buffer_items: int, batch_size: int,
    ) -> None:
        self.name = name
        self._backend = backend
        self._spec = backend.spec
        self.invalid_path = invalid_path
        self._invalid = InvalidItemWriter(invalid_path, overwrite=False)
        self._error_timeout = error_timeout
        self._buffer_items = buffer_items
        self._batch_size = batch_size
        #: The rows to write, and their items (for the invalid file if the database refuses
        #: one): lists, so the thread takes a batch with a slice.
        self._buffer: list[tuple[Any, ...]] = []
        self._items: list[Any] = []
        self._invalid_lock = threading.Lock()  # the loop and the writer both refuse items
        #: Pages handed over and not yet made rows: (request, index of its first item here,
        #: time scraped, items); and (a hint, written by the loop only) how many items.
        self._pages: list[tuple[Request, int, float, list[Any]]] = []
        self._paged = 0
        self._prefix = ""  # of the pages' tokens
        #: Held while pages become rows, so rows reach the buffer in the order of their pages
        #: (a later page's row of a key must update an earlier one's, never the reverse).
        self._rows_lock = threading.Lock()
        #: (name, kind, is a key field) of each item column, for :meth:`_rows`.
        self._columns = [(c.name, c.kind, c.name in self._spec.key)
                         for c in self._spec.columns]
        self._busy = 0  # items taken by the thread and not yet committed
        self._since = 0.0  # monotonic time the oldest buffered item arrived
        self._flushing = 0  # callers of flush() waiting: write now, do not gather
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        #: Items committed to the table.
        self.written = 0
        #: Items refused by the column types (in the invalid file).
        self.invalid = 0
        #: Why the feed stopped writing, None while it works.
        self.failure: str | None = None
        #: Items handed to the feed that will never be stored (after a failure).
        self.not_written = 0
        #: Called from the writer thread when the feed fails (the runner stops the crawl).
        self.on_failure: Callable[[], None] | None = None

    @classmethod
    def sqlite(cls, path: str, spec: TableSpec, **options: Any) -> TableFeed:
        return cls(SqliteBackend(path, spec), f"sqlite:///{path}?table={spec.shown}",
                   invalid_path=f"{path}.invalid.jsonl", **options)

    @classmethod
    def postgresql(cls, dsn: str, shown: str, database: str, spec: TableSpec,
                   **options: Any) -> TableFeed:
        return cls(PostgresBackend(dsn, shown, spec), shown,
                   invalid_path=f"{database}.{spec.name}.invalid.jsonl", **options)

    def open(self, overwrite: bool = False) -> None:
        """Connect, check or create the table, start the writer thread."""
        self._thread = threading.Thread(target=self._run, args=(overwrite,),
                                        name=f"feed {self.name}", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    # -- called from the event loop thread

    def write_page(self, items: Sequence[Mapping[str, Any]], prefix: str, request: Request,
                   first: int, at: float) -> None:
        """Hand over ``items``, scraped from ``request`` at ``at`` (``first``: the index of
        ``items[0]`` among the request's items); their tokens start with ``prefix``. They are
        kept as they are and made rows with the next batch; waits only while the buffer is
        full (the database is away)."""
        if not items:
            return
        if self.failure is not None or self._thread is None:
            with self._cond:
                self.not_written += len(items)
            return
        pages = self._pages
        self._prefix = prefix
        first_page = not pages
        if first_page and not self._buffer:
            self._since = time.monotonic()  # the oldest item waiting for its batch
        pages.append((request, first, at, list(items)))
        if first_page:
            with self._cond:  # a writer waiting for anything at all starts its linger now
                self._cond.notify_all()
        self._paged += len(items)
        if self._paged >= self._batch_size:
            self._make_rows()

    def _make_rows(self) -> None:
        """Turn the pages handed over into rows, onto the buffer (in the thread that calls)."""
        with self._rows_lock:
            # The loop appends to this one list without a lock: it is never replaced, and
            # only what was there is taken (an append meanwhile stays for the next time).
            queued = self._pages
            taken = len(queued)
            if not taken:
                return
            pages = queued[:taken]
            del queued[:taken]
            self._paged = 0
            prefix = self._prefix
            records = ((item, f"{prefix}:{ref}:{index}", at)
                       for request, first, at, items in pages
                       for ref in (request_ref(request),)
                       for index, item in enumerate(items, first))
            self._hand_over(*self._rows(records), arrived=False)

    def write(self, items: Sequence[tuple[Mapping[str, Any], str, float]]) -> None:
        """Hand ``items`` ((item, token, time scraped) records) over as rows; waits only while
        the buffer is full (the database is away). An item the columns cannot hold goes to
        the invalid file here."""
        if not items:
            return
        if self._pages:
            self._make_rows()  # the pages before these items
        with self._rows_lock:
            self._hand_over(*self._rows(items))

    def _hand_over(self, rows: list[tuple[Any, ...]], kept: list[Any],
                   arrived: bool = True) -> None:
        """Append ``rows`` (and their items) to the buffer. ``arrived``: the items arrive
        now (else the linger of their batch started when their first page did)."""
        if not rows:
            return
        with self._cond:
            if self.failure is not None or self._thread is None:
                self.not_written += len(rows)
                return
            while len(self._buffer) >= self._buffer_items and self.failure is None:
                self._cond.wait(1.0)
            if self.failure is not None:
                self.not_written += len(rows)
                return
            if arrived and not self._buffer:
                self._since = time.monotonic()
            self._buffer += rows
            self._items += kept
            if len(self._buffer) >= self._batch_size:
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every item handed over is committed; raises :class:`FeedFailed` if the
        feed failed."""
        self._make_rows()
        with self._cond:
            self._flushing += 1
            try:
                while (self._buffer or self._busy) and self.failure is None:
                    self._cond.notify_all()
                    self._cond.wait(1.0)
            finally:
                self._flushing -= 1
        if self.failure is not None:
            raise FeedFailed(f"{self.name}: {self.failure}")

    def close(self) -> None:
        """Write what is buffered, stop the thread, close the connection. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._make_rows()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread.join()
        self._thread = None
        self._invalid.close()

    def tell(self) -> int:
        return 0

    # -- the writer thread

    def _run(self, overwrite: bool) -> None:
        backend = self._backend
        try:
            backend.open(overwrite)
        except BaseException as exc:
            self._open_error = exc
            backend.close()
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                with self._cond:
                    self._gather()
                    slow = not self._buffer and bool(self._pages)
                if slow:  # a batch's time is up before the loop made its rows
                    self._make_rows()
                with self._cond:
                    if not self._buffer:
                        if self._closing and not self._pages:
                            return
                        continue
                    n = min(len(self._buffer), self._batch_size)
                    rows, items = self._buffer[:n], self._items[:n]
                    del self._buffer[:n], self._items[:n]
                    self._busy = n
                stored = self._write_batch(rows, items)
                ok = stored is not None
                with self._cond:
                    self._busy = 0
                    if stored is not None:
                        self.written += stored
                    else:
                        self.not_written += n + len(self._buffer)
                        self._buffer.clear()
                        self._items.clear()
                    self._cond.notify_all()
                if not ok:
                    return
        finally:
            backend.close()

    def _gather(self) -> None:
        """Wait (holding the condition) until a batch is due: ``batch_size`` items, the
        oldest waiting ``_LINGER`` seconds, a flush or a close. One transaction per page
        would cost more than the crawl."""
        while not (self._closing or len(self._buffer) >= self._batch_size
                   or (self._flushing and self._buffer)):
            if not self._buffer and not self._pages:
                self._cond.wait()
                continue
            left = self._since + _LINGER - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _rows(self, records: Iterable[tuple[Mapping[str, Any], str, float]],
              ) -> tuple[list[tuple[Any, ...]], list[Any]]:
        """The rows of ``records`` (item, token, time scraped) and their items; the items that
        cannot be rows go to the invalid file."""
        sqlite = self._backend.sqlite
        spec = self._spec
        columns = self._columns
        whole = spec.whole_item
        rows: list[tuple[Any, ...]] = []
        kept: list[Any] = []
        if whole and not columns:  # no model and no key: the item, its time, its token
            json_text = _json_text
            for item, token, at in records:
                try:
                    rows.append((json_text(item, sqlite), at, token))
                except _Unstorable as exc:
                    self._refuse(item, str(exc))
                    continue
                kept.append(item)
            return rows, kept
        for item, token, at in records:
            try:
                values = []
                for name, kind, is_key in columns:
                    value = item.get(name)
                    if value is None:
                        if is_key:
                            raise _Unstorable(f"the key field {name!r} is missing")
                    elif kind != "text" or value.__class__ is not str or not sqlite:
                        value = _convert(kind, value, sqlite)
                    values.append(value)
                if whole:
                    values.append(_json_text(item, sqlite))
                values.append(at)  # seconds: the database makes it a timestamp
                values.append(token)
            except _Unstorable as exc:
                self._refuse(item, str(exc))
                continue
            rows.append(tuple(values))
            kept.append(item)
        return rows, kept

    def _refuse(self, item: Any, reason: str) -> None:
        with self._invalid_lock:
            self.invalid += 1
            if self.invalid == 1:
                logger.warning("%s: an item the table cannot hold (%s) went to %s", self.name,
                               reason, self._invalid.path)
            self._invalid.write([{"item": item, "errors": [reason], "url": None}])

    def _write_batch(self, rows: list[tuple[Any, ...]], items: list[Any]) -> int | None:
        """``rows`` in one transaction, retried while the database is away: how many it
        stored, None once the feed failed."""
        backend = self._backend
        first_error: float | None = None
        delay = 0.25
        while True:
            try:
                if first_error is not None:
                    backend.reconnect()
                refused = backend.write(rows)
            except Exception as exc:
                if not backend.transient(exc):
                    self._fail(f"{type(exc).__name__}: {error_reason(exc)}")
                    return None
                now = time.monotonic()
                if first_error is None:
                    first_error = now
                    logger.warning("%s: cannot write (%s); items are kept (up to %d) and the "
                                   "write retried for up to %gs", self.name, error_reason(exc),
                                   self._buffer_items, self._error_timeout)
                if now - first_error >= self._error_timeout:
                    self._fail(f"unreachable for {self._error_timeout:g}s ({error_reason(exc)})")
                    return None
                with self._cond:
                    # Wakes early only to give up (a close does not cut the retries short).
                    self._cond.wait(min(delay, self._error_timeout - (now - first_error)))
                delay = min(delay * 2, 5.0)
                continue
            break
        if first_error is not None:
            logger.warning("%s: writing again after %.1fs", self.name,
                           time.monotonic() - first_error)
        for index, reason in refused:
            self._refuse(items[index], reason)
        return len(rows) - len(refused)

    def _fail(self, reason: str) -> None:
        with self._cond:
            self.failure = reason
            self._cond.notify_all()
        logger.error("%s failed: %s", self.name, reason)
        if self.on_failure is not None:
            self.on_failure()
