"""Feeds: a crawl's outputs, several at once, each with its own options (Scrapy's ``FEEDS``).

An output is named by a URI::

    items.jsonl  out/books.csv  items.json  -        a file (format by extension), stdout
    out/part-{batch_id}.jsonl  out/{time}.csv        a new file every batch_item_count items
    sqlite:///items.db?table=books                   a table of an SQLite file (relative path;
                                                     sqlite:////abs/path.db for an absolute one)
    postgresql://user@host:5432/db?table=books       a PostgreSQL table (``crawler[postgres]``)
    ...?table=books&key=url                          upsert on ``url`` (``key=a,b``: several)

``-o``/``-O`` may be repeated; the ``feeds`` setting holds tables keyed by URI with the
options of :class:`~crawler.settings.FeedOptions`. Every feed gets every item (or those its
``item_classes``/``item_filter`` choose), independently: a feed that fails stops the crawl
(nothing more is leased, what is in flight finishes and still goes to the other feeds) and
is reported by name with the number of items it did not write.

:class:`FeedSet` is what the engine writes to: an :class:`~crawler.exporters.Exporter`
(``write``/``flush``/``close``/``tell``). The engine hands it each request's items with the
request (:meth:`FeedSet.write`); items that go through a durable job's outbox are tagged
(:data:`ITEM_TAG`) instead, with their class, their request's :func:`request_ref` and their
index in its output. A database feed turns that into the row's ``crawl_token``, so a replay
writes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

from .errors import ConfigError, OutputClosed, OutputFailed
from .exporters import Exporter, format_for, invalid_path_for, open_exporter
from .fingerprint import request_fingerprint

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .dbfeeds import TableFeed
    from .http import Request
    from .settings import FeedOptions

__all__ = [
    "ITEM_TAG",
    "FeedFailure",
    "FeedSet",
    "FeedTarget",
    "file_feeds",
    "open_feeds",
    "parse_target",
    "resolve_outputs",
    "stamp_items",
    "tag_item",
]

logger = logging.getLogger(__name__)

#: The key under which an item carries its feed tag (class, token, time) to the feeds.
#: Removed before any output sees the item.
ITEM_TAG = "\x00feed"

_FORMATS = {"jsonlines": "jsonl"}
_PLACEHOLDERS = ("{batch_id}", "{time}", "%(batch_id)d", "%(time)s")


def tag_item(record: dict[str, Any], item: Any) -> dict[str, Any]:
    """``record`` (the item as a dict) with the class of ``item`` in its tag."""
    return {**record, ITEM_TAG: {"c": type(item).__name__}}


def request_ref(request: Request) -> str:
    """The part of a row's ``crawl_token`` that names the request: its method, URL as
    written and body, hashed (32 hex digits). The same whenever that request is fetched
    again (a replay after a kill, a redelivery), so writing its items again updates their
    rows; cheaper than :attr:`Request.fingerprint`, which canonicalizes the URL first (a
    request leased from a frontier seldom has its fingerprint at hand: the frontier keeps
    its requests compact, without it)."""
    return request_fingerprint(request.method, request.url, request.body).hex()


def stamp_items(items: Sequence[dict[str, Any]], request: Request) -> None:
    """Give a request's tagged items their token and the time they were scraped. The token
    is :func:`request_ref` and the item's index among the request's items. Two identical
    requests (``dont_filter``) share their tokens: the table keeps the items of the last
    one."""
    ref = request_ref(request)
    now = time.time()
    for index, item in enumerate(items):
        tag = item.get(ITEM_TAG)
        if isinstance(tag, dict):
            tag["t"] = f"{ref}:{index}"
            tag["a"] = now


@dataclass(frozen=True, slots=True)
class FeedTarget:
    """Where one feed writes: ``kind`` is ``"file"``, ``"sqlite"`` or ``"postgresql"``;
    ``path`` the file (or SQLite file), ``dsn`` the PostgreSQL connection string without
    the crawler's own parameters; ``shown`` the URI without its password."""

    uri: str
    kind: str
    format: str
    path: str = ""
    dsn: str = ""
    database: str = ""
    table: str = ""
    key: tuple[str, ...] = ()
    shown: str = ""


