"""The Redis frontier: one crawl shared by many workers on many machines, nothing lost.

Every worker runs the same spider against the same Redis; together they hold one queue, one
dedup set, one set of per-host limits and one stats record, all under the key prefix
``crawler:<spider>:<crawl_id>:`` (``crawl_id`` may be empty: ``crawler:<spider>::``).

Design: sorted sets and Lua scripts, not Streams
------------------------------------------------
Keys (``P`` is the prefix)::

    P:seq          INCR counter; a request's id is its sequence number, zero-padded to 16 digits
    P:seen         SET of 16-byte request fingerprints (the dedup set)
    P:pending      ZSET id -> -priority; ties are ordered by member, i.e. by id: FIFO
    P:delayed      ZSET id -> ready time (Redis server clock), rescheduled requests
    P:leased       ZSET id -> lease expiry (server clock)
    P:data         HASH id -> the request as versioned JSON (:mod:`.codec`)
    P:score        HASH id -> -priority, only for priorities other than 0
    P:deliveries   HASH id -> times leased without an outcome
    P:owner        HASH id -> worker id of the last lease
    P:done         counter of acknowledged requests
    P:dead         HASH id -> JSON {reason, deliveries, last_worker, at, request}
    P:stats        HASH of shared crawl counters (:meth:`RedisFrontier.merge_stats`)
    P:workers      ZSET worker id -> last heartbeat (server clock)
    P:workerinfo   HASH worker id -> JSON {host, pid, lease_timeout, started, stopped}
    P:seeder       worker id that adds the start requests; P:seeded: set once they all are
    P:items        HASH item key -> worker (:class:`crawler.dedup.ItemKeyDedup`)
    P:gate:<host>:tokens / :last   per-host politeness (:class:`RedisHostGate`)

Why not Streams with consumer groups and XAUTOCLAIM: a stream is one FIFO, so priorities would
need a stream per priority level and a scan over levels on every read; dedup needs a set next to
it anyway and the "seen then XADD" pair would still need a script; delayed retries need a third
structure; and XAUTOCLAIM only hands idle entries to a *reader*, so "nothing pending and nothing
leased" would have to be computed from XPENDING of every group. With sorted sets, every state
change is one Lua script over a handful of keys, so it is atomic on the server:

- ``add``: SADD to the seen set and, only if it was new, INCR + ZADD + HSET. Two workers adding
  the same URL at the same moment enqueue it once.
- ``lease``: move expired leases back to pending (their worker stopped heartbeating), move due
  delayed requests to pending, then ZPOPMIN up to ``limit`` ids (highest priority first, FIFO
  within a priority, across the whole cluster), count a delivery for each and put it in
  ``leased`` with ``expiry = now + lease_timeout``. A request leased more than
  ``max_deliveries`` times without an outcome goes to ``dead`` with its reason instead.
- ``ack``: remove from leased (or pending/delayed if the lease had already expired), count it
  done and enqueue its children with the same dedup step, in one script.
- ``reschedule`` / ``release``: back to delayed / pending, only if this worker still holds the
  lease; the delivery count is given back (a retry or a graceful stop is an outcome, not a
  crash).

Seeding: the first worker to open claims ``P:seeder`` and runs the spider's ``start()``; the
others see :attr:`RedisFrontier.seeded` True and skip it, and do not finish while the seeder is
alive and has not called ``mark_seeded``. If the seeder stops or dies first, the next worker
to open takes the claim over and seeds again (dedup drops what was already added).

Every time is the Redis server's ``TIME``, so workers on machines whose clocks disagree still
agree on expiries and delays. Scripts are redis-py ``Script`` objects: after a Redis restart
(empty script cache) the NOSCRIPT reply makes them load again.

Guarantees
----------
- A request is acknowledged only after the engine wrote its items (``outbox = False``), and a
  dead worker's leases return to pending ``lease_timeout`` seconds after its last heartbeat, so
  every request is processed at least once; a worker killed mid-request causes that request
  (and its items) to be processed at most once more per kill. :class:`crawler.dedup.ItemKeyDedup`
  and :func:`crawler.dedup.merge_outputs` remove the repeated items.
- A worker never deletes shared state when it stops or crashes: leases stay leased (they expire
  back to pending), the queue and the seen set stay. Only :func:`frontier_purge` deletes keys.
- Redis unreachable: every call goes through :meth:`RedisConnection.call`, which logs one
  warning per outage, retries with exponential backoff (0.1 s doubling to 5 s) and continues
  when Redis answers again. A call retried after a lost reply is harmless: ``add`` and ``ack``
  are idempotent through the seen set and the lease state (a ``dont_filter`` request added
  twice is the exception); a lost ``lease`` reply leaves requests leased to this worker, which
  expire back to pending (one extra delivery counted).
- Without persistence (``appendonly``/RDB), a Redis restart loses the crawl state: configure
  Redis with ``--appendonly yes`` for crawls that must survive one.

Limits: Redis memory is about 72 bytes per URL ever seen (the seen set: 10 million URLs take
~700 MB) plus about 270 bytes per pending request (its JSON with a 60-character URL and its
zset entry).
Keys of one crawl are not hash-tagged, so this runs against one Redis server (or a primary
with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from yarl import URL

from ..errors import ConfigError
from ..http import Request
from ..tasks import stop_task
from .base import FrontierCounts, Lease
from .codec import decode_request, encode_request

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ..settings import Settings

__all__ = [
    "RedisConnection",
    "RedisFrontier",
    "RedisHostGate",
    "crawl_prefix",
    "frontier_crawls",
    "frontier_purge",
    "frontier_status",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Failures that mean "Redis is not reachable right now": paused and retried, never raised.
_RETRYABLE: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,  # includes BusyLoadingError (Redis loading its AOF after a restart)
    rexc.TimeoutError,
    rexc.TryAgainError,
    rexc.ReadOnlyError,  # a failover in progress: the old primary is now a replica
    OSError,  # includes TimeoutError: a call that outlived RedisConnection.timeout
)
#: Subclasses of ConnectionError that no amount of waiting fixes.
_FATAL: tuple[type[BaseException], ...] = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
)
_BACKOFF_START = 0.1
#: Seconds one Redis call may take before it counts as an outage (scripts take milliseconds).
_CALL_TIMEOUT = 10.0
_BACKOFF_MAX = 5.0
#: Most requests one script call moves (reclaims, promotions, adds): keeps each call short,
#: since Redis runs one script at a time for every worker.
_BATCH = 1000
#: Polling interval bounds while other workers hold all the work (see next_ready_in).
_POLL_MIN = 0.05
_POLL_MAX = 0.5
#: Gate polling while a host is at its concurrency limit.
_GATE_POLL_MIN = 0.005
_GATE_POLL_MAX = 0.1
#: Stats keys that are not counters: computed when read, or gauges of one process.
_NOT_COUNTERS = frozenset(
    {"elapsed", "pages_per_second", "items_per_second", "start_time", "finish_time",
     "pending", "in_flight", "finish_reason"}
)
_NAME_FORBIDDEN = re.compile(r"[:*?\[\]\\\s]")


# ---------------------------------------------------------------------------------- Lua

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Dedup and enqueue, as one step. ``fp`` is '' for dont_filter requests (not recorded as seen).
_ENQUEUE = """
local function enqueue(k_seen, k_seq, k_pending, k_data, k_score, fp, sc, raw)
  if fp ~= '' and redis.call('SADD', k_seen, fp) == 0 then return 0 end
  local id = string.format('%016.0f', redis.call('INCR', k_seq))
  redis.call('ZADD', k_pending, sc, id)
  redis.call('HSET', k_data, id, raw)
  if sc ~= '0' then redis.call('HSET', k_score, id, sc) end
  return 1
