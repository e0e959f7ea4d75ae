"""Crawl statistics: flat counters, the end-of-crawl summary, per-host rows, the timeline.

Stat keys are flat strings; a ``/`` groups a family (``status/200``, ``errors/DownloadTimeout``).
The engine uses::

    requests  requests_enqueued  responses  status/<code>  bytes  retries  redirects  max_depth
    items_scraped  items_dropped  items_invalid  errors/<ExceptionType>
    duplicates_filtered  offsite_dropped  pending  in_flight  finish_reason

:meth:`Stats.to_dict` adds ``start_time``, ``finish_time`` (ISO 8601, UTC), ``elapsed``
(seconds), ``pages_per_second`` (responses / elapsed) and ``items_per_second``, computed when
called. ``requests_enqueued`` counts every request the frontier accepted (start requests and
the requests callbacks yield; duplicates are ``duplicates_filtered``). The live progress
display that reads these counters is :mod:`crawler.progress`.

What the crawl report (:mod:`crawler.report`) needs is recorded here too, as plain counters so
that it is saved with the stats, continues across resumes and is summed across Redis workers::

    timeline/<epoch>/<width>/<pages|items|errors>   counts in [epoch, epoch + width) seconds
    hosts/<host>/<responses|latency|http_errors|errors|pauses|paused_seconds>
    max_host_latency/<host>                          (``max_*``: the largest is kept)
    depth/<n>                                        responses at link depth n
    fields_checked  fields/<name>/present  fields/<name>/missing/<url>
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import orjson

from .tasks import stop_task

__all__ = [
    "REPORT_FAMILIES", "Gauges", "HostRow", "Stats", "Timeline", "host_rows", "plural",
    "reason_sentence",
]

logger = logging.getLogger(__name__)

#: A callable returning the frontier's ``(pending, in_flight)`` now.
Gauges = Callable[[], tuple[int, int]]

#: Stat families kept for the crawl report: left out of the summary.
REPORT_FAMILIES = ("timeline", "hosts", "max_host_latency", "fields")
#: Hosts tracked one by one; the others are added up under :data:`OTHER_HOSTS`.
MAX_HOSTS = 1000
OTHER_HOSTS = "(other hosts)"
#: Item fields tracked for coverage, and items kept as examples of each missing field.
MAX_FIELDS = 100
MISSING_EXAMPLES = 5

#: Keys computed by :meth:`Stats.to_dict`, never stored as counters.
_DERIVED = frozenset(
    {"elapsed", "pages_per_second", "items_per_second", "start_time", "finish_time"}
)
#: Keys that describe the present moment; a resumed crawl does not add the old values.
_GAUGES = frozenset({"pending", "in_flight", "finish_reason"})
#: Key families that are gauges too (a current value, not a count): never summed on resume.
_GAUGE_PREFIXES = ("throttle/delay/",)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(slots=True)
class Stats:
    """Counters for one crawl. Single-threaded and cheap: :meth:`inc` is one dict update.

    :meth:`start` and :meth:`finish` bracket the crawl; :meth:`load` merges the stats of an
    earlier run of the same durable job so counting continues across resumes.
    """

    _values: dict[str, Any] = field(default_factory=dict)
    _start_time: str | None = None
    _finish_time: str | None = None
    _t0: float | None = None
    _t1: float | None = None
    _elapsed_before: float = 0.0
    #: A durable job: a stop by a signal is a pause, and the summary says how to resume.
    resumable: bool = False
    _hosts: dict[str, tuple[str, str, str, str, str]] = field(default_factory=dict)
    _paused: dict[str, float] = field(default_factory=dict)  # host -> monotonic end of pause
    # field -> [its "present" stat key, how many examples of items missing it were kept]
    _fields: dict[str, list[Any]] = field(default_factory=dict)
    #: Every item key looked at, fields or not (the feeds' tag, a key that is not a string):
    #: an item with only these keys needs no look at its keys.
    _keys_seen: set[Any] = field(default_factory=set)

    # -- the hot path ------------------------------------------------------------------------

    def inc(self, key: str, n: float = 1) -> None:
        """Add ``n`` to counter ``key`` (created at 0)."""
        values = self._values
        values[key] = values.get(key, 0) + n

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (gauges such as ``pending``, or ``finish_reason``)."""
        self._values[key] = value

    def max(self, key: str, value: float) -> None:
        """Keep the largest value seen for ``key`` (``max_depth``)."""
        current = self._values.get(key)
        if current is None or value > current:
            self._values[key] = value

    def get(self, key: str, default: Any = 0) -> Any:
        """The value of ``key``, or ``default`` when it was never set."""
        return self._values.get(key, default)

    def total(self, family: str) -> int | float:
        """Sum of the numeric stats of a family: ``total("errors")`` adds every ``errors/*``."""
        prefix = family + "/"
        total: int | float = 0
        for key, value in self._values.items():
            if key.startswith(prefix) and _is_number(value):
                total += value
        return total

    # -- what the crawl report needs (a few dict updates per response or item) ---------------

    def _host(self, host: str) -> str:
        return self._host_keys(host)[0]

    def _host_keys(self, host: str) -> tuple[str, str, str, str, str]:
        """``(host or OTHER_HOSTS, its responses, latency, max latency and http_errors
        keys)``, made once per host."""
        keys = self._hosts.get(host)
        if keys is None:
            if len(self._hosts) >= MAX_HOSTS:
                host = OTHER_HOSTS
                keys = self._hosts.get(host)
            if keys is None:
                prefix = "hosts/" + host
                keys = self._hosts[host] = (host, prefix + "/responses", prefix + "/latency",
                                            "max_host_latency/" + host, prefix + "/http_errors")
        return keys

    def host_response(self, host: str, status: int, latency: float) -> None:
        """One response from ``host`` after ``latency`` seconds (every attempt, not only the
        last). The first one after a pause has ended logs that the host resumed."""
        name, responses, total, slowest, http_errors = self._host_keys(host)
        values = self._values
        values[responses] = values.get(responses, 0) + 1
        values[total] = values.get(total, 0.0) + latency
        if latency > values.get(slowest, 0.0):
            values[slowest] = latency
        if status >= 400:
            values[http_errors] = values.get(http_errors, 0) + 1
        if self._paused:
            self._check_resumed(name)

    def host_failed(self, host: str) -> None:
        """A download to ``host`` failed without a response (timeout, refused, reset...)."""
        self.inc(f"hosts/{self._host(host)}/errors")

    def host_paused(self, host: str, seconds: float, reason: str) -> None:
        """Every request to ``host`` waits ``seconds`` (a ``Retry-After``): logged at INFO once
        per pause, and again by :meth:`host_response` when the host resumes."""
        host = self._host(host)
        now = time.monotonic()
        until = now + seconds
        previous = self._paused.get(host)
        if previous is not None and previous > now:  # already paused: maybe for longer now
            if until > previous:
                self.inc(f"hosts/{host}/paused_seconds", until - previous)
                self._paused[host] = until
            return
        self._paused[host] = until
        self.inc(f"hosts/{host}/pauses")
        self.inc(f"hosts/{host}/paused_seconds", seconds)
        logger.info("Host %s paused for %s (%s): its requests wait until %s", host,
                    _duration(seconds), reason,
                    time.strftime("%H:%M:%S", time.localtime(time.time() + seconds)))

    def _check_resumed(self, host: str) -> None:
        until = self._paused.get(host)
        if until is not None and time.monotonic() >= until:
            del self._paused[host]
            logger.info("Host %s resumed after its pause", host)

    def expect_fields(self, names: Iterable[str]) -> None:
        """Fields every item should have (an item model's): their coverage is reported even
        when no item has them."""
        fields = self._fields
        for name in names:
            if len(fields) < MAX_FIELDS and name not in fields:
                fields[name] = [f"fields/{name}/present", 0]

    def item_fields(self, item: Any, url: str) -> None:
        """Count which fields of one scraped item (a dict) are present and not empty; keep
        ``url`` as an example for the first few items missing a field."""
        if not isinstance(item, dict):
            return
        values = self._values
        values["fields_checked"] = values.get("fields_checked", 0) + 1
        fields = self._fields
        if len(fields) < MAX_FIELDS and not self._keys_seen >= item.keys():
            # A key starting with NUL is the feeds' tag (crawler.feeds.ITEM_TAG), not a field.
            self.expect_fields([k for k in item if isinstance(k, str) and k not in fields
                                and k[:1] != "\x00"])
            self._keys_seen.update(item.keys())
        get = item.get
        for name, entry in fields.items():
            value = get(name)
            if value is not None and (
                # Present and not empty: not None, not a blank string, not an empty
                # collection. Inlined: this runs for every field of every item.
                (value.__class__ is not str or value.strip())
                and (value.__class__ not in _COLLECTIONS or value)
            ):
                key = entry[0]
                values[key] = values.get(key, 0) + 1
            elif entry[1] < MISSING_EXAMPLES:
                values[f"fields/{name}/missing/{url}"] = 1
                entry[1] += 1

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Mark the start of this run (the clock for ``elapsed``)."""
        self._t0 = time.monotonic()
        self._t1 = None
        self._finish_time = None
        if self._start_time is None:  # a resumed crawl keeps its first start time
            self._start_time = _now_iso()

    def finish(self, reason: str) -> None:
        """Mark the end of this run; ``reason`` becomes ``finish_reason``."""
        if self._t0 is None:
            self.start()
        self._t1 = time.monotonic()
        self._finish_time = _now_iso()
        self._values["finish_reason"] = reason

    @property
    def elapsed(self) -> float:
        """Seconds crawled so far, across resumes (0.0 before :meth:`start`)."""
        if self._t0 is None:
            return self._elapsed_before
        end = self._t1 if self._t1 is not None else time.monotonic()
        return self._elapsed_before + (end - self._t0)

    # -- reporting ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every stat, plus the derived timing keys, sorted by key. JSON-ready."""
        elapsed = self.elapsed
        data = dict(self._values)
        data["start_time"] = self._start_time
        data["finish_time"] = self._finish_time
        data["elapsed"] = round(elapsed, 3)
        data["pages_per_second"] = _rate(self._values.get("responses", 0), elapsed)
        data["items_per_second"] = _rate(self._values.get("items_scraped", 0), elapsed)
        return dict(sorted(data.items()))

    def dump_json(self, path: str) -> None:
        """Write :meth:`to_dict` as indented JSON (``--stats FILE``), atomically: a reader
        sees the old file or the new one, never half of it."""
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        data = orjson.dumps(self.to_dict(), default=str,
                            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data + b"\n")
        os.replace(tmp, path)

    def load(self, data: dict[str, Any]) -> None:
        """Merge the stats of an earlier run (a :meth:`to_dict` result) into these.

        Numeric counters are added, ``max_*`` keep the larger value, ``elapsed`` carries over
        (so rates cover the whole job) and the first ``start_time`` is kept. Gauges
        (``pending``, ``in_flight``) and ``finish_reason`` describe the old run's end and are
        not taken; other values are taken only when not set in this run.
        """
        values = self._values
        for key, value in data.items():
            if key in _GAUGES or key.startswith(_GAUGE_PREFIXES):
                continue
            if key == "elapsed":
                if _is_number(value):
                    self._elapsed_before += float(value)
            elif key == "start_time":
                if isinstance(value, str) and value:
                    self._start_time = value
            elif key in _DERIVED:
                continue
            elif _is_number(value):
                current = values.get(key)
                if not _is_number(current):
                    values[key] = value
                elif key.startswith("max_"):
                    values[key] = max(current, value)
                else:
                    values[key] = current + value
            elif key not in values:
                values[key] = value
            if key.startswith("hosts/"):
                self._host(key[6:].rsplit("/", 1)[0])
            elif key.startswith("fields/") and key.endswith("/present"):
                self.expect_fields((key[7:-8],))

    def summary(self) -> str:
        """A multi-line summary for the end of the crawl, grouped and sorted."""
        values = self._values
        elapsed = self.elapsed
        reason = values.get("finish_reason")
        head = reason_sentence(reason, resumable=self.resumable)
        head += (f" after {_duration(elapsed)}: "
                 f"{_rate(values.get('responses', 0), elapsed):,.1f} pages/s, "
                 f"{_rate(values.get('items_scraped', 0), elapsed):,.1f} items/s")
        lines = [head]
        # The report's records are for the report: the summary stays a screenful.
        shown: set[str] = {"finish_reason", "fields_checked", *(
            k for k in values if k.startswith(REPORT_FAMILIES) and "/" in k)}

        def group(title: str, keys: Iterable[str], strip: str = "") -> None:
            present = [k for k in dict.fromkeys(keys) if k in values and k not in shown]
            if not present:
                return
            lines.append(title)
            width = max(len(k) - len(strip) for k in present)
            for key in present:
                shown.add(key)
                label = key[len(strip):]
                lines.append(f"  {label:<{width}}  {_format_value(key, values[key])}")

        def family(name: str) -> list[str]:
            prefix = name + "/"
            keys = [k for k in values if k.startswith(prefix)]
            # Numeric suffixes (status codes) in numeric order, others alphabetically.
            return sorted(keys, key=lambda k: (not k[len(prefix):].isdigit(),
                                               k[len(prefix):].zfill(8)))

        group("Requests", ["requests", "responses", "bytes", "retries", "redirects",
                           "max_depth"])
        group("Responses by status", family("status"), strip="status/")
        group("Items", ["items_scraped", "items_dropped", "items_invalid"])
        errors = family("errors")
        if errors:
            group(f"Errors by type ({_format_value('', self.total('errors'))})", errors,
                  strip="errors/")
        filtered = ["duplicates_filtered", "offsite_dropped", *sorted(
            k for k in values if "/" not in k and k.endswith(("_filtered", "_dropped"))
        )]
        group("Filtered", filtered)
        group("Frontier", ["pending", "in_flight"])
        for name in sorted({k.split("/", 1)[0] for k in values if "/" in k} - shown):
            group(name.replace("_", " ").capitalize(), family(name), strip=name + "/")
        group("Other", sorted(values))
        return "\n".join(lines)


