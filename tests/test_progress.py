"""The progress reporter's two modes: the periodic log line and the live display."""

from __future__ import annotations

import asyncio
import fcntl
import io
import logging
import os
import re
import struct
import sys
import termios

import pytest

from crawler.progress import Progress, busiest_and_slowest
from crawler.stats import Stats

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LINE = re.compile(
    r"Crawled (\d+) pages \(at ([\d.]+) pages/s\), scraped (\d+) items \(at ([\d.]+)/s\), "
    r"pending (\d+), in flight (\d+), errors (\d+)"
)


async def test_progress_logs_a_line_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    stats.start()
    gauge_calls = 0

    def gauges() -> tuple[int, int]:
        nonlocal gauge_calls
        gauge_calls += 1
        return 7, 3

    caplog.set_level(logging.INFO, logger="crawler.stats")
    progress = Progress(stats, interval=0.2, stream=io.StringIO(), gauges=gauges)
    assert progress.live is False  # a StringIO is not a terminal
    async with progress:
        for _ in range(10):
            stats.inc("responses", 10)
            stats.inc("items_scraped", 5)
            stats.inc("errors/HttpError")
            await asyncio.sleep(0.1)
    found = [LINE.search(r.getMessage()) for r in caplog.records]
    matches = [m for m in found if m]
    assert len(matches) >= 2  # ~1 s at 0.2 s: 5 lines, >= 2 however slow the machine
    pages = [int(m.group(1)) for m in matches]
    assert pages == sorted(pages) and 0 < pages[-1] <= 100
    for m in matches:
        assert (m.group(5), m.group(6)) == ("7", "3")
        # One consistent snapshot: items and errors move in step with pages.
        assert int(m.group(3)) * 2 == int(m.group(1)) == int(m.group(7)) * 10
        assert float(m.group(2)) > 0
    assert gauge_calls >= len(matches)
    # The reporting task is gone: nothing left running after the context.
    assert {t for t in asyncio.all_tasks() if not t.done()} == {asyncio.current_task()}
    count = len(matches)
    await asyncio.sleep(0.5)
    assert len([r for r in caplog.records if LINE.search(r.getMessage())]) == count


async def test_progress_zero_interval_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crawler.stats")
    async with Progress(Stats(), interval=0, stream=io.StringIO()) as progress:
        assert progress.live is False
        await asyncio.sleep(0.1)
    assert not caplog.records


async def test_progress_cancelled_from_outside_propagates() -> None:
    entered = asyncio.Event()

    async def crawl() -> None:
        async with Progress(Stats(), interval=0.05, stream=io.StringIO()):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(crawl())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {t for t in asyncio.all_tasks() if not t.done()} == {asyncio.current_task()}