def _key_of(value: str | None, options: FeedOptions) -> tuple[str, ...]:
    fields = [k.strip() for k in (value or "").split(",") if k.strip()]
    return tuple(fields or options.key)


def parse_target(uri: str, options: FeedOptions) -> FeedTarget:
    """The target of ``uri``; raises :class:`ConfigError` for a URI it cannot write to,
    naming the URI without its password."""
    # Not dbfeeds' own import (pydantic, the database backends): most outputs are files.
    from .urls import redact_password as redact

    shown = redact(uri)
    if uri.startswith("sqlite:"):
        rest = uri.removeprefix("sqlite:")
        if not rest.startswith("///"):
            raise ConfigError(f"bad SQLite output {shown!r}: write sqlite:///relative/path.db"
                              "?table=NAME or sqlite:////absolute/path.db?table=NAME")
        path, _, query = rest[3:].partition("?")
        params = dict(URL(f"x:?{query}").query)
        table = params.pop("table", "")
        if not path or not table:
            raise ConfigError(f"SQLite output {shown!r} needs a file and a table: "
                              "sqlite:///items.db?table=NAME")
        key = _key_of(params.pop("key", None), options)
        if params:
            raise ConfigError(f"SQLite output {shown!r}: unknown parameter "
                              f"{', '.join(params)} (table, key)")
        return FeedTarget(uri, "sqlite", "sqlite", path=path, table=table, key=key,
                          shown=f"sqlite:///{path}?table={table}")
    if uri.startswith(("postgresql:", "postgres:")):
        try:
            url = URL(uri)
        except ValueError as exc:
            raise ConfigError(f"bad PostgreSQL output {shown!r}: {exc}") from None
        params = dict(url.query)
        table = params.pop("table", "")
        key = _key_of(params.pop("key", None), options)
        database = url.path.strip("/")
        if not url.host or not table or not database:
            raise ConfigError(f"PostgreSQL output {shown!r} needs a host, a database and a "
                              "table: postgresql://user@host:5432/db?table=NAME")
        dsn = str(url.with_query(params))
        return FeedTarget(uri, "postgresql", "postgresql", dsn=dsn, database=database,
                          table=table, key=key, shown=redact(str(url.with_query(
                              {**params, "table": table}))))
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise ConfigError(f"cannot write to {shown!r}: {scheme}:// outputs are not supported "
                          "(files, -, sqlite:///, postgresql://)")
    path = uri.removeprefix("file://")
    given = options.format
    if given in ("sqlite", "postgresql"):
        raise ConfigError(f"output {uri!r}: format {given!r} needs a {given}:// URI")
    fmt = _FORMATS.get(given, given) if given else format_for(_render(path, 1, "x"))
    return FeedTarget(uri, "file", fmt, path=path, shown=uri)


def _render(path: str, batch_id: int, stamp: str) -> str:
    for placeholder, value in (("{batch_id}", str(batch_id)), ("%(batch_id)d", str(batch_id)),
                               ("{time}", stamp), ("%(time)s", stamp)):
        path = path.replace(placeholder, value)
    return path


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H-%M-%S")


