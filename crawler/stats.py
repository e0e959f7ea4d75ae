"""Crawl statistics: flat counters, the end-of-crawl summary, the live progress display.

Stat keys are flat strings; a ``/`` groups a family (``status/200``, ``errors/DownloadTimeout``).
The engine uses::

    requests  responses  status/<code>  bytes  retries  redirects  max_depth
    items_scraped  items_dropped  items_invalid  errors/<ExceptionType>
    duplicates_filtered  offsite_dropped  pending  in_flight  finish_reason

:meth:`Stats.to_dict` adds ``start_time``, ``finish_time`` (ISO 8601, UTC), ``elapsed``
(seconds), ``pages_per_second`` (responses / elapsed) and ``items_per_second``, computed when
called. This module does not import ``rich``: only :class:`Progress` on a terminal does.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Self

import orjson

from .tasks import stop_task

__all__ = ["Gauges", "Progress", "Stats", "plural", "reason_sentence"]

logger = logging.getLogger(__name__)

#: A callable returning the frontier's ``(pending, in_flight)`` now.
Gauges = Callable[[], tuple[int, int]]

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

    # -- the hot path ------------------------------------------------------------------------

    def inc(self, key: str, n: int = 1) -> None:
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
        shown: set[str] = {"finish_reason"}

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


class Progress:
    """Reports crawl progress while the crawl runs; an async context manager.

    On a terminal (``stream.isatty()``, or ``live=True``) a one-line ``rich`` display is
    refreshed every ``refresh`` seconds (about once a second) and erased on exit; log records
    sent to the same stream are printed above it. Otherwise a plain INFO log line is emitted
    every ``interval`` seconds (none when ``interval <= 0``)::

        Crawled 120 pages (at 40.0 pages/s), scraped 118 items (at 39.3/s), pending 12,
        in flight 8, errors 0

    Rates cover the last interval. ``gauges`` returns ``(pending, in_flight)``; without it the
    ``pending`` and ``in_flight`` stats are shown. The reporting task is created on entry and
    cancelled and awaited on exit; a failure inside it is logged, never raised.
    """

    __slots__ = ("_task", "gauges", "interval", "live", "refresh", "stats", "stream")

    def __init__(self, stats: Stats, *, interval: float = 60.0, stream: IO[str] | None = None,
                 gauges: Gauges | None = None, live: bool | None = None,
                 refresh: float = 1.0) -> None:
        self.stats = stats
        self.interval = interval
        self.refresh = refresh
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        self.gauges = gauges
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

    def _snapshot(self) -> tuple[int, int, int, int, int]:
        """``(pages, items, pending, in_flight, errors)`` now."""
        stats = self.stats
        if self.gauges is not None:
            pending, in_flight = self.gauges()
        else:
            pending, in_flight = stats.get("pending"), stats.get("in_flight")
        return (int(stats.get("responses")), int(stats.get("items_scraped")), int(pending),
                int(in_flight), int(stats.total("errors")))

    def line(self, pages_rate: float, items_rate: float) -> str:
        """The plain progress line for the current stats and the given rates."""
        pages, items, pending, in_flight, errors = self._snapshot()
        return (f"Crawled {pages} pages (at {pages_rate:.1f} pages/s), scraped {items} items "
                f"(at {items_rate:.1f}/s), pending {pending}, in flight {in_flight}, "
                f"errors {errors}")

    # -- plain log lines ---------------------------------------------------------------------

    async def _log_loop(self) -> None:
        last_t = time.monotonic()
        pages, items, *_ = self._snapshot()
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            new_pages, new_items, pending, in_flight, errors = self._snapshot()
            dt = max(now - last_t, 1e-9)
            logger.info("Crawled %d pages (at %.1f pages/s), scraped %d items (at %.1f/s), "
                        "pending %d, in flight %d, errors %d",
                        new_pages, (new_pages - pages) / dt, new_items, (new_items - items) / dt,
                        pending, in_flight, errors)
            last_t, pages, items = now, new_pages, new_items

    # -- live terminal display ---------------------------------------------------------------

    async def _live_loop(self) -> None:
        # rich costs tens of milliseconds to import: only a terminal run pays for it.
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        # rich sizes itself from the process's std streams; the stream we draw on is the
        # terminal that matters.
        try:
            width: int | None = os.get_terminal_size(self.stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            width = None
        console = Console(file=self.stream, force_terminal=True, highlight=False, width=width)
        # Rates over a few refreshes: over one second they jump around too much to read.
        samples: deque[tuple[float, int, int]] = deque(maxlen=6)

        def render() -> Text:
            now = time.monotonic()
            pages, items, pending, in_flight, errors = self._snapshot()
            samples.append((now, pages, items))
            t0, p0, i0 = samples[0]
            dt = now - t0
            page_rate = (pages - p0) / dt if dt > 0 else 0.0
            item_rate = (items - i0) / dt if dt > 0 else 0.0
            # One line, always: cut with an ellipsis rather than wrap on a narrow terminal.
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(f"{pages:,}", style="bold")
            text.append(f" pages ({page_rate:,.1f}/s) · ")
            text.append(f"{items:,}", style="bold")
            text.append(f" items ({item_rate:,.1f}/s) · pending {pending:,} · "
                        f"in flight {in_flight:,} · ")
            text.append(f"errors {errors:,}", style="bold red" if errors else "")
            text.append(f" · {_duration(self.stats.elapsed)}", style="dim")
            return text

        redirect = self.stream is sys.stderr
        live = Live(render(), console=console, auto_refresh=False, transient=True,
                    redirect_stdout=False, redirect_stderr=redirect)
        live.start(refresh=True)
        moved: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
        try:
            if redirect:
                # Log handlers hold the real stderr they were built with; point them at rich's
                # proxy so log records print above the live line instead of through it.
                moved = _move_handlers(self.stream, sys.stderr)
            while True:
                await asyncio.sleep(self.refresh)
                live.update(render(), refresh=True)
        finally:
            for handler, original in moved:
                handler.setStream(original)
            live.stop()


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
