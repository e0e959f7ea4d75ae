"""Item exporters: JSON lines, a JSON array, CSV; and the ``.invalid.jsonl`` side file.

This module holds the contract, the item encoding, the file underneath and the JSON
formats; CSV is in :mod:`crawler.csvexporter`, which :func:`open_exporter` loads for a
``.csv`` output. (About 650 lines: the JSON formats share the encoding and the sink
with every other format, so they stay with them.)

The format follows the output path's extension (:func:`format_for`)::

    .jsonl .jl .ndjson   one JSON object per line (UTF-8)
    .json                a JSON array: "[\\n" + items joined by ",\\n" + "\\n]\\n"
    .csv                 a header row, then one row per item
    -                    JSON lines on standard output

Contracts shared by every exporter:

- :meth:`Exporter.write` takes a batch, encodes every item first and then hands the whole
  batch to the OS in one ``write()`` on an unbuffered binary file. Nothing waits in a Python
  buffer, so a process killed between two batches leaves only whole lines.
- A kill *during* that one ``write()`` can still leave a torn last line (the kernel may stop a
  large write part way on SIGKILL). Appending to such a file repairs it first: the torn tail
  is cut back to the last whole line (whole record for CSV) and a warning says how many bytes
  were cut (a last JSON line that lacks only its newline is kept and completed). So a file
  this module has written to always ends in whole lines once reopened.
- A JSON array is rewritten in place so that it is a valid, closed array after *every* batch,
  not only after :meth:`Exporter.close`.
- Values are encoded like pydantic's JSON mode: ``Decimal`` becomes a string, datetimes ISO
  8601 (``Z`` for UTC), ``UUID`` and ``Enum`` their value, sets lists, non-string dict keys
  strings. A value of an unknown type is written as ``str(value)`` (with one warning per type
  and crawl) rather than losing the item.

Writes are blocking file I/O; they land in the page cache and are fast, so the engine calls
them directly. ``fsync=True`` makes :meth:`Exporter.flush` and :meth:`Exporter.close` also
``os.fsync`` the file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from decimal import Decimal
from pathlib import PurePath
from typing import IO, Any, Protocol, Self

import orjson

from .errors import ConfigError, OutputClosed

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Exporter",
    "InvalidItemWriter",
    "JsonArrayExporter",
    "JsonLinesExporter",
    "encode_item",
    "format_for",
    "invalid_path_for",
    "open_exporter",
    "reset_type_warnings",
]

logger = logging.getLogger(__name__)

#: Output file extensions and the format each one selects.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".jl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
}

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
#: Bytes read at a time when a file's tail is repaired.
CHUNK = 1 << 20
# The value types already warned about (written as ``str(value)``), one set per crawl: a
# context variable, so the crawl's tasks and threads share it and the next crawl in the same
# process starts with a fresh one (see :func:`reset_type_warnings`).
_warned_types: ContextVar[set[type] | None] = ContextVar("crawler_warned_types", default=None)


def reset_type_warnings() -> None:
    """Start a fresh set of types warned about, for the crawl that starts in this context.

    The runner calls it once at the start of each crawl, before its tasks exist (they copy the
    context, so they share the set). Without it, the first warning creates the set.
    """
    _warned_types.set(set())


class Exporter(Protocol):
    """Where scraped items go. One exporter per output file, used from one thread."""

    #: The output path as given (``"-"`` for standard output).
    path: str

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Append ``items`` to the output as whole lines, in one OS write. Raises
        ``ValueError`` after :meth:`close`, ``TypeError`` for an item that cannot be encoded
        (then nothing of the batch is written)."""

    def flush(self) -> None:
        """Make written data durable if the exporter was opened with ``fsync=True``
        (nothing is ever buffered in Python, so otherwise there is nothing to do)."""

    def close(self) -> None:
        """Flush and close the file. Idempotent, safe from a ``finally`` on a second Ctrl-C;
        a JSON array is complete and valid after it."""

    def tell(self) -> int:
        """Size in bytes of the output known to be written: the file size for a file (earlier
        content included when appending), the bytes written so far for standard output."""


# -- encoding ---------------------------------------------------------------------------------


def _iso_duration(value: dt.timedelta) -> str:
    """``timedelta`` as an ISO 8601 duration, the way pydantic writes it (``PT1M30S``)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    days = value.days
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or value.microseconds or not (days or hours or minutes):
        secs = f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".")
        time += f"{secs}S"
    return out + (f"T{time}" if time else "")


def _default(obj: Any) -> Any:
    """orjson's hook for the types it does not know (it already does datetime, UUID, Enum,
    dataclasses)."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, dt.timedelta):
        return _iso_duration(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):  # a pydantic model that was not dumped before reaching us
        return dump(mode="json")
    # Losing an item over one odd value is worse than a stringified value: keep it, say so.
    warned = _warned_types.get()
    if warned is None:
        warned = set()
        _warned_types.set(warned)
    if type(obj) not in warned:
        warned.add(type(obj))
        logger.warning("cannot encode a value of type %s as JSON; writing str(value)",
                       type(obj).__qualname__)
    return str(obj)


