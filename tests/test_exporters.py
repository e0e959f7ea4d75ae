"""Exporters: each format round-trips, append and overwrite, torn-tail repair, kill safety."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from contextlib import closing
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest

import crawler
from crawler.errors import ConfigError
from crawler.exporters import (
    InvalidItemWriter,
    encode_item,
    format_for,
    invalid_path_for,
    open_exporter,
    reset_type_warnings,
)


class Color(Enum):
    RED = "red"


ITEMS: list[dict[str, Any]] = [
    {
        "title": "Ça coûte 10 € — 東京 🚀",
        "price": Decimal("51.77"),
        "stock": 22,
        "rating": 4.5,
        "in_stock": True,
        "upc": None,
        "tags": ["a", "b\n\"quoted\""],
        "meta": {"nested": {"x": 1}, "list": [1, 2.5, None]},
        "seen": dt.datetime(2024, 5, 17, 12, 30, 1, 250000, tzinfo=dt.UTC),
        "day": dt.date(2024, 5, 17),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "color": Color.RED,
        "took": dt.timedelta(minutes=1, seconds=30),
    },
    {
        "title": "plain, with a comma",
        "price": Decimal("0.10"),
        "stock": 0,
        "rating": 1.0,
        "in_stock": False,
        "upc": "abc",
        "tags": [],
        "meta": {},
        "seen": dt.datetime(2024, 1, 1),
        "day": dt.date(2000, 2, 29),
        "id": uuid.UUID("00000000-0000-0000-0000-000000000001"),
        "color": Color.RED,
        "took": dt.timedelta(0),
    },
]


def json_mode(item: Any) -> Any:
    """The reference encoding: what pydantic's JSON mode makes of the item."""
    return json.loads(pydantic.TypeAdapter(Any).dump_json(item))


def read_jsonl(path: Path) -> list[Any]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


# -- formats and paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("a.jsonl", "jsonl"), ("a.jl", "jsonl"), ("x/a.NDJSON", "jsonl"), ("-", "jsonl"),
     ("a.json", "json"), ("a.CSV", "csv")],
)
def test_format_for(path: str, fmt: str) -> None:
    assert format_for(path) == fmt


@pytest.mark.parametrize("path", ["items.xml", "items", "items.jsonl.gz"])
def test_format_for_unknown_extension_lists_supported(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        format_for(path)
    message = str(info.value)
    assert path in message
    for ext in (".jsonl", ".jl", ".ndjson", ".json", ".csv"):
        assert ext in message


def test_invalid_path_for() -> None:
    assert invalid_path_for("out/items.jsonl") == "out/items.jsonl.invalid.jsonl"
    assert invalid_path_for("items.csv") != invalid_path_for("items.json")
    assert invalid_path_for("-") == "invalid.jsonl"


def test_encoding_matches_pydantic_json_mode() -> None:
    for item in ITEMS:
        assert json.loads(encode_item(item)) == json_mode(item)
    assert json.loads(encode_item({"n": 2**70})) == {"n": 2**70}
    assert json.loads(encode_item({1: "int key"})) == {"1": "int key"}


def test_unknown_type_written_as_str_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    with caplog.at_level(logging.WARNING, logger="crawler.exporters"):
        assert json.loads(encode_item({"a": Odd(), "b": Odd()})) == {"a": "odd!", "b": "odd!"}
        encode_item({"c": Odd()})
    assert sum("Odd" in r.getMessage() for r in caplog.records) == 1


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["items.jsonl", "items.jl", "items.ndjson"])
def test_jsonl_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    exporter = open_exporter(str(path), overwrite=True)
    exporter.write(ITEMS[:1])
    exporter.write(ITEMS[1:])
    exporter.write([])
    exporter.close()
    assert read_jsonl(path) == [json_mode(item) for item in ITEMS]
    assert exporter.tell() == path.stat().st_size
    # Unicode is written as UTF-8, not \u escapes.
    assert "東京 🚀".encode() in path.read_bytes()


