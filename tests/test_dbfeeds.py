"""crawler.dbfeeds: the table a model gives, and a TableFeed writing a real SQLite file:
batches committed by flush, upserts by token or key, refused rows, refused tables."""

from __future__ import annotations

import datetime as dt
import enum
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from pydantic import BaseModel

from crawler.dbfeeds import TableFeed, TableSpec, table_spec
from crawler.errors import ConfigError
from crawler.items import Item
from crawler.urls import redact_password

OPTIONS: dict[str, Any] = {"error_timeout": 5.0, "buffer_items": 1000, "batch_size": 100}


class Colour(enum.Enum):
    RED = "red"


class Size(enum.Enum):
    SMALL = 1


class Book(Item):
    url: str
    title: str | None = None
    pages: int = 0
    rating: float = 0.0
    price: Decimal = Decimal(0)
    in_stock: bool = False
    seen: dt.datetime | None = None
    published: dt.date | None = None
    tags: list[str] = []
    colour: Colour = Colour.RED
    size: Size = Size.SMALL
    grade: Literal["a", "b"] = "a"
    either: int | str = 0


def test_each_annotation_gives_its_column_kind() -> None:
    spec = table_spec("shop.books", Book, key=["url"])
    assert (spec.schema, spec.name, spec.shown, spec.key) == ("shop", "books", "shop.books",
                                                              ("url",))
    assert {c.name: c.kind for c in spec.columns} == {
        "url": "text", "title": "text", "pages": "integer", "rating": "float",
        "price": "numeric", "in_stock": "boolean", "seen": "timestamp", "published": "date",
        "tags": "json", "colour": "text", "size": "integer", "grade": "text",
        "either": "json"}
    assert spec.conflict == ("url",) and not spec.whole_item


def test_without_a_model_the_item_is_one_column_and_the_token_the_key() -> None:
    spec = table_spec("items", None, key=[])
    assert spec == TableSpec(None, "items", (), (), True)
    assert spec.conflict == ("crawl_token",)
    chosen = table_spec("books", Book, key=[], fields=["title"])
    assert [c.name for c in chosen.columns] == ["title"]


class Clash(BaseModel):
    crawled_at: str