#: How a finish reason reads at the end of a crawl; any other reason (a CloseSpider's) reads
#: "Crawl stopped: <reason>".
_SENTENCES = {
    "finished": "Crawl finished",
    "close_on_items": "Crawl stopped: close_on.items reached",
    "close_on_pages": "Crawl stopped: close_on.pages reached",
    "close_on_seconds": "Crawl stopped: close_on.seconds reached",
    "close_on_errors": "Crawl stopped: close_on.errors reached",
    "start_failed": "Crawl failed: the spider's start() raised before yielding any request",
    "output_closed": "Crawl stopped: the output was closed (output_closed)",
    "output_failed": "Crawl failed: an output could not be written (output_failed)",
    "frontier_lost": "Crawl failed: the shared frontier's state vanished",
    "killed": "Crawl stopped at once",
}


def reason_sentence(reason: str | None, *, resumable: bool = False) -> str:
    """The finish ``reason`` as a sentence (``Crawl stopped: close_on.items reached``). A
    signal on a ``resumable`` (``--jobdir``) crawl is a pause, and says how to resume."""
    if reason is None:
        return "Crawl running"
    if reason.startswith("signal_"):
        signame = reason.removeprefix("signal_")
        if resumable:
            return f"Crawl paused by {signame}: run the same command to resume"
        return f"Crawl stopped by {signame}"
    return _SENTENCES.get(reason) or f"Crawl stopped: {reason}"