def test_json_array_round_trip_and_valid_after_every_batch(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    exporter = open_exporter(str(path), overwrite=True)
    assert json.loads(path.read_bytes()) == []
    exporter.write(ITEMS[:1])
    assert json.loads(path.read_bytes()) == [json_mode(ITEMS[0])]
    exporter.write(ITEMS[1:] * 3)
    assert exporter.tell() == path.stat().st_size
    exporter.close()
    exporter.close()  # idempotent
    data = path.read_bytes()
    assert json.loads(data) == [json_mode(item) for item in ITEMS + ITEMS[1:] * 2]
    assert data.startswith(b"[\n{") and data.endswith(b"}\n]\n")
    assert data.count(b"},\n{") == 3  # items joined by ",\n"


def test_json_array_empty_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    open_exporter(str(path), overwrite=True).close()
    assert json.loads(path.read_bytes()) == []


def test_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    exporter = open_exporter("-", overwrite=False)
    exporter.write(ITEMS)
    exporter.close()
    out = capsysbinary.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == [json_mode(i) for i in ITEMS]
    assert exporter.tell() == len(out)


def test_creates_missing_folder(tmp_path: Path) -> None:
    for name in ("a.jsonl", "a.json", "a.csv"):
        path = tmp_path / "deep" / "er" / name
        with closing(open_exporter(str(path), overwrite=False)) as exporter:
            exporter.write([{"k": 1}])
        assert path.exists()


def test_write_after_close_raises(tmp_path: Path) -> None:
    exporter = open_exporter(str(tmp_path / "a.jsonl"), overwrite=True)
    exporter.close()
    with pytest.raises(ValueError):
        exporter.write([{"a": 1}])


def test_unopenable_path_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ConfigError, match="cannot open output file"):
        open_exporter(str(tmp_path / "dir.jsonl"), overwrite=False)


# -- append and overwrite ---------------------------------------------------------------------


def test_jsonl_append_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    for n in range(3):
        with closing(open_exporter(str(path), overwrite=False)) as exporter:
            before = path.stat().st_size
            assert exporter.tell() == before  # tell counts what was already there
            exporter.write([{"run": n, "i": i} for i in range(5)])
    assert read_jsonl(path) == [{"run": n, "i": i} for n in range(3) for i in range(5)]
    with closing(open_exporter(str(path), overwrite=True)) as exporter:
        exporter.write([{"run": "new"}])
    assert read_jsonl(path) == [{"run": "new"}]


def test_append_to_json_array_refused(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    with closing(open_exporter(str(path), overwrite=True)) as exporter:
        exporter.write([{"a": 1}])
    with pytest.raises(ConfigError, match="appending to a JSON array would break it; use -O"):
        open_exporter(str(path), overwrite=False)
    assert json.loads(path.read_bytes()) == [{"a": 1}]  # untouched
    with closing(open_exporter(str(path), overwrite=True)) as exporter:
        exporter.write([{"a": 2}])
    assert json.loads(path.read_bytes()) == [{"a": 2}]
    # An empty .json file is not an array yet: appending to it is fine.
    empty = tmp_path / "empty.json"
    empty.touch()
    with closing(open_exporter(str(empty), overwrite=False)) as exporter:
        exporter.write([{"a": 3}])
    assert json.loads(empty.read_bytes()) == [{"a": 3}]


# -- torn tails -------------------------------------------------------------------------------


def test_torn_jsonl_line_cut_on_append(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "items.jsonl"
    torn = b'{"i": 2, "title": "half'
    path.write_bytes(b'{"i": 0}\n{"i": 1}\n' + torn)
    with caplog.at_level(logging.WARNING, logger="crawler.exporters"):
        exporter = open_exporter(str(path), overwrite=False)
    assert any(f"cut {len(torn)} bytes" in r.getMessage() for r in caplog.records)
    assert exporter.tell() == path.stat().st_size == len(b'{"i": 0}\n{"i": 1}\n')
    exporter.write([{"i": 3}])
    exporter.close()
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 3}]


def test_torn_file_without_any_newline_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"x" * (3 << 20))  # several read chunks, no newline at all
    with closing(open_exporter(str(path), overwrite=False)) as exporter:
        exporter.write([{"i": 1}])
    assert read_jsonl(path) == [{"i": 1}]


def test_whole_last_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1}')
    with closing(open_exporter(str(path), overwrite=False)) as exporter:
        exporter.write([{"i": 2}])
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}]


