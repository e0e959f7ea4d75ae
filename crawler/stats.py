"""Crawl statistics: flat counters, the end-of-crawl summary, the live progress display.

Stat keys are flat strings; a ``/`` groups a family (``status/200``, ``errors/DownloadTimeout``).
The engine uses::

    requests  requests_enqueued  responses  status/<code>  bytes  retries  redirects  max_depth
    items_scraped  items_dropped  items_invalid  errors/<ExceptionType>
    duplicates_filtered  offsite_dropped  pending  in_flight  finish_reason

:meth:`Stats.to_dict` adds ``start_time``, ``finish_time`` (ISO 8601, UTC), ``elapsed``
(seconds), ``pages_per_second`` (responses / elapsed) and ``items_per_second``, computed when
called. ``requests_enqueued`` counts every request the frontier accepted (start requests and
the requests callbacks yield; duplicates are ``duplicates_filtered``). This module does not
import ``rich``: only :class:`Progress` on a terminal does.

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
import io
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Self

import orjson

from .tasks import stop_task

__all__ = [
    "REPORT_FAMILIES", "Gauges", "Progress", "Stats", "Timeline", "plural", "reason_sentence",
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
        if len(fields) < MAX_FIELDS and not fields.keys() >= item.keys():
            # A key starting with NUL is the feeds' tag (crawler.feeds.ITEM_TAG), not a field.
            self.expect_fields([k for k in item if isinstance(k, str) and k not in fields
                                and k[:1] != "\x00"])
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


#: A coroutine function returning the frontier's counts (``FrontierCounts``: ``.pending``).
Counts = Callable[[], Awaitable[Any]]


@dataclass(slots=True)
class _Snapshot:
    pages: int
    items: int
    pending: int
    in_flight: int
    errors: int


class Progress:
    """Reports crawl progress while the crawl runs; an async context manager.

    On a terminal (``stream.isatty()``, or ``live=True``) a ``rich`` display is refreshed every
    ``refresh`` seconds (about once a second) and erased on exit: one line of figures, and a
    small table of the busiest and the slowest hosts under it. Log records sent to the same
    stream are printed above it. Otherwise a plain INFO log line is emitted ``first`` seconds
    after the start (10), then every ``interval`` seconds (none when ``interval <= 0``)::

        Crawled 120 pages (at 40.0 pages/s), scraped 118 items (at 39.3/s), pending 12,
        in flight 8, errors 0, about 1s left

    Rates cover the last interval. ``pending`` is the frontier's own count, from ``counts``
    (awaited at most once per line, so at most once a second), plus what ``gauges`` says is
    leased but waiting in this process; the time left is pending / the recent page rate, shown
    when both are known. Without ``counts`` and ``gauges`` the ``pending`` and ``in_flight``
    stats are shown. The reporting task is created on entry and cancelled and awaited on exit;
    a failure inside it is logged, never raised.
    """

    __slots__ = ("_task", "counts", "first", "gauges", "interval", "live", "refresh", "stats",
                 "stream")

    def __init__(self, stats: Stats, *, interval: float = 60.0, stream: IO[str] | None = None,
                 gauges: Gauges | None = None, counts: Counts | None = None,
                 live: bool | None = None, refresh: float = 1.0, first: float = 10.0) -> None:
        self.stats = stats
        self.interval = interval
        self.first = first
        self.refresh = refresh
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        self.gauges = gauges
        self.counts = counts
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty()) if callable(isatty) else False
        #: Whether the live terminal display is used (else plain log lines).
        self.live = live
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self.live:
            self._task = asyncio.create_task(self._live_loop(), name="progress-display")
        elif self.interval > 0:
            self._task = asyncio.create_task(self._log_loop(), name="progress-log")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        try:
            await stop_task(task)
        except Exception:
            logger.warning("progress display failed", exc_info=True)

    # -- shared ------------------------------------------------------------------------------

    async def snapshot(self) -> _Snapshot:
        """The figures shown, now."""
        stats = self.stats
        if self.gauges is not None:
            waiting, in_flight = self.gauges()
        else:
            waiting, in_flight = stats.get("pending"), stats.get("in_flight")
        pending = int(waiting)
        if self.counts is not None:
            try:
                # A frontier waiting out an outage (Redis) must not freeze the display.
                async with asyncio.timeout(2.0):
                    pending += int((await self.counts()).pending)
            except (Exception, TimeoutError) as exc:  # unreachable: show what is known
                logger.debug("frontier counts unavailable: %s", exc)
        return _Snapshot(int(stats.get("responses")), int(stats.get("items_scraped")), pending,
                         int(in_flight), int(stats.total("errors")))

    def line(self, now: _Snapshot, pages_rate: float, items_rate: float) -> str:
        """The plain progress line for a snapshot and the given rates."""
        text = (f"Crawled {now.pages} pages (at {pages_rate:.1f} pages/s), scraped {now.items} "
                f"items (at {items_rate:.1f}/s), pending {now.pending}, in flight "
                f"{now.in_flight}, errors {now.errors}")
        eta = _eta(now.pending, pages_rate)
        return f"{text}, about {eta} left" if eta else text

    # -- plain log lines ---------------------------------------------------------------------

    async def _log_loop(self) -> None:
        last_t = time.monotonic()
        last = await self.snapshot()
        wait = min(self.first, self.interval) if self.first > 0 else self.interval
        while True:
            await asyncio.sleep(wait)
            wait = self.interval
            now_t = time.monotonic()
            now = await self.snapshot()
            dt = max(now_t - last_t, 1e-9)
            logger.info("%s", self.line(now, (now.pages - last.pages) / dt,
                                         (now.items - last.items) / dt))
            last_t, last = now_t, now

    # -- live terminal display ---------------------------------------------------------------

    async def _live_loop(self) -> None:
        # rich costs tens of milliseconds to import: only a terminal run pays for it.
        from rich.console import Console, Group, RenderableType
        from rich.live import Live
        from rich.table import Table
        from rich.text import Text

        # rich sizes itself from the process's std streams; the stream we draw on is the
        # terminal that matters.
        try:
            width: int | None = os.get_terminal_size(self.stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            width = None
        console = Console(file=self.stream, force_terminal=True, highlight=False, width=width)
        # Rates over a few refreshes: over one second they jump around too much to read. The
        # time left uses a longer window still.
        samples: deque[tuple[float, int, int]] = deque(maxlen=30)

        async def render() -> RenderableType:
            t = time.monotonic()
            now = await self.snapshot()
            samples.append((t, now.pages, now.items))
            t0, p0, i0 = samples[max(0, len(samples) - 6)]
            dt = t - t0
            page_rate = (now.pages - p0) / dt if dt > 0 else 0.0
            item_rate = (now.items - i0) / dt if dt > 0 else 0.0
            t_long, p_long, _ = samples[0]
            long_rate = (now.pages - p_long) / (t - t_long) if t > t_long else 0.0
            # One line, always: cut with an ellipsis rather than wrap on a narrow terminal.
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(f"{now.pages:,}", style="bold")
            text.append(f" pages ({page_rate:,.1f}/s) · ")
            text.append(f"{now.items:,}", style="bold")
            text.append(f" items ({item_rate:,.1f}/s) · pending {now.pending:,}")
            eta = _eta(now.pending, long_rate)
            if eta:
                text.append(f" (about {eta} left)", style="dim")
            text.append(f" · in flight {now.in_flight:,} · ")
            text.append(f"errors {now.errors:,}", style="bold red" if now.errors else "")
            text.append(f" · {_duration(self.stats.elapsed)}", style="dim")
            rows = busiest_and_slowest(self.stats)
            if not rows:
                return text
            table = Table(box=None, pad_edge=False, show_edge=False, header_style="dim")
            for name, justify in (("host", "left"), ("", "left"), ("pages", "right"),
                                  ("mean latency", "right"), ("errors", "right")):
                table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                                 overflow="ellipsis")
            for row in rows:
                table.add_row(row.host, row.why, f"{row.responses:,}",
                              f"{row.mean_latency * 1000:,.0f} ms", f"{row.failures:,}")
            return Group(text, table)

        redirect = self.stream is sys.stderr
        live = Live(await render(), console=console, auto_refresh=False, transient=True,
                    redirect_stdout=False, redirect_stderr=redirect)
        live.start(refresh=True)
        moved: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
        try:
            if redirect:
                # Log handlers hold the real stderr they were built with; point them at rich's
                # proxy so log records print above the live display instead of through it.
                moved = _move_handlers(self.stream, sys.stderr)
            while True:
                await asyncio.sleep(self.refresh)
                live.update(await render(), refresh=True)
        finally:
            for handler, original in moved:
                handler.setStream(original)
            live.stop()


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


def busiest_and_slowest(stats: Stats, busiest: int = 3, slowest: int = 2) -> list[HostRow]:
    """The live display's table: the hosts with the most responses, then the slowest (by mean
    latency, among hosts with at least 3 responses) not already listed."""
    if not stats._hosts:
        return []
    rows = host_rows({k: v for k, v in stats._values.items()
                      if k.startswith(("hosts/", "max_host_latency/"))})
    top = sorted(rows, key=lambda r: -r.responses)[:busiest]
    for row in top:
        row.why = "busiest"
    seen = {row.host for row in top}
    slow = [r for r in sorted(rows, key=lambda r: -r.mean_latency)
            if r.responses >= 3 and r.host not in seen][:slowest]
    for row in slow:
        row.why = "slowest"
    return top + slow if len(rows) > 1 else top


def _eta(pending: int, rate: float) -> str:
    """The time left at ``rate`` pages/s for ``pending`` requests, or "" when unknown."""
    if pending <= 0 or rate <= 0:
        return ""
    seconds = pending / rate
    return _duration(seconds) if seconds < 86400 * 30 else ""


def _move_handlers(old: IO[str], new: IO[str]) -> list[tuple[logging.StreamHandler[Any], IO[str]]]:
    """Point every stream handler of the root and ``crawler`` loggers writing to ``old`` at
    ``new``; returns what to restore."""
    moved: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
    if new is old:
        return moved
    for name in (None, "crawler"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)
                moved.append((handler, old))
    return moved
