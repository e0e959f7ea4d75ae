"""The database connections of :class:`crawler.dbfeeds.TableFeed`: SQLite and PostgreSQL.

A backend is one connection, used from the feed's writer thread only: it creates or checks
the table (:meth:`Backend.open`), writes a batch of rows in one transaction, leaving out and
returning the rows the database refuses (:meth:`Backend.write`), says which errors are worth
a retry (:meth:`Backend.transient`) and reconnects. ``sqlite3`` and ``asyncpg`` are imported
when a backend of their kind is built.
"""

from __future__ import annotations

import asyncio
import os
import typing
from collections.abc import Callable, Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .dbfeeds import TableSpec

__all__ = [
    "PG_TYPES", "SQLITE_TYPES", "Backend", "PostgresBackend", "SqliteBackend", "error_reason",
]

#: The column types: the logical kind, its PostgreSQL type and its SQLite STRICT type.
PG_TYPES = {
    "text": "text", "integer": "bigint", "float": "double precision", "numeric": "numeric",
    "boolean": "boolean", "timestamp": "timestamp with time zone", "date": "date",
    "json": "jsonb",
}
SQLITE_TYPES = {
    "text": "TEXT", "integer": "INTEGER", "float": "REAL", "numeric": "TEXT",
    "boolean": "INTEGER", "timestamp": "TEXT", "date": "TEXT", "json": "TEXT",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Backend:
    """One connection, used from the writer thread only."""

    sqlite = False
    spec: TableSpec

    def open(self, overwrite: bool) -> None:
        raise NotImplementedError

    def write(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        """Write ``rows`` in one transaction; the rows refused by the database (index,
        reason) are left out and returned."""
        raise NotImplementedError

    def transient(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def reconnect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _all_columns(self) -> list[tuple[str, str]]:
        types_ = SQLITE_TYPES if self.sqlite else PG_TYPES
        cols = [(c.name, types_[c.kind]) for c in self.spec.columns]
        if self.spec.whole_item:
            cols.append(("item", types_["json"]))
        cols.append(("crawled_at", types_["timestamp"]))
        cols.append(("crawl_token", types_["text"]))
        return cols

    def _check_existing(self, found: Mapping[str, str]) -> None:
        """Refuse a table whose columns differ from the expected ones, naming the
        difference. Extra columns are allowed (they stay NULL or take their default)."""
        problems = []
        for name, wanted in self._all_columns():
            have = found.get(name)
            if have is None:
                problems.append(f"column {name!r} is missing")
            elif have.lower() != wanted.lower():
                problems.append(f"column {name!r} is {have}, not {wanted}")
        if problems:
            raise ConfigError(
                f"table {self.spec.shown} exists with other columns than the items need: "
                f"{'; '.join(problems)} (use -O to drop and recreate it, or another table)"
            )

    def _upsert_sql(self, placeholder: Callable[[int], str], rows: int = 1,
                    source: str = "") -> str:
        """The upsert of ``rows`` rows in one statement (each row's values numbered on), or
        of the rows of the query ``source``."""
        cols = [name for name, _ in self._all_columns()]
        table = self._table()
        n = len(cols)
        values = source or "VALUES " + ", ".join(
            "(" + ", ".join(self._value_sql(cols[i], placeholder(r * n + i + 1))
                            for i in range(n)) + ")"
            for r in range(rows))
        conflict = ", ".join(_quote(c) for c in self.spec.conflict)
        updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in cols
                            if c not in self.spec.conflict)
        return (f"INSERT INTO {table} ({', '.join(map(_quote, cols))}) {values} "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}")

    def _value_sql(self, column: str, value: str) -> str:
        """The SQL of ``column``'s value given as ``value``: a row's ``crawled_at`` is handed
        over as seconds since the epoch and made a timestamp by the database (in C, outside
        the crawl's event loop, where converting it cost a datetime and its text per item)."""
        if column != "crawled_at":
            return value
        if self.sqlite:
            return f"strftime('%Y-%m-%dT%H:%M:%f+00:00', {value}, 'unixepoch')"
        return f"to_timestamp({value})"

    def _table(self) -> str:
        spec = self.spec
        return (f"{_quote(spec.schema)}.{_quote(spec.name)}" if spec.schema
                else _quote(spec.name))

    def _create_sql(self) -> list[str]:
        table = self._table()
        cols = ", ".join(f"{_quote(n)} {t}" for n, t in self._all_columns())
        strict = " STRICT" if self.sqlite else ""
        index = _quote(f"{self.spec.name}_crawl_key")
        conflict = ", ".join(_quote(c) for c in self.spec.conflict)
        on = f"{_quote(self.spec.schema)}.{index}" if self.spec.schema and self.sqlite else index
        return [f"CREATE TABLE IF NOT EXISTS {table} ({cols}){strict}",
                f"CREATE UNIQUE INDEX IF NOT EXISTS {on} ON {table} ({conflict})"]


#: Rows per SQLite statement. sqlite3 lets go of the GIL around each statement it steps,
#: and the writer thread then waits to get it back from the event loop, which under uvloop
#: seldom lets go of it on its own: a statement per row made the writer wait that long per
#: row, a statement per chunk waits once per chunk.
_SQLITE_CHUNK = 256


class SqliteBackend(Backend):
    sqlite = True

    def __init__(self, path: str, spec: TableSpec) -> None:
        import sqlite3

        self._sqlite3 = sqlite3
        self.path = path
        self.spec = spec
        self._conn: Any = None
        self._sql = self._upsert_sql(lambda i: "?")
        self._chunk = 1  # rows per statement, set on connecting (the variables it may bind)
        self._chunk_sql: dict[int, str] = {}

    def _connect(self) -> None:
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._conn = self._sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                           check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        variables = self._conn.getlimit(self._sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._chunk = max(1, min(_SQLITE_CHUNK, variables // len(self._all_columns())))

    def open(self, overwrite: bool) -> None:
        sqlite3 = self._sqlite3
        try:
            self._connect()
            conn = self._conn
            if overwrite:
                conn.execute(f"DROP TABLE IF EXISTS {self._table()}")
            found = {row[1]: row[2] for row in
                     conn.execute(f"PRAGMA table_xinfo({_quote(self.spec.name)})")}
            if found:
                self._check_existing(found)
            for sql in self._create_sql():
                conn.execute(sql)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot use SQLite database {self.path}: {exc}") from exc

    def write(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        conn = self._conn
        sqlite3 = self._sqlite3
        conn.execute("BEGIN IMMEDIATE")
        try:
            chunk = self._chunk
            for start in range(0, len(rows), chunk):
                part = rows[start:start + chunk]
                conn.execute(self._statement(len(part)), list(chain.from_iterable(part)))
        except (sqlite3.IntegrityError, sqlite3.DataError, OverflowError):
            conn.execute("ROLLBACK")
            return self._row_by_row(rows)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return []

    def _statement(self, rows: int) -> str:
        """The upsert of ``rows`` rows (later rows of one key update the earlier ones, as
        one statement per row would)."""
        sql = self._chunk_sql.get(rows)
        if sql is None:
            sql = self._chunk_sql[rows] = self._upsert_sql(lambda i: "?", rows)
        return sql

    def _row_by_row(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        conn = self._conn
        sqlite3 = self._sqlite3
        refused = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, row in enumerate(rows):
                conn.execute("SAVEPOINT row")
                try:
                    conn.execute(self._sql, row)
                except (sqlite3.IntegrityError, sqlite3.DataError, OverflowError) as exc:
                    conn.execute("ROLLBACK TO row")
                    refused.append((i, f"{type(exc).__name__}: {exc}"))
                conn.execute("RELEASE row")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return refused

    def transient(self, exc: BaseException) -> bool:
        # Locked by another writer, a full disk, an I/O error: worth retrying for a while.
        return isinstance(exc, self._sqlite3.OperationalError)

    def reconnect(self) -> None:
        self.close()
        self._connect()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class PostgresBackend(Backend):
    def __init__(self, dsn: str, shown: str, spec: TableSpec) -> None:
        try:
            import asyncpg
        except ImportError:
            raise ConfigError(
                "a postgresql:// output needs asyncpg: pip install 'crawler[postgres]'"
            ) from None
        self._asyncpg = asyncpg
        self.dsn = dsn
        self.shown = shown
        self.spec = spec
        self._loop = asyncio.new_event_loop()
        self._conn: Any = None
        self._sql = self._upsert_sql(lambda i: f"${i}")
        self._batch_sql = self._unnest_sql()
        names = [name for name, _ in self._all_columns()]
        self._key_at = [names.index(c) for c in spec.conflict]

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    async def _connect(self) -> None:
        self._conn = await self._asyncpg.connect(self.dsn, timeout=10)

    def open(self, overwrite: bool) -> None:
        asyncpg = self._asyncpg
        try:
            self._run(self._connect())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(f"cannot connect to {self.shown}: {error_reason(exc)}") from exc
        try:
            self._run(self._prepare(overwrite))
        except asyncpg.PostgresError as exc:
            raise ConfigError(f"cannot use table {self.spec.shown} in {self.shown}: "
                              f"{error_reason(exc)}") from exc

    async def _prepare(self, overwrite: bool) -> None:
        conn = self._conn
        schema = self.spec.schema or await conn.fetchval("SELECT current_schema()")
        async with conn.transaction():
            # Several workers start at once: CREATE ... IF NOT EXISTS alone races (two create
            # the type of the table), so the check and the creation hold a lock on the name.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"crawler feed {schema}.{self.spec.name}")
            if overwrite:
                await conn.execute(f"DROP TABLE IF EXISTS {self._table()}")
            rows = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = $2", schema, self.spec.name)
            if rows:
                self._check_existing({r["column_name"]: r["data_type"] for r in rows})
            for sql in self._create_sql():
                await conn.execute(sql)

    def write(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        return typing.cast(list[tuple[int, str]], self._run(self._write(rows)))

    async def _write(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        asyncpg = self._asyncpg
        conn = self._conn
        if conn is None or conn.is_closed():
            await self._reconnect()
            conn = self._conn
        try:
            async with conn.transaction():
                await conn.execute(self._batch_sql, *self._columns_of(rows))
            return []
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                asyncpg.CardinalityViolationError):
            pass
        refused = []
        async with conn.transaction():
            for i, row in enumerate(rows):
                try:
                    async with conn.transaction():  # a savepoint per row
                        await conn.execute(self._sql, *row)
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                    refused.append((i, error_reason(exc)))
        return refused

    def _unnest_sql(self) -> str:
        """The upsert of a whole batch in one statement: one array parameter per column,
        unnested into rows (one plan and one execution on the server, where a statement per
        row costs it about five times the CPU)."""
        cols = self._all_columns()
        arrays = ", ".join(
            f"${i}::{'double precision' if name == 'crawled_at' else pg_type}[]"
            for i, (name, pg_type) in enumerate(cols, 1))
        names = [f"c{i}" for i in range(len(cols))]
        selected = ", ".join(self._value_sql(name, c) for (name, _), c in zip(cols, names,
                                                                               strict=True))
        return self._upsert_sql(
            lambda i: "",
            source=f"SELECT {selected} FROM unnest({arrays}) AS batch({', '.join(names)})")

    def _columns_of(self, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
        """The batch as one list per column, for :meth:`_unnest_sql`. One statement cannot
        update a row twice: of the rows with one key, the last is kept, as a statement per
        row would leave it."""
        at = self._key_at
        if len(at) == 1:
            i = at[0]
            unique = {row[i]: row for row in rows}
        else:
            unique = {tuple(row[i] for i in at): row for row in rows}
        if len(unique) < len(rows):
            rows = list(unique.values())
        return [list(column) for column in zip(*rows, strict=True)]

    def transient(self, exc: BaseException) -> bool:
        asyncpg = self._asyncpg
        return isinstance(exc, (OSError, TimeoutError, asyncpg.PostgresConnectionError,
                                asyncpg.InterfaceError, asyncpg.OperatorInterventionError,
                                asyncpg.exceptions.ConnectionFailureError))

    async def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        if old is not None:
            old.terminate()
        await self._connect()

    def reconnect(self) -> None:
        self._run(self._reconnect())

    def close(self) -> None:
        try:
            if self._conn is not None:
                try:
                    self._run(asyncio.wait_for(self._conn.close(), 5))
                except Exception:
                    self._conn.terminate()
                self._conn = None
        finally:
            self._loop.close()


def error_reason(exc: BaseException) -> str:
    """The first line of what ``exc`` says (its type name when it says nothing)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