@pytest.mark.parametrize(("table", "model", "key", "error"), [
    ("books", Book, ["isbn"], "the item model Book has no field 'isbn'"),
    ("shop.", Book, [], "empty table name in 'shop.'"),
    ("clash", Clash, [], "field name 'crawled_at' is a column the crawler adds itself"),
])  # fmt: skip
def test_a_table_that_cannot_be_made_says_why(
    table: str, model: type[BaseModel], key: list[str], error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        table_spec(table, model, key)


@pytest.mark.parametrize(("uri", "shown"), [
    ("postgresql://bob:s3cret@127.0.0.1:5432/db?table=t",
     "postgresql://bob:***@127.0.0.1:5432/db?table=t"),
    ("postgresql://bob@127.0.0.1/db", "postgresql://bob@127.0.0.1/db"),
    ("postgresql://:pw@db.internal/crawl", "postgresql://:***@db.internal/crawl"),
    ("sqlite:///out/items.db?table=books", "sqlite:///out/items.db?table=books"),
])  # fmt: skip
def test_redact_hides_only_the_password(uri: str, shown: str) -> None:
    assert redact_password(uri) == shown


def records(items: list[dict[str, Any]], prefix: str = "job") -> list[tuple[Any, str, float]]:
    return [(item, f"{prefix}:{i}", 1_700_000_000.0 + i)
            for i, item in enumerate(items)]


def rows(path: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')]


@pytest.fixture
def open_feed(tmp_path: Path) -> Iterator[Any]:
    feeds: list[TableFeed] = []

    def make(spec: TableSpec, overwrite: bool = False) -> TableFeed:
        feed = TableFeed.sqlite(str(tmp_path / "items.db"), spec, **OPTIONS)
        feed.open(overwrite)
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()


def test_flush_commits_every_item_handed_over(tmp_path: Path, open_feed: Any) -> None:
    feed = open_feed(table_spec("books", Book, key=[]))
    items = [{"url": f"http://e.com/{i}", "pages": i, "tags": ["x"], "in_stock": True}
             for i in range(250)]
    feed.write(records(items))
    feed.flush()
    assert (feed.written, feed.invalid, feed.not_written, feed.failure) == (250, 0, 0, None)
    stored = rows(tmp_path / "items.db", "books")
    assert [r["pages"] for r in stored] == list(range(250))
    assert stored[0]["tags"] == '["x"]' and stored[0]["in_stock"] == 1
    assert stored[0]["crawl_token"] == "job:0"
    assert stored[0]["crawled_at"].startswith("2023-11-14T22:13:20")


def test_the_same_token_again_updates_its_row(tmp_path: Path, open_feed: Any) -> None:
    feed = open_feed(table_spec("items", None, key=[]))
    feed.write(records([{"n": 1}, {"n": 2}]))
    feed.write(records([{"n": 10}, {"n": 20}]))  # a replay: the same tokens
    feed.flush()
    stored = rows(tmp_path / "items.db", "items")
    assert [(r["crawl_token"], orjson.loads(r["item"])) for r in stored] == [
        ("job:0", {"n": 10}), ("job:1", {"n": 20})]


def test_with_a_key_the_key_fields_are_the_row(tmp_path: Path, open_feed: Any) -> None:
    feed = open_feed(table_spec("books", Book, key=["url"]))
    feed.write(records([{"url": "http://e.com/a", "pages": 1}], prefix="run1"))
    feed.write(records([{"url": "http://e.com/a", "pages": 2}], prefix="run2"))
    feed.flush()
    stored = rows(tmp_path / "items.db", "books")
    assert [(r["url"], r["pages"], r["crawl_token"]) for r in stored] == [
        ("http://e.com/a", 2, "run2:0")]


def test_a_row_the_columns_cannot_hold_goes_to_the_invalid_file(
    tmp_path: Path, open_feed: Any
) -> None:
    feed = open_feed(table_spec("books", Book, key=["url"]))
    feed.write(records([{"url": "http://e.com/ok", "pages": 1},
                        {"url": "http://e.com/big", "pages": 2**64},
                        {"pages": 3}]))  # no key
    feed.flush()
    assert (feed.written, feed.invalid) == (1, 2)
    assert [r["url"] for r in rows(tmp_path / "items.db", "books")] == ["http://e.com/ok"]
    feed.close()
    invalid = [orjson.loads(line) for line in Path(feed.invalid_path).read_bytes().splitlines()]
    assert [i["item"].get("pages") for i in invalid] == [2**64, 3]
    assert "the key field 'url' is missing" in invalid[1]["errors"][0]


def test_a_table_with_other_columns_is_refused_unless_overwritten(
    tmp_path: Path, open_feed: Any
) -> None:
    with sqlite3.connect(tmp_path / "items.db") as conn:
        conn.execute('CREATE TABLE "books" ("url" INTEGER, "crawl_token" TEXT)')
    with pytest.raises(ConfigError, match="column 'url' is INTEGER, not TEXT") as info:
        open_feed(table_spec("books", Book, key=[]))
    assert "column 'pages' is missing" in str(info.value)
    feed = open_feed(table_spec("books", Book, key=[]), overwrite=True)
    feed.write(records([{"url": "http://e.com/"}]))
    feed.flush()
    assert [r["url"] for r in rows(tmp_path / "items.db", "books")] == ["http://e.com/"]


def test_after_close_writes_count_as_not_written(open_feed: Any) -> None:
    feed = open_feed(table_spec("items", None, key=[]))
    feed.write(records([{"n": 1}]))
    feed.close()
    feed.close()  # idempotent
    assert feed.written == 1
    feed.write(records([{"n": 2}, {"n": 3}]))
    assert feed.not_written == 2


def _request(n: int) -> Any:
    from crawler.http import Request

    return Request(f"http://e.com/page/{n}")


def test_pages_become_rows_with_their_requests_tokens(tmp_path: Path, open_feed: Any) -> None:
    from crawler.feeds import request_ref

    feed = open_feed(table_spec("books", Book, key=[]))
    # 250 pages of one item and a page of three: more than two batches (100 items each).
    for n in range(250):
        feed.write_page([{"url": f"http://e.com/{n}", "pages": n}], "job", _request(n), 0,
                        1_700_000_000.5)
    feed.write_page([{"url": "http://e.com/x", "pages": 1000 + i} for i in range(3)], "job",
                    _request(999), 4, 1_700_000_000.5)
    feed.flush()
    assert (feed.written, feed.invalid, feed.not_written) == (253, 0, 0)
    stored = rows(tmp_path / "items.db", "books")
    assert [r["pages"] for r in stored] == [*range(250), 1000, 1001, 1002]
    ref = request_ref(_request(999))
    assert [r["crawl_token"] for r in stored[-3:]] == [f"job:{ref}:{i}" for i in (4, 5, 6)]
    assert stored[0]["crawled_at"] == "2023-11-14T22:13:20.500+00:00"


def test_a_slow_crawls_pages_are_written_without_a_flush(tmp_path: Path,
                                                         open_feed: Any) -> None:
    """Fewer items than a batch: the writer makes them rows itself once they waited."""
    import time

    feed = open_feed(table_spec("items", None, key=[]))
    feed.write_page([{"n": 1}], "job", _request(1), 0, 1_700_000_000.0)
    deadline = time.monotonic() + 30
    while feed.written < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feed.written == 1
    assert [orjson.loads(r["item"]) for r in rows(tmp_path / "items.db", "items")] == [
        {"n": 1}]


def test_rows_keep_the_order_of_their_pages(tmp_path: Path, open_feed: Any) -> None:
    """A key's later item updates its row, whether it came as a page or as records."""
    feed = open_feed(table_spec("books", Book, key=["url"]))
    feed.write_page([{"url": "http://e.com/a", "pages": 1}], "job", _request(1), 0, 0.0)
    feed.write(records([{"url": "http://e.com/a", "pages": 2}]))
    feed.write_page([{"url": "http://e.com/b", "pages": 3}], "job", _request(2), 0, 0.0)
    feed.close()  # makes the last page a row too
    stored = rows(tmp_path / "items.db", "books")
    assert [(r["url"], r["pages"]) for r in stored] == [("http://e.com/a", 2),
                                                        ("http://e.com/b", 3)]


def test_a_pages_item_the_columns_cannot_hold_goes_to_the_invalid_file(
    tmp_path: Path, open_feed: Any
) -> None:
    feed = open_feed(table_spec("books", Book, key=["url"]))
    feed.write_page([{"url": "http://e.com/ok", "pages": 1}, {"pages": 2}], "job",
                    _request(1), 0, 0.0)
    feed.flush()
    assert (feed.written, feed.invalid) == (1, 1)
    feed.close()
    feed.write_page([{"url": "http://e.com/late"}], "job", _request(2), 0, 0.0)
    assert feed.not_written == 1


def test_no_page_is_lost_while_the_writer_makes_rows_beside_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linger of half a millisecond and batches too big to fill: the writer thread makes
    rows all the time while pages keep coming; every item must end up in the table once."""
    import sys
    import time

    import crawler.dbfeeds as dbfeeds

    monkeypatch.setattr(dbfeeds, "_LINGER", 0.0005)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the two threads take turns as often as they can
    feed = TableFeed.sqlite(str(tmp_path / "items.db"), table_spec("items", None, key=[]),
                            error_timeout=5.0, buffer_items=10**6, batch_size=10**6)
    feed.open()
    try:
        for n in range(3000):
            feed.write_page([{"n": n}, {"n": -n}], "job", _request(n), 0, 0.0)
            if n % 100 == 0:
                time.sleep(0.002)  # let the writer's linger run out now and then
        feed.flush()
        assert (feed.written, feed.not_written, feed.invalid) == (6000, 0, 0)
    finally:
        sys.setswitchinterval(switch)
        feed.close()
    stored = [orjson.loads(r["item"])["n"] for r in rows(tmp_path / "items.db", "items")]
    assert sorted(stored) == sorted([*range(3000), *(-n for n in range(3000))])
