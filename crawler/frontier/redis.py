"""The Redis frontier: one crawl shared by many workers on many machines, nothing lost.

Every worker runs the same spider against the same Redis; together they hold one queue per
host, one dedup set, one schedule of hosts with their politeness state, and one stats record,
all under the key prefix ``crawler:<spider>:<crawl_id>:`` (``crawl_id`` may be empty:
``crawler:<spider>::``).

Design: sorted sets and Lua scripts, not Streams
------------------------------------------------
Keys (``P`` is the prefix)::

    P:crawl        the crawl marker: "<server time>:<hex>", set by the first worker to open;
                   every script checks it (see "Guarantees")
    P:seq          INCR counter; a request's id is its sequence number, zero-padded to 16
                   digits, then "@" and its host (the slot key): "0000000000000042@example.com"
    P:seen         SET of 16-byte request fingerprints (the dedup set)
    P:q:<host>     ZSET id -> -priority: the host's pending requests; ties are ordered by
                   member, i.e. by id: FIFO within a priority
    P:h:<host>     HASH, the host's politeness state: a (leases held), n (next allowed start),
                   p (paused until: Retry-After, robots.txt unreachable), h (held until: its
                   robots.txt is being fetched), d (delay between starts), m (its floor:
                   Crawl-delay), c (concurrency); times on the Redis server clock. d, m and c
                   are there only once a worker reported them: the defaults are each
                   worker's settings (``concurrency_per_host``, ``download_delay``)
    P:ready        ZSET host -> rank: the hosts that may start a request now, best first
                   (the best priority, then the one ready the longest)
    P:wait         ZSET host -> when it may start one (its delay or pause not passed yet)
    P:npending     counter of requests in the hosts' queues
    P:delayed      ZSET id -> ready time (server clock), rescheduled requests
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

A host is in at most one of ``ready`` and ``wait``: in ``ready`` when it has pending requests,
fewer leases than its concurrency and its next start, pause and hold passed; in ``wait`` when
only the time stands in the way; in neither when it has nothing pending or no free place (it
is placed again when one of its leases ends). Every script that changes a host places it
again, so the two sets always say what the host state says.

Why not Streams with consumer groups and XAUTOCLAIM: a stream is one FIFO, so priorities would
need a stream per priority level and a scan over levels on every read, per host; dedup needs a
set next to it anyway and the "seen then XADD" pair would still need a script; delayed retries
need a third structure; and XAUTOCLAIM only hands idle entries to a *reader*, so "nothing
pending and nothing leased" would have to be computed from XPENDING of every group. With
sorted sets, every state change is one Lua script, so it is atomic on the server:

- ``add``: SADD to the seen set and, only if it was new, INCR + ZADD to its host's queue +
  HSET, then the host is placed. Two workers adding the same URL at the same moment enqueue
  it once.
- ``lease``: move expired leases back to their hosts' queues (their worker stopped
  heartbeating: the place they held on their host is freed), move due delayed requests back,
  move hosts of ``wait`` whose time came to ``ready``; then pop the best host of ``ready``
  and take its best requests: one when the host has a delay (its next start becomes now +
  delay), else up to its free places; place it again, and repeat up to ``limit`` requests.
  Each costs O(log hosts + log its queue): never a scan over requests or hosts. A request
  leased more than ``max_deliveries`` times without an outcome goes to ``dead`` instead.
- ``ack``: remove from leased (or from its queue or delayed if the lease had already
  expired), free its host's place, count it done and enqueue its children with the same
  dedup step, in one script. Acks made while another call is on its way go together in the
  next call, and children this worker sent before are not sent again (they are in the seen
  set for good), so a busy worker makes a fraction of a call per request.
- ``reschedule`` / ``release``: back to delayed / the host's queue, only if this worker still
  holds the lease; the delivery count is given back (a retry or a graceful stop is an outcome,
  not a crash).

Per-host politeness is the cluster's: a worker never leases a request of a host that other
workers keep at its concurrency, or whose delay since the last start (by any worker) has not
passed, and nobody sleeps on a gate while holding leases. What the engine learns about a host
(:class:`RedisSlots`: a Retry-After pause, a robots.txt being fetched or unreachable, a
Crawl-delay, AutoThrottle's delay) goes to Redis with the worker's next script call, or at
once (a short "policy" call) for pauses and holds, so every worker follows it.

Seeding: the first worker to open claims ``P:seeder`` and runs the spider's ``start()``; the
others see :attr:`RedisFrontier.seeded` True and skip it, and do not finish while the seeder is
alive and has not called ``mark_seeded``. If the seeder stops or dies first, the next worker
to open takes the claim over and seeds again (dedup drops what was already added).

Every time is the Redis server's ``TIME``, so workers on machines whose clocks disagree still
agree on expiries, delays and pauses. Scripts are redis-py ``Script`` objects: after a Redis
restart (empty script cache) the NOSCRIPT reply makes them load again. The scripts build the
per-host key names from the prefix, which is fine on one Redis server but not on Redis Cluster.

Guarantees
----------
- A request is acknowledged only after the engine wrote its items (``outbox = False``), and a
  dead worker's leases return to pending ``lease_timeout`` seconds after its last heartbeat, so
  every request is processed at least once; a worker killed mid-request causes that request
  (and its items) to be processed at most once more per kill. :class:`crawler.dedup.ItemKeyDedup`
  and :func:`crawler.dedup.merge_outputs` remove the repeated items. The places a dead worker
  held on its hosts come back with its leases, and its holds (robots.txt fetches) end
  ``lease_timeout`` after its last heartbeat: no host stays frozen.
- A worker never deletes shared state when it stops or crashes: leases stay leased (they expire
  back to pending), the queues and the seen set stay. Only :func:`frontier_purge` deletes keys.
- Redis unreachable: every call goes through :meth:`RedisConnection.call`, which logs one
  warning per outage, retries with exponential backoff (0.1 s doubling to 5 s) and continues
  when Redis answers again. A call retried after a lost reply is harmless: ``add`` and ``ack``
  are idempotent through the seen set and the lease state (a ``dont_filter`` request added
  twice is the exception); a lost ``lease`` reply leaves requests leased to this worker, which
  expire back to pending (one extra delivery counted).
- The crawl's state vanished (Redis restarted without persistence, a failover to a replica
  that had nothing, the crawl purged while it ran): the crawl marker is gone or another, and
  every script refuses to run. The worker raises :class:`~crawler.errors.FrontierLost` from
  its next lease or finish check (acks after that change nothing), so the engine stops and
  the run fails (exit 1) with a message saying so, instead of re-crawling from an empty
  Redis and reporting "finished". Configure Redis with ``--appendonly yes`` for crawls that
  must survive a Redis restart.

Limits: Redis memory is about 72 bytes per URL ever seen (the seen set: 10 million URLs take
~700 MB) plus about 300 bytes per pending request (its JSON with a 60-character URL, its id
with the host, its queue entry) and about 200 bytes per host with pending requests or a
learnt delay.
Keys of one crawl are not hash-tagged, so this runs against one Redis server (or a primary
with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from yarl import URL

from ..errors import ConfigError, FrontierLost
from ..http import Request
from ..slots import Slot, Slots
from ..tasks import stop_task
from ..urls import host_key
from .base import FrontierCounts, FrontierKit, Lease
from .codec import decode_request, encode_request

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ..settings import Settings

__all__ = [
    "RedisConnection",
    "RedisFrontier",
    "RedisSlots",
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
#: Most acks sent in one script call.
_ACK_BATCH = 100
#: Fingerprints a worker remembers having sent (16 bytes each, about 80 with the set).
_KNOWN_MAX = 250_000
#: Polling interval bounds while other workers hold work (see next_ready_in).
_POLL_MIN = 0.05
_POLL_MAX = 0.2
#: The error the scripts raise when the crawl marker is gone (see "Guarantees").
_LOST = "CRAWL_LOST"
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

# The start of every script that touches hosts. ARGV: prefix, crawl token, epoch (the
# token's time), policy changes (JSON or ''), default concurrency, default delay, default
# minimum delay, lease_timeout; each script's own arguments follow from ARGV[9].
#
# place(host) puts a host where its state says (see the module docstring). Its rank in
# ``ready`` is -priority * SPAN + the milliseconds since the crawl began at which it became
# ready: the best priority first, then the longest ready. Hosts changed by a script are
# "touched" and placed once at its end (settle), however many of their requests moved.
_HOSTS = """
local P = ARGV[1]
if redis.call('GET', P .. 'crawl') ~= ARGV[2] then
  return redis.error_reply('""" + _LOST + """ ' .. P .. 'crawl')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local EPOCH, C0 = tonumber(ARGV[3]), tonumber(ARGV[5])
