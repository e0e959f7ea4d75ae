"""Smoke run of the benchmarks (bench/): every figure's code end to end, on tiny inputs.

No thresholds here: the goals are checked by ``make bench``, never by timed tests. What is
asserted is what the bench itself relies on: both crawls fetch the same pages, the server
counts per-host concurrency within the limit, the profile sees the framework, the report has
every figure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from bench import raw_loop
from bench import run as bench
from bench.scenarios import latency_server

pytestmark = pytest.mark.timeout(120)

PRODUCTS = 40  # 1 index + 2 listings + 40 products = 43 pages


def test_raw_loop_and_spider_share_one_selectors_module() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_shop_spider", bench.PROJECT / "spiders" / "shop.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared = sys.modules["shop_selectors"]
    assert shared.__file__ == str(bench.PROJECT / "shop_selectors.py")
    names = ("LISTING_LINKS", "PRODUCT_LINKS", "PAGER_LINKS", "RELATED_LINKS", "TITLE", "PRICE",
             "SKU")
    for name in names:
        assert getattr(raw_loop, name) is getattr(module, name) is getattr(shared, name)


def test_bench_end_to_end(tmp_path: Path) -> None:
    argv = [
        "--server", "testsite", "--products", str(PRODUCTS), "--rounds", "1", "--no-warmup",
        "--loops", "uvloop", "--concurrency", "8",
        "--seed-urls", "10", "--seed-delay", "0.2",
        "--hosts-urls", "30", "--hosts-delay", "0.05", "--hosts-count", "3", "--per-host", "2",
        "--memory-requests", "5000", "--startup-runs", "1",
        "--only", "throughput,profile,latency,memory,startup,processes",
    ]
    res = bench.run(bench.parse_args(argv), argv)

    (raw, framework), = res.throughput["uvloop"].rounds
    assert raw.pages == framework.pages == 43
    assert raw.items == framework.items == PRODUCTS

    hosts = res.hosts["uvloop"]
    assert hosts.responses == hosts.hits == 30
    assert set(hosts.max_inflight_by_host) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert max(hosts.max_inflight_by_host.values()) <= 2
    assert res.seed["uvloop"].responses == 10
    (one, two), = res.processes["uvloop"].rounds  # both crawls checked: every page, every item
    assert one.wall > 0 and two.wall > 0

    assert res.memory["uvloop"]["pending"] == 5000
    assert len(res.start_crawl["uvloop"]) == len(res.start_list["uvloop"]) == 1

    raw_profile, framework_profile = res.profile
    assert raw_profile.by_group.get("crawler", 0) == 0
    assert framework_profile.by_group.get("crawler", 0) > 0
    assert any("engine.py" in f.name for f in framework_profile.framework_cum)

    text = bench.markdown(res)
    for needle in ("## Machine", "Ratio framework/raw, whole process", "10 URLs x 0.2 s",
                   "over 3 hosts",
                   "max in flight per host", "Peak RSS, 5,000 pending", "`crawl shop`",
                   "`crawler list`", "| uvloop | 1 |", "busy CPU per page",
                   "`--processes 2` / `--processes 1`", "## Processes"):
        assert needle in text, needle
    assert bench.text_table(bench.rows(res)).count("\n") >= 8


def test_bench_outputs_section(tmp_path: Path) -> None:
    argv = ["--server", "testsite", "--products", str(PRODUCTS), "--rounds", "1",
            "--loops", "asyncio", "--concurrency", "8", "--only", "feeds", "--markdown", "-"]
    res = bench.run(bench.parse_args(argv), argv)

    assert res.feeds is not None
    assert set(res.feeds["rates"]) == {"jsonl", "sqlite", "postgresql"}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in res.feeds["rates"].values())
    assert res.feeds["ratio"]["jsonl"] == 1.0
    table = bench.text_table(bench.rows(res))
    assert "Items into SQLite / JSON lines" in table and "Items into PostgreSQL" in table
    assert "## Outputs" in bench.markdown(res)


@pytest.mark.redis
def test_bench_redis_section() -> None:
    argv = ["--server", "testsite", "--products", str(PRODUCTS), "--redis-rounds", "1",
            "--loops", "asyncio", "--concurrency", "8", "--only", "redis", "--markdown", "-"]
    res = bench.run(bench.parse_args(argv), argv)

    scale = res.redis["asyncio"]
    (runs,) = scale.rounds  # every crawl checked: every page once, every product once
    assert sorted(runs) == [0, 1, 2, 4]
    assert all(run.pages == 43 and run.cpu > 0 for run in runs.values())
    assert runs[0].redis_cpu == 0 and all(runs[w].redis_cpu > 0 for w in (1, 2, 4))
    assert all(p > 0 for p in scale.predicted(2))
    text = bench.markdown(res)
    assert "## Redis workers" in text and "Redis, 2 workers / 1 memory worker" in text


async def test_latency_server_counts_arrivals_per_host_as_the_kernel_saw_them() -> None:
    """The latency scenarios' server: keep-alive exchanges on two hosts, 404s not counted,
    a repeat counted, in-flight per host counted, gaps taken from the arrivals (a lower
    bound only, with the client's own spacing: never shorter than the client waited)."""
    with latency_server(["127.0.0.2", "127.0.0.3"]) as port:
        base2, base3 = f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"
        async with aiohttp.ClientSession() as session:
            async def get(url: str) -> tuple[int, str]:
                async with session.get(url) as response:
                    return response.status, await response.text()

            assert await get(f"{base2}/robots.txt") == (404, "404: Not Found")
            assert await get(f"{base2}/delay/0.01?i=1") == (200, "ok\n")
            await asyncio.sleep(0.1)
            assert await get(f"{base2}/delay/0.01?i=2") == (200, "ok\n")
            await asyncio.sleep(0.1)
            assert await get(f"{base2}/delay/0.01?i=2") == (200, "ok\n")  # a repeat
            results = await asyncio.gather(*(get(f"{base3}/delay/0.2?j={n}") for n in range(3)))
            assert results == [(200, "ok\n")] * 3
            status, body = await get(f"{base2}/stats")
            stats = json.loads(body)
            assert status == 200
            assert stats["hits"] == 6
            assert stats["repeats"] == 1
            assert stats["max_inflight_by_host"] == {"127.0.0.2": 1, "127.0.0.3": 3}
            assert stats["min_gap_by_host"]["127.0.0.2"] >= 0.1  # slept 0.1 s + a response
            assert stats["min_gap_by_host"]["127.0.0.3"] < 0.1  # three at once
            assert stats["first_at"] <= stats["last_at"]
            assert await get(f"{base2}/reset") == (200, "reset\n")
            stats = json.loads((await get(f"{base3}/stats"))[1])
            assert (stats["hits"], stats["min_gap"], stats["first_at"]) == (0, None, None)
