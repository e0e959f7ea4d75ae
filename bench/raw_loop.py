"""The baseline: the shop crawl written by hand with aiohttp + parsel, nothing else.

    python bench/raw_loop.py http://127.0.0.1:8080/shop/ out.jsonl --concurrency 64 [--no-uvloop]

One ``ClientSession``, ``concurrency`` worker tasks taking ``(url, kind)`` from an
``asyncio.Queue``, a ``set`` of URLs for dedup, ``urljoin`` for links, the selectors of
``bench/project/spiders/shop.py``, one JSON line per product written with orjson. Prints one JSON
line: ``{"pages", "items", "errors", "elapsed"}`` (``elapsed``: first request to last page).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import IO
from urllib.parse import urljoin

import aiohttp
import orjson
from parsel import Selector

# The same selectors as the framework's spider (bench/project/spiders/shop.py).
LISTING_LINKS = "a.listing"
PRODUCT_LINKS = "a.product"
PAGER_LINKS = "nav.pager a"
RELATED_LINKS = "a.related"
TITLE = "h1.title::text"
PRICE = "span.price::text"
SKU = "span.sku::text"

INDEX, LISTING, PRODUCT = 0, 1, 2


async def crawl(start_url: str, out: IO[bytes], concurrency: int) -> dict[str, float]:
    """Crawl the shop from ``start_url``; returns the counts and the elapsed seconds."""
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    seen = {start_url}
    queue.put_nowait((start_url, INDEX))
    counts = {"pages": 0, "items": 0, "errors": 0}

    def follow(sel: Selector, base: str, query: str, kind: int) -> None:
        for href in sel.css(query + "::attr(href)").getall():
            url = urljoin(base, href)
            if url not in seen:
                seen.add(url)
                queue.put_nowait((url, kind))

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            url, kind = await queue.get()
            try:
                async with session.get(url) as resp:
                    html = await resp.text()
                    ok = resp.status == 200
                if not ok:
                    counts["errors"] += 1
                    continue
                counts["pages"] += 1
                sel = Selector(text=html)
                if kind == INDEX:
                    follow(sel, url, LISTING_LINKS, LISTING)
                elif kind == LISTING:
                    follow(sel, url, PRODUCT_LINKS, PRODUCT)
                    follow(sel, url, PAGER_LINKS, LISTING)
                else:
                    sku = sel.css(SKU).get() or ""
                    item = {
                        "id": int(sku[4:]) if sku[4:].isdigit() else None,
                        "title": sel.css(TITLE).get(),
                        "price": (sel.css(PRICE).get() or "").lstrip("$"),
                        "sku": sku,
                        "url": url,
                    }
                    out.write(orjson.dumps(item) + b"\n")
                    counts["items"] += 1
                    follow(sel, url, RELATED_LINKS, PRODUCT)
                    follow(sel, url, LISTING_LINKS, LISTING)
            except (aiohttp.ClientError, TimeoutError) as exc:
                counts["errors"] += 1
                print(f"error {url}: {exc!r}", file=sys.stderr)
            finally:
                queue.task_done()

    t0 = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await queue.join()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    elapsed = time.perf_counter() - t0
    return {**counts, "elapsed": elapsed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("start_url")
    p.add_argument("output")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--no-uvloop", action="store_true", help="run on asyncio's own loop")
    args = p.parse_args(argv)
    with open(args.output, "wb") as out:
        coro = crawl(args.start_url, out, args.concurrency)
        if args.no_uvloop:
            result = asyncio.run(coro)
        else:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(coro)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