local D0, M0, LT = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local K_READY, K_WAIT = P .. 'ready', P .. 'wait'
local K_LEASED, K_DELAYED = P .. 'leased', P .. 'delayed'
local K_DATA, K_SCORE, K_DELIV, K_OWNER = P .. 'data', P .. 'score', P .. 'deliveries', P .. 'owner'
local K_NPENDING = P .. 'npending'
local SPAN = 68719476736

local function f6(x) return string.format('%.6f', x) end
-- The gap kept between two starts on a host: crawler.slots.spaced(delay).
local function spaced(d) return d + math.min(d * 0.01, 0.01) end
local function host_of(id) return string.sub(id, 18) end

local touched = {}
local function touch(host, since)
  local old = touched[host]
  if old == nil or (since and (old == true or since < old)) then touched[host] = since or true end
end

local function place(host, since)
  local hk = P .. 'h:' .. host
  local st = redis.call('HMGET', hk, 'a', 'n', 'p', 'h', 'c', 'd', 'm')
  local a = tonumber(st[1]) or 0
  local at = math.max(tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0)
  local top = redis.call('ZRANGE', P .. 'q:' .. host, 0, 0, 'WITHSCORES')
  if #top == 0 or a >= (tonumber(st[5]) or C0) then
    redis.call('ZREM', K_READY, host)
    redis.call('ZREM', K_WAIT, host)
    if #top == 0 and a <= 0 and not (st[5] or st[6] or st[7]) then
      -- Nothing left to remember about this host once its next start or pause has passed
      -- (a lease or a report makes the hash PERSIST again).
      if at <= now then
        redis.call('DEL', hk)
      else
        redis.call('PEXPIREAT', hk, math.ceil(at * 1000) + 1000)
      end
    end
    return
  end
  if at > now then
    redis.call('ZREM', K_READY, host)
    redis.call('ZADD', K_WAIT, at, host)
    return
  end
  redis.call('ZREM', K_WAIT, host)
  local old = tonumber(redis.call('ZSCORE', K_READY, host))
  local ms
  if old then
    ms = old - math.floor(old / SPAN) * SPAN  -- ready already: keep how long
  else
    ms = math.min(math.max(math.floor(((since or now) - EPOCH) * 1000), 0), SPAN - 1)
  end
  redis.call('ZADD', K_READY, tonumber(top[2]) * SPAN + ms, host)
end

local function settle()
  for host, since in pairs(touched) do
    if since == true then place(host) else place(host, since) end
  end
  touched = {}
end

-- What the engine reported about hosts (crawler.slots: pause, hold, Crawl-delay, delay).
if ARGV[4] ~= '' then
  for host, ch in pairs(cjson.decode(ARGV[4])) do
    local hk = P .. 'h:' .. host
    redis.call('PERSIST', hk)
    if ch.c then redis.call('HSET', hk, 'c', ch.c) end
    local m = tonumber(redis.call('HGET', hk, 'm')) or M0
    if ch.m and ch.m > m then
      m = ch.m
      redis.call('HSET', hk, 'm', f6(m))
      local n = tonumber(redis.call('HGET', hk, 'n')) or 0
      redis.call('HSET', hk, 'n', f6(math.max(n, now + m)))
      if not ch.d then ch.d = tonumber(redis.call('HGET', hk, 'd')) or D0 end
    end
    if ch.d then redis.call('HSET', hk, 'd', f6(math.max(ch.d, m))) end
    if ch.s then
      -- A request went out ch.s seconds ago: the next start waits the delay from then.
      local d = math.max(tonumber(redis.call('HGET', hk, 'd')) or D0, m)
      local n = tonumber(redis.call('HGET', hk, 'n')) or 0
      if now - ch.s + spaced(d) > n then redis.call('HSET', hk, 'n', f6(now - ch.s + spaced(d))) end
    end
    if ch.p and now + ch.p > (tonumber(redis.call('HGET', hk, 'p')) or 0) then
      redis.call('HSET', hk, 'p', f6(now + ch.p))
    end
    if ch.h then
      if ch.h > 0 then
        redis.call('HSET', hk, 'h', f6(now + LT))
      else
        redis.call('HDEL', hk, 'h')
      end
    end
    touch(host)
  end
