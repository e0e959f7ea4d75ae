"""The live progress display of a running crawl: a ``rich`` line and host table on a
terminal, else a periodic INFO log line (:class:`Progress`). It reads the counters of
:class:`~crawler.stats.Stats`; this module imports ``rich`` only when the display is live.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, Self

from .stats import Gauges, HostRow, Stats, _duration, host_rows
from .tasks import stop_task

__all__ = ["Counts", "Progress", "busiest_and_slowest"]

#: The progress lines keep the logger they always had: log filters and formats name it.
logger = logging.getLogger("crawler.stats")

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