class _FileFeed:
    """A file output: the exporter, batches of files, gathering of items in memory crawls."""

    def __init__(
        self, target: FeedTarget, options: FeedOptions, fields: Sequence[str] | None, *,
        gather: bool, exporter: Exporter | None = None,
    ) -> None:
        self.name = target.shown
        self.invalid_path = invalid_path_for(target.path)
        self._target = target
        self._options = options
        self._fields = fields
        self._gather = gather and target.path != "-"
        self._batch_id = 1
        self._in_batch = 0
        self._buffer: list[Mapping[str, Any]] = []
        self._last = time.monotonic()
        self._created: list[str] = []
        self.written = 0
        self.not_written = 0
        self.failure: str | None = None
        path = target.path
        if options.batch_item_count and not any(p in path for p in _PLACEHOLDERS):
            raise ConfigError(f"output {path!r} has batch_item_count="
                              f"{options.batch_item_count}: its path needs {{batch_id}} or "
                              "{time} to name each file")
        self._exporter = exporter if exporter is not None else self._open()

    def _open(self) -> Exporter:
        path = _render(self._target.path, self._batch_id, _stamp())
        if path != "-" and (self._options.overwrite or not os.path.exists(path)):
            self._created.append(path)
        return open_exporter(path, overwrite=self._options.overwrite, fields=self._fields,
                             fmt=self._target.format, encoding=self._options.encoding,
                             indent=self._options.indent)

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        if self.failure is not None:
            self.not_written += len(items)
            return
        if not self._gather:
            self._write(items)
            return
        self._buffer.extend(items)
        if len(self._buffer) >= 100 or time.monotonic() - self._last >= 1.0:
            self._write_buffer()

    def write_gathered(self) -> None:
        """Write the items gathered in memory now (see :meth:`FeedSet.settle`)."""
        if self._buffer and self.failure is None:
            self._write_buffer()

    def _write_buffer(self) -> None:
        self._last = time.monotonic()
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._write(batch)

    def _write(self, items: Sequence[Mapping[str, Any]]) -> None:
        size = self._options.batch_item_count
        while items:
            if size and self._in_batch >= size:
                self._exporter.close()
                self._batch_id += 1
                self._in_batch = 0
                self._exporter = self._open()
            part = items[: size - self._in_batch] if size else items
            try:
                self._exporter.write(part)
            except OSError as exc:
                self.failure = exc.strerror or str(exc)
                self.not_written += len(items)
                raise
            self.written += len(part)
            self._in_batch += len(part)
            items = items[len(part):]

    def flush(self) -> None:
        if self.failure is None:
            self._write_buffer()
        self._exporter.flush()

    def close(self) -> None:
        try:
            if self.failure is None:
                self._write_buffer()
        finally:
            self._exporter.close()
        if not self._options.store_empty and self.written == 0:
            for path in self._created:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def tell(self) -> int:
        return self._exporter.tell()


class _Feed:
    """One feed: which items it takes, which fields it keeps, and where they go."""

    def __init__(self, sink: _FileFeed | TableFeed, options: FeedOptions, table: bool) -> None:
        from .loader import import_object

        self.sink = sink
        self.table = table
        self.name = sink.name
        self._classes = frozenset(c.rpartition(":")[2].rpartition(".")[2]
                                  for c in options.item_classes)
        self._filter: Callable[[Any], bool] | None = (
            import_object(options.item_filter) if options.item_filter else None
        )
        self._fields = None if table else options.fields
        #: Where this feed's invalid items go (the items that failed validation too, when
        #: it is the first feed).
        self.invalid_path = sink.invalid_path

    @property
    def wants_tags(self) -> bool:
        """Whether items need their tag for this feed (a table's token, a class filter)."""
        return self.table or bool(self._classes)

    @property
    def filters_classes(self) -> bool:
        return bool(self._classes)

    def takes_as_they_are(self, items: Sequence[Mapping[str, Any]]) -> bool:
        """Whether this feed takes every one of ``items`` whole: untagged items (all or none
        of a call's items are tagged), no class, filter or field list."""
        return not (self._classes or self._filter or self._fields) and (
            not items or ITEM_TAG not in items[0])

    def select(self, items: Sequence[Mapping[str, Any]], prefix: str,
               source: tuple[Request, int, float] | None = None) -> Sequence[Any]:
        """The items this feed takes, without their tags, with only its fields; for a table,
        (item, crawl token, time scraped) records, the token starting with ``prefix``. An
        item's token and time are in its tag (:func:`stamp_items`), else made here from
        ``source``: the request (its :func:`request_ref`), the index of ``items[0]`` among
        the request's items, the time."""
        if not self.table and self.takes_as_they_are(items):
            return items
        classes, keep, fields = self._classes, self._filter, self._fields
        out: list[Any] = []
        request, first, now = source if source is not None else (None, 0, 0.0)
        ref = request_ref(request) if request is not None else ""
        for index, record in enumerate(items, first):
            tag = record.get(ITEM_TAG)
            item: Mapping[str, Any] = record
            if tag is not None:
                untagged = dict(record)
                del untagged[ITEM_TAG]
                item = untagged
            if classes and (not isinstance(tag, dict) or tag.get("c") not in classes):
                continue
            if keep is not None and not keep(item):
                continue
            if fields is not None:
                item = {f: item[f] for f in fields if f in item}
            if self.table:
                if isinstance(tag, dict) and "t" in tag:
                    out.append((item, f"{prefix}:{tag['t']}", tag["a"]))
                elif ref:
                    out.append((item, f"{prefix}:{ref}:{index}", now))
                else:
                    out.append((item, f"{prefix}:{uuid.uuid4().hex}", time.time()))
            else:
                out.append(item)
        return out


