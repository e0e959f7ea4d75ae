"""The data of a shared crawl in Redis: its keys, and the Lua scripts that change them.

The scripts' sources are the package data files ``crawler/frontier/lua/*.lua``; the
constants here join each with the preludes it uses. :mod:`crawler.frontier.redis` runs
them; :mod:`crawler.frontier.redis_admin` reads the same keys.

Design: sorted sets and Lua scripts, not Streams
------------------------------------------------
Keys (``P`` is the prefix)::

    P:crawl        the crawl marker: "<server time>:<hex>", set by the first worker to open;
                   every script checks it (see "Guarantees" in redis.py)
    P:seq          counter (a script takes ids from it 100 at a time, skipping what it leaves
                   unused); a request's id is its sequence number, zero-padded to 16
                   digits, then "@" and its host (the slot key): "0000000000000042@example.com"
    P:seen         SET of 16-byte request fingerprints (the dedup set)
    P:links        LIST of the requests enqueued lately: each its fingerprint, then its URL
                   when it is a plain GET (a GET without a body); trimmed to its last 10,000
                   past 20,000 (a few seconds of a fast crawl: the workers read it with every
                   ack). P:nlinks counts the entries ever pushed. Each ack brings a worker
                   what the others pushed since its last one (hints: dedup stays the seen
                   set's)
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
    P:leased       ZSET id -> lease expiry (server clock, in whole milliseconds; a crawl
                   left by a version that kept seconds has its leases taken back once
                   by the first lease call, and those requests are redone)
    P:data         HASH id -> the request as versioned JSON (:mod:`.codec`)
    P:score        HASH id -> -priority, only for priorities other than 0
    P:deliveries   HASH id -> times leased without an outcome
    P:owner        HASH id -> worker id of the last lease
    P:done         counter of acknowledged requests
    P:dead         HASH id -> JSON {reason, deliveries, last_worker, at, request}
    P:stats        HASH of shared crawl counters (:meth:`RedisFrontier.merge_stats`)
    P:workers      ZSET worker id -> last heartbeat (server clock)
    P:workerinfo   HASH worker id -> JSON {host, pid, lease_timeout, started, stopped}
    P:asking       ZSET worker id -> its last lease call: the workers asking in the last second
                   share each host's concurrency (each takes at most its share of a host)
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
  delay), else up to its free places, and, when several workers asked for work in the last
  second, no more than this worker's share of the host's concurrency (its leases of each
  host come with the call); place it again, and repeat up to ``limit`` requests.
  Each costs O(log hosts + log its queue): never a scan over requests or hosts. A request
  leased more than ``max_deliveries`` times without an outcome goes to ``dead`` instead.
- ``ack``: remove from leased (or from its queue or delayed if the lease had already
  expired), free its host's place, count it done and enqueue its children with the same
  dedup step, in one script. Acks made while another call is on its way go together in the
  next call, and children this worker sent before are not sent again (they are in the seen
  set for good), so a busy worker makes a fraction of a call per request. The reply also
  carries the links other workers added since this worker's last ack (``P:links``): a page
  linking to one of them is then skipped before a Request is built, as a link this worker
  sent itself is; without that, two workers each build and send most links once (on the
  shop of the bench, 48,000 requests sent for 21,000 pages). The same call
  leases as many requests as it acks (the places it frees, as a lease would hand them out,
  hosts with a delay excepted), so a busy worker's next lease needs no round trip.
- ``reschedule`` / ``release``: back to delayed / the host's queue, only if this worker still
  holds the lease; the delivery count is given back (a retry or a graceful stop is an outcome,
  not a crash).


Guarantees
----------
- A request is acknowledged only after the engine wrote its items (``outbox = False``), and a

Limits: Redis memory is about 72 bytes per URL ever seen (the seen set: 10 million URLs take
~700 MB) plus about 300 bytes per pending request (its JSON with a 60-character URL, its id
with the host, its queue entry) and about 200 bytes per host with pending requests or a
learnt delay, plus ``P:links`` (at most 20,000 URLs: ~2 MB with 60-character URLs).
Keys of one crawl are not hash-tagged, so this runs against one Redis server (or a primary
with replicas), not Redis Cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from ..errors import ConfigError

__all__ = ["LOST", "SCRIPTS", "Keys", "crawl_prefix", "parse_stats", "source"]

#: The error the scripts raise when the crawl marker is gone (see "Guarantees" in
#: :mod:`crawler.frontier.redis`); ``hosts.lua``, ``heartbeat.lua`` and ``counts.lua`` spell it.
LOST = "CRAWL_LOST"

#: Every script, with the preludes it starts with, in order: ``now`` (the server clock, and
#: a lease's expiry from it), ``hosts`` (the crawl check, the per-host schedule and the policy
#: changes), ``enqueue`` (dedup and enqueue as one step), ``take`` (reclaiming expired leases
#: and leasing by host: lease's, and ack's leases), ``worker_alive`` (whether a worker
#: heartbeats).
SCRIPTS: dict[str, tuple[str, ...]] = {
    "add": ("now", "hosts", "enqueue"),
    "policy": ("now", "hosts"),
    "lease": ("now", "hosts", "take"),
    "ack": ("now", "hosts", "enqueue", "take"),
    "reschedule": ("now", "hosts"),
    "release": ("now", "hosts"),
    "dead_letter": ("now", "hosts"),
    "heartbeat": ("now",),
    "open": ("now", "worker_alive"),
    "counts": ("now", "worker_alive"),
    "merge_stats": (),
    "claim_item": ("worker_alive",),
}


def _read(name: str) -> str:
    return files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full source of script ``name`` (a key of :data:`SCRIPTS`): its preludes, then
    ``lua/<name>.lua``."""
    return "\n".join(_read(part) for part in (*SCRIPTS[name], name))


_NAME_FORBIDDEN = re.compile(r"[:*?\[\]\\\s]")


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


@dataclass(frozen=True, slots=True)
class Keys:
    """The names of one crawl's keys (see the module docstring)."""

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
    def for_prefix(cls, p: str) -> Keys:
        return cls(
            prefix=p, crawl=p + "crawl", seen=p + "seen", npending=p + "npending",
            delayed=p + "delayed", leased=p + "leased", ready=p + "ready", wait=p + "wait",
            owner=p + "owner", done=p + "done", dead=p + "dead", stats=p + "stats",
            workers=p + "workers", workerinfo=p + "workerinfo", items=p + "items",
            seeded=p + "seeded", seeder=p + "seeder",
        )



def parse_stats(raw: dict[Any, Any]) -> dict[str, int | float]:
    """HGETALL of the stats hash (bytes) as numbers."""
    out: dict[str, int | float] = {}
    for key, value in raw.items():
        text = value.decode()
        try:
            out[key.decode()] = int(text)
        except ValueError:
            out[key.decode()] = float(text)
    return out
