"""Peak memory of a crawl whose one callback yields a million requests (issue 11, item 10).

    python bench/memory_callback.py [--requests N] [--jobdir]

One process per run: a local test site in a thread, one start page whose callback yields N
requests to distinct pages and then raises CloseSpider, so that the crawl stops once the
callback has finished (the requests not fetched by then stay pending). Prints the peak RSS, how
many pages were fetched while the callback was still running, and how long the callback ran.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crawler import CloseSpider, Request, Response, Spider
from crawler.demosite import run_in_thread
from crawler.runner import run_spider
from crawler.settings import build_settings


class Million(Spider):
    name = "million"
    base = ""
    n = 1_000_000
    report: dict[str, Any] = {}
    site: Any  #: the test site, set before the crawl

    async def start(self) -> Any:
        yield Request(f"{self.base}/links?n=0", callback=self.parse_many)

    def parse_many(self, response: Response) -> Any:
        t0 = time.monotonic()
        for i in range(self.n):
            yield Request(f"{self.base}/catalogue/category/books_{i % 50}/item-{i}.html?ref=home")
        Million.report["callback_seconds"] = time.monotonic() - t0
        Million.report["fetched_meanwhile"] = self.site.stats.total - 1
        raise CloseSpider("callback_done")

    def parse(self, response: Response) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--jobdir", action="store_true", help="a durable crawl (SQLite frontier)")
    args = p.parse_args(argv)
    with run_in_thread(books=10, shop_products=10) as site, tempfile.TemporaryDirectory() as tmp:
        cli: dict[str, Any] = {"obey_robots": False, "log_level": "WARNING",
                               "concurrency": 16}
        if args.jobdir:
            cli["jobdir"] = str(Path(tmp) / "job")
        settings = build_settings(project_dir=None, cli=cli, environ={})
        t0 = time.monotonic()
        result = asyncio.run(run_spider(
            Million, settings, spider_args={"base": site.url, "n": args.requests, "site": site},
            output=str(Path(tmp) / "out.jsonl"),
        ))
        elapsed = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "jobdir" if args.jobdir else "memory"
    print(f"{mode}: {args.requests:,} requests from one callback: peak RSS {peak:.0f} MB, "
          f"callback {Million.report.get('callback_seconds', 0):.1f} s, "
          f"{Million.report.get('fetched_meanwhile', 0)} pages fetched meanwhile, "
          f"crawl {elapsed:.1f} s ({result.reason}, "
          f"{result.stats.get('requests_enqueued', 0):,} enqueued)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