end
"""

# KEYS: seen seq pending data score; ARGV: (fp, score, raw) triples.
_ADD_LUA = _ENQUEUE + """
local added = 0
for i = 1, #ARGV, 3 do
  added = added
    + enqueue(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[i], ARGV[i+1], ARGV[i+2])
end
return added
"""

# KEYS: pending delayed leased data score deliveries owner dead stats
# ARGV: limit lease_timeout worker max_deliveries batch
# Returns {{id, deliveries, raw, ...}, pending, leased, next_delayed_in ('-1': none),
#          reclaimed, dead_lettered}
_LEASE_LUA = _NOW + """
local limit = tonumber(ARGV[1])
local expiry = now + tonumber(ARGV[2])
local worker = ARGV[3]
local maxd = tonumber(ARGV[4])
local batch = tonumber(ARGV[5])
local k_pending, k_delayed, k_leased = KEYS[1], KEYS[2], KEYS[3]
local k_data, k_score, k_deliv, k_owner, k_dead = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

-- Leases whose worker stopped heartbeating go back to pending (any worker reclaims them).
local expired = redis.call('ZRANGEBYSCORE', k_leased, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  redis.call('ZREM', k_leased, id)
  redis.call('ZADD', k_pending, redis.call('HGET', k_score, id) or 0, id)
end
if #expired > 0 then redis.call('HINCRBY', KEYS[9], 'frontier/reclaimed', #expired) end

local due = redis.call('ZRANGEBYSCORE', k_delayed, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(due) do
  redis.call('ZREM', k_delayed, id)
  redis.call('ZADD', k_pending, redis.call('HGET', k_score, id) or 0, id)
end

local out = {}
local got = 0
local dead = 0
while got < limit do
  local popped = redis.call('ZPOPMIN', k_pending, limit - got)
  if #popped == 0 then break end
  for i = 1, #popped, 2 do
    local id = popped[i]
    local raw = redis.call('HGET', k_data, id)
    if raw then
      local n = redis.call('HINCRBY', k_deliv, id, 1)
      if n > maxd then
        local reason = 'leased ' .. (n - 1) .. ' times without being acknowledged: each time '
          .. 'its worker stopped heartbeating (killed or crashed) before finishing it'
        redis.call('HSET', k_dead, id, '{"reason":' .. cjson.encode(reason)
          .. ',"deliveries":' .. (n - 1)
          .. ',"last_worker":' .. cjson.encode(redis.call('HGET', k_owner, id) or '')
          .. ',"at":' .. string.format('%.3f', now)
          .. ',"request":' .. raw .. '}')
        redis.call('HDEL', k_data, id)
        redis.call('HDEL', k_score, id)
        redis.call('HDEL', k_deliv, id)
        redis.call('HDEL', k_owner, id)
        dead = dead + 1
      else
        redis.call('ZADD', k_leased, expiry, id)
        redis.call('HSET', k_owner, id, worker)
        out[#out + 1] = id
        out[#out + 1] = n
        out[#out + 1] = raw
        got = got + 1
      end
    end
  end
end
if dead > 0 then redis.call('HINCRBY', KEYS[9], 'frontier/dead_lettered', dead) end

local next_delayed = '-1'
local first = redis.call('ZRANGE', k_delayed, 0, 0, 'WITHSCORES')
if #first > 0 then next_delayed = string.format('%.6f', math.max(0, tonumber(first[2]) - now)) end
return {out, redis.call('ZCARD', k_pending), redis.call('ZCARD', k_leased), next_delayed,
        #expired, dead}
"""

# KEYS: leased pending delayed data score deliveries owner dead done seen seq
# ARGV: id, then (fp, score, raw) triples of children.
# Returns {children added, 1 if this ack completed the request else 0}. The first ack of a
# request wins, whoever holds its lease now: the work is done, and a second ack is a no-op.
_ACK_LUA = _ENQUEUE + """
local id = ARGV[1]
local found = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
  + redis.call('ZREM', KEYS[3], id) + redis.call('HDEL', KEYS[8], id)
if found > 0 then
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
  redis.call('HDEL', KEYS[7], id)
  redis.call('INCR', KEYS[9])
  found = 1
end
local added = 0
for i = 2, #ARGV, 3 do
  added = added
    + enqueue(KEYS[10], KEYS[11], KEYS[2], KEYS[4], KEYS[5], ARGV[i], ARGV[i+1], ARGV[i+2])
end
return {added, found}
"""

# KEYS: leased pending delayed data score deliveries owner; ARGV: id worker raw score delay
_RESCHEDULE_LUA = _NOW + """
local id, worker, sc, delay = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])
if redis.call('HGET', KEYS[7], id) ~= worker or redis.call('ZREM', KEYS[1], id) == 0 then
  return 0
end
redis.call('HSET', KEYS[4], id, ARGV[3])
if sc ~= '0' then redis.call('HSET', KEYS[5], id, sc) else redis.call('HDEL', KEYS[5], id) end
redis.call('HINCRBY', KEYS[6], id, -1)
redis.call('HDEL', KEYS[7], id)
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, id)
else
  redis.call('ZADD', KEYS[2], sc, id)
end
return 1
"""

# KEYS: leased pending score deliveries owner; ARGV: worker, ids...
_RELEASE_LUA = """
local worker = ARGV[1]
local released = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[5], id) == worker and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[3], id) or 0, id)
    redis.call('HINCRBY', KEYS[4], id, -1)
    redis.call('HDEL', KEYS[5], id)
    released = released + 1
  end
