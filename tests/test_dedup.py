"""Item-key dedup: in one process, shared by the live workers of a Redis crawl (a dead
worker's keys taken over), the key of an item read back from an output, merging outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from crawler.dedup import ItemKeyDedup, item_key, merge_outputs
from crawler.errors import ConfigError, DropItem
from crawler.frontier.redis import RedisFrontier

if TYPE_CHECKING:
    from .redis_util import RedisCrawl


def shared(frontier: RedisFrontier) -> ItemKeyDedup:
    """An ItemKeyDedup shared through ``frontier``'s crawl, as that worker (as the runner
    attaches it)."""
    return ItemKeyDedup().attach(frontier.connection, frontier.prefix,
                                 worker_id=frontier.worker_id,
                                 lease_timeout=frontier.lease_timeout)


async def test_item_dedup_in_process() -> None:
    dedup = ItemKeyDedup()
    assert await dedup.process_item({"url": "http://h/1", "n": 1}, None)
    with pytest.raises(DropItem):
        await dedup.process_item({"url": "http://h/1", "n": 2}, None)
    # No url field: the whole item is the key.
    await dedup.process_item({"name": "a", "n": 1}, None)
    await dedup.process_item({"n": 1, "name": "b"}, None)
    with pytest.raises(DropItem):
        await dedup.process_item({"n": 1, "name": "a"}, None)
    assert dedup.dropped == 2


@pytest.mark.redis
async def test_item_dedup_shared_across_live_workers(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier(lease_timeout=0.5)
    b = await redis_crawl.frontier(lease_timeout=0.5)
    da, db = shared(a), shared(b)
    item = {"url": "http://h/item", "title": "t"}
    await da.process_item(item, None)
    with pytest.raises(DropItem):
        await db.process_item(dict(item), None)  # A is alive: it writes the first copy
    with pytest.raises(DropItem):
        await da.process_item(dict(item), None)
    # A dies (no more heartbeats): it may have died before writing the item, so B keeps it.
    await a.close()
    assert await db.process_item(dict(item), None) == item
    with pytest.raises(DropItem):
        await db.process_item(dict(item), None)  # now B owns the key


def test_item_key_matches_between_live_and_written_items(tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from crawler.exporters import encode_item

    live = {"price": Decimal("1.50"), "at": datetime(2024, 1, 2, tzinfo=UTC), "tags": ["x"]}
    assert item_key(live) == item_key(orjson.loads(encode_item(live)))
    assert item_key({"url": "u", "a": 1}) == item_key({"a": 2, "url": "u"})
    assert item_key({"url": "u"}, fields=("url", "id")) != item_key({"url": "u", "id": 1},
                                                                     fields=("url", "id"))


def test_merge_outputs(tmp_path: Path) -> None:
    w1 = tmp_path / "w1.jsonl"
    w2 = tmp_path / "w2.jsonl"
    w1.write_bytes(b'{"url":"u1","v":1}\n{"url":"u2","v":1}\n{"url":"u3"')  # torn tail
    w2.write_bytes(b'{"url":"u2","v":2}\n{"url":"u3","v":1}\n\n{"name":"x"}\n{"name":"x"}\n')
    out = tmp_path / "all.jsonl"
    result = merge_outputs([w1, w2], out)
    assert (result.read, result.written, result.duplicates, result.invalid) == (6, 4, 2, 1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines == [{"url": "u1", "v": 1}, {"url": "u2", "v": 1}, {"url": "u3", "v": 1},
                     {"name": "x"}]
    with pytest.raises(ConfigError, match="exists"):
        merge_outputs([w1], out)
    assert merge_outputs([w1, w2], out, key=(), overwrite=True).written == 5

