"""Item-key deduplication: drop items already scraped, in one worker or across a cluster.

Workers sharing a Redis frontier process every request at least once: a worker killed after
writing a request's items but before acknowledging the request leaves it to another worker,
which produces those items again. Two tools remove such repeats:

- :class:`ItemKeyDedup`, an item pipeline, drops an item whose key was already seen: by this
  process, or, once attached to a Redis frontier (:meth:`ItemKeyDedup.attach`), by any *live*
  worker of the crawl. It never drops an item whose first copy may be lost: a pipeline runs
  before the engine writes the item, so a key first claimed by a worker that has since died
  (no heartbeat for ``lease_timeout``) or stopped is taken over and the item kept. Hence
  repeats remain possible after a kill, and
- :func:`merge_outputs` merges the workers' JSON lines files into one, keeping the first item
  of each key: its result holds every item exactly once.

The key of an item (:func:`item_key`): the values of ``fields`` (default ``("url",)``) when the
item has all of them, else the whole item. Either way it is hashed from canonical JSON (sorted
keys, values encoded as the exporters encode them), so a live item and the same item read back
from an output file have the same key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .errors import ConfigError, DropItem
from .exporters import encode_item
from .items import to_dict

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from .frontier.redis_conn import RedisConnection

__all__ = ["ItemKeyDedup", "MergeResult", "item_key", "merge_outputs"]

logger = logging.getLogger(__name__)

DEFAULT_FIELDS: tuple[str, ...] = ("url",)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def item_key(item: Any, fields: Sequence[str] = DEFAULT_FIELDS) -> bytes:
    """A 16-byte key for ``item`` (a dict, model or dataclass): a hash of the ``fields``
    values when the item has every one of them (and ``fields`` is not empty), else of the
    whole item's canonical JSON."""
    data = item if type(item) is dict else to_dict(item)
    # Through the exporters' encoding and back: Decimal, datetime, sets ... become what the
    # output file holds, so keys computed here match keys computed from the output.
    return _key_of_plain(orjson.loads(encode_item(data)), fields)


def _key_of_plain(plain: Any, fields: Sequence[str]) -> bytes:
    """:func:`item_key` of an item already parsed from JSON."""
    if fields and isinstance(plain, dict) and all(f in plain for f in fields):
        payload = b"f" + _canonical([plain[f] for f in fields])
    else:
        payload = b"w" + _canonical(plain)
    return hashlib.blake2b(payload, digest_size=16).digest()


class ItemKeyDedup:
    """Item pipeline that drops items whose key (:func:`item_key`) was already seen.

    Alone, the seen keys live in this process (16 bytes each). :meth:`attach` to the Redis of
    a shared crawl (:class:`~crawler.frontier.redis.RedisFrontier`) shares them across the
    crawl's workers as a Redis hash ``crawler:<spider>:<crawl_id>:items`` (item key -> worker
    that claimed it, removed by ``crawler frontier purge``): an item is dropped when this
    worker or another *live* worker claimed its key first; a key claimed by a worker that
    died or stopped is taken over and the item kept, because that worker may have died
    before writing it.
    Redis outages pause the pipeline like the frontier (retry with backoff, never crash).

    Put it last among the pipelines: a key is claimed when the item passes here, so an item
    dropped by a later pipeline would still hide its later copies.

    ``dropped`` counts the items this instance dropped.
    """

    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS) -> None:
        self.fields = tuple(fields)
        self.dropped = 0
        self._seen: set[bytes] = set()
        self._conn: RedisConnection | None = None
        self._claim: AsyncScript | None = None
        self._keys: list[str] = []
        self._worker = ""
        self._lease_timeout = 60.0

    def attach(self, connection: RedisConnection, prefix: str, *, worker_id: str,
               lease_timeout: float) -> ItemKeyDedup:
        """Share the seen keys with every worker of the crawl whose keys start with ``prefix``
        (:func:`~crawler.frontier.redis_lua.crawl_prefix`), through ``connection``, as worker
        ``worker_id``: a key claimed by another worker is taken over once that worker has not
        heartbeated for ``lease_timeout`` seconds or stopped. Call before the crawl starts;
        returns ``self``."""
        from .frontier.redis_lua import source

        self._conn = connection
        self._claim = connection.script(source("claim_item"))
        self._keys = [prefix + "items", prefix + "workers", prefix + "workerinfo"]
        self._worker = worker_id
        self._lease_timeout = lease_timeout
        return self

    @property
    def shared(self) -> bool:
        """Whether the seen keys are shared through Redis."""
        return self._conn is not None

    async def process_item(self, item: Any, spider: Any) -> Any:
        key = item_key(item, self.fields)
        conn, claim = self._conn, self._claim
        if conn is None or claim is None:
            new = key not in self._seen
            self._seen.add(key)
        else:
            status: int = await conn.call(
                "item dedup", claim, keys=self._keys,
                args=[key, self._worker, self._lease_timeout],
            )
            new = status != 0
        if not new:
            self.dropped += 1
            raise DropItem(f"duplicate item (key: {', '.join(self.fields) or 'whole item'})")
        return item


