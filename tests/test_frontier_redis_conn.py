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


# ------------------------------------------------------------------- the script channel


@pytest.mark.redis
async def test_scripts_run_on_a_channel_of_their_own(redis_url: str) -> None:
    """With hiredis, scripts go on a connection of their own and answer as through redis-py:
    nested replies, numbers, nil; a Redis error is raised at once; after SCRIPT FLUSH (a
    restarted Redis) the script is loaded again."""
    await _channel_answers_as_redis_py(redis_url)


@pytest.mark.redis
def test_the_script_channel_on_uvloop(redis_url: str) -> None:
    """The same on uvloop (a crawl's loop when installed), whose transports are its own."""
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_channel_answers_as_redis_py(redis_url))


async def _channel_answers_as_redis_py(redis_url: str) -> None:
    pytest.importorskip("hiredis")
    conn = RedisConnection(redis_url, client_name="crawler:test-channel")
    try:
        assert conn._scripts is not None
        script = conn.script("return {ARGV[1], tonumber(ARGV[2]) * 2, {ARGV[3]}, false}")
        args = [b"\x00bytes\n", 21, 0.5]
        expected = [b"\x00bytes\n", 42, [b"0.5"], None]
        assert await conn.run_script("t", script, args) == expected
        assert await conn.call("t", script, args=args) == expected  # redis-py's answer
        await conn.client.script_flush()
        assert await conn.run_script("t", script, args) == expected
        names = [c["name"] for c in await conn.client.client_list()]
        assert names.count("crawler:test-channel") == 2  # redis-py's and the channel's
        failing = conn.script("return redis.error_reply('NOPE not this')")
        with pytest.raises(rexc.ResponseError, match="NOPE"):
            async with asyncio.timeout(5):
                await conn.run_script("t", failing, [])
        assert await conn.run_script("t", script, args) == expected  # still in step
    finally:
        await conn.aclose()


@pytest.mark.redis
async def test_a_cancelled_script_call_leaves_the_channel_in_step(redis_url: str) -> None:
    pytest.importorskip("hiredis")
    conn = RedisConnection(redis_url)
    try:
        slow = conn.script("local x = 0 for i = 1, 3e7 do x = x + i end return ARGV[1]")
        quick = conn.script("return ARGV[1]")
        await conn.run_script("warm", quick, [b"warm"])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await conn.run_script("slow", slow, [b"first"])
        # The slow call's reply comes first on the connection: it is dropped, not handed on.
        assert await conn.run_script("quick", quick, [b"second"]) == b"second"
    finally:
        await conn.aclose()


@pytest.mark.redis
async def test_the_channel_comes_back_after_its_connection_is_killed(
    redis_server: Callable[..., RedisServer],
) -> None:
    """With a password and a database: a killed connection is opened again, authenticated,
    on the right database, and the call goes on (as through redis-py)."""
    pytest.importorskip("hiredis")
    server = redis_server()
    await asyncio.to_thread(server.start)
    admin = RedisConnection(server.url())
    await admin.client.execute_command("ACL", "SETUSER", "crawler", "on", ">s3cret", "~*",
                                       "+@all")
    await admin.client.config_set("requirepass", "adminpass")  # the default user needs one
    await admin.aclose()
    url = server.url(3).replace("redis://", "redis://crawler:s3cret@")
    conn = RedisConnection(url, client_name="crawler:killed")
    try:
        db = conn.script("redis.call('SET', 'k', ARGV[1]) return redis.call('GET', 'k')")
        assert await conn.run_script("t", db, [b"one"]) == b"one"
        assert await conn.client.client_kill_filter(skipme=True) == 1  # the channel's
        async with asyncio.timeout(10):
            assert await conn.run_script("t", db, [b"two"]) == b"two"
        assert await conn.client.get("k") == b"two"  # database 3, where redis-py looks
        wrong = RedisConnection(url.replace("s3cret", "nope"))
        with pytest.raises(rexc.AuthenticationError):
            await wrong.run_script("t", db, [b"x"])
        await wrong.aclose()
    finally:
        await conn.aclose()
