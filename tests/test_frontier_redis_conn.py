"""The Redis connection every frontier call goes through: it waits out an outage with one
warning and goes on when Redis answers; errors that waiting cannot fix are raised at once."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest
from redis import exceptions as rexc

from crawler.errors import ConfigError
from crawler.frontier.redis_conn import RedisConnection, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from .redis_util import RedisServer


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://user:secret@h/0") == "redis://user:***@h/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_an_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        RedisConnection("http://h/0")


@pytest.mark.redis
async def test_call_waits_for_redis_and_warns_once(
    redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="crawler.frontier.redis_conn")
    server = redis_server()  # a free port, nothing listening yet
    conn = RedisConnection(server.url())
    try:
        calling = asyncio.create_task(conn.call("ping", conn.client.ping))
        await asyncio.sleep(1.0)  # several retries
        assert not calling.done()
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(20):
            assert await calling is True
    finally:
        await conn.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable during ping" in m for m in messages) == 1
    assert sum("is back" in m for m in messages) == 1


@pytest.mark.redis
async def test_command_errors_are_raised_at_once(redis_url: str) -> None:
    conn = RedisConnection(redis_url)
    try:
        script = conn.script("return redis.error_reply('NOPE not this')")
        with pytest.raises(rexc.ResponseError, match="NOPE"):
            async with asyncio.timeout(5):
                await conn.call("script", script)
    finally:
        await conn.aclose()
