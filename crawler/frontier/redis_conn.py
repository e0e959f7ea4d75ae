"""The connection every Redis frontier call goes through: one redis-py asyncio client, and
:meth:`RedisConnection.call`, which waits out outages with exponential backoff instead of
failing (see "Guarantees" in :mod:`crawler.frontier.redis`).

The frontier's scripts (a busy worker runs thousands: its leases and acks) go through
:meth:`RedisConnection.run_script`, which, with hiredis installed (the ``speed`` extra) and a
``redis://`` or ``unix://`` URL, writes EVALSHA on a connection of its own and reads the
replies with hiredis: redis-py's client spends about 90 µs of CPU per call more than that on
the bench machine (its pool, retry wrapper and stream reader), a few percent of a Redis
worker's CPU. Everything else, and ``rediss://``, is redis-py's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from yarl import URL

from ..errors import ConfigError

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["FATAL", "RETRYABLE", "RedisConnection", "redact_url"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Failures that mean "Redis is not reachable right now": paused and retried, never raised.
RETRYABLE: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,  # includes BusyLoadingError (Redis loading its AOF after a restart)
    rexc.TimeoutError,
    rexc.TryAgainError,
    rexc.ReadOnlyError,  # a failover in progress: the old primary is now a replica
    OSError,  # includes TimeoutError: a call that outlived RedisConnection.timeout
)
#: Subclasses of ConnectionError that no amount of waiting fixes.
FATAL: tuple[type[BaseException], ...] = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
)
_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0
#: Seconds one Redis call may take before it counts as an outage (scripts take milliseconds).
_CALL_TIMEOUT = 10.0


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<invalid URL>"
    return str(parsed.with_password("***")) if parsed.password else url


class RedisConnection:
    """One redis-py asyncio client and the retry wrapper every call goes through.

    :meth:`call` never raises for an unreachable Redis: it logs one warning per outage, sleeps
    with exponential backoff (0.1 s doubling up to 5 s, with jitter) and tries again until
    Redis answers, then logs that it is back. Authentication errors and command errors are
    raised at once (waiting does not fix them).
    """

    def __init__(
        self, url: str, *, client_name: str | None = None, timeout: float = _CALL_TIMEOUT
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self.timeout = timeout
        try:
            self.client: aioredis.Redis = aioredis.Redis.from_url(
                url,
                decode_responses=False,
                # No socket_timeout: with one, redis-py sends through asyncio.wait_for, which
                # on Python 3.11 can swallow a task's cancellation (the task then runs on and
                # a TaskGroup never finishes). :meth:`call` puts its own asyncio.timeout
                # around each call instead.
                socket_timeout=None,
                socket_connect_timeout=5,
                # One quick internal retry covers a pooled connection that died since its
                # last use (e.g. after a Redis restart); longer outages are :meth:`call`'s job.
                retry=Retry(NoBackoff(), 1),
                client_name=client_name,
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {self.display_url!r}: {exc}") from exc
        self._outage_since: float | None = None
        self._scripts = _ScriptChannel.of(self.client, client_name)

    def script(self, source: str) -> AsyncScript:
        """A Lua script bound to this client; reloaded automatically after NOSCRIPT."""
        return self.client.register_script(source)

    async def call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any,
                   **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, retried until Redis answers (see the class doc)."""
        delay = _BACKOFF_START
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    result = await fn(*args, **kwargs)
            except FATAL:
                raise
            except RETRYABLE as exc:
                if self._scripts is not None:
                    # A call that timed out may sit on a connection that will never answer
                    # (a server gone without closing it): the next call opens a new one.
                    self._scripts.close()
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    logger.warning(
                        "Redis at %s unreachable during %s (%s: %s): pausing, retrying with "
                        "backoff until it answers", self.display_url, what,
                        type(exc).__name__, exc,
                    )
                await asyncio.sleep(delay * random.uniform(0.75, 1.0))
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if self._outage_since is not None:
                logger.warning("Redis at %s is back after %.1f s: continuing",
                               self.display_url, time.monotonic() - self._outage_since)
                self._outage_since = None
            return result

    async def run_script(self, what: str, script: AsyncScript, args: Sequence[Any]) -> Any:
        """``script`` (without keys) on ``args``, through :meth:`call`: on this connection's
        own script channel when it has one (see the module doc), else redis-py's."""
        channel = self._scripts
        if channel is None:
            return await self.call(what, script, args=args)
        return await self.call(what, channel.evalsha, script, args)

    async def aclose(self) -> None:
        if self._scripts is not None:
            self._scripts.close()
        await self.client.aclose()