end
return released
"""

# KEYS: leased owner workers workerinfo; ARGV: worker lease_timeout info_json ('' = keep) ids...
# Extends this worker's leases; returns the ids it no longer holds (expired and reclaimed).
_HEARTBEAT_LUA = _NOW + """
local worker = ARGV[1]
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now, worker)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], worker, ARGV[3]) end
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == worker and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""

# KEYS: leased data score deliveries owner dead; ARGV: id reason
_DEAD_LETTER_LUA = _NOW + """
local id = ARGV[1]
local raw = redis.call('HGET', KEYS[2], id) or ''
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', KEYS[6], id, '{"reason":' .. cjson.encode(ARGV[2])
  .. ',"deliveries":' .. (tonumber(redis.call('HGET', KEYS[4], id)) or 0)
  .. ',"last_worker":' .. cjson.encode(redis.call('HGET', KEYS[5], id) or '')
  .. ',"at":' .. string.format('%.3f', now) .. ',"raw":' .. cjson.encode(raw) .. '}')
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
return 1
"""

#: Lua: whether ``worker`` heartbeated within its lease_timeout and has not stopped.
LUA_WORKER_ALIVE = """
local function worker_alive(k_workers, k_info, worker, now, default_timeout)
  local beat = tonumber(redis.call('ZSCORE', k_workers, worker))
  if not beat then return false end
  local timeout = default_timeout
  local info = redis.call('HGET', k_info, worker)
  if info then
    local ok, d = pcall(cjson.decode, info)
    if ok and type(d) == 'table' then
      if d.stopped then return false end
      if d.lease_timeout then timeout = tonumber(d.lease_timeout) end
    end
  end
  return now - beat <= timeout
end
"""

# KEYS: seeded seeder workers workerinfo; ARGV: worker lease_timeout
# Returns 'seeded' (all start requests were added), 'mine' (this worker seeds: nobody claimed
# it, or its claimer stopped or died before finishing) or 'other' (a live worker is seeding).
_SEED_CLAIM_LUA = _NOW + LUA_WORKER_ALIVE + """
if redis.call('GET', KEYS[1]) then return 'seeded' end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1]
   and worker_alive(KEYS[3], KEYS[4], owner, now, tonumber(ARGV[2])) then
  return 'other'
end
redis.call('SET', KEYS[2], ARGV[1])
return 'mine'
"""

# KEYS: pending delayed leased done dead seeded seeder workers workerinfo
# ARGV: worker lease_timeout
# Returns {pending, delayed, leased, done, dead, seeding} where seeding is 0 (seeded, never
# claimed, or claimed by this worker), 1 (a live worker is still adding start requests) or
# 2 (its seeder stopped or died before adding them all).
_COUNTS_LUA = _NOW + LUA_WORKER_ALIVE + """
local seeding = 0
if not redis.call('GET', KEYS[6]) then
  local owner = redis.call('GET', KEYS[7])
  if owner and owner ~= ARGV[1] then
    if worker_alive(KEYS[8], KEYS[9], owner, now, tonumber(ARGV[2])) then
      seeding = 1
    else
      seeding = 2
    end
  end
end
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
        tonumber(redis.call('GET', KEYS[4]) or '0'), redis.call('HLEN', KEYS[5]), seeding}
"""

# KEYS: stats; ARGV: (op, key, value) triples; op i = HINCRBY, f = HINCRBYFLOAT, m = max.
_MERGE_STATS_LUA = """
for i = 1, #ARGV, 3 do
  local op, k, v = ARGV[i], ARGV[i+1], ARGV[i+2]
  if op == 'i' then
    redis.call('HINCRBY', KEYS[1], k, v)
  elseif op == 'f' then
    redis.call('HINCRBYFLOAT', KEYS[1], k, v)
  else
    local old = tonumber(redis.call('HGET', KEYS[1], k))
    if not old or tonumber(v) > old then redis.call('HSET', KEYS[1], k, v) end
  end
end
return 1
"""