def encode_item(item: Any) -> bytes:
    """One item as compact UTF-8 JSON, without a trailing newline."""
    try:
        return orjson.dumps(item, default=_default, option=_ORJSON_OPTIONS)
    except TypeError:
        # orjson refuses integers beyond 64 bits without calling ``default``; the stdlib
        # encoder handles them (slower, but this is rare). Anything else fails again below.
        text = json.dumps(item, default=_default, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=True)
        return text.encode("utf-8")


def _other_encoding(encoding: str) -> str | None:
    """None for UTF-8 (nothing to do), else the codec's canonical name; an unknown codec is a
    :class:`~crawler.errors.ConfigError`."""
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown output encoding {encoding!r}") from None
    return None if name == "utf-8" else name


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # a surrogate pair, as JSON spells characters beyond the BMP
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _transcode_json(data: bytes, encoding: str) -> bytes:
    """UTF-8 JSON re-encoded: non-ASCII characters (only ever inside strings) become
    ``\\uXXXX`` escapes, so the text is valid JSON in any ASCII-compatible encoding."""
    text = data.decode("utf-8")
    if not text.isascii():
        text = _NON_ASCII.sub(_escape, text)
    return text.encode(encoding)


def _indented(item: Any, indent: int) -> bytes:
    """One item as indented JSON (the ``indent`` feed option of a ``.json`` array)."""
    plain = orjson.loads(encode_item(item))
    return json.dumps(plain, indent=indent, ensure_ascii=False).encode("utf-8")


# -- paths ------------------------------------------------------------------------------------


def format_for(path: str) -> str:
    """``"jsonl"``, ``"json"`` or ``"csv"`` for an output path (``"-"`` is ``"jsonl"``).

    Raises :class:`~crawler.errors.ConfigError` for an extension not in
    :data:`SUPPORTED_EXTENSIONS`, listing the supported ones.
    """
    if path == "-":
        return "jsonl"
    ext = os.path.splitext(path)[1].lower()
    try:
        return SUPPORTED_EXTENSIONS[ext]
    except KeyError:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        shown = repr(ext) if ext else "no extension"
        raise ConfigError(
            f"cannot tell the output format of {path!r} ({shown}); "
            f"supported extensions: {supported}, or - for JSON lines on stdout"
        ) from None


def invalid_path_for(output_path: str) -> str:
    """Where items that failed validation go: the output path plus ``.invalid.jsonl``
    (``items.jsonl`` → ``items.jsonl.invalid.jsonl``, so ``items.json`` and ``items.csv`` never
    share one). For standard output (``"-"``) it is ``invalid.jsonl`` in the current folder,
    since invalid records must not mix with the items on stdout."""
    if output_path == "-":
        return "invalid.jsonl"
    return output_path + ".invalid.jsonl"


# -- the file underneath ----------------------------------------------------------------------


def ensure_parent(path: str) -> None:
    """Create the folder of ``path`` when it is missing."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


def _repair_jsonl_tail(path: str) -> int:
    """Make ``path`` end in a whole line; returns how many bytes were cut (0 if none).

    A last line without its newline is cut off, unless it parses as a JSON object: that is a
    whole item (a file written by hand, or a write torn exactly before its newline), and it
    only gets the newline it lacks.
    """
    with open(path, "r+b", buffering=0) as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Read backwards in chunks until a newline shows up.
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - CHUNK)
            f.seek(start)
            chunk = f.read(end - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            end = start
        f.seek(keep)
        tail = f.read()
        if tail.lstrip()[:1] == b"{":
            try:
                orjson.loads(tail)
            except orjson.JSONDecodeError:
                pass
            else:
                f.seek(size)
                f.write(b"\n")
                return 0
        f.truncate(keep)
        return size - keep


def _write_all_fd(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write all of ``data``: one syscall in practice; loops only on a short write."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[n:]
        if offset is not None:
            offset += n


def silence_stdout() -> None:
    """Point standard output at /dev/null once its reader went away (``| head -1``), so the
    bytes still buffered and the interpreter's last flush go nowhere instead of raising
    BrokenPipeError at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass


