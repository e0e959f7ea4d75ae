"""The Redis frontier's keys and scripts: crawl prefixes that cannot collide, every script's
source found (as package data) and accepted by a real Redis, the crawl check in each script
that changes a crawl."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import redis

from crawler.errors import ConfigError
from crawler.frontier.redis import RedisFrontier
from crawler.frontier.redis_lua import LOST, SCRIPTS, Keys, crawl_prefix, parse_stats, source

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
async def test_names_that_could_collide_are_refused(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="crawl_id"):
        RedisFrontier(redis_url, spider_name="s", crawl_id="a:b")
    with pytest.raises(ConfigError, match="spider name"):
        RedisFrontier(redis_url, spider_name="s*")
    assert crawl_prefix("books") == "crawler:books::"
    for bad in ("a b", "a?", "[a]", "a\\b"):
        with pytest.raises(ConfigError, match="cannot be used in a Redis key prefix"):
            crawl_prefix("books", bad)


def test_keys_of_a_crawl_share_its_prefix() -> None:
    k = Keys.for_prefix(crawl_prefix("books", "nightly"))
    assert k.seen == "crawler:books:nightly:seen"
    assert all(getattr(k, name).startswith(k.prefix) for name in Keys.__slots__)


def test_parse_stats_reads_integers_and_floats() -> None:
    assert parse_stats({b"requests": b"12", b"bytes": b"10.5"}) == {"requests": 12, "bytes": 10.5}


def test_every_lua_file_is_a_script_or_a_prelude_and_ships_in_the_wheel() -> None:
    lua = PROJECT_ROOT / "crawler" / "frontier" / "lua"
    files = {p.stem for p in lua.glob("*.lua")}
    used = set(SCRIPTS) | {part for parts in SCRIPTS.values() for part in parts}
    assert files == used
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert "lua/*.lua" in config["tool"]["setuptools"]["package-data"]["crawler.frontier"]


def test_scripts_that_change_a_crawl_check_its_marker() -> None:
    # Every script but the ones that run before a worker joined (open), that only add to
    # the stats record, or that guard item keys refuses to run on a vanished crawl.
    for name in set(SCRIPTS) - {"open", "merge_stats", "claim_item"}:
        assert f"redis.error_reply('{LOST} " in source(name), name


@pytest.mark.redis
def test_redis_compiles_every_script(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for name in SCRIPTS:
            sha = client.script_load(source(name))
            assert client.script_exists(sha) == [True], name
    finally:
        client.close()
