"""The ``crawler frontier`` commands' side of a shared crawl: its status, the crawls a Redis
database holds, and purging one. One-off calls that fail at once when Redis is away, unlike a
worker's (:class:`~crawler.frontier.redis_conn.RedisConnection` retries)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis

from ..errors import ConfigError
from .redis_conn import FATAL, RETRYABLE, RedisConnection
from .redis_lua import Keys, crawl_prefix, parse_stats

__all__ = ["frontier_crawls", "frontier_purge", "frontier_status"]

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _admin(url: str) -> AsyncIterator[aioredis.Redis]:
    """A client for a one-off command: fails at once (as ConfigError) when Redis is away."""
    conn = RedisConnection(url, client_name="crawler-admin", timeout=60.0)
    try:
        try:
            async with asyncio.timeout(5):
                await conn.client.ping()
        except (*RETRYABLE, *FATAL) as exc:
            raise ConfigError(f"cannot reach Redis at {conn.display_url}: {exc}") from exc
        yield conn.client
    finally:
        await conn.aclose()


def _match_pattern(prefix: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"


async def frontier_status(url: str, spider_name: str, crawl_id: str = "") -> dict[str, Any]:
    """One crawl's state: ``pending`` (in the hosts' queues), ``delayed``, ``leased``,
    ``done``, ``dead_lettered``, ``seen`` (distinct requests ever enqueued), ``hosts_ready``
    (hosts that may start a request now), ``hosts_waiting`` (for their delay or a pause),
    ``finished``, ``stats`` (the shared record), ``workers`` (each with ``id``, ``state``
    alive/lost/stopped, ``last_heartbeat_age`` in seconds, ``leases``, ``host``, ``pid``),
    ``workers_alive``, and ``dead_letters`` (the first 10: ``id``, ``url``, ``reason``)."""
    k = Keys.for_prefix(crawl_prefix(spider_name, crawl_id))
    async with _admin(url) as client:
        pipe = client.pipeline(transaction=True)
        pipe.time()
        pipe.get(k.npending)
        pipe.zcard(k.delayed)
        pipe.zcard(k.leased)
        pipe.get(k.done)
        pipe.hlen(k.dead)
        pipe.scard(k.seen)
        pipe.hgetall(k.stats)
        pipe.zrange(k.workers, 0, -1, withscores=True)
        pipe.hgetall(k.workerinfo)
        pipe.zrange(k.leased, 0, -1)
        pipe.zcard(k.ready)
        pipe.zcard(k.wait)
        (now_t, pending, delayed, leased, done, dead, seen, stats, workers, infos,
         leased_ids, hosts_ready, hosts_waiting) = await pipe.execute()
        now = now_t[0] + now_t[1] / 1e6
        owners: list[Any] = (
            await client.hmget(k.owner, leased_ids) if leased_ids else []
        )
        dead_sample: list[dict[str, Any]] = []
        scanned: Any = await client.hscan(k.dead, 0, count=10)
        entries: dict[bytes, bytes] = scanned[1]
        for key, value in list(entries.items())[:10]:
            record = orjson.loads(value)
            request = record.get("request") or {}
            dead_sample.append({"id": key.decode(), "url": request.get("url"),
                                "reason": record.get("reason")})
    per_worker: dict[str, int] = {}
    for owner in owners:
        if owner is not None:
            per_worker[owner.decode()] = per_worker.get(owner.decode(), 0) + 1
    worker_rows: list[dict[str, Any]] = []
    for wid_b, beat in workers:
        wid = wid_b.decode()
        info = orjson.loads(infos.get(wid_b, b"{}"))
        age = max(0.0, now - beat)
        if info.get("stopped"):
            state = "stopped"
        elif age <= float(info.get("lease_timeout", 60.0)):
            state = "alive"
        else:
            state = "lost"
        worker_rows.append({
            "id": wid, "state": state, "last_heartbeat_age": round(age, 3),
            "leases": per_worker.get(wid, 0), "host": info.get("host"), "pid": info.get("pid"),
        })
    pending, delayed, leased = int(pending or 0), int(delayed), int(leased)
    return {
        "prefix": k.prefix,
        "pending": pending,
        "delayed": delayed,
        "leased": leased,
        "done": int(done or 0),
        "dead_lettered": int(dead),
        "seen": int(seen),
        "hosts_ready": int(hosts_ready),
        "hosts_waiting": int(hosts_waiting),
        "finished": pending == 0 and delayed == 0 and leased == 0 and int(done or 0) > 0,
        "workers_alive": sum(1 for w in worker_rows if w["state"] == "alive"),
        "workers": worker_rows,
        "dead_letters": dead_sample,
        "stats": parse_stats(stats),
    }


async def frontier_purge(url: str, spider_name: str, crawl_id: str = "") -> int:
    """Delete every key of one crawl (SCAN over its prefix, never KEYS); returns how many.
    Keys of other crawls and other prefixes are never touched. Workers still running on that
    crawl find its marker gone and stop with an error (see "Guarantees")."""
    prefix = crawl_prefix(spider_name, crawl_id)
    deleted = 0
    async with _admin(url) as client:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=_match_pattern(prefix), count=1000):
            if not key.decode(errors="replace").startswith(prefix):
                continue  # defensive: MATCH is a glob, the prefix check is exact
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(await client.unlink(*batch))
    if deleted:
        logger.info("Purged %d keys of crawl %s", deleted, prefix)
    return deleted


async def frontier_crawls(url: str) -> list[tuple[str, str]]:
    """The (spider name, crawl_id) pairs that have keys in this Redis database."""
    found: set[tuple[str, str]] = set()
    async with _admin(url) as client:
        async for key in client.scan_iter(match="crawler:*", count=1000):
            parts = key.decode(errors="replace").split(":", 3)
            if len(parts) == 4:
                found.add((parts[1], parts[2]))
    return sorted(found)