class Sink:
    """An unbuffered binary file (or the binary stdout) with a byte count."""

    __slots__ = ("_closed", "_stdout", "fd", "fsync", "position")

    def __init__(self, fd: int | None, *, fsync: bool, position: int,
                 stdout: IO[bytes] | None = None) -> None:
        self.fd = fd
        self.fsync = fsync
        self.position = position
        self._stdout = stdout
        self._closed = False

    @classmethod
    def open_file(cls, path: str, flags: int, *, fsync: bool) -> Sink:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
        return cls(fd, fsync=fsync, position=os.fstat(fd).st_size)

    @classmethod
    def open_stdout(cls) -> Sink:
        # Resolved now, not at import, so redirection (and test capture) is honoured.
        return cls(None, fsync=False, position=0, stdout=sys.stdout.buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, data: bytes) -> None:
        if self._closed:
            if self.fd is None and self._stdout is None:
                raise OutputClosed("standard output was closed by its reader")
            raise ValueError("write to a closed exporter")
        if self._stdout is not None:
            try:
                self._stdout.write(data)
                self._stdout.flush()
            except BrokenPipeError as exc:
                self._stdout = None
                self._closed = True
                silence_stdout()
                raise OutputClosed("standard output was closed by its reader") from exc
        elif self.fd is not None:
            _write_all_fd(self.fd, data)
        self.position += len(data)

    def write_at(self, offset: int, data: bytes) -> None:
        """Overwrite from ``offset`` (a file opened without O_APPEND); the file then ends at
        ``offset + len(data)`` (only ever used to grow it)."""
        if self._closed:
            raise ValueError("write to a closed exporter")
        if self.fd is None:
            raise ValueError("positional write on standard output")
        _write_all_fd(self.fd, data, offset)
        self.position = max(self.position, offset + len(data))

    def cut_back(self, length: int) -> None:
        """After a failed write: cut the file back to ``length`` bytes (the last good length),
        so no torn line is left behind. Standard output cannot be cut; nothing is done."""
        if self.fd is None or self._closed:
            return
        os.ftruncate(self.fd, length)
        self.position = length

    def flush(self) -> None:
        if self._closed:
            return
        if self._stdout is not None:
            self._stdout.flush()
        elif self.fsync and self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self.fd is not None:
                os.close(self.fd)


class BaseExporter:
    """Shared lifecycle: flush, idempotent close, tell, context manager."""

    __slots__ = ("_sink", "path")

    def __init__(self, path: str, sink: Sink) -> None:
        self.path = path
        self._sink = sink

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()

    def tell(self) -> int:
        return self._sink.position

    @property
    def closed(self) -> bool:
        return self._sink.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


# -- the formats ------------------------------------------------------------------------------


class JsonLinesExporter(BaseExporter):
    """One JSON object per line. In append mode a torn last line is cut off first. A write
    that fails (a full disk) is cut back to the last whole line before the error is raised.
    ``encoding`` other than UTF-8 writes non-ASCII characters as ``\\uXXXX`` escapes."""

    __slots__ = ("_encoding",)

    def __init__(self, path: str, *, overwrite: bool, fsync: bool = False,
                 encoding: str = "utf-8") -> None:
        self._encoding = _other_encoding(encoding)
        if path == "-":
            super().__init__(path, Sink.open_stdout())
            return
        ensure_parent(path)
        if not overwrite and os.path.exists(path):
            cut = _repair_jsonl_tail(path)
            if cut:
                logger.warning("%s did not end with a whole line: cut %d bytes of a torn "
                               "last line before appending", path, cut)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_APPEND)
        super().__init__(path, Sink.open_file(path, flags, fsync=fsync))

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        data = b"\n".join([encode_item(item) for item in items]) + b"\n"
        if self._encoding is not None:
            data = _transcode_json(data, self._encoding)
        good = self._sink.position
        try:
            self._sink.append(data)
        except OSError:
            self._sink.cut_back(good)  # a full disk: no torn line stays behind
            raise


class JsonArrayExporter(BaseExporter):
    """A JSON array, valid after every batch: each write overwrites the closing ``\\n]\\n``
    with ``,\\n`` + the new items + a new closing ``\\n]\\n``, in one ``pwrite``.

    Appending to a non-empty array is refused (see :func:`open_exporter`)."""

    __slots__ = ("_count", "_encoding", "_indent")

    _EMPTY = b"[\n]\n"
    _CLOSE = b"\n]\n"

    def __init__(self, path: str, *, overwrite: bool, fsync: bool = False,
                 encoding: str = "utf-8", indent: int | None = None) -> None:
        self._encoding = _other_encoding(encoding)
        self._indent = indent
        ensure_parent(path)
        if not overwrite and os.path.exists(path) and os.path.getsize(path) > 0:
            raise ConfigError(
                f"cannot append to {path}: appending to a JSON array would break it; "
                "use -O to overwrite"
            )
        sink = Sink.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, fsync=fsync)
        super().__init__(path, sink)
        self._count = 0
        sink.write_at(0, self._EMPTY)

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        if self._indent:
            body = b",\n".join([_indented(item, self._indent) for item in items])
        else:
            body = b",\n".join([encode_item(item) for item in items])
        if self._encoding is not None:
            body = _transcode_json(body, self._encoding)
        good = self._sink.position
        if self._count:
            offset = good - len(self._CLOSE)
            data = b",\n" + body + self._CLOSE
        else:
            offset = len(self._EMPTY) - len(b"]\n")
            data = body + self._CLOSE
        try:
            self._sink.write_at(offset, data)
        except OSError:
            # A full disk part way through: put the closing bracket back where it was and cut
            # the rest, so the file is the valid array it was before this batch. Both fit in
            # space the file already had.
            self._sink.write_at(good - len(self._CLOSE), self._CLOSE)
            self._sink.cut_back(good)
            raise
        self._count += len(items)