end
"""

# Dedup and enqueue, as one step. ``fp`` is '' for dont_filter requests (not recorded as seen).
_ENQUEUE = """
local function enqueue(fp, sc, raw, host)
  if fp ~= '' and redis.call('SADD', P .. 'seen', fp) == 0 then return 0 end
  local id = string.format('%016.0f', redis.call('INCR', P .. 'seq')) .. '@' .. host
  redis.call('ZADD', P .. 'q:' .. host, sc, id)
  redis.call('HSET', K_DATA, id, raw)
  if sc ~= '0' then redis.call('HSET', K_SCORE, id, sc) end
  touch(host)
  return 1
end
"""

# ARGV from 9: (fp, score, raw, host) quads. Returns how many were enqueued.
_ADD_LUA = _HOSTS + _ENQUEUE + """
local added = 0
for i = 9, #ARGV, 4 do added = added + enqueue(ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]) end
if added > 0 then redis.call('INCRBY', K_NPENDING, added) end
settle()
return added
"""

# Only the policy changes of the header (pauses and holds sent at once).
_POLICY_LUA = _HOSTS + """
settle()
return 1
"""

# ARGV from 9: limit worker max_deliveries batch
# Returns {{id, deliveries, raw, ...}, pending, leased, ready hosts, next ('-1': none: seconds
# until the earliest waiting host or delayed request), reclaimed, dead_lettered}
_LEASE_LUA = _HOSTS + """
local limit, worker = tonumber(ARGV[9]), ARGV[10]
local maxd, batch = tonumber(ARGV[11]), tonumber(ARGV[12])
local expiry = now + LT
local k_dead = P .. 'dead'

-- Leases whose worker stopped heartbeating go back to their host, freeing its place.
local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local host = host_of(id)
  redis.call('ZREM', K_LEASED, id)
  redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
  redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
  touch(host)
end
if #expired > 0 then redis.call('HINCRBY', P .. 'stats', 'frontier/reclaimed', #expired) end
local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(due) do
  local host = host_of(id)
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
  touch(host)
