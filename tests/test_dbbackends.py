"""The backends of a table feed on real databases (an SQLite file; the PostgreSQL server on
127.0.0.1:5432, a schema of each test's own): the table created, upserts by the conflict
key, rows refused one by one, an existing table of another shape refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from crawler.dbbackends import PostgresBackend, SqliteBackend, error_reason
from crawler.dbfeeds import table_spec
from crawler.errors import ConfigError

#: A row's crawled_at as the feed hands it to a backend: seconds since the epoch
#: (2024-05-17T12:30:00.25Z).
STAMP = 1715949000.25


class Book(pydantic.BaseModel):
    title: str
    pages: int


def _backend(path: Path, table: str = "books") -> SqliteBackend:
    return SqliteBackend(str(path), table_spec(table, Book, key=["title"]))


def test_creates_the_table_and_upserts_by_key(tmp_path: Path) -> None:
    db = tmp_path / "out" / "items.db"  # the folder is created
    backend = _backend(db)
    backend.open(overwrite=False)
    try:
        stamp = STAMP
        assert backend.write([("A", 10, stamp, "t1"), ("B", 20, stamp, "t2")]) == []
        assert backend.write([("A", 11, stamp, "t3")]) == []  # same key: the row is updated
    finally:
        backend.close()
    with sqlite3.connect(db) as conn:
        rows = sorted(conn.execute("SELECT title, pages, crawl_token FROM books"))
        columns = [row[1] for row in conn.execute("PRAGMA table_xinfo(books)")]
    assert rows == [("A", 11, "t3"), ("B", 20, "t2")]
    assert columns == ["title", "pages", "crawled_at", "crawl_token"]
    with sqlite3.connect(db) as conn:  # the database made the seconds a time
        assert conn.execute("SELECT crawled_at FROM books").fetchone() == (
            "2024-05-17T12:30:00.250+00:00",)


def test_a_row_the_table_refuses_is_returned_and_the_others_written(tmp_path: Path) -> None:
    db = tmp_path / "items.db"
    backend = _backend(db)
    backend.open(overwrite=False)
    try:
        stamp = STAMP
        refused = backend.write([("A", 1, stamp, "t1"), ("B", "many", stamp, "t2"),
                                 ("C", 3, stamp, "t3")])
    finally:
        backend.close()
    assert [index for index, _ in refused] == [1]  # a STRICT INTEGER column holds no text
    with sqlite3.connect(db) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT title FROM books")) == ["A", "C"]


def test_a_batch_of_several_statements_keeps_the_last_row_of_each_key(tmp_path: Path) -> None:
    # 1,000 rows are several multi-row statements; keys repeat within one and across them.
    db = tmp_path / "items.db"
    backend = _backend(db)
    backend.open(overwrite=False)
    stamp = STAMP
    rows = [(f"K{n % 300}", n, stamp, f"t{n}") for n in range(1000)]
    try:
        assert backend.write(rows) == []
        refused = backend.write([*rows[:400], ("X", "many", stamp, "tx"), *rows[400:]])
    finally:
        backend.close()
    assert [index for index, _ in refused] == [400]
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT title, pages FROM books"))
    assert stored == {f"K{k}": max(n for n in range(1000) if n % 300 == k) for k in range(300)}


def test_existing_table_of_another_shape_is_refused_unless_overwritten(tmp_path: Path) -> None:
    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE books (title TEXT, pages TEXT)")
    with pytest.raises(ConfigError) as info:
        _backend(db).open(overwrite=False)
    message = str(info.value)
    assert "column 'pages' is TEXT, not INTEGER" in message
    assert "column 'crawl_token' is missing" in message
    backend = _backend(db)
    backend.open(overwrite=True)  # -O drops and recreates it
    backend.close()
    with sqlite3.connect(db) as conn:
        types = {row[1]: row[2] for row in conn.execute("PRAGMA table_xinfo(books)")}
    assert types["pages"] == "INTEGER"


def test_error_reason_is_the_first_line_or_the_type() -> None:
    assert error_reason(ValueError("first\nsecond")) == "first"
    assert error_reason(TimeoutError()) == "TimeoutError"


# -- PostgreSQL: a batch is one statement (one array per column, unnested)

PG = "postgresql://postgres@127.0.0.1:5432/test"


def _pg(sql: str) -> list[Any]:
    asyncpg = pytest.importorskip("asyncpg")

    async def run() -> list[Any]:
        conn = await asyncpg.connect(PG)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    _pg(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        _pg(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _pg_backend(schema: str) -> PostgresBackend:
    pytest.importorskip("asyncpg")
    return PostgresBackend(PG, PG, table_spec(f"{schema}.books", Book, key=["title"]))


def test_postgres_batch_keeps_the_last_row_of_each_key(pg_schema: str) -> None:
    backend = _pg_backend(pg_schema)
    backend.open(overwrite=False)
    stamp = STAMP
    try:
        # One statement cannot update a row twice: the batch keeps the last row of "A".
        assert backend.write([("A", 1, stamp, "t1"), ("B", 2, stamp, "t2"),
                              ("A", 3, stamp, "t3")]) == []
        assert backend.write([("B", 20, stamp, "t4")]) == []  # a later batch updates
    finally:
        backend.close()
    rows = _pg(f"SELECT title, pages, crawl_token FROM {pg_schema}.books ORDER BY title")
    assert rows == [("A", 3, "t3"), ("B", 20, "t4")]
    assert _pg(f"SELECT DISTINCT crawled_at FROM {pg_schema}.books") == [
        (dt.datetime(2024, 5, 17, 12, 30, 0, 250000, tzinfo=dt.UTC),)]


def test_postgres_row_the_table_refuses_is_returned_and_the_others_written(
    pg_schema: str,
) -> None:
    backend = _pg_backend(pg_schema)
    backend.open(overwrite=False)
    # A constraint of the user's own on the table the feed created.
    _pg(f"ALTER TABLE {pg_schema}.books ADD CONSTRAINT positive CHECK (pages > 0)")
    stamp = STAMP
    try:
        refused = backend.write([("A", 1, stamp, "t1"), ("B", -5, stamp, "t2"),
                                 ("C", 3, stamp, "t3")])
    finally:
        backend.close()
    assert [index for index, _ in refused] == [1]
    assert "positive" in refused[0][1]
    rows = _pg(f"SELECT title FROM {pg_schema}.books ORDER BY title")
    assert rows == [("A",), ("C",)]