def open_exporter(path: str, *, overwrite: bool, fsync: bool = False,
                  fields: Sequence[str] | None = None, fmt: str | None = None,
                  encoding: str = "utf-8", indent: int | None = None) -> Exporter:
    """Open the exporter for ``path``: ``overwrite=True`` for ``-O``, ``False`` for ``-o``.

    The folder is created if missing. ``fields`` fixes the CSV columns (ignored for the JSON
    formats). ``fmt`` overrides the extension; ``encoding`` and ``indent`` (``.json`` only) are
    the feed options. Raises :class:`~crawler.errors.ConfigError` for an unknown extension,
    for ``-o`` onto a non-empty ``.json`` file, and when the file cannot be opened.
    """
    fmt = fmt or format_for(path)
    try:
        if fmt == "jsonl":
            return JsonLinesExporter(path, overwrite=overwrite, fsync=fsync, encoding=encoding)
        if fmt == "json":
            return JsonArrayExporter(path, overwrite=overwrite, fsync=fsync, encoding=encoding,
                                     indent=indent)
        if fmt != "csv":
            raise ConfigError(f"unknown file format {fmt!r} for {path!r} (jsonl, json, csv)")
        from .csvexporter import CsvExporter  # loaded by a CSV output only

        return CsvExporter(path, overwrite=overwrite, fsync=fsync, fields=fields,
                           encoding=encoding)
    except OSError as exc:
        raise ConfigError(f"cannot open output file {path!r}: {exc.strerror or exc}") from exc


class InvalidItemWriter:
    """Writes items that failed validation, as JSON lines ``{"item", "errors", "url"}``.

    The file (normally :func:`invalid_path_for` of the output) is only created when the first
    record arrives, so a clean crawl leaves no empty file. With ``overwrite=True`` (the output
    was opened with ``-O``) a file left by an earlier run is removed at once, so it cannot be
    mistaken for this run's.
    """

    __slots__ = ("_exporter", "_fsync", "count", "path")

    def __init__(self, path: str, *, overwrite: bool, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._exporter: JsonLinesExporter | None = None
        #: Records written by this writer.
        self.count = 0
        if overwrite and path != "-":
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def add(self, item: Any, errors: Sequence[Any], url: str | None = None) -> None:
        """Write one record now. ``errors`` is typically pydantic's
        ``ValidationError.errors(include_url=False)``."""
        self.write([{"item": item, "errors": list(errors), "url": url}])

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Write ready-made records (``{"item": ..., "errors": [...], "url": ...}``)."""
        if not records:
            return
        if self._exporter is None:
            self._exporter = JsonLinesExporter(self.path, overwrite=False, fsync=self._fsync)
        self._exporter.write(records)
        self.count += len(records)

    def flush(self) -> None:
        if self._exporter is not None:
            self._exporter.flush()

    def close(self) -> None:
        if self._exporter is not None:
            self._exporter.close()

    def tell(self) -> int:
        return self._exporter.tell() if self._exporter is not None else 0


class BatchedExporter:
    """Gathers items and hands them to ``exporter`` in batches: one write per ``max_items``
    items or ``max_delay`` seconds, whichever comes first, and on :meth:`flush`/:meth:`close`.

    For crawls whose items need not be on disk before their request is acked (the in-memory
    frontier): a second Ctrl-C still closes it, so the output ends in whole lines.
    """

    def __init__(self, exporter: Exporter, max_items: int = 100, max_delay: float = 1.0) -> None:
        self.exporter = exporter
        self.path = exporter.path
        self._max_items = max_items
        self._max_delay = max_delay
        self._buffer: list[Mapping[str, Any]] = []
        self._last = time.monotonic()

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        self._buffer.extend(items)
        if len(self._buffer) >= self._max_items or time.monotonic() - self._last >= self._max_delay:
            self._write_buffer()

    def _write_buffer(self) -> None:
        self._last = time.monotonic()
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.exporter.write(batch)

    def flush(self) -> None:
        self._write_buffer()
        self.exporter.flush()

    def close(self) -> None:
        try:
            self._write_buffer()
        finally:
            self.exporter.close()

    def tell(self) -> int:
        return self.exporter.tell()
