"""The CSV exporter: cells in JSON mode, header rows, append, torn-record repair."""

from __future__ import annotations

import csv
import json
import logging
from contextlib import closing
from pathlib import Path

import pytest

from crawler.csvexporter import CsvExporter
from crawler.exporters import open_exporter

from .test_exporters import ITEMS, json_mode


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    exporter = open_exporter(str(path), overwrite=True)
    exporter.write(ITEMS)
    exporter.close()
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(ITEMS[0])  # header from the first item's keys
    first = rows[0]
    assert first["title"] == ITEMS[0]["title"]
    assert first["price"] == "51.77"
    assert first["stock"] == "22"
    assert first["rating"] == "4.5"
    assert first["in_stock"] == "true"
    assert first["upc"] == ""
    assert json.loads(first["tags"]) == ITEMS[0]["tags"]
    assert json.loads(first["meta"]) == ITEMS[0]["meta"]
    assert first["seen"] == "2024-05-17T12:30:01.250000Z"
    assert first["day"] == "2024-05-17"
    assert first["id"] == "12345678-1234-5678-1234-567812345678"
    assert first["color"] == "red"
    assert rows[1]["title"] == "plain, with a comma"
    assert rows[1]["price"] == "0.10"
    # Every cell is the JSON-mode value, unquoted when it is a string.
    for row, item in zip(rows, ITEMS, strict=True):
        for key, value in json_mode(item).items():
            cell = row[key]
            if value is None:
                assert cell == ""
            elif isinstance(value, str):
                assert cell == value
            else:
                assert json.loads(cell) == value


def test_csv_fields_unknown_keys_and_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "items.csv"
    with caplog.at_level(logging.WARNING, logger="crawler.exporters"):
        exporter = open_exporter(str(path), overwrite=True, fields=["b", "a"])
        assert path.read_bytes() == b"b,a\r\n"  # header even before any item
        exporter.write([{"a": 1, "extra": 2}, {"b": "x", "extra": 3}, {"extra": 4}])
        exporter.close()
    with path.open(newline="") as f:
        assert list(csv.reader(f)) == [["b", "a"], ["", "1"], ["x", ""], ["", ""]]
    assert sum("'extra'" in r.getMessage() for r in caplog.records) == 1


def test_csv_append_reuses_header(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    with closing(open_exporter(str(path), overwrite=True)) as exporter:
        exporter.write([{"a": 1, "b": 2}])
    # Different key order and explicit fields: the file's header wins, no second header.
    exporter = open_exporter(str(path), overwrite=False, fields=["b", "a", "c"])
    assert isinstance(exporter, CsvExporter) and exporter.fields == ["a", "b"]
    exporter.write([{"b": 4, "a": 3}])
    exporter.close()
    with path.open(newline="") as f:
        assert list(csv.reader(f)) == [["a", "b"], ["1", "2"], ["3", "4"]]


def test_torn_csv_record_cut_on_append(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    with closing(open_exporter(str(path), overwrite=True)) as exporter:
        exporter.write([{"a": "x", "b": "multi\nline"}, {"a": "y", "b": "z"}])
    whole = path.read_bytes()
    # Torn inside a quoted cell, right after the newline it contains: the file ends with
    # "\n" but the record is not whole.
    path.write_bytes(whole + b'w,"two\n')
    with closing(open_exporter(str(path), overwrite=False)) as exporter:
        exporter.write([{"a": "v", "b": "ok"}])
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["a", "b"], ["x", "multi\nline"], ["y", "z"], ["v", "ok"]]


def test_torn_csv_header_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(b"a,b")
    with closing(open_exporter(str(path), overwrite=False)) as exporter:
        exporter.write([{"c": 1}])
    assert path.read_bytes() == b"c\r\n1\r\n"