async def test_progress_live_display_on_a_pty() -> None:
    """A real pseudo-terminal: the display is chosen by isatty() and rendered by rich."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    stream = os.fdopen(slave, "w", encoding="utf-8")
    received = bytearray()
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)

    def drain() -> None:
        try:
            received.extend(os.read(master, 65536))
        except (BlockingIOError, OSError):
            pass

    loop.add_reader(master, drain)
    try:
        stats = Stats()
        stats.start()
        stats.inc("responses", 1234)
        stats.inc("items_scraped", 1000)
        stats.inc("errors/DownloadTimeout", 2)
        progress = Progress(stats, interval=60, stream=stream, gauges=lambda: (55, 8),
                            refresh=0.05)
        assert progress.live is True
        async with progress:
            for _ in range(6):
                stats.inc("responses", 100)
                await asyncio.sleep(0.05)
        stream.flush()
        await asyncio.sleep(0.1)
        drain()
    finally:
        loop.remove_reader(master)
        stream.close()
        os.close(master)
    raw = received.decode("utf-8", "replace")
    assert "\x1b[" in raw  # ANSI control sequences: rich drew (and erased) a live line
    text = ANSI.sub("", raw)
    pages = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) pages", text)]
    assert len(set(pages)) >= 2  # refreshed while running, with the new figures
    assert all(1234 <= n <= 1834 for n in pages) and pages == sorted(pages)
    line = text.splitlines()[0]  # one line, not wrapped
    assert "1,000 items" in line
    assert "pending 55" in line and "in flight 8" in line and "errors 2" in line


async def test_progress_live_forced_on_any_stream() -> None:
    stream = io.StringIO()
    stats = Stats()
    stats.inc("responses", 42)
    async with Progress(stats, stream=stream, live=True, refresh=0.05):
        await asyncio.sleep(0.15)
    raw = stream.getvalue()
    assert "\x1b[" in raw and "42 pages" in ANSI.sub("", raw)


async def test_live_display_keeps_log_records_readable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Log records sent to the display's stream print above the live line, not through it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    log = logging.getLogger("crawler.test_live")
    root = logging.getLogger("crawler")
    root.addHandler(handler)
    log.setLevel(logging.INFO)
    original = handler.stream
    try:
        async with Progress(Stats(), stream=sys.stderr, live=True, refresh=0.05):
            await asyncio.sleep(0.1)
            assert handler.stream is not original  # rerouted through rich while live
            log.info("fetched http://127.0.0.1/page/1")
            await asyncio.sleep(0.1)
        assert handler.stream is original
    finally:
        root.removeHandler(handler)
    err = ANSI.sub("", capsys.readouterr().err)
    lines = [line.strip("\r") for line in err.splitlines()]
    assert "LOG fetched http://127.0.0.1/page/1" in lines  # a whole line of its own


# -- what the live line and the log line show: the frontier's real pending count -------------


async def test_progress_pending_is_the_frontiers_count_polled_once_per_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from crawler.frontier.memory import MemoryFrontier
    from crawler.http import Request

    frontier = MemoryFrontier()
    await frontier.open()
    await frontier.add([Request(f"http://h/{i}") for i in range(500)])
    calls = 0

    async def counts() -> object:
        nonlocal calls
        calls += 1
        return await frontier.counts()

    stats = Stats()
    stats.start()
    caplog.set_level(logging.INFO, logger="crawler.stats")
    # first=0.2: the first line comes long before the interval (10 s in a real crawl).
    progress = Progress(stats, interval=3600, first=0.2, stream=io.StringIO(),
                        gauges=lambda: (4, 2), counts=counts)
    async with progress:
        for _ in range(40):
            if any(LINE.search(r.getMessage()) for r in caplog.records):
                break
            stats.inc("responses", 10)
            await asyncio.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if LINE.search(r.getMessage())]
    assert len(lines) == 1, lines
    assert "pending 504, in flight 2" in lines[0]  # 500 in the frontier + 4 leased, waiting
    assert re.search(r"about [\d.ms]+ left$", lines[0])
    assert calls == 2  # once at the start, once for the line: not per request
    snapshot = await progress.snapshot()
    assert snapshot.pending == 504
    assert progress.line(snapshot, 100.0, 0.0).endswith("about 5.0s left")
    assert not progress.line(snapshot, 0.0, 0.0).endswith("left")  # no rate: no estimate


def test_progress_first_line_after_10_seconds_by_default() -> None:
    assert Progress(Stats(), stream=io.StringIO()).first == 10.0


def test_busiest_and_slowest_hosts() -> None:

    stats = Stats()
    for _ in range(50):
        stats.host_response("big:80", 200, 0.01)
    for _ in range(5):
        stats.host_response("slow:80", 200, 2.0)
    stats.host_failed("slow:80")
    stats.host_response("tiny:80", 500, 9.0)  # one response: not "slowest"
    rows = busiest_and_slowest(stats, busiest=1, slowest=2)
    assert [(r.host, r.why) for r in rows] == [("big:80", "busiest"), ("slow:80", "slowest")]
    assert rows[1].mean_latency == pytest.approx(2.0) and rows[1].failures == 1


async def test_live_display_shows_the_hosts_table_and_time_left() -> None:
    stream = io.StringIO()
    stats = Stats()
    stats.start()
    for _ in range(30):
        stats.host_response("shop.example:443", 200, 0.2)
    for host in ("a.example:443", "b.example:443"):
        for _ in range(10):
            stats.host_response(host, 200, 0.1)
    for _ in range(4):
        stats.host_response("slow.example:443", 200, 3.0)

    async def counts() -> object:
        return type("Counts", (), {"pending": 1000})()

    async with Progress(stats, stream=stream, live=True, refresh=0.05, gauges=lambda: (0, 3),
                        counts=counts):
        for _ in range(6):
            stats.inc("responses", 50)
            await asyncio.sleep(0.05)
    text = ANSI.sub("", stream.getvalue())
    assert "pending 1,000" in text and "in flight 3" in text and " left" in text
    assert re.search(r"shop\.example:443\s+busiest\s+30\s+200 ms\s+0", text), text[-800:]
    assert re.search(r"slow\.example:443\s+slowest\s+4\s+3,000 ms", text)