@dataclass(slots=True)
class MergeResult:
    """What :func:`merge_outputs` did: items ``read``, ``written``, ``duplicates`` dropped and
    ``invalid`` lines skipped (not JSON: e.g. a line torn by a kill)."""

    read: int = 0
    written: int = 0
    duplicates: int = 0
    invalid: int = 0


def merge_outputs(
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    key: Sequence[str] = DEFAULT_FIELDS,
    overwrite: bool = False,
) -> MergeResult:
    """Merge output files (the outputs of several workers) into ``out``, keeping the first
    item of each key (:func:`item_key` with fields ``key``) in the order the files are given.

    Every output format is read and written, chosen by extension (``.jsonl``/``.jl``/
    ``.ndjson``, ``.json``, ``.csv``; ``out`` may be ``"-"``, JSON lines on standard output).
    JSON lines into JSON lines are copied byte for byte; lines that are not JSON (a line torn
    by a kill) are skipped with a warning. CSV cells are read as text. An input of another
    extension, or a ``.json`` file that is not a JSON array of objects, is refused
    (:class:`ConfigError`) before anything is written; so is an existing ``out`` unless
    ``overwrite``. Memory: 16 bytes per distinct item (a ``.json`` input is read whole).
    """
    from .exporters import format_for, open_exporter

    fields = tuple(key)
    result = MergeResult()
    seen: set[bytes] = set()
    inputs = [str(p) for p in paths]
    out = str(out)
    out_format = format_for(out)
    formats = []
    for path in inputs:
        if out != "-" and Path(path).resolve() == Path(out).resolve():
            raise ConfigError(f"output {out} is also an input")
        try:
            formats.append(format_for(path))
        except ConfigError as exc:
            raise ConfigError(f"cannot merge {path}: {exc}") from None
        if not os.path.isfile(path):
            raise ConfigError(f"cannot merge {path}: no such file")
    arrays = {path: _read_array(path) for path, fmt in zip(inputs, formats, strict=True)
              if fmt == "json"}
    if out != "-" and os.path.exists(out) and not overwrite:
        raise ConfigError(f"{out} exists: give -O to replace it")

    def fresh(plain: Any) -> bool:
        result.read += 1
        k = _key_of_plain(plain, fields)
        if k in seen:
            result.duplicates += 1
            return False
        seen.add(k)
        result.written += 1
        return True

    if out_format == "jsonl" and all(fmt == "jsonl" for fmt in formats):
        _merge_lines(inputs, out, result, fresh)
        return result
    exporter = open_exporter(out, overwrite=True)
    batch: list[Any] = []
    try:
        for path, fmt in zip(inputs, formats, strict=True):
            source = (arrays[path] if fmt == "json" else _read_csv(path) if fmt == "csv"
                      else _read_lines(path, result))
            for plain in source:
                if fresh(plain):
                    batch.append(plain)
                    if len(batch) >= 1000:
                        exporter.write(batch)
                        batch = []
        exporter.write(batch)
    finally:
        exporter.close()
    return result


def _read_array(path: str) -> list[Any]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"cannot merge {path}: not valid JSON ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise ConfigError(f"cannot merge {path}: not a JSON array of objects")
    return data


def _read_csv(path: str) -> Iterable[dict[str, str]]:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as f:
        yield from csv.DictReader(f)


def _read_lines(path: str, result: MergeResult) -> Iterable[Any]:
    with open(path, "rb") as src:
        for lineno, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                result.invalid += 1
                logger.warning("%s:%d: not a JSON line, skipped", path, lineno)


def _merge_lines(inputs: list[str], out: str, result: MergeResult,
                 fresh: Any) -> None:
    """JSON lines into JSON lines, each kept line copied byte for byte."""
    sink: BinaryIO = sys.stdout.buffer if out == "-" else open(out, "wb")  # noqa: SIM115
    try:
        for path in inputs:
            with open(path, "rb") as src:
                for lineno, line in enumerate(src, 1):
                    line = line.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    try:
                        plain = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        result.invalid += 1
                        logger.warning("%s:%d: not a JSON line, skipped", path, lineno)
                        continue
                    if fresh(plain):
                        sink.write(line + b"\n")
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
        else:
            sink.flush()
