"""The connection every Redis frontier call goes through: one redis-py asyncio client, and
:meth:`RedisConnection.call`, which waits out outages with exponential backoff instead of
failing (see "Guarantees" in :mod:`crawler.frontier.redis`)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

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

    async def aclose(self) -> None:
        await self.client.aclose()