@dataclass(slots=True)
class FeedFailure:
    name: str
    reason: str
    not_written: int


class FeedSet:
    """Every feed of a crawl behind one :class:`~crawler.exporters.Exporter`.

    ``raise_errors`` (a durable job): a failed write raises, so the job's frontier refuses
    to record it; otherwise the feed is marked failed, ``on_failure`` is called and the
    other feeds go on. ``write_through`` (a shared frontier): database rows are committed by
    :meth:`settle`, which the frontier calls before its acks leave, so a request's items are
    stored before its ack. ``prefix`` starts every ``crawl_token``: the job, the shared crawl,
    or this run.
    """

    def __init__(self, feeds: list[_Feed], *, raise_errors: bool, write_through: bool,
                 prefix: str) -> None:
        self._feeds = feeds
        self._raise = raise_errors
        self._through = write_through
        self._prefix = prefix
        self.path = feeds[0].name if feeds else ""
        #: Where items that failed validation go: beside the first feed.
        self.invalid_path = feeds[0].invalid_path if feeds else "invalid.jsonl"
        self.on_failure: Callable[[], None] | None = None
        self._closed = False
        #: Whether items need tags (class, token) when they go through an outbox, and
        #: whether they need their class in any case (a feed filtering by class).
        self.wants_tags = any(feed.wants_tags for feed in feeds)
        self.filters_classes = any(feed.filters_classes for feed in feeds)
        self._tables = any(feed.table for feed in feeds)

    def write(self, items: Sequence[Mapping[str, Any]], request: Request | None = None,
              first: int = 0) -> None:
        """Write ``items`` to each feed that takes them. ``request``: the request they came
        from, ``first`` the index of ``items[0]`` among its items (a table's tokens are made
        from these when the items carry none)."""
        source = None
        if request is not None and self._tables:
            source = (request, first, time.time())
        for feed in self._feeds:
            try:
                if source is not None and feed.table and feed.takes_as_they_are(items):
                    # Their rows are made a batch at a time (tokens included).
                    cast("TableFeed", feed.sink).write_page(items, self._prefix, *source)
                else:
                    chosen = feed.select(items, self._prefix, source)
                    if not chosen:
                        continue
                    feed.sink.write(chosen)
            except OutputClosed:
                raise  # `-o - | head`: not a failure, the engine stops quietly
            except Exception as exc:
                self._failed()
                if self._raise:
                    raise OutputFailed(feed.name, exc) from exc

    def _failed(self) -> None:
        if self.on_failure is not None:
            self.on_failure()

    def flush(self) -> None:
        self._each(lambda feed: feed.sink.flush())

    def settle(self) -> None:
        """Store what was handed over so far: the file items gathered in memory are written,
        and with ``write_through``, the tables' rows committed. A shared frontier calls this
        right before its acks leave (:attr:`RedisFrontier.before_ack`), so every request
        Redis hears is done has its items stored, and each batch of acks costs one write
        and one commit, not one per page."""
        def settle(feed: _Feed) -> None:
            if not feed.table:
                cast("_FileFeed", feed.sink).write_gathered()
            elif self._through:
                feed.sink.flush()

        self._each(settle)

    def _each(self, step: Callable[[_Feed], None]) -> None:
        for feed in self._feeds:
            try:
                step(feed)
            except OutputClosed:
                raise
            except Exception as exc:
                self._failed()
                if self._raise:
                    raise OutputFailed(feed.name, exc) from exc

    def close(self) -> None:
        """Write what is gathered and close every feed (each in its own try). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for feed in self._feeds:
            try:
                feed.sink.close()
            except OutputClosed:
                pass  # the reader of stdout left: what it read was whole
            except Exception as exc:
                if getattr(feed.sink, "failure", None) is None:
                    logger.error("Closing output %s failed: %s", feed.name, exc)

    def tell(self) -> int:
        """The size of the (one) file output of a durable job; 0 without a file."""
        for feed in self._feeds:
            if not feed.table:
                return feed.sink.tell()
        return 0

    @property
    def tables(self) -> list[TableFeed]:
        """The database feeds."""
        return [f.sink for f in self._feeds if not isinstance(f.sink, _FileFeed)]

    def failures(self) -> list[FeedFailure]:
        """The feeds that failed: name, why, how many items they did not write."""
        return [FeedFailure(f.name, f.sink.failure, f.sink.not_written)
                for f in self._feeds if f.sink.failure is not None]

    def counts(self) -> dict[str, int]:
        """Items written per feed."""
        return {f.name: f.sink.written for f in self._feeds}

    def invalid(self) -> int:
        return sum(t.invalid for t in self.tables)


def resolve_outputs(
    cli: Sequence[tuple[str, bool]], configured: Mapping[str, FeedOptions]
) -> dict[str, FeedOptions]:
    """The feeds of a run: ``-o``/``-O`` (URI, overwrite) replace the ``feeds`` setting, as in
    Scrapy; a URI given on the command line keeps the options its table has in the setting."""
    from .settings import FeedOptions

    if not cli:
        return dict(configured)
    out: dict[str, FeedOptions] = {}
    for uri, overwrite in cli:
        if uri in out:
            raise ConfigError(f"output {uri!r} is given twice")
        base = configured.get(uri) or FeedOptions()
        out[uri] = replace(base, overwrite=overwrite)
    return out


def file_feeds(outputs: Mapping[str, FeedOptions]) -> list[FeedTarget]:
    return [t for t in (parse_target(u, o) for u, o in outputs.items()) if t.kind == "file"]


def open_feeds(
    outputs: Mapping[str, FeedOptions], *, model: type[BaseModel] | None,
    error_timeout: float, buffer_items: int, gather: bool, raise_errors: bool,
    write_through: bool, prefix: str, resumed: bool,
    file_exporter: Exporter | None = None,
) -> FeedSet:
    """Open every feed (a database is connected and its table checked here, so a bad one
    stops the run before the first request). ``file_exporter``: the durable job's file,
    already opened by its frontier. On an error the feeds opened so far are closed."""
    feeds: list[_Feed] = []
    try:
        for uri, options in outputs.items():
            target = parse_target(uri, options)
            overwrite = options.overwrite and not resumed
            if target.kind == "file":
                fields = options.fields or (list(model.model_fields) if model else None)
                sink = _FileFeed(target, options, fields, gather=gather, exporter=file_exporter)
                feeds.append(_Feed(sink, options, table=False))
                continue
            from .dbfeeds import TableFeed, table_spec

            spec = table_spec(target.table, model, target.key, options.fields)
            common = {"error_timeout": error_timeout, "buffer_items": buffer_items,
                      "batch_size": options.batch_size}
            if target.kind == "sqlite":
                table = TableFeed.sqlite(target.path, spec, **common)
            else:
                table = TableFeed.postgresql(target.dsn, target.shown, target.database, spec,
                                             **common)
            table.open(overwrite=overwrite)
            feeds.append(_Feed(table, options, table=True))
    except BaseException:
        for feed in feeds:
            feed.sink.close()
        raise
    return FeedSet(feeds, raise_errors=raise_errors, write_through=write_through, prefix=prefix)
