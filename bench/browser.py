"""Benchmark of rendered pages (Chromium through Playwright), printed as JSON on the last line.

    .venv/bin/python bench/browser.py [--quick]

Figures (the JS site of ``tests/browser_site.py``, served by aiohttp in its own process):

1. Rendered pages/s at ``browser_concurrency`` 2 and 4: pages that build a 20-item list in
   JavaScript, the default wait (load event, then the network quiet for 0.5 s) and
   ``browser_wait = "load"``.
2. Peak RSS of the whole process tree (this crawl + Playwright's driver + Chromium) over
   1,000 rendered pages, sampled every 0.2 s (the sum of the processes' RSS, and their PSS,
   which counts a page shared by several processes once); goal: flat after warm-up (the
   peak over the last 500 pages within 10 % of the peak over pages 100-500).
3. A crawl of 20,000 plain pages where 1 page in 100 is rendered versus none: plain pages/s
   (plain responses over the time between the first and the last of them, the browser's
   start-up inside it), 3 alternated pairs, the median of the pairs' ratios; goal: within
   5 %. Also the crawl process's own CPU time per plain page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crawler import Request, Response, Spider  # noqa: E402
from crawler.runner import run_spider  # noqa: E402
from crawler.settings import build_settings  # noqa: E402
from tests.browser_site import tree_pss, tree_rss  # noqa: E402

GOAL_FLAT = 1.10
GOAL_MIXED = 0.95


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(**overrides: Any) -> Any:
    base: dict[str, Any] = {"obey_robots": False, "log_interval": 3600, "log_level": "WARNING",
                            "concurrency": 64, "concurrency_per_host": 64, "retries": 0}
    base.update(overrides)
    return build_settings(project_dir=None, cli=base, environ={})


class Bench(Spider):
    name = "browserbench"
    base = ""
    rendered = 0  # how many /bench pages to render
    plain = 0  # how many plain pages
    every = 0  # render one page in `every` (0: the rendered pages alone)
    on_page: Any = None

    async def start(self) -> AsyncIterator[Request]:
        if self.every:
            for n in range(self.plain):
                if n % self.every == self.every - 1:
                    yield Request(f"{self.base}/bench/{n}", browser=True)
                else:
                    yield Request(f"{self.base}/plainbench/{n}")
            return
        for n in range(self.rendered):
            yield Request(f"{self.base}/bench/{n}", browser=True)

    def parse(self, response: Response) -> Any:
        rendered = "/bench/" in response.url
        if self.on_page is not None:
            self.on_page(rendered)
        yield {"n": len(response.css("li.it, p.it"))}


def crawl(base: str, **kwargs: Any) -> tuple[float, dict[str, Any]]:
    spider_settings = kwargs.pop("settings", {})
    if "on_page" in kwargs:
        kwargs["on_page"] = staticmethod(kwargs["on_page"])  # a hook, not a method
    cls = type("B", (Bench,), {"base": base, **kwargs})
    started = time.monotonic()
    result = asyncio.run(run_spider(cls, settings(**spider_settings)))
    return time.monotonic() - started, result.stats


def rate(base: str, pages: int, concurrency: int, wait: str) -> float:
    # Measured from the first page on, the browser's start-up excluded (paid once per crawl).
    times: list[float] = []
    crawl(base, rendered=pages, on_page=lambda _: times.append(time.monotonic()),
          settings={"browser_concurrency": concurrency, "browser_wait": wait})
    return (len(times) - 1) / (times[-1] - times[0])


def memory(base: str, pages: int) -> dict[str, Any]:
    samples: list[tuple[int, int, int]] = []  # (pages done, tree RSS, tree PSS), bytes
    done = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((done[0], tree_rss(os.getpid()), tree_pss(os.getpid())))
            time.sleep(0.2)

    def on_page(_: bool) -> None:
        done[0] += 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        elapsed, stats = crawl(base, rendered=pages, on_page=on_page,
                               settings={"browser_concurrency": 4, "browser_wait": "load"})
    finally:
        stop.set()
        thread.join()
    mb = 1024 * 1024

    def peak(column: int, low: float, high: float) -> int:
        values = [sample[column] for sample in samples if low <= sample[0] < high]
        return round(max(values) / mb) if values else 0

    by_hundred = {n: peak(1, n, n + 100) for n in range(0, pages, 100)}
    return {
        "pages": pages,
        "seconds": round(elapsed, 1),
        "peak_rss_mb": peak(1, 0, pages + 1),
        "peak_pss_mb": peak(2, 0, pages + 1),
        # Warm-up: the first 10 % (the browser starting, the first contexts); then the peak
        # of pages 10-50 % against the peak of the second half.
        "warm_peak_rss_mb": peak(1, pages * 0.1, pages * 0.5),
        "late_peak_rss_mb": peak(1, pages * 0.5, pages + 1),
        "warm_peak_pss_mb": peak(2, pages * 0.1, pages * 0.5),
        "late_peak_pss_mb": peak(2, pages * 0.5, pages + 1),
        "rss_by_hundred_mb": by_hundred,
        "contexts": stats.get("browser/contexts"),
        "browser_pages": stats.get("browser/pages"),
    }


def mixed(base: str, plain: int, rounds: int) -> dict[str, Any]:
    """Plain pages/s with none rendered and with 1 in 100 rendered, alternated, ``rounds``
    pairs; the ratio is the median of the pairs' ratios (the machine's load drifts between
    rounds more than within a pair). Also this process's CPU time per plain page."""
    out: dict[str, list[float]] = {"none": [], "one_in_100": []}
    cpu: dict[str, list[float]] = {"none": [], "one_in_100": []}
    ratios: list[float] = []
    for _ in range(rounds):
        pair: dict[str, float] = {}
        for kind, every in (("none", 10**9), ("one_in_100", 100)):
            times: list[float] = []
            before = os.times()
            crawl(base, plain=plain, every=every,
                  on_page=lambda r, t=times: None if r else t.append(time.monotonic()))
            after = os.times()
            pair[kind] = (len(times) - 1) / (times[-1] - times[0])
            out[kind].append(pair[kind])
            used = (after.user - before.user) + (after.system - before.system)
            cpu[kind].append(used / len(times) * 1e6)
        ratios.append(pair["one_in_100"] / pair["none"])
    return {"plain_pages": plain, "rounds": rounds, "none": [round(x) for x in out["none"]],
            "one_in_100": [round(x) for x in out["one_in_100"]],
            "ratios": [round(x, 3) for x in ratios], "ratio": round(statistics.median(ratios), 3),
            "cpu_us_per_plain_page": {k: round(statistics.median(v)) for k, v in cpu.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer pages and rounds")
    p.add_argument("--pages", type=int, help="rendered pages per pages/s figure (200)")
    p.add_argument("--memory-pages", type=int, help="rendered pages of the memory run (1,000)")
    p.add_argument("--plain", type=int, help="pages of the mixed crawl (20,000)")
    p.add_argument("--rounds", type=int, help="rounds of the mixed crawl (3)")
    p.add_argument("--only", default="rates,memory,mixed",
                   help="comma-separated figures: rates, memory, mixed")
    args = p.parse_args(argv)
    pages = args.pages or (60 if args.quick else 200)
    memory_pages = args.memory_pages or (300 if args.quick else 1000)
    plain = args.plain or (2000 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 3)
    only = set(args.only.split(","))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.browser_site", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        result: dict[str, Any] = {"rates": {}}
        for wait in ("networkidle", "load") if "rates" in only else ():
            for concurrency in (2, 4):
                print(f"rendered pages/s, browser_concurrency {concurrency}, wait {wait} ...",
                      file=sys.stderr, flush=True)
                result["rates"][f"{wait}/{concurrency}"] = round(
                    rate(base, pages, concurrency, wait), 1)
        if "memory" in only:
            print(f"memory over {memory_pages} rendered pages ...", file=sys.stderr, flush=True)
            m = result["memory"] = memory(base, memory_pages)
            m["flat"] = m["late_peak_rss_mb"] <= GOAL_FLAT * m["warm_peak_rss_mb"]
        if "mixed" in only:
            print(f"plain throughput, 1 page in 100 rendered vs none ({rounds} rounds) ...",
                  file=sys.stderr, flush=True)
            result["mixed"] = mixed(base, plain, rounds)
            result["mixed"]["ok"] = result["mixed"]["ratio"] >= GOAL_MIXED
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        sys.exit(main())