# KEYS: tokens last; ARGV: token concurrency delay ttl
# Returns {1, '0'} when acquired, {0, wait} when the host is full (wait: until the earliest
# token expires, an upper bound), {2, wait} when the delay since the last start has not passed.
_GATE_ACQUIRE_LUA = _NOW + """
local conc, delay, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= conc then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, string.format('%.6f', tonumber(first[2]) - now)}
end
if delay > 0 then
  local last = tonumber(redis.call('GET', KEYS[2]))
  if last and last + delay > now then return {2, string.format('%.6f', last + delay - now)} end
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
if delay > 0 then
  redis.call('SET', KEYS[2], string.format('%.6f', now), 'PX', math.ceil(delay * 1000) + 1000)
end
return {1, '0'}
"""

# KEYS: tokens; ARGV: ttl tokens...
_GATE_REFRESH_LUA = _NOW + """
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
return 1
"""


# ----------------------------------------------------------------------------- helpers


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<invalid URL>"
    return str(parsed.with_password("***")) if parsed.password else url


def _check_name(kind: str, value: str, *, allow_empty: bool) -> None:
    if not value and not allow_empty:
        raise ConfigError(f"{kind} must not be empty for a shared frontier")
    if _NAME_FORBIDDEN.search(value):
        raise ConfigError(
            f"{kind} {value!r} cannot be used in a Redis key prefix: no ':', whitespace "
            "or glob characters (*?[]\\)"
        )


def crawl_prefix(spider_name: str, crawl_id: str = "") -> str:
    """The key prefix of one crawl: ``crawler:<spider>:<crawl_id>:``.

    Neither part may contain ``:``, so one crawl's prefix is never a prefix of another's
    (purging ``crawler:books::`` cannot touch ``crawler:books:nightly:``).
    """
    _check_name("spider name", spider_name, allow_empty=False)
    _check_name("crawl_id", crawl_id, allow_empty=True)
    return f"crawler:{spider_name}:{crawl_id}:"


def default_worker_id() -> str:
    """``<hostname>-<pid>-<4 hex>``: unique per process, readable in ``frontier status``, and
    usable in a file name (the output path's ``{worker}``)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def _now_hint() -> float:
    return time.monotonic()




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

    @property
    def down(self) -> bool:
        """Whether the last call found Redis unreachable."""
        return self._outage_since is not None

    async def call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any,
                   **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, retried until Redis answers (see the class doc)."""
        delay = _BACKOFF_START
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    result = await fn(*args, **kwargs)
            except _FATAL:
                raise
            except _RETRYABLE as exc:
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


@dataclass(frozen=True, slots=True)
class _Keys:
    prefix: str
    seq: str
    seen: str
    pending: str
    delayed: str
    leased: str
    data: str
    score: str
    deliveries: str
    owner: str
    done: str
    dead: str
    stats: str
    workers: str
    workerinfo: str
    items: str
    seeded: str
    seeder: str

    @classmethod
    def for_prefix(cls, p: str) -> _Keys:
        return cls(
            prefix=p, seq=p + "seq", seen=p + "seen", pending=p + "pending",
            delayed=p + "delayed", leased=p + "leased", data=p + "data", score=p + "score",
            deliveries=p + "deliveries", owner=p + "owner", done=p + "done", dead=p + "dead",
            stats=p + "stats", workers=p + "workers", workerinfo=p + "workerinfo",
            items=p + "items", seeded=p + "seeded", seeder=p + "seeder",
        )


@dataclass(slots=True)
class _Hint:
    """What this process last learned about the shared queue, for the sync next_ready_in."""

    ready: bool = True  # unknown at start: try
    leased: int = 0  # leases held across the cluster (this worker's included)
    delayed_at: float | None = None  # monotonic time the earliest delayed request is due
    empty_polls: int = 0


@dataclass(slots=True)
class _Snapshot:
    pending: int
    delayed: int
    leased: int
    done: int
    dead: int
    seeding: int  # 0: not waiting for start requests, 1: another worker adds them, 2: it died


def _entry(request: Request) -> tuple[bytes, str, bytes]:
    """(fingerprint or b'' for dont_filter, pending score, stored JSON) of one request."""
    fp = b"" if request.dont_filter else request.fingerprint
    return fp, str(-request.priority), encode_request(request)


def _flatten(requests: Sequence[Request]) -> list[bytes | str]:
    args: list[bytes | str] = []
    for request in requests:
        args.extend(_entry(request))
    return args


# ------------------------------------------------------------------------------ frontier


