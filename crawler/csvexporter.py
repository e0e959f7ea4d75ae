"""The CSV exporter (RFC 4180, a header row) and the repair of a torn last CSV record.

The shared contract and the file underneath are in :mod:`crawler.exporters`;
:func:`crawler.exporters.open_exporter` returns a :class:`CsvExporter` for a ``.csv`` path.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import orjson

from .exporters import CHUNK, BaseExporter, Sink, encode_item, ensure_parent

__all__ = ["CsvExporter"]

logger = logging.getLogger("crawler.exporters")  # one logger for every output format


def _cell(value: Any) -> str:
    """A CSV cell: strings as they are, ``None`` empty, everything else its JSON text with the
    quotes of a JSON string removed (``Decimal('1.50')`` → ``1.50``, ``True`` → ``true``,
    lists and dicts as JSON)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    encoded = encode_item(value)
    if encoded[:1] == b'"':
        decoded: str = orjson.loads(encoded)
        return decoded
    return encoded.decode("utf-8")


def _csv_complete_length(path: str) -> int:
    """Length of the longest prefix of a CSV file made of whole records.

    A newline ends a record only outside quotes, that is when the number of ``"`` before it is
    even (an escaped quote is two quotes, so parity still works). One pass counts the quotes,
    a second pass walks back from the end to the last newline with even parity.
    """
    with open(path, "rb", buffering=0) as f:
        total_quotes = 0
        size = 0
        while chunk := f.read(CHUNK):
            total_quotes += chunk.count(b'"')
            size += len(chunk)
        end = size
        quotes_after = 0  # quotes in [end, size)
        while end > 0:
            start = max(0, end - CHUNK)
            f.seek(start)
            chunk = f.read(end - start)
            pos = len(chunk)
            while (idx := chunk.rfind(b"\n", 0, pos)) >= 0:
                quotes_after += chunk.count(b'"', idx + 1, pos)
                if (total_quotes - quotes_after) % 2 == 0:
                    return start + idx + 1
                pos = idx
            quotes_after += chunk.count(b'"', 0, pos)
            end = start
        return 0


class CsvExporter(BaseExporter):
    """CSV (RFC 4180, ``\\r\\n`` line ends, UTF-8) with a header row.

    The columns are ``fields`` when given, else the first item's declared fields (a
    Scrapy-style item's) or keys. Keys outside them are ignored (one warning per key),
    missing ones give empty cells. Cells are described in
    :func:`_cell`. Appending to an existing CSV cuts a torn last record, then reuses the
    file's header row (it wins over ``fields``) and writes no new one.
    """

    __slots__ = ("_encoding", "_fields", "_header_written", "_warned_keys")

    def __init__(self, path: str, *, overwrite: bool, fsync: bool = False,
                 fields: Sequence[str] | None = None, encoding: str = "utf-8") -> None:
        self._encoding = encoding
        ensure_parent(path)
        existing: list[str] | None = None
        if not overwrite and os.path.exists(path):
            existing = self._repair_and_read_header(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_APPEND)
        super().__init__(path, Sink.open_file(path, flags, fsync=fsync))
        self._warned_keys: set[str] = set()
        self._header_written = existing is not None
        if existing is not None:
            if fields is not None and list(fields) != existing:
                logger.warning("%s already has the columns %s; ignoring fields=%s",
                               path, existing, list(fields))
            self._fields: list[str] | None = existing
        else:
            self._fields = list(fields) if fields is not None else None
            if self._fields is not None:
                # Known columns: write the header now, so a crawl with no items still gives a
                # well-formed CSV.
                self._sink.append(self._rows([], header=True))
                self._header_written = True

    @staticmethod
    def _repair_and_read_header(path: str) -> list[str] | None:
        """Cut a torn tail off an existing CSV; its header, or None when it is empty."""
        size = os.path.getsize(path)
        keep = _csv_complete_length(path) if size else 0
        if keep != size:
            with open(path, "r+b", buffering=0) as f:
                f.truncate(keep)
            logger.warning("%s did not end with a whole CSV record: cut %d bytes before "
                           "appending", path, size - keep)
        if keep == 0:
            return None
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
        return header or None

    @property
    def fields(self) -> list[str] | None:
        """The columns, once known."""
        return self._fields

    def _rows(self, items: Sequence[Mapping[str, Any]], *, header: bool) -> bytes:
        fields = self._fields or []
        buf = io.StringIO()
        writer = csv.writer(buf)
        if header:
            writer.writerow(fields)
        known = set(fields)
        for item in items:
            for key in item:
                if key not in known and key not in self._warned_keys:
                    self._warned_keys.add(key)
                    logger.warning("%s: ignoring key %r, not one of the CSV columns %s",
                                   self.path, key, fields)
            writer.writerow([_cell(item.get(name)) for name in fields])
        return buf.getvalue().encode(self._encoding, "replace")

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        if self._fields is None:
            # A Scrapy-style item knows its declared fields: they are the columns.
            first = items[0]
            self._fields = [str(key) for key in getattr(first, "declared_fields", None) or first]
        data = self._rows(items, header=not self._header_written)
        good = self._sink.position
        try:
            self._sink.append(data)
        except OSError:
            self._sink.cut_back(good)  # a full disk: back to the last whole record
            raise
        self._header_written = True