#: Runs a subprocess against the same crawler package as this process.
SUBPROCESS_ENV = {**os.environ,
                  "PYTHONPATH": str(Path(crawler.__file__).resolve().parent.parent)}

WRITER = textwrap.dedent(
    """
    import sys
    from crawler.exporters import open_exporter

    exporter = open_exporter(sys.argv[1], overwrite=True)
    batch = [{"n": n, "text": "é" * 200, "tags": list(range(20))} for n in range(5000)]
    while True:
        exporter.write(batch)
    """
)


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.csv"])
def test_sigkill_while_writing_leaves_whole_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=SUBPROCESS_ENV)
    try:
        deadline = time.monotonic() + 20
        while not (path.exists() and path.stat().st_size > 0):
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer wrote nothing"
            time.sleep(0.01)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    data = path.read_bytes()
    assert len(data) > 1_000_000
    # Python buffered nothing: at worst the kernel stopped the last write() part way, which
    # leaves one torn tail; everything before it is whole.
    body, _, _tail = data.rpartition(b"\n")
    if name.endswith(".jsonl"):
        assert all(orjson.loads(line)["text"] == "é" * 200 for line in body.split(b"\n"))
    # Reopening to append repairs the tail: then every line parses.
    with closing(open_exporter(str(path), overwrite=False)) as exporter:
        exporter.write([{"n": -1, "text": "last", "tags": []}])
    data = path.read_bytes()
    assert data.endswith(b"\n")
    if name.endswith(".jsonl"):
        lines = [orjson.loads(line) for line in data.splitlines()]
        assert lines[-1]["n"] == -1 and len(lines) > 1000
    else:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["n", "text", "tags"]
        assert all(len(row) == 3 for row in rows)
        assert rows[-1] == ["-1", "last", "[]"]
        assert sum(row == ["n", "text", "tags"] for row in rows) == 1


# -- invalid items ----------------------------------------------------------------------------


class Book(pydantic.BaseModel):
    title: str
    price: Decimal


def test_invalid_item_writer(tmp_path: Path) -> None:
    output = tmp_path / "items.jsonl"
    path = Path(invalid_path_for(str(output)))
    writer = InvalidItemWriter(str(path), overwrite=False)
    assert not path.exists()  # created only when needed
    bad = {"title": None, "price": "cheap"}
    with pytest.raises(pydantic.ValidationError) as info:
        Book.model_validate(bad)
    writer.add(bad, info.value.errors(include_url=False), url="http://127.0.0.1/book/1")
    writer.add({"title": "x"}, [{"type": "missing", "loc": ["price"]}])
    writer.close()
    writer.close()
    records = read_jsonl(path)
    assert writer.count == 2
    assert records[0]["item"] == bad
    assert records[0]["url"] == "http://127.0.0.1/book/1"
    assert {tuple(e["loc"]) for e in records[0]["errors"]} == {("title",), ("price",)}
    assert records[1] == {"item": {"title": "x"}, "errors": [{"type": "missing",
                                                               "loc": ["price"]}], "url": None}
    # -O: the previous run's file goes at once; appending keeps it.
    InvalidItemWriter(str(path), overwrite=False).close()
    assert path.exists()
    InvalidItemWriter(str(path), overwrite=True).close()
    assert not path.exists()


def test_exporter_file_is_unbuffered(tmp_path: Path) -> None:
    """Each write is visible to another reader at once: nothing sits in a Python buffer."""
    for name in ("a.jsonl", "a.csv", "a.json"):
        path = tmp_path / name
        exporter = open_exporter(str(path), overwrite=True)
        exporter.write([{"k": "v"}])
        assert b"v" in path.read_bytes()
        assert os.path.getsize(path) == exporter.tell()
        exporter.close()


def test_unknown_type_warned_again_in_the_next_crawl(caplog: pytest.LogCaptureFixture) -> None:
    class Odder:
        def __str__(self) -> str:
            return "odder!"

    def one_crawl() -> None:
        reset_type_warnings()
        encode_item({"a": Odder()})
        encode_item({"b": Odder()})

    with caplog.at_level(logging.WARNING, logger="crawler.exporters"):
        one_crawl()
        one_crawl()
    assert sum("Odder" in r.getMessage() for r in caplog.records) == 2