class RedisFrontier:
    """A :class:`~crawler.frontier.base.Frontier` shared by every worker of one crawl.

    ``url``: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``spider_name`` and ``crawl_id`` name the crawl (key prefix ``crawler:<spider>:<crawl_id>:``).
    ``lease_timeout``: seconds a lease lives without a heartbeat; the heartbeat renews this
    worker's leases every ``lease_timeout / 3``. ``max_deliveries``: a request leased more
    often than this without an outcome (ack, reschedule, release) is dead-lettered.
    ``worker_id``: this worker's name in ``frontier status`` (default
    ``<hostname>-<pid>-<hex>``).

    ``outbox`` is False: the engine writes a request's items before calling :meth:`ack`, so a
    worker killed between the two repeats that request's items once more (at-least-once).
    Call :meth:`open` before use and :meth:`close` at the end; close never deletes shared
    state, and leases still held then expire back to pending.
    """

    outbox = False
    stores_requests = True

    def __init__(
        self,
        url: str,
        *,
        spider_name: str,
        crawl_id: str = "",
        lease_timeout: float = 60.0,
        max_deliveries: int = 5,
        worker_id: str | None = None,
    ) -> None:
        if lease_timeout <= 0:
            raise ConfigError(f"lease_timeout must be > 0, got {lease_timeout}")
        if max_deliveries < 1:
            raise ConfigError(f"max_deliveries must be >= 1, got {max_deliveries}")
        self.spider_name = spider_name
        self.crawl_id = crawl_id
        self.prefix = crawl_prefix(spider_name, crawl_id)
        self.lease_timeout = float(lease_timeout)
        self.max_deliveries = max_deliveries
        self.worker_id = worker_id or default_worker_id()
        # CLIENT SETNAME refuses spaces; the name shows in Redis's CLIENT LIST.
        client_name = "crawler:" + re.sub(r"\s", "_", self.worker_id)
        self.connection = RedisConnection(url, client_name=client_name)
        self._k = _Keys.for_prefix(self.prefix)
        conn = self.connection
        self._add_script = conn.script(_ADD_LUA)
        self._lease_script = conn.script(_LEASE_LUA)
        self._ack_script = conn.script(_ACK_LUA)
        self._reschedule_script = conn.script(_RESCHEDULE_LUA)
        self._release_script = conn.script(_RELEASE_LUA)
        self._heartbeat_script = conn.script(_HEARTBEAT_LUA)
        self._dead_letter_script = conn.script(_DEAD_LETTER_LUA)
        self._merge_script = conn.script(_MERGE_STATS_LUA)
        self._seed_claim_script = conn.script(_SEED_CLAIM_LUA)
        self._counts_script = conn.script(_COUNTS_LUA)
        self._seeded = False
        self._held: set[bytes] = set()  # ids this worker leased and has not settled
        self._settling: set[bytes] = set()  # ids with an ack/reschedule/release in flight
        self._hint = _Hint()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._gates: list[RedisHostGate] = []
        self._merged: dict[str, float] = {}  # stats already added to the shared record
        self._started = time.time()
        self._opened = False
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, spider_name: str, *, worker_id: str | None = None
    ) -> RedisFrontier:
        """The frontier the settings describe: ``frontier_url``, ``crawl_id``,
        ``lease_timeout``, ``max_deliveries``."""
        url = settings.frontier_url
        if not url:
            raise ConfigError("frontier_url is not set: give --frontier redis://host:port/db")
        return cls(
            url,
            spider_name=spider_name,
            crawl_id=settings.crawl_id,
            lease_timeout=settings.lease_timeout,
            max_deliveries=settings.max_deliveries,
            worker_id=worker_id,
        )

    def __repr__(self) -> str:
        return (f"<RedisFrontier {self.connection.display_url} {self.prefix!r} "
                f"worker={self.worker_id!r}>")

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Register this worker and start its heartbeat. Waits (with warnings) while Redis is
        unreachable."""
        await self._beat(register=True)
        k = self._k
        claim: bytes = await self.connection.call(
            "open", self._seed_claim_script,
            keys=[k.seeded, k.seeder, k.workers, k.workerinfo],
            args=[self.worker_id, self.lease_timeout],
        )
        self._seeded = claim != b"mine"
        if claim == b"other":
            logger.info("Joining crawl %s: another worker adds the start requests", self.prefix)
        self._opened = True
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_loop(), name=f"frontier-heartbeat-{self.worker_id}"
        )

    async def close(self) -> None:
        """Stop the heartbeat and disconnect. Shared state is left as it is: leases still
        held expire back to pending after ``lease_timeout``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._heartbeat_task = self._heartbeat_task, None
        await stop_task(task)
        try:
            if self._opened:
                # Best effort and bounded: a worker must be able to stop while Redis is down.
                async with asyncio.timeout(2.0):
                    await self._mark_stopped()
        except _RETRYABLE as exc:  # TimeoutError included
            logger.debug("Could not mark worker %s stopped: %s", self.worker_id, exc)
        finally:
            for gate in self._gates:
                await gate.close()
            await self.connection.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _worker_info(self, stopped: bool = False) -> bytes:
        info: dict[str, Any] = {
            "host": socket.gethostname(), "pid": os.getpid(),
            "lease_timeout": self.lease_timeout, "started": self._started,
        }
        if stopped:
            info["stopped"] = time.time()
        return orjson.dumps(info)

    async def _mark_stopped(self) -> None:
        await self.connection.client.hset(
            self._k.workerinfo, self.worker_id, self._worker_info(stopped=True)
        )

    async def _heartbeat_loop(self) -> None:
        interval = self.lease_timeout / 3
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never let the heartbeat die quietly: that would let every lease expire.
                logger.exception("Heartbeat of worker %s failed", self.worker_id)

    async def _beat(self, *, register: bool = False) -> None:
        """Refresh this worker's entry in ``workers`` and extend its leases and host tokens."""
        k = self._k
        held = list(self._held)
        info = self._worker_info() if register else b""
        for start in range(0, max(len(held), 1), _BATCH):
            chunk = held[start:start + _BATCH]
            lost: list[bytes] = await self.connection.call(
                "heartbeat", self._heartbeat_script,
                keys=[k.leased, k.owner, k.workers, k.workerinfo],
                args=[self.worker_id, self.lease_timeout, info, *chunk],
            )
            # Settled meanwhile (an ack that ran between the snapshot and the script) is not
            # lost; anything else expired before this heartbeat (Redis was away, or the loop
            # was blocked for longer than lease_timeout): another worker may have it now.
            lost = [i for i in lost if i in self._held and i not in self._settling]
            if lost:
                self._held.difference_update(lost)
                logger.warning("Worker %s lost %d leases (expired, handed to another worker)",
                               self.worker_id, len(lost))
        for gate in self._gates:
            await gate.refresh()

    # ---------------------------------------------------------------- protocol

    async def add(self, requests: Sequence[Request]) -> int:
        return await self._add(requests)

    async def _add(self, requests: Sequence[Request]) -> int:
        k = self._k
        added = 0
        for start in range(0, len(requests), _BATCH):
            args = _flatten(requests[start:start + _BATCH])
            n: int = await self.connection.call(
                "add", self._add_script,
                keys=[k.seen, k.seq, k.pending, k.data, k.score], args=args,
            )
            added += n
        if added:
            self._hint.ready = True
        return added

    async def lease(self, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        k = self._k
        reply: list[Any] = await self.connection.call(
            "lease", self._lease_script,
            keys=[k.pending, k.delayed, k.leased, k.data, k.score, k.deliveries, k.owner,
                  k.dead, k.stats],
            args=[min(limit, _BATCH), self.lease_timeout, self.worker_id, self.max_deliveries,
                  _BATCH],
        )
        flat, pending, leased, next_delayed, reclaimed, dead = reply
        leases: list[Lease] = []
        for i in range(0, len(flat), 3):
            key: bytes = flat[i]
            try:
                request = decode_request(flat[i + 2])
            except ValueError as exc:
                # Unreadable (another version, a corrupt entry): leasing it again would fail
                # again on every worker, so it goes to the dead letters with the reason.
                logger.error("Dead-lettering stored request %s: %s", key.decode(), exc)
                await self._dead_letter(key, f"cannot decode the stored request: {exc}")
                continue
            self._held.add(key)
            leases.append(Lease(request, key, int(flat[i + 1])))
        if reclaimed:
            logger.info("Reclaimed %d requests whose lease expired (their worker stopped "
                        "heartbeating)", reclaimed)
        if dead:
            logger.warning("Dead-lettered %d requests leased %d times without being "
                           "acknowledged (see `crawler frontier status`)",
                           dead, self.max_deliveries)
        hint = self._hint
        hint.ready = bool(leases) or int(pending) > 0
        hint.leased = int(leased)
        wait = float(next_delayed)
        hint.delayed_at = _now_hint() + wait if wait >= 0 else None
        hint.empty_polls = 0 if leases else hint.empty_polls + 1
        return leases

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        k = self._k
        key: bytes = lease.key
        # Children beyond one batch are enqueued first by add(): a crash in between leaves
        # them pending and the request leased, so it is redone and they dedup, nothing lost.
        head, rest = children[:_BATCH], children[_BATCH:]
        added = await self.add(rest) if rest else 0
        with self._settle([key]):
            reply: list[int] = await self.connection.call(
                "ack", self._ack_script,
                keys=[k.leased, k.pending, k.delayed, k.data, k.score, k.deliveries, k.owner,
                      k.dead, k.done, k.seen, k.seq],
                args=[key, *_flatten(head)],
            )
        added += int(reply[0])
        if added:
            self._hint.ready = True
        if not reply[1]:
            logger.debug("Late ack of %s: already done by another worker", lease.request.url)
        return added

    async def drain(self, exporter: Any) -> int:
        return 0

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        k = self._k
        key: bytes = lease.key
        _fp, score, raw = _entry(request)
        with self._settle([key]):
            moved: int = await self.connection.call(
                "reschedule", self._reschedule_script,
                keys=[k.leased, k.pending, k.delayed, k.data, k.score, k.deliveries, k.owner],
                args=[key, self.worker_id, raw, score, max(0.0, delay)],
            )
        if not moved:
            logger.debug("Reschedule of %s ignored: its lease expired and was handed out again",
                         request.url)
            return
        hint = self._hint
        if delay > 0:
            due = _now_hint() + delay
            hint.delayed_at = due if hint.delayed_at is None else min(hint.delayed_at, due)
        else:
            hint.ready = True

    async def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        k = self._k
        keys = [lease.key for lease in leases]
        with self._settle(keys):
            for start in range(0, len(keys), _BATCH):
                await self.connection.call(
                    "release", self._release_script,
                    keys=[k.leased, k.pending, k.score, k.deliveries, k.owner],
                    args=[self.worker_id, *keys[start:start + _BATCH]],
                )
        self._hint.ready = True

    def next_ready_in(self) -> float | None:
        """From what the last :meth:`lease` (and later calls of this process) saw: 0 when
        requests are ready; the time until the earliest delayed request; a polling interval
        (0.05 s growing to 0.5 s) while workers hold leases, since their acks may add
        requests or their leases may expire; None when the crawl looked finished."""
        hint = self._hint
        if hint.ready:
            return 0.0
        waits: list[float] = []
        if hint.delayed_at is not None:
            waits.append(max(0.0, hint.delayed_at - _now_hint()))
        if hint.leased:
            waits.append(min(_POLL_MIN * (2 ** min(hint.empty_polls, 8)), _POLL_MAX))
        return min(waits) if waits else None

    @property
    def seeded(self) -> bool:
        """False for the one worker that adds the crawl's start requests (the first to open,
        or the one taking over from a seeder that stopped or died before finishing); True for
        every other worker, which then does not run ``start()``."""
        return self._seeded

    async def mark_seeded(self) -> None:
        """Record that every start request was added: no worker seeds this crawl again."""
        await self.connection.call("mark seeded", self.connection.client.set,
                                   self._k.seeded, b"1")
        self._seeded = True

    async def _snapshot(self) -> _Snapshot:
        k = self._k
        reply: list[int] = await self.connection.call(
            "counts", self._counts_script,
            keys=[k.pending, k.delayed, k.leased, k.done, k.dead, k.seeded, k.seeder,
                  k.workers, k.workerinfo],
            args=[self.worker_id, self.lease_timeout],
        )
        return _Snapshot(*(int(x) for x in reply))

    async def counts(self) -> FrontierCounts:
        """Across the cluster: pending (ready and delayed), in flight (leased by any worker,
        dead ones included until their leases expire), done, dead-lettered."""
        s = await self._snapshot()
        return FrontierCounts(pending=s.pending + s.delayed, in_flight=s.leased, done=s.done,
                              dead=s.dead)

    async def is_finished(self) -> bool:
        """Nothing pending, nothing delayed and nothing leased by any worker (a dead worker's
        leases count until they expire and are redone), and no other live worker still
        adding start requests."""
        s = await self._snapshot()
        hint = self._hint
        hint.leased = s.leased
        hint.ready = s.pending > 0
        if not s.delayed:
            hint.delayed_at = None
        if s.pending or s.delayed or s.leased:
            return False
        if s.seeding == 1:
            hint.leased = max(hint.leased, 1)  # poll: the seeder's requests are coming
            return False
        if s.seeding == 2:
            logger.error(
                "Crawl %s ends without all its start requests: the worker adding them stopped "
                "or died first. Start a worker again to add the rest (the others dedup).",
                self.prefix,
            )
        return True

    async def _dead_letter(self, key: bytes, reason: str) -> None:
        k = self._k
        await self.connection.call(
            "dead-letter", self._dead_letter_script,
            keys=[k.leased, k.data, k.score, k.deliveries, k.owner, k.dead],
            args=[key, reason],
        )

    @contextlib.contextmanager
    def _settle(self, keys: list[bytes]) -> Iterator[None]:
        """Around a call that ends leases: the heartbeat stops counting them as held."""
        self._settling.update(keys)
        try:
            yield
        finally:
            self._settling.difference_update(keys)
            self._held.difference_update(keys)

    # ---------------------------------------------------------------- shared stats

    async def merge_stats(self, stats: dict[str, Any]) -> None:
        """Add this worker's counters to the crawl's shared stats record.

        ``stats`` is this worker's cumulative stats (e.g. ``Stats.to_dict()``); only what
        changed since the previous call is added, so call it periodically and at the end.
        Integer counters are summed (HINCRBY), float counters too, ``max_*`` keys keep the
        maximum; derived values (rates, times) and gauges are skipped.
        """
        ops: list[str | int | float] = []
        merged = dict(self._merged)
        for key, value in stats.items():
            if key in _NOT_COUNTERS or isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)):
                continue
            if key.startswith("max_"):
                if value > merged.get(key, float("-inf")):
                    ops += ["m", key, value]
                    merged[key] = value
                continue
            delta = value - merged.get(key, 0)
            if delta:
                ops += ["i" if isinstance(value, int) else "f", key, delta]
                merged[key] = value
        if ops:
            await self.connection.call("merge-stats", self._merge_script,
                                       keys=[self._k.stats], args=ops)
        self._merged = merged

    async def shared_stats(self) -> dict[str, int | float]:
        """The crawl's shared stats record: every worker's merged counters, plus
        ``frontier/reclaimed`` and ``frontier/dead_lettered``."""
        raw: dict[Any, Any] = await self.connection.call(
            "stats", self.connection.client.hgetall, self._k.stats
        )
        return _parse_stats(raw)

    # ---------------------------------------------------------------- politeness

    def host_gate(self) -> RedisHostGate:
        """A cluster-wide per-host gate on this frontier's connection and key prefix; its
        tokens are renewed by this frontier's heartbeat and it closes with the frontier."""
        gate = RedisHostGate._shared(self.connection, self.prefix, self.lease_timeout,
                                     self.worker_id)
        self._gates.append(gate)
        return gate