def plural(n: int, noun: str) -> str:
    """``1 attempt``, ``3 attempts``: a count with its noun (regular plurals only)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


_COLLECTIONS = frozenset({list, tuple, dict, set})


def _rate(count: Any, seconds: float) -> float:
    if not _is_number(count) or seconds <= 0:
        return 0.0
    return round(float(count) / seconds, 2)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # unreachable; keeps the type checker content


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or not _is_number(value):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}" if math.isfinite(value) else str(value)
    text = f"{int(value):,}"
    if key == "bytes":
        text += f" ({_human_bytes(value)})"
    return text


#: Seconds per timeline bucket by how long this run has gone on: fine at first, coarser
#: later, so a day-long crawl keeps about 1,500 buckets.
_TIMELINE_WIDTHS = ((300.0, 1), (3600.0, 10), (43200.0, 60), (math.inf, 600))


class Timeline:
    """Samples the page, item and error counters once a second into ``timeline/...`` stats
    (what the report plots); an async context manager. Buckets start at multiples of their
    width in Unix time, so the buckets of several workers or several runs add up."""

    __slots__ = ("_last", "_t0", "_task", "stats")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._task: asyncio.Task[None] | None = None
        self._last = (0, 0, 0)
        self._t0 = 0.0

    def _counters(self) -> tuple[int, int, int]:
        stats = self.stats
        return (int(stats.get("responses")), int(stats.get("items_scraped")),
                int(stats.total("errors")))

    def sample(self) -> None:
        """Add what was counted since the last sample to the current bucket."""
        now = time.time()
        elapsed = time.monotonic() - self._t0
        width = next(w for limit, w in _TIMELINE_WIDTHS if elapsed < limit)
        start = int(now // width * width)
        current = self._counters()
        for name, new, old in zip(("pages", "items", "errors"), current, self._last,
                                  strict=True):
            if new > old:
                self.stats.inc(f"timeline/{start}/{width}/{name}", new - old)
        self._last = current

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.sample()

    async def __aenter__(self) -> Self:
        self._t0 = time.monotonic()
        self._last = self._counters()  # a resumed job's counts are not this run's first second
        self._task = asyncio.create_task(self._loop(), name="stats-timeline")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        self.sample()  # the last partial second


@dataclass(slots=True)
class HostRow:
    """One host's figures from the ``hosts/*`` stats."""

    host: str
    responses: int = 0
    latency: float = 0.0
    max_latency: float = 0.0
    http_errors: int = 0
    errors: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    why: str = ""

    @property
    def mean_latency(self) -> float:
        return self.latency / self.responses if self.responses else 0.0

    @property
    def failures(self) -> int:
        """Download errors and responses with a status of 400 or more."""
        return self.errors + self.http_errors


def host_rows(stats: dict[str, Any]) -> list[HostRow]:
    """Every host's figures from a stats dict (:meth:`Stats.to_dict`, or a saved one)."""
    rows: dict[str, HostRow] = {}
    for key, value in stats.items():
        if key.startswith("hosts/") and _is_number(value):
            host, _, name = key[6:].rpartition("/")
            row = rows.get(host) or rows.setdefault(host, HostRow(host))
            if name in ("responses", "http_errors", "errors", "pauses"):
                setattr(row, name, int(value))
            elif name in ("latency", "paused_seconds"):
                setattr(row, name, float(value))
        elif key.startswith("max_host_latency/") and _is_number(value):
            host = key[17:]
            row = rows.get(host) or rows.setdefault(host, HostRow(host))
            row.max_latency = float(value)
    return list(rows.values())
