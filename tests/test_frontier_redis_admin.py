"""The ``crawler frontier`` commands' functions against a real Redis: a crawl's status, the
crawls a database holds, purging one crawl and nothing else, failing at once without Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crawler.errors import ConfigError
from crawler.frontier.redis_admin import frontier_crawls, frontier_purge, frontier_status
from crawler.frontier.redis_lua import crawl_prefix
from crawler.http import Request

from .redis_util import free_port

if TYPE_CHECKING:
    from .redis_util import RedisCrawl

pytestmark = pytest.mark.redis


async def test_status_and_purge_touch_only_their_crawl(redis_crawl: RedisCrawl) -> None:
    a = await redis_crawl.frontier()
    await a.add([Request(f"http://h/{i}") for i in range(5)])
    leased = await a.lease(2)
    await a.ack(leased[0])
    status = await frontier_status(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
    assert {k: status[k] for k in ("pending", "delayed", "leased", "done", "dead_lettered",
                                   "seen", "workers_alive", "finished")} == {
        "pending": 3, "delayed": 0, "leased": 1, "done": 1, "dead_lettered": 0, "seen": 5,
        "workers_alive": 1, "finished": False}
    (worker,) = status["workers"]
    assert worker["id"] == a.worker_id and worker["state"] == "alive" and worker["leases"] == 1
    assert worker["last_heartbeat_age"] < 5
    assert (redis_crawl.spider, redis_crawl.crawl_id) in await frontier_crawls(redis_crawl.url)

    # Neighbours: a crawl whose id extends this one's, the same id of another spider, and
    # keys outside the crawler's prefix. Purge must leave them all.
    client = redis_crawl.client()
    others = [crawl_prefix(redis_crawl.spider, redis_crawl.crawl_id + "x") + "pending",
              crawl_prefix(redis_crawl.spider + "x", redis_crawl.crawl_id) + "pending",
              f"other:{redis_crawl.crawl_id}:pending"]
    try:
        for key in others:
            client.set(key, "1")
        deleted = await frontier_purge(redis_crawl.url, redis_crawl.spider, redis_crawl.crawl_id)
        assert deleted >= 8
        assert client.keys(redis_crawl.key("*")) == []
        assert all(client.exists(key) for key in others)
    finally:
        client.delete(*others)
        client.close()
    await a.close()  # after purge: a stopping worker writes only its own worker entry


async def test_admin_fails_at_once_when_redis_is_away() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        await frontier_status(url, "books")
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        await frontier_purge(url, "books")