def _parse_stats(raw: dict[Any, Any]) -> dict[str, int | float]:
    """HGETALL of the stats hash (bytes) as numbers."""
    out: dict[str, int | float] = {}
    for key, value in raw.items():
        text = value.decode()
        try:
            out[key.decode()] = int(text)
        except ValueError:
            out[key.decode()] = float(text)
    return out


# ------------------------------------------------------------------------------ host gate


class RedisHostGate:
    """Per-host politeness for the whole cluster: at most ``concurrency`` requests in flight to
    a host and at least ``delay`` seconds between two request starts to it, across every worker.

    State per host is a sorted set of tokens scored by expiry plus a last-start key, changed
    only by one Lua script, so two workers can never both take the last place. Tokens expire
    ``ttl`` seconds after they were taken or last renewed (:meth:`refresh`, run every
    ``ttl / 3`` while held), so a dead worker's places free themselves.

    ``await acquire(host, concurrency, delay)`` waits for a place and returns its token; pass
    it to :meth:`release` when the request is over (or use :meth:`slot`). Waiting is polling:
    the delay case sleeps exactly until the next start is allowed; a full host is polled every
    5 ms growing to 100 ms.
    """

    def __init__(
        self,
        url: str,
        *,
        spider_name: str,
        crawl_id: str = "",
        ttl: float = 60.0,
        worker_id: str | None = None,
    ) -> None:
        self._setup(RedisConnection(url), crawl_prefix(spider_name, crawl_id), ttl,
                    worker_id or default_worker_id(), owns_connection=True)

    @classmethod
    def _shared(
        cls, connection: RedisConnection, prefix: str, ttl: float, worker_id: str
    ) -> RedisHostGate:
        gate = cls.__new__(cls)
        gate._setup(connection, prefix, ttl, worker_id, owns_connection=False)
        return gate

    def _setup(self, connection: RedisConnection, prefix: str, ttl: float, worker_id: str,
               *, owns_connection: bool) -> None:
        if ttl <= 0:
            raise ConfigError(f"host gate ttl must be > 0, got {ttl}")
        self.connection = connection
        self.prefix = prefix
        self.ttl = float(ttl)
        self.worker_id = worker_id
        self._owns_connection = owns_connection
        self._acquire_script = connection.script(_GATE_ACQUIRE_LUA)
        self._refresh_script = connection.script(_GATE_REFRESH_LUA)
        self._held: dict[str, set[str]] = {}
        self._counter = itertools.count()
        self._refresh_task: asyncio.Task[None] | None = None
        self._closed = False

    def _keys(self, host: str) -> list[str]:
        base = f"{self.prefix}gate:{host}:"
        return [base + "tokens", base + "last"]

    async def open(self) -> None:
        """Standalone gates: start renewing held tokens. (A frontier's gate is renewed by the
        frontier's heartbeat.)"""
        if self._owns_connection and self._refresh_task is None:
            self._refresh_task = asyncio.create_task(self._refresh_loop(),
                                                     name=f"host-gate-{self.worker_id}")

    async def close(self) -> None:
        """Stop renewing; held tokens expire by themselves. Closes an owned connection.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._refresh_task = self._refresh_task, None
        await stop_task(task)
        if self._owns_connection:
            await self.connection.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _refresh_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Renewing host gate tokens failed")

    async def acquire(self, host: str, concurrency: int, delay: float) -> str:
        """Wait until this worker may start a request to ``host``; returns the token to give
        to :meth:`release`. ``concurrency`` (>= 1) and ``delay`` (seconds) hold for the whole
        cluster; every worker should pass the same values for a host."""
        token = f"{self.worker_id}:{next(self._counter)}"
        keys = self._keys(host)
        poll = _GATE_POLL_MIN
        while True:
            code, wait = await self.connection.call(
                "host gate", self._acquire_script, keys=keys,
                args=[token, max(1, concurrency), max(0.0, delay), self.ttl],
            )
            if code == 1:
                self._held.setdefault(host, set()).add(token)
                return token
            if code == 2:
                # The per-host delay: sleep until the next start is allowed, plus a little
                # jitter so the workers waiting for the same moment do not all call at once.
                await asyncio.sleep(float(wait) + random.uniform(0.0, 0.002))
            else:
                await asyncio.sleep(min(poll, max(float(wait), 0.0)) * random.uniform(0.5, 1.0))
                poll = min(poll * 2, _GATE_POLL_MAX)

    async def release(self, host: str, token: str) -> None:
        """Give back a place taken by :meth:`acquire`."""
        held = self._held.get(host)
        if held is not None:
            held.discard(token)
            if not held:
                del self._held[host]
        await self.connection.call("host gate", self.connection.client.zrem,
                                   self._keys(host)[0], token)

    @contextlib.asynccontextmanager
    async def slot(self, host: str, concurrency: int, delay: float) -> AsyncIterator[str]:
        """``async with gate.slot(host, n, delay):`` acquire, then release whatever happens."""
        token = await self.acquire(host, concurrency, delay)
        try:
            yield token
        finally:
            await self.release(host, token)

    async def refresh(self) -> None:
        """Renew the expiry of every token this worker holds."""
        for host, tokens in list(self._held.items()):
            if tokens:
                await self.connection.call(
                    "host gate", self._refresh_script, keys=self._keys(host)[:1],
                    args=[self.ttl, *tokens],
                )


# ------------------------------------------------------------------------------ admin


@contextlib.asynccontextmanager
async def _admin(url: str) -> AsyncIterator[aioredis.Redis]:
    """A client for a one-off command: fails at once (as ConfigError) when Redis is away."""
    conn = RedisConnection(url, client_name="crawler-admin", timeout=60.0)
    try:
        try:
            async with asyncio.timeout(5):
                await conn.client.ping()
        except (*_RETRYABLE, *_FATAL) as exc:
            raise ConfigError(f"cannot reach Redis at {conn.display_url}: {exc}") from exc
        yield conn.client
    finally:
        await conn.aclose()


def _match_pattern(prefix: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"


async def frontier_status(url: str, spider_name: str, crawl_id: str = "") -> dict[str, Any]:
    """One crawl's state: ``pending`` (ready), ``delayed``, ``leased``, ``done``,
    ``dead_lettered``, ``seen`` (distinct requests ever enqueued), ``finished``, ``stats`` (the
    shared record), ``workers`` (each with ``id``, ``state`` alive/lost/stopped,
    ``last_heartbeat_age`` in seconds, ``leases``, ``host``, ``pid``), ``workers_alive``, and
    ``dead_letters`` (the first 10: ``id``, ``url``, ``reason``)."""
    k = _Keys.for_prefix(crawl_prefix(spider_name, crawl_id))
    async with _admin(url) as client:
        pipe = client.pipeline(transaction=True)
        pipe.time()
        pipe.zcard(k.pending)
        pipe.zcard(k.delayed)
        pipe.zcard(k.leased)
        pipe.get(k.done)
        pipe.hlen(k.dead)
        pipe.scard(k.seen)
        pipe.hgetall(k.stats)
        pipe.zrange(k.workers, 0, -1, withscores=True)
        pipe.hgetall(k.workerinfo)
        pipe.zrange(k.leased, 0, -1)
        (now_t, pending, delayed, leased, done, dead, seen, stats, workers, infos,
         leased_ids) = await pipe.execute()
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
    pending, delayed, leased = int(pending), int(delayed), int(leased)
    return {
        "prefix": k.prefix,
        "pending": pending,
        "delayed": delayed,
        "leased": leased,
        "done": int(done or 0),
        "dead_lettered": int(dead),
        "seen": int(seen),
        "finished": pending == 0 and delayed == 0 and leased == 0 and int(done or 0) > 0,
        "workers_alive": sum(1 for w in worker_rows if w["state"] == "alive"),
        "workers": worker_rows,
        "dead_letters": dead_sample,
        "stats": _parse_stats(stats),
    }


async def frontier_purge(url: str, spider_name: str, crawl_id: str = "") -> int:
    """Delete every key of one crawl (SCAN over its prefix, never KEYS); returns how many.
    Keys of other crawls and other prefixes are never touched. Workers still running on that
    crawl would see an empty frontier and finish."""
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