end
if #expired + #due > 0 then redis.call('INCRBY', K_NPENDING, #expired + #due) end
-- Hosts whose delay or pause has passed: ready since that moment.
local woke = redis.call('ZRANGEBYSCORE', K_WAIT, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #woke, 2 do touch(woke[i], tonumber(woke[i + 1])) end
settle()

local out = {}
local got, dead, rounds = 0, 0, 0
while got < limit and rounds < limit + 100 do
  rounds = rounds + 1
  local best = redis.call('ZPOPMIN', K_READY)
  if #best == 0 then break end
  local host = best[1]
  local hk = P .. 'h:' .. host
  local st = redis.call('HMGET', hk, 'a', 'c', 'd')
  local a = tonumber(st[1]) or 0
  local d = tonumber(st[3]) or D0
  local room = (tonumber(st[2]) or C0) - a
  if d > 0 and room > 1 then room = 1 end  -- the next start waits for the delay
  local taken = 0
  if room > 0 then
    local ids = redis.call('ZPOPMIN', P .. 'q:' .. host, math.min(room, limit - got))
    if #ids > 0 then redis.call('DECRBY', K_NPENDING, #ids / 2) end
    for i = 1, #ids, 2 do
      local id = ids[i]
      local raw = redis.call('HGET', K_DATA, id)
      if raw then
        local n = redis.call('HINCRBY', K_DELIV, id, 1)
        if n > maxd then
          local reason = 'leased ' .. (n - 1) .. ' times without being acknowledged: each time '
            .. 'its worker stopped heartbeating (killed or crashed) before finishing it'
          redis.call('HSET', k_dead, id, '{"reason":' .. cjson.encode(reason)
            .. ',"deliveries":' .. (n - 1)
            .. ',"last_worker":' .. cjson.encode(redis.call('HGET', K_OWNER, id) or '')
            .. ',"at":' .. string.format('%.3f', now)
            .. ',"request":' .. raw .. '}')
          redis.call('HDEL', K_DATA, id)
          redis.call('HDEL', K_SCORE, id)
          redis.call('HDEL', K_DELIV, id)
          redis.call('HDEL', K_OWNER, id)
          dead = dead + 1
        else
          redis.call('ZADD', K_LEASED, expiry, id)
          redis.call('HSET', K_OWNER, id, worker)
          out[#out + 1] = id
          out[#out + 1] = n
          out[#out + 1] = raw
          taken = taken + 1
        end
      end
    end
  end
  if taken > 0 then
    got = got + taken
    redis.call('HSET', hk, 'a', a + taken)
    redis.call('PERSIST', hk)
    if d > 0 then redis.call('HSET', hk, 'n', f6(now + spaced(d))) end
  end
  place(host)
end
if dead > 0 then redis.call('HINCRBY', P .. 'stats', 'frontier/dead_lettered', dead) end

local nxt = -1
local w = redis.call('ZRANGE', K_WAIT, 0, 0, 'WITHSCORES')
if #w > 0 then nxt = math.max(0, tonumber(w[2]) - now) end
local dl = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if #dl > 0 then
  local x = math.max(0, tonumber(dl[2]) - now)
  if nxt < 0 or x < nxt then nxt = x end
end
return {out, tonumber(redis.call('GET', K_NPENDING) or '0'), redis.call('ZCARD', K_LEASED),
        redis.call('ZCARD', K_READY), nxt < 0 and '-1' or f6(nxt), #expired, dead}
"""

# ARGV from 9, for each ack: id, how many children, then the children's (fp, score, raw,
# host) quads. Returns {children added, 1 if this ack completed the request else 0} per ack,
# flat. The first ack of a request wins, whoever holds its lease now: the work is done, and
# a second ack is a no-op.
_ACK_LUA = _HOSTS + _ENQUEUE + """
local out = {}
local total = 0
local i = 9
while i <= #ARGV do
  local id, nc = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local host = host_of(id)
  local found = 0
  if redis.call('ZREM', K_LEASED, id) == 1 then
    found = 1
    redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
    touch(host)
  elseif redis.call('ZREM', P .. 'q:' .. host, id) == 1 then
    found = 1
    redis.call('DECR', K_NPENDING)
    touch(host)
  elseif redis.call('ZREM', K_DELAYED, id) + redis.call('HDEL', P .. 'dead', id) > 0 then
    found = 1
  end
  if found == 1 then
    redis.call('HDEL', K_DATA, id)
    redis.call('HDEL', K_SCORE, id)
    redis.call('HDEL', K_DELIV, id)
    redis.call('HDEL', K_OWNER, id)
    redis.call('INCR', P .. 'done')
  end
  local added = 0
  for _ = 1, nc do
    added = added + enqueue(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  end
  total = total + added
  out[#out + 1] = added
  out[#out + 1] = found
end
if total > 0 then redis.call('INCRBY', K_NPENDING, total) end
settle()
return out
"""

# ARGV from 9: id worker raw score delay. Returns 1 if moved, 0 if the lease was not held.
_RESCHEDULE_LUA = _HOSTS + """
local id, worker, sc, delay = ARGV[9], ARGV[10], ARGV[12], tonumber(ARGV[13])
if redis.call('HGET', K_OWNER, id) ~= worker or redis.call('ZREM', K_LEASED, id) == 0 then
  settle()
  return 0
end
local host = host_of(id)
redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
redis.call('HSET', K_DATA, id, ARGV[11])
if sc ~= '0' then redis.call('HSET', K_SCORE, id, sc) else redis.call('HDEL', K_SCORE, id) end
redis.call('HINCRBY', K_DELIV, id, -1)
redis.call('HDEL', K_OWNER, id)
if delay > 0 then
  redis.call('ZADD', K_DELAYED, now + delay, id)
else
  redis.call('ZADD', P .. 'q:' .. host, sc, id)
  redis.call('INCR', K_NPENDING)
end
touch(host)
settle()
return 1
"""

# ARGV from 9: worker, ids... Returns how many were put back.
_RELEASE_LUA = _HOSTS + """
local worker = ARGV[9]
local released = 0
for i = 10, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K_OWNER, id) == worker and redis.call('ZREM', K_LEASED, id) == 1 then
    local host = host_of(id)
    redis.call('HINCRBY', P .. 'h:' .. host, 'a', -1)
    redis.call('ZADD', P .. 'q:' .. host, redis.call('HGET', K_SCORE, id) or 0, id)
    redis.call('HINCRBY', K_DELIV, id, -1)
    redis.call('HDEL', K_OWNER, id)
    touch(host)
    released = released + 1
  end
end
if released > 0 then redis.call('INCRBY', K_NPENDING, released) end
settle()
return released
"""

# ARGV from 9: id reason. A leased request that cannot be decoded: to the dead letters.
_DEAD_LETTER_LUA = _HOSTS + """
local id = ARGV[9]
local raw = redis.call('HGET', K_DATA, id) or ''
if redis.call('ZREM', K_LEASED, id) == 1 then
  redis.call('HINCRBY', P .. 'h:' .. host_of(id), 'a', -1)
  touch(host_of(id))
end
redis.call('HSET', P .. 'dead', id, '{"reason":' .. cjson.encode(ARGV[10])
  .. ',"deliveries":' .. (tonumber(redis.call('HGET', K_DELIV, id)) or 0)
  .. ',"last_worker":' .. cjson.encode(redis.call('HGET', K_OWNER, id) or '')
  .. ',"at":' .. string.format('%.3f', now) .. ',"raw":' .. cjson.encode(raw) .. '}')
redis.call('HDEL', K_DATA, id)
redis.call('HDEL', K_SCORE, id)
redis.call('HDEL', K_DELIV, id)
redis.call('HDEL', K_OWNER, id)
settle()
return 1
"""

# KEYS: leased owner workers workerinfo crawl
# ARGV: worker lease_timeout info_json ('' = keep) crawl_marker ('' = not joined yet) ids...
# Extends this worker's leases; returns the ids it no longer holds (expired and reclaimed).
# Writes nothing once the crawl's state vanished (the marker is not this worker's crawl's).
_HEARTBEAT_LUA = _NOW + """
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[4] then
  return redis.error_reply('""" + _LOST + """ ' .. KEYS[5])
end
local worker = ARGV[1]
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now, worker)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], worker, ARGV[3]) end
local lost = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == worker and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
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


# KEYS: seeded seeder workers workerinfo crawl ready leased wait delayed
# ARGV: worker lease_timeout hex
# Returns {claim, crawl marker, ready hosts, leases, seconds until the earliest waiting host
# or delayed request ('-1': none)}. The first worker to open sets the marker. claim is
# 'seeded' (all start requests were added), 'mine' (this worker seeds: nobody claimed it,
# or its claimer stopped or died before finishing) or 'other' (a live worker is seeding).
_OPEN_LUA = _NOW + LUA_WORKER_ALIVE + """
if not redis.call('GET', KEYS[5]) then
  redis.call('SET', KEYS[5], string.format('%.6f', now) .. ':' .. ARGV[3])
end
local marker = redis.call('GET', KEYS[5])
local nxt = -1
for _, k in ipairs({KEYS[8], KEYS[9]}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local x = math.max(0, tonumber(first[2]) - now)
    if nxt < 0 or x < nxt then nxt = x end
  end
end
local function reply(claim)
  return {claim, marker, redis.call('ZCARD', KEYS[6]), redis.call('ZCARD', KEYS[7]),
          string.format('%.6f', nxt)}
end
if redis.call('GET', KEYS[1]) then return reply('seeded') end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1]
   and worker_alive(KEYS[3], KEYS[4], owner, now, tonumber(ARGV[2])) then
  return reply('other')
end
redis.call('SET', KEYS[2], ARGV[1])
return reply('mine')
"""

# KEYS: npending delayed leased done dead seeded seeder workers workerinfo crawl
# ARGV: worker lease_timeout crawl_marker
# Returns {pending, delayed, leased, done, dead, seeding} where seeding is 0 (seeded, never
# claimed, or claimed by this worker), 1 (a live worker is still adding start requests) or
# 2 (its seeder stopped or died before adding them all).
_COUNTS_LUA = _NOW + LUA_WORKER_ALIVE + """
if redis.call('GET', KEYS[10]) ~= ARGV[3] then
  return redis.error_reply('""" + _LOST + """ ' .. KEYS[10])
end
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
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('ZCARD', KEYS[2]),
        redis.call('ZCARD', KEYS[3]), tonumber(redis.call('GET', KEYS[4]) or '0'),
        redis.call('HLEN', KEYS[5]), seeding}
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
    crawl: str
    seen: str
    npending: str
    delayed: str
    leased: str
    ready: str
    wait: str
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
            prefix=p, crawl=p + "crawl", seen=p + "seen", npending=p + "npending",
            delayed=p + "delayed", leased=p + "leased", ready=p + "ready", wait=p + "wait",
            owner=p + "owner", done=p + "done", dead=p + "dead", stats=p + "stats",
            workers=p + "workers", workerinfo=p + "workerinfo", items=p + "items",
            seeded=p + "seeded", seeder=p + "seeder",
        )


@dataclass(slots=True)
class _Hint:
    """What this process last learned about the shared queue, for the sync next_ready_in."""

    ready: bool = False  # a host was ready at the last look
    leased: int = 0  # leases other workers hold (this worker's own end with a wake-up)
    wake_at: float | None = None  # monotonic time the earliest waiting host or retry is due
    empty_polls: int = 0


@dataclass(slots=True)
class _Snapshot:
    pending: int
    delayed: int
    leased: int
    done: int
    dead: int
    seeding: int  # 0: not waiting for start requests, 1: another worker adds them, 2: it died


def _entries(requests: Sequence[Request]) -> list[bytes | str]:
    """(fingerprint or b'' for dont_filter, queue score, stored JSON, host) per request."""
    args: list[bytes | str] = []
    for request in requests:
        args += (b"" if request.dont_filter else request.fingerprint, str(-request.priority),
                 encode_request(request), host_key(request.yurl))
    return args


@dataclass(slots=True)
class _Ack:
    """An ack waiting for the next ack script call."""

    key: bytes
    children: Sequence[Request]
    done: asyncio.Future[list[int] | None]


def _host_of(key: bytes) -> str:
    """The host in a request id (``<16 digits>@<host>``)."""
    return key[17:].decode()


# ------------------------------------------------------------------------------ slots


class RedisSlots(Slots):
    """The slots of one worker of a shared crawl. The schedule itself is kept in Redis (see
    the module docstring): what the engine reports here is recorded and sent with the
    worker's next script call, so every worker follows it.

    - :meth:`pause` (Retry-After, robots.txt unreachable), :meth:`hold` and :meth:`unhold`
      (robots.txt being fetched) are urgent: ``on_urgent`` is called to send them at once.
      A hold lasts ``lease_timeout`` on the server and the heartbeat renews it, so a worker
      that dies holding a host does not freeze it.
    - :meth:`raise_min_delay` (Crawl-delay) and :meth:`changed` (AutoThrottle's delay) go
      with the next call (the engine reschedules or acks right after).

    The local slots only carry what the engine reads and writes (``delay``, ``min_delay``
    for AutoThrottle and the robots.txt check) and this worker's leases of the host
    (``active``); idle ones are dropped as :class:`~crawler.slots.Slots` does.
    """

    def __init__(self, concurrency: int = 8, delay: float = 0.0) -> None:
        super().__init__(concurrency, delay)
        self.on_urgent: Callable[[], None] | None = None
        #: The delay of a host that no worker reported on yet: AutoThrottle's start delay
        #: once a slot was made with it (``on_new``), else ``delay``.
        self.fresh_delay = delay
        self._changes: dict[str, dict[str, float]] = {}
        self._holding: set[str] = set()

    @classmethod
    def like(cls, slots: Slots) -> RedisSlots:
        """``slots`` itself if it is a RedisSlots, else new RedisSlots with its defaults."""
        if isinstance(slots, RedisSlots):
            return slots
        made = cls(slots.concurrency, slots.delay)
        made.on_new = slots.on_new
        return made

    def slot(self, key: str) -> Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = super().slot(key)
            if self.on_new is not None and slot.min_delay == self.delay:
                self.fresh_delay = slot.delay
        return slot

    def _note(self, key: str, change: dict[str, float], *, urgent: bool = False) -> None:
        self._changes.setdefault(key, {}).update(change)
        if urgent and self.on_urgent is not None:
            self.on_urgent()

    def changed(self, slot: Slot) -> None:
        change: dict[str, float] = {"d": slot.delay}
        if slot.concurrency != self.concurrency:
            change["c"] = slot.concurrency
        self._note(slot.key, change)

    def pause(self, key: str, seconds: float) -> Slot:
        slot = self.slot(key)
        until = self.clock() + seconds
        if until > self._paused.get(key, 0.0):
            self._paused[key] = until
            if slot.paused_until != math.inf:
                slot.paused_until = until
            self._note(key, {"p": until}, urgent=True)
        return slot

    def hold(self, key: str) -> Slot:
        slot = self.slot(key)
        slot.paused_until = math.inf
        self._holding.add(key)
        self._note(key, {"h": 1}, urgent=True)
        return slot

    def unhold(self, slot: Slot) -> None:
        if slot.paused_until == math.inf:
            # A pause asked meanwhile still holds (on the server too: it is another field).
            until = self._paused.get(slot.key, 0.0)
            slot.paused_until = until if until > self.clock() else 0.0
            self._holding.discard(slot.key)
            self._note(slot.key, {"h": 0}, urgent=True)
            if not slot.active:
                self._went_idle(slot)

    def raise_min_delay(self, key: str, delay: float) -> Slot:
        slot = self.slot(key)
        if delay > slot.min_delay:
            slot.min_delay = delay
            slot.delay = max(slot.delay, delay)
            self._note(key, {"m": delay})
        return slot

    def ended(self, key: str) -> None:
        """One of this worker's leases of ``key`` ended: its slot is idle once none is left
        (kept a while if it learnt a delay, see :meth:`Slots._sweep`)."""
        slot = self._slots.get(key)
        if slot is not None and slot.active > 0:
            self.finished(slot)

    def tidy(self) -> None:
        """Drop the idle slots whose time has come (cheap when none has)."""
        if self._idle:
            self._sweep(self.clock())

    def renew_holds(self) -> bool:
        """Record the holds still in force again (the heartbeat sends them: a hold lasts
        ``lease_timeout`` on the server). True when there are any."""
        for key in self._holding:
            self._note(key, {"h": 1})
        return bool(self._holding)

    @property
    def has_changes(self) -> bool:
        return bool(self._changes)

    def take_changes(self) -> str:
        """The recorded changes as the scripts' JSON argument ('' for none), forgotten here.
        A pause is sent as the seconds left (the server adds its own clock)."""
        if not self._changes:
            return ""
        changes, self._changes = self._changes, {}
        now = self.clock()
        for change in changes.values():
            if "p" in change:
                change["p"] = max(0.0, change["p"] - now)
            if "s" in change:
                change["s"] = max(0.0, now - change["s"])
        return orjson.dumps(changes).decode()

    def started(self, key: str) -> None:
        """A request of ``key`` went out now: its host's delay counts from here on the
        server too (sent as "this many seconds ago" with the next call, usually the ack of
        that request, before which the host's place is not free again)."""
        super().started(key)
        slot = self._slots.get(key)
        delay = self.delay if slot is None else max(slot.delay, slot.min_delay)
        if delay > 0:
            self._note(key, {"s": self.clock()})


# ------------------------------------------------------------------------------ frontier


class RedisFrontier:
    """A :class:`~crawler.frontier.base.Frontier` shared by every worker of one crawl.

    ``url``: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``spider_name`` and ``crawl_id`` name the crawl (key prefix ``crawler:<spider>:<crawl_id>:``).
    ``lease_timeout``: seconds a lease lives without a heartbeat; the heartbeat renews this
    worker's leases every ``lease_timeout / 3``. ``max_deliveries``: a request leased more
    often than this without an outcome (ack, reschedule, release) is dead-lettered.
    ``worker_id``: this worker's name in ``frontier status`` (default
    ``<hostname>-<pid>-<hex>``). ``concurrency_per_host`` and ``download_delay``: the
    politeness of a host no worker reported anything else for (every worker of a crawl
    should use the same); ``slots`` instead gives them as the defaults of a
    :class:`~crawler.slots.Slots` (a :class:`RedisSlots` is used as it is, another one's
    defaults and ``on_new`` are taken over: use :attr:`slots` afterwards).

    ``outbox`` is False: the engine writes a request's items before calling :meth:`ack`, so a
    worker killed between the two repeats that request's items once more (at-least-once).
    Call :meth:`open` before use and :meth:`close` at the end; close never deletes shared
    state, and leases still held then expire back to pending.
    """

    #: Each lease is a round trip: the engine asks once several places are free.
    lease_batch = 8
    known = None  # the seen-set is on the server: dedup happens in add()
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
        concurrency_per_host: int = 8,
        download_delay: float = 0.0,
        slots: Slots | None = None,
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
        self._slots = (RedisSlots(concurrency_per_host, download_delay) if slots is None
                       else RedisSlots.like(slots))
        self._slots.on_urgent = self._urge
        #: The engine reports pauses, holds and delays here (see :class:`RedisSlots`).
        self.slots: Slots = self._slots
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
        self._policy_script = conn.script(_POLICY_LUA)
        self._heartbeat_script = conn.script(_HEARTBEAT_LUA)
        self._dead_letter_script = conn.script(_DEAD_LETTER_LUA)
        self._merge_script = conn.script(_MERGE_STATS_LUA)
        self._open_script = conn.script(_OPEN_LUA)
        self._counts_script = conn.script(_COUNTS_LUA)
        self._seeded = False
        self._marker = b""  # the crawl marker this worker joined (P:crawl)
        self._epoch = "0"
        self._lost: FrontierLost | None = None
        self._held: set[bytes] = set()  # ids this worker leased and has not settled
        self._settling: set[bytes] = set()  # ids with an ack/reschedule/release in flight
        self._hint = _Hint()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._policy_task: asyncio.Task[None] | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._acks: deque[_Ack] = deque()
        self._ack_wanted = asyncio.Event()
        self._changes_lock = asyncio.Lock()
        self._known: set[bytes] = set()  # fingerprints already in the seen set
        self._urgent = asyncio.Event()
        self._merged: dict[str, float] = {}  # stats already added to the shared record
        self._started = time.time()
        self._opened = False
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, spider_name: str, *, worker_id: str | None = None
    ) -> RedisFrontier:
        """The frontier the settings describe: ``frontier_url``, ``crawl_id``,
        ``lease_timeout``, ``max_deliveries``, ``concurrency_per_host``, ``download_delay``."""
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
            concurrency_per_host=settings.concurrency_per_host,
            download_delay=settings.download_delay,
        )

    def __repr__(self) -> str:
        return (f"<RedisFrontier {self.connection.display_url} {self.prefix!r} "
                f"worker={self.worker_id!r}>")

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Register this worker, join (or start) the crawl and start its heartbeat. Waits
        (with warnings) while Redis is unreachable."""
        await self._beat(register=True)
        k = self._k
        claim, marker, ready, leased, wake_in = await self.connection.call(
            "open", self._open_script,
            keys=[k.seeded, k.seeder, k.workers, k.workerinfo, k.crawl, k.ready, k.leased,
                  k.wait, k.delayed],
            args=[self.worker_id, self.lease_timeout, secrets.token_hex(8)],
        )
        hint = self._hint
        hint.ready, hint.leased = int(ready) > 0, int(leased)
        wait = float(wake_in)
        hint.wake_at = _now_hint() + wait if wait >= 0 else None
        self._marker = marker
        self._epoch = marker.split(b":", 1)[0].decode()
        self._seeded = claim != b"mine"
        if claim == b"other":
            logger.info("Joining crawl %s: another worker adds the start requests", self.prefix)
        self._opened = True
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_loop(), name=f"frontier-heartbeat-{self.worker_id}"
        )
        self._policy_task = asyncio.create_task(
            self._policy_loop(), name=f"frontier-policy-{self.worker_id}"
        )
        self._ack_task = asyncio.create_task(
            self._ack_loop(), name=f"frontier-acks-{self.worker_id}"
        )

    async def close(self) -> None:
        """Stop the heartbeat and disconnect. Shared state is left as it is: leases still
        held expire back to pending after ``lease_timeout``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in (self._heartbeat_task, self._policy_task, self._ack_task):
            await stop_task(task)
        self._heartbeat_task = self._policy_task = self._ack_task = None
        while self._acks:
            self._acks.popleft().done.cancel()
        try:
            if self._opened and self._lost is None:
                # Best effort and bounded: a worker must be able to stop while Redis is down.
                async with asyncio.timeout(2.0):
                    await self._mark_stopped()
        except _RETRYABLE as exc:  # TimeoutError included
            logger.debug("Could not mark worker %s stopped: %s", self.worker_id, exc)
        finally:
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
                if self._lost is not None:
                    return
                await self._beat()
                if self._slots.renew_holds():
                    await self._send_policy()
            except asyncio.CancelledError:
                raise
            except FrontierLost:
                return  # the next lease or finish check says so
            except Exception:
                # Never let the heartbeat die quietly: that would let every lease expire.
                logger.exception("Heartbeat of worker %s failed", self.worker_id)

    async def _beat(self, *, register: bool = False) -> None:
        """Refresh this worker's entry in ``workers`` and extend its leases."""
        k = self._k
        held = list(self._held)
        info = self._worker_info() if register else b""
        for start in range(0, max(len(held), 1), _BATCH):
            chunk = held[start:start + _BATCH]
            try:
                lost: list[bytes] = await self.connection.call(
                    "heartbeat", self._heartbeat_script,
                    keys=[k.leased, k.owner, k.workers, k.workerinfo, k.crawl],
                    args=[self.worker_id, self.lease_timeout, info, self._marker, *chunk],
                )
            except rexc.ResponseError as exc:
                if not str(exc).startswith(_LOST):
                    raise
                raise self._lose() from None
            # Settled meanwhile (an ack that ran between the snapshot and the script) is not
            # lost; anything else expired before this heartbeat (Redis was away, or the loop
            # was blocked for longer than lease_timeout): another worker may have it now.
            lost = [i for i in lost if i in self._held and i not in self._settling]
            if lost:
                for key in lost:
                    self._forget(key)
                logger.warning("Worker %s lost %d leases (expired, handed to another worker)",
                               self.worker_id, len(lost))

    def _urge(self) -> None:
        self._urgent.set()

    async def _policy_loop(self) -> None:
        """Send pauses and holds at once, unless a call that carries them goes first."""
        while not self._closed:
            await self._urgent.wait()
            self._urgent.clear()
            await asyncio.sleep(0)  # a reschedule right after a pause carries it
            try:
                if self._slots.has_changes:
                    await self._send_policy()
            except asyncio.CancelledError:
                raise
            except FrontierLost:
                return
            except Exception:
                logger.exception("Sending host politeness of worker %s failed", self.worker_id)

    async def _send_policy(self) -> None:
        await self._run("policy", self._policy_script)

    # ---------------------------------------------------------------- scripts

    async def _run(self, what: str, script: AsyncScript, *args: Any) -> Any:
        """Run a host-aware script (see ``_HOSTS``) with this worker's defaults and the
        politeness changes recorded since the last call. Raises FrontierLost when the
        crawl's state vanished."""
        if self._lost is not None:
            raise self._lost
        if not self._slots.has_changes:
            return await self._call(what, script, "", args)
        # One call carrying changes at a time, so they reach Redis in the order they were
        # made: a hold sent on one connection must not land after its unhold sent on another.
        async with self._changes_lock:
            return await self._call(what, script, self._slots.take_changes(), args)

    async def _call(self, what: str, script: AsyncScript, changes: str,
                    args: Sequence[Any]) -> Any:
        slots = self._slots
        head = [self.prefix, self._marker, self._epoch, changes, slots.concurrency,
                slots.fresh_delay, slots.delay, self.lease_timeout]
        try:
            return await self.connection.call(what, script, args=[*head, *args])
        except rexc.ResponseError as exc:
            if not str(exc).startswith(_LOST):
                raise
            raise self._lose() from None

    def _lose(self) -> FrontierLost:
        if self._lost is None:
            self._lost = FrontierLost(
                f"the crawl's state in Redis vanished: {self._k.crawl} is gone or belongs to "
                f"another crawl now (Redis at {self.connection.display_url} restarted without "
                "its data, failed over to a replica that did not have it, or the crawl was "
                "purged while running). Stopping: continuing would crawl again from nothing. "
                "Run Redis with --appendonly yes to survive restarts; purge the crawl "
                "(`crawler frontier purge`) and start again"
            )
            self._held.clear()
        return self._lost

    async def _quiet(self, what: str, script: AsyncScript, *args: Any) -> Any:
        """:meth:`_run` for calls that end leases (ack, reschedule, release): once the crawl
        is lost they change nothing and return None; the next lease raises."""
        try:
            return await self._run(what, script, *args)
        except FrontierLost:
            return None

    # ---------------------------------------------------------------- protocol

    async def add(self, requests: Sequence[Request]) -> int:
        added = 0
        for start in range(0, len(requests), _BATCH):
            batch = self._unknown(requests[start:start + _BATCH])
            n = await self._quiet("add", self._add_script, *_entries(batch))
            if n is not None:
                self._learn(batch)
                added += n
        if added:
            self._hint.ready = True
        return added

    async def lease(self, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        self._slots.tidy()
        reply: list[Any] = await self._run(
            "lease", self._lease_script,
            min(limit, _BATCH), self.worker_id, self.max_deliveries, _BATCH,
        )
        flat, _pending, leased, ready, wake_in, reclaimed, dead = reply
        leases: list[Lease] = []
        for i in range(0, len(flat), 3):
            key: bytes = flat[i]
            try:
                request = decode_request(flat[i + 2])
            except ValueError as exc:
                # Unreadable (another version, a corrupt entry): leasing it again would fail
                # again on every worker, so it goes to the dead letters with the reason.
                logger.error("Dead-lettering stored request %s: %s", key.decode(), exc)
                await self._quiet("dead-letter", self._dead_letter_script, key,
                                  f"cannot decode the stored request: {exc}")
                continue
            self._held.add(key)
            host = _host_of(key)
            # The local slot is in use while the lease lasts (the engine reads and writes it:
            # AutoThrottle, Crawl-delay); made here, AutoThrottle starts it at once.
            self._slots.slot(host).active += 1
            leases.append(Lease(request, key, int(flat[i + 1]), host=host))
        if reclaimed:
            logger.info("Reclaimed %d requests whose lease expired (their worker stopped "
                        "heartbeating)", reclaimed)
        if dead:
            logger.warning("Dead-lettered %d requests leased %d times without being "
                           "acknowledged (see `crawler frontier status`)",
                           dead, self.max_deliveries)
        hint = self._hint
        hint.ready = int(ready) > 0
        hint.leased = max(0, int(leased) - len(self._held))
        wait = float(wake_in)
        hint.wake_at = _now_hint() + wait if wait >= 0 else None
        hint.empty_polls = 0 if leases else hint.empty_polls + 1
        return leases

    async def ack(
        self, lease: Lease, children: Sequence[Request] = (), items: Sequence[Any] = ()
    ) -> int:
        """Acks that arrive while another is on its way to Redis go together in the next
        script call (each is still one step with its children): under load a worker makes
        a fraction of a call per request."""
        key: bytes = lease.key
        # Children beyond one batch are enqueued first by add(): a crash in between leaves
        # them pending and the request leased, so it is redone and they dedup, nothing lost.
        head, rest = children[:_BATCH], children[_BATCH:]
        added = await self.add(rest) if rest else 0
        fresh = self._unknown(head)
        with self._settle([key]):
            if self._ack_task is None:  # not opened: no batching
                reply = await self._quiet("ack", self._ack_script, key, len(fresh),
                                          *_entries(fresh))
            else:
                done: asyncio.Future[list[int] | None] = (
                    asyncio.get_running_loop().create_future()
                )
                self._acks.append(_Ack(key, fresh, done))
                self._ack_wanted.set()
                reply = await done
        if reply is None:
            return added
        self._learn(fresh)
        added += int(reply[0])
        self._hint.ready = True  # its host has a free place again, or children came
        if not reply[1]:
            logger.debug("Late ack of %s: already done by another worker", lease.request.url)
        return added

    async def _ack_loop(self) -> None:
        """Send the queued acks, as many as fit in one script call at a time."""
        acks = self._acks
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            while acks:
                batch: list[_Ack] = []
                args: list[bytes | str | int] = []
                while acks and len(batch) < _ACK_BATCH and len(args) < 4 * _BATCH:
                    ack = acks.popleft()
                    batch.append(ack)
                    args += (ack.key, len(ack.children), *_entries(ack.children))
                try:
                    reply: list[int] | None = await self._quiet("ack", self._ack_script, *args)
                except asyncio.CancelledError:
                    for ack in batch:
                        ack.done.cancel()
                    raise
                except Exception as exc:
                    for ack in batch:
                        if not ack.done.done():
                            ack.done.set_exception(exc)
                    continue
                for n, ack in enumerate(batch):
                    if not ack.done.done():
                        ack.done.set_result(None if reply is None else reply[2 * n:2 * n + 2])

    def _unknown(self, requests: Sequence[Request]) -> Sequence[Request]:
        """``requests`` without those this worker already sent to Redis: their fingerprints
        are in the seen set for good, so they are duplicates (most links of a page are)."""
        known = self._known
        if not known:
            return requests
        return [r for r in requests if r.dont_filter or r.fingerprint not in known]

    def _learn(self, sent: Sequence[Request]) -> None:
        known = self._known
        if len(known) > _KNOWN_MAX:
            known.clear()  # bounded memory: forgetting only costs sending them again
        known.update(r.fingerprint for r in sent if not r.dont_filter)

    async def drain(self, exporter: Any) -> int:
        return 0

    async def reschedule(self, lease: Lease, request: Request, delay: float) -> None:
        key: bytes = lease.key
        with self._settle([key]):
            moved = await self._quiet(
                "reschedule", self._reschedule_script,
                key, self.worker_id, encode_request(request), str(-request.priority),
                max(0.0, delay),
            )
        if not moved:
            logger.debug("Reschedule of %s ignored: its lease is not held any more",
                         request.url)
            return
        hint = self._hint
        hint.ready = True  # its host has a free place again
        if delay > 0:
            due = _now_hint() + delay
            hint.wake_at = due if hint.wake_at is None else min(hint.wake_at, due)

    async def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        keys = [lease.key for lease in leases]
        with self._settle(keys):
            for start in range(0, len(keys), _BATCH):
                await self._quiet("release", self._release_script, self.worker_id,
                                  *keys[start:start + _BATCH])
        self._hint.ready = True

    def next_ready_in(self) -> float | None:
        """From what the last :meth:`lease` (and later calls of this process) saw: 0 when a
        host was ready; the time until the earliest waiting host (its delay or pause) or
        delayed request; a polling interval (0.05 s growing to 0.2 s) while other workers
        hold leases, since their acks may free a host or add requests, or they may expire;
        None when nothing is due (the crawl looked finished, or only this worker's own
        leases hold the rest back)."""
        hint = self._hint
        if hint.ready:
            return 0.0
        waits: list[float] = []
        if hint.wake_at is not None:
            waits.append(max(0.0, hint.wake_at - _now_hint()))
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
        if self._lost is None:
            await self.connection.call("mark seeded", self.connection.client.set,
                                       self._k.seeded, b"1")
        self._seeded = True

    async def _snapshot(self) -> _Snapshot:
        if self._lost is not None:
            raise self._lost
        k = self._k
        try:
            reply: list[int] = await self.connection.call(
                "counts", self._counts_script,
                keys=[k.npending, k.delayed, k.leased, k.done, k.dead, k.seeded, k.seeder,
                      k.workers, k.workerinfo, k.crawl],
                args=[self.worker_id, self.lease_timeout, self._marker],
            )
        except rexc.ResponseError as exc:
            if not str(exc).startswith(_LOST):
                raise
            raise self._lose() from None
        return _Snapshot(*(int(x) for x in reply))

    async def counts(self) -> FrontierCounts:
        """Across the cluster: pending (queued and delayed), in flight (leased by any
        worker, dead ones included until their leases expire), done, dead-lettered."""
        s = await self._snapshot()
        return FrontierCounts(pending=s.pending + s.delayed, in_flight=s.leased, done=s.done,
                              dead=s.dead)

    async def is_finished(self) -> bool:
        """Nothing pending, nothing delayed and nothing leased by any worker (a dead worker's
        leases count until they expire and are redone), and no other live worker still
        adding start requests."""
        s = await self._snapshot()
        hint = self._hint
        hint.leased = max(0, s.leased - len(self._held))
        if not s.pending:
            hint.ready = False
        elif hint.wake_at is None and not s.leased:
            hint.ready = True  # only an inconsistent view explains this: look again
        if not s.delayed and not s.pending:
            hint.wake_at = None
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

    @contextlib.contextmanager
    def _settle(self, keys: list[bytes]) -> Iterator[None]:
        """Around a call that ends leases: the heartbeat stops counting them as held."""
        self._settling.update(keys)
        try:
            yield
        finally:
            self._settling.difference_update(keys)
            for key in keys:
                self._forget(key)

    def _forget(self, key: bytes) -> None:
        """A lease of this worker ended (or was lost): its host's local slot may go idle."""
        if key in self._held:
            self._held.discard(key)
            self._slots.ended(_host_of(key))

    # ---------------------------------------------------------------- shared stats

    async def merge_stats(self, stats: dict[str, Any]) -> None:
        """Add this worker's counters to the crawl's shared stats record.

        ``stats`` is this worker's cumulative stats (e.g. ``Stats.to_dict()``); only what
        changed since the previous call is added, so call it periodically and at the end.
        Integer counters are summed (HINCRBY), float counters too, ``max_*`` keys keep the
        maximum; derived values (rates, times) and gauges are skipped.
        """
        if self._lost is not None:
            return  # nothing to add to: the crawl's record is gone
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
    """One crawl's state: ``pending`` (in the hosts' queues), ``delayed``, ``leased``,
    ``done``, ``dead_lettered``, ``seen`` (distinct requests ever enqueued), ``hosts_ready``
    (hosts that may start a request now), ``hosts_waiting`` (for their delay or a pause),
    ``finished``, ``stats`` (the shared record), ``workers`` (each with ``id``, ``state``
    alive/lost/stopped, ``last_heartbeat_age`` in seconds, ``leases``, ``host``, ``pid``),
    ``workers_alive``, and ``dead_letters`` (the first 10: ``id``, ``url``, ``reason``)."""
    k = _Keys.for_prefix(crawl_prefix(spider_name, crawl_id))
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
        "stats": _parse_stats(stats),
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


def shared_frontier(settings: Settings, spider_name: str, output: str | None) -> FrontierKit:
    """The frontier shared by the workers of ``settings.frontier_url`` (a
    :data:`~.base.BuildFrontier`)."""
    frontier = RedisFrontier.from_settings(settings, spider_name)
    return FrontierKit(frontier, shared=frontier)
