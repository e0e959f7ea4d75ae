"""Several `crawl --frontier redis://...` workers sharing one crawl, against the local site."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from crawler.demosite import expected_shop_items
from crawler.frontier.redis import frontier_purge, frontier_status

from .redis_util import RedisServer
from .servers import TestSite
from .test_cli import BIN, make_project, run
from .test_readme import readme_block

pytestmark = pytest.mark.redis

PRODUCTS = 3000


def worker_args(site: TestSite, frontier: str, crawl_id: str, out: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "crawl"), "shop", "-o", str(out), "--frontier", frontier,
        "-a", f"start_url={site.url}/shop/", "-s", f"crawl_id={crawl_id}",
        "-s", "concurrency=8", "-s", "concurrency_per_host=4", "-s", "lease_timeout=3",
        "-s", "log_level=WARNING", *extra,
    ]


async def start(args: list[str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 240) -> str:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    return err.decode()


def read_items(paths: list[Path]) -> list[dict[str, object]]:
    items = []
    for path in paths:
        if path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    pass  # a line torn by the SIGKILL
    return items


@pytest.mark.slow
async def test_three_workers_one_killed_lose_nothing(redis_url: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    crawl_id = uuid.uuid4().hex
    outs = tmp_path / "out-{worker}.jsonl"
    try:
        async with TestSite(books=10, shop_products=PRODUCTS) as site:
            args = worker_args(site, redis_url, crawl_id, outs)
            procs = [await start(args, project) for _ in range(3)]
            # Kill one worker part-way, while it holds leases.
            while sum(1 for _ in tmp_path.glob("out-*.jsonl")) < 3 or sum(
                p.stat().st_size for p in tmp_path.glob("out-*.jsonl")
            ) < 100_000:
                await asyncio.sleep(0.05)
            procs[0].send_signal(signal.SIGKILL)
            await procs[0].wait()
            errs = [await finish(p) for p in procs[1:]]
            assert [p.returncode for p in procs[1:]] == [0, 0], errs
            status = await frontier_status(redis_url, "shop", crawl_id)
            assert status["finished"] and status["pending"] == 0 and status["leased"] == 0
            # Every page was fetched at least once, and per-host concurrency held for the
            # whole cluster, measured at the server.
            product_hits = {p: n for p, n in site.stats.hits.items() if p.startswith("/shop/p/")}
            assert len(product_hits) == PRODUCTS
            assert max(site.stats.max_inflight_by_host.values()) <= 4
        paths = sorted(tmp_path.glob("out-*.jsonl"))
        assert len(paths) == 3
        skus = Counter(str(i["sku"]) for i in read_items(paths))
        assert set(skus) == {e["sku"] for e in expected_shop_items(PRODUCTS)}
        # At most the killed worker's in-flight requests repeat; merged, each item is once.
        merged = tmp_path / "merged.jsonl"
        code, _, err = await run(str(BIN / "crawler"), "merge", str(merged),
                                 *map(str, paths), "--key", "url")
        assert code == 0, err
        items = read_items([merged])
        assert len(items) == PRODUCTS == len({i["url"] for i in items})
    finally:
        await frontier_purge(redis_url, "shop", crawl_id)


async def test_frontier_status_and_purge_commands(redis_url: str, site: TestSite,
                                                  tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    crawl_id = uuid.uuid4().hex
    args = worker_args(site, redis_url, crawl_id, tmp_path / "o-{worker}.jsonl",
                       "-s", "close_on.items=5")
    code, _, err = await run(*args, cwd=project)
    assert code == 0, err
    base = [str(BIN / "crawler"), "frontier"]
    code, out, err = await run(*base, "status", "--frontier", redis_url, "--spider", "shop",
                               "--crawl-id", crawl_id)
    assert code == 0, err
    assert "pending" in out and "done" in out and "running" in out
    code, out, _ = await run(*base, "purge", "--frontier", redis_url, "--spider", "shop",
                             "--crawl-id", crawl_id)
    assert code == 0 and "purged" in out
    status = await frontier_status(redis_url, "shop", crawl_id)
    assert status["seen"] == 0 and status["done"] == 0


@pytest.mark.slow
async def test_redis_restarted_mid_crawl_the_crawl_completes(
    redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server(appendonly=True, dir=tmp_path)
    server.start()
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    out = tmp_path / "out.jsonl"
    async with TestSite(books=10, shop_products=1000) as site:
        args = worker_args(site, server.url(0), "restart", out, "-s", "download_delay=0.002")
        proc = await start(args, project)
        while not out.exists() or out.stat().st_size < 20_000:
            await asyncio.sleep(0.05)
        server.kill()
        await asyncio.sleep(1.5)
        assert proc.returncode is None  # the worker waits for Redis, it does not crash
        server.start()
        err = await finish(proc)
        assert proc.returncode == 0, err[-3000:]
        assert "Redis" in err  # the outage was logged
    skus = {str(i["sku"]) for i in read_items([out])}
    assert skus == {e["sku"] for e in expected_shop_items(1000)}


@pytest.mark.slow
async def test_redis_restarted_without_its_data_workers_stop_with_an_error(
    redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server()  # no persistence: a restart loses every key
    server.start()
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    outs = tmp_path / "out-{worker}.jsonl"
    async with TestSite(books=10, shop_products=1000) as site:
        args = worker_args(site, server.url(0), "vanish", outs, "-s", "download_delay=0.002")
        procs = [await start(args, project) for _ in range(2)]
        while sum(p.stat().st_size for p in tmp_path.glob("out-*.jsonl")) < 20_000:
            await asyncio.sleep(0.05)
        server.kill()
        await asyncio.sleep(0.5)
        server.start()
        errs = [await finish(p) for p in procs]
        hits = [n for p, n in site.stats.hits.items() if p.startswith("/shop/p/")]
    # Both notice that the crawl's state is gone and fail, saying so, instead of crawling
    # again from an empty Redis and reporting "finished".
    assert [p.returncode for p in procs] == [1, 1], errs
    assert all("vanished" in err for err in errs), errs
    assert max(hits) == 1  # nothing crawled again from the empty Redis
    assert len(hits) < 1000
    # They wrote nothing to the new, empty Redis either: the crawl is not reported finished.
    code, _, err = await run(str(BIN / "crawler"), "frontier", "status", "--frontier",
                             server.url(0), "--spider", "shop", "--crawl-id", "vanish")
    assert code == 1 and "unknown" in err, err