class _Replies(asyncio.Protocol):
    """The replies of one connection, in order, to the futures of the commands written."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while (reply := reader.gets()) is not False:
            if not waiting:  # nothing asked for it: the stream is not what this expects
                self._fail(rexc.ConnectionError("Redis sent a reply nobody asked for"))
                return
            future = waiting.popleft()
            if not future.done():  # a caller that gave up (cancelled) still had its reply
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(rexc.ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise rexc.ConnectionError("connection to Redis lost")
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(command)
        return future


class _ScriptChannel:
    """EVALSHA on one connection of its own (see the module doc): commands written as RESP
    with hiredis, replies read by hiredis in order; opened on first use and again after it
    was lost. A caller that is cancelled while its call is on the way leaves its reply to be
    read and dropped, so the next caller gets its own."""

    def __init__(self, hiredis: Any, kwargs: dict[str, Any], client_name: str | None) -> None:
        self._hiredis = hiredis
        self._path: str | None = kwargs.get("path")
        self._host: str = kwargs.get("host", "localhost")
        self._port: int = int(kwargs.get("port", 6379))
        self._connect_timeout = kwargs.get("socket_connect_timeout") or 5
        hello: list[tuple[Any, ...]] = []
        password, username = kwargs.get("password"), kwargs.get("username")
        if password is not None:
            hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if kwargs.get("db"):
            hello.append(("SELECT", int(kwargs["db"])))
        if client_name:
            hello.append(("CLIENT", "SETNAME", client_name))
        self._hello = hello
        self._replies: _Replies | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def of(cls, client: aioredis.Redis, client_name: str | None) -> _ScriptChannel | None:
        """The channel for ``client``'s server; None without hiredis, or for a connection
        this channel does not make (TLS, or a class of the caller's)."""
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection

        try:
            import hiredis
        except ImportError:
            return None
        pool = client.connection_pool
        if pool.connection_class not in (Connection, UnixDomainSocketConnection):
            return None
        return cls(hiredis, dict(pool.connection_kwargs), client_name)

    def _pack(self, *parts: Any) -> bytes:
        return bytes(self._hiredis.pack_command(tuple(
            repr(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else p
            for p in parts)))

    async def _open(self) -> _Replies:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            replies = self._replies
            if replies is not None and replies.lost is None:
                return replies
            loop = asyncio.get_running_loop()
            made = _Replies(self._hiredis.Reader(replyError=rexc.ResponseError))
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    await loop.create_unix_connection(lambda: made, self._path)
                else:
                    await loop.create_connection(lambda: made, self._host, self._port)
                answers = [made.send(self._pack(*command)) for command in self._hello]
                for command, answer in zip(self._hello, answers, strict=True):
                    reply = await answer
                    if isinstance(reply, rexc.ResponseError):
                        made._fail(rexc.ConnectionError("closed after a refused hello"))
                        kind = (rexc.AuthenticationError if command[0] == "AUTH"
                                else rexc.ResponseError)
                        raise kind(str(reply))
            self._replies = made
            return made

    async def evalsha(self, script: AsyncScript, args: Sequence[Any]) -> Any:
        """``script`` on ``args`` (no keys); loaded first when Redis lost its script cache
        (NOSCRIPT), as redis-py's Script does. A Redis error is raised as redis-py raises it
        (ResponseError), a lost connection as ConnectionError."""
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._open()
        command = self._pack("EVALSHA", script.sha, 0, *args)
        reply = await replies.send(command)
        if isinstance(reply, rexc.ResponseError) and str(reply).startswith("NOSCRIPT"):
            loaded = await replies.send(self._pack("SCRIPT", "LOAD", script.script))
            if isinstance(loaded, rexc.ResponseError):
                raise loaded
            reply = await replies.send(command)
        if isinstance(reply, rexc.ResponseError):
            raise reply
        return reply

    def close(self) -> None:
        if self._replies is not None and self._replies.transport is not None:
            self._replies.transport.close()
        self._replies = None
