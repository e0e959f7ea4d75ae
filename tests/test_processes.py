"""``crawl NAME --processes N`` end to end, in subprocesses, against the local test site."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path

import orjson
import pytest

from crawler.demosite import expected_shop_items
from crawler.errors import ConfigError
from crawler.frontier.redis import frontier_purge
from crawler.processes import WorkerPlan, can_fork, run_workers, worker_outputs

from .servers import TestSite
from .test_cli import BIN, make_project, run

pytestmark = pytest.mark.timeout(180)

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

SHOP_SPIDER = """
    from crawler import Request, Spider

    class Shop(Spider):
        name = "shop"

        async def start(self):
            yield Request(self.base + "/shop/")

        def parse(self, response):
            yield from response.follow_all(css="a.listing", callback=self.parse_listing)

        def parse_listing(self, response):
            yield from response.follow_all(css="a.product", callback=self.parse_product)
            yield from response.follow_all(css="nav.pager a", callback=self.parse_listing)

        def parse_product(self, response):
            yield {"url": response.url, "sku": response.css("span.sku::text").get()}
            yield from response.follow_all(css="a.related", callback=self.parse_product)
"""

SLOW_SPIDER = """
    from crawler import Request, Spider

    class Slow(Spider):
        name = "slow"

        async def start(self):
            for i in range(400):
                yield Request(f"{self.base}/delay/0.3?i={i}")

        def parse(self, response):
            yield {"url": response.url}
"""


BROKEN_SPIDER = """
    from crawler import Spider

    class Broken(Spider):
        name = "broken"

        async def start(self):
            raise RuntimeError("start() broke before its first request")
            yield
"""


PID_SPIDER = """
    import os
    import sys

    from crawler import Request, Spider
    from helpers import IMPORTED_IN

    SPIDER_IMPORTED_IN = os.getpid()

    class Pids(Spider):
        name = "pids"

        async def start(self):
            for i in range(40):
                yield Request(f"{self.base}/delay/0.05?i={i}")

        def parse(self, response):
            yield {"url": response.url, "pid": os.getpid(), "spider": SPIDER_IMPORTED_IN,
                   "helper": IMPORTED_IN, "forked": "--processes" in sys.argv}
"""


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_worker_outputs_are_named_by_index_next_to_the_output() -> None:
    assert worker_outputs("out/items.jsonl", 2) == (
        ["out/items-1.jsonl", "out/items-2.jsonl"], "out/items.jsonl")
    assert worker_outputs("items-{worker}.jsonl", 2) == (
        ["items-1.jsonl", "items-2.jsonl"], "items-all.jsonl")
    assert worker_outputs(None, 3) == ([None, None, None], None)
    for bad in ("-", "items.csv", "items.json"):
        with pytest.raises(ConfigError):
            worker_outputs(bad, 2)


@needs_redis_server
async def test_two_processes_crawl_the_shop_once(site: TestSite, tmp_path: Path) -> None:
    """Two workers on a private redis-server: every page fetched once across both, the merged
    output has every product once, the summary and --stats are the crawl's."""
    project = make_project(tmp_path / "p", {"shop": SHOP_SPIDER})
    out, stats = tmp_path / "items.jsonl", tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "shop", "--processes", "2", "-O", str(out), "--stats", str(stats),
        "-a", f"base={site.url}", "-s", "obey_robots=false", "-s", "concurrency=8", cwd=project,
    )
    assert code == 0, err
    merged = _lines(out)
    assert len(merged) == 400
    assert {str(i["url"]) for i in merged} == {
        site.url + str(i["url"]) for i in expected_shop_items(400)}
    parts = [_lines(tmp_path / f"items-{i}.jsonl") for i in (1, 2)]
    assert sum(len(p) for p in parts) == 400  # each item once, in one worker's file
    pages = 1 + 20 + 400
    assert sum(n for p, n in site.stats.hits.items() if p.startswith("/shop")) == pages
    data = json.loads(stats.read_text())
    assert data["items_scraped"] == 400 and data["status/200"] == pages
    assert data["finish_reason"] == "finished"
    assert err.count("Crawl finished") == 1 and "All 2 worker processes exited" in err


async def test_processes_on_a_given_frontier(
    site: TestSite, tmp_path: Path, redis_url: str
) -> None:
    crawl_id = uuid.uuid4().hex
    project = make_project(tmp_path / "p", {"shop": SHOP_SPIDER})
    out = tmp_path / "items-{worker}.jsonl"
    try:
        code, _, err = await run(
            str(BIN / "crawl"), "shop", "--processes", "2", "-O", str(out),
            "--frontier", redis_url, "-s", f"crawl_id={crawl_id}",
            "-a", f"base={site.url}", "-s", "obey_robots=false", cwd=project,
        )
        assert code == 0, err
        assert "private redis-server" not in err
        assert len(_lines(tmp_path / "items-all.jsonl")) == 400
    finally:
        await frontier_purge(redis_url, "shop", crawl_id)


def test_workers_as_new_interpreters(tmp_path: Path, redis_url: str) -> None:
    """Where workers are not forked (macOS, Windows, a process with threads of its own: this
    test's, whose site runs in a thread), each is a new `python -m crawler.cli crawl`: the
    same crawl, each page once, every worker's stats."""
    from .servers import run_in_thread

    crawl_id = uuid.uuid4().hex
    project = make_project(tmp_path / "p", {"shop": SHOP_SPIDER})
    outputs: list[str | None] = [str(tmp_path / f"items-{i}.jsonl") for i in (1, 2)]
    with run_in_thread(shop_products=400) as site:
        assert not can_fork()  # the site's thread runs
        plan = WorkerPlan("shop", project, redis_url,
                          ["-a", f"base={site.url}", "-s", "obey_robots=false",
                           "-s", f"crawl_id={crawl_id}"], outputs)
        try:
            code, stats = run_workers(plan, str(tmp_path))
        finally:
            asyncio.run(frontier_purge(redis_url, "shop", crawl_id))
    assert code == 0
    assert len(stats) == 2 and sum(int(s.get("status/200", 0)) for s in stats) == 1 + 20 + 400
    # Each page once across both (the first may crawl the whole small shop alone).
    assert sum(len(_lines(Path(str(o)))) for o in outputs if Path(str(o)).exists()) == 400


def test_fork_only_without_threads() -> None:
    """(On Linux without threads, `crawl --processes` forks: see the test below.)"""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not can_fork()
    finally:
        stop.set()
        thread.join()


@needs_redis_server
async def test_each_worker_imports_the_projects_modules(site: TestSite, tmp_path: Path) -> None:
    """On Linux the workers are forked from the command (their argv is its own): a project
    module's import-time state (a connection, an open file) is still each worker's own, since
    its spiders and the modules they import from the project's folder are imported in the
    worker."""
    project = make_project(tmp_path / "p", {"pids": PID_SPIDER})
    (project / "helpers.py").write_text("import os\n\nIMPORTED_IN = os.getpid()\n")
    out = tmp_path / "out.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "pids", "--processes", "2", "-O", str(out),
                             "-a", f"base={site.url}", "-s", "obey_robots=false",
                             "-s", "concurrency=2", cwd=project)
    assert code == 0, err
    items = _lines(out)
    assert len(items) == 40
    assert all(i["spider"] == i["pid"] == i["helper"] for i in items)
    assert len({i["pid"] for i in items}) == 2
    assert all(i["forked"] is (sys.platform == "linux") for i in items)


@needs_redis_server
async def test_a_failing_worker_fails_the_crawl(tmp_path: Path) -> None:
    """A worker's exit code reaches the command's (forked on Linux): a start() that raises
    fails the seeding worker (1); the other ends when it sees the seeder gone."""
    project = make_project(tmp_path / "p", {"broken": BROKEN_SPIDER})
    code, _, err = await run(str(BIN / "crawl"), "broken", "--processes", "2", "-O",
                             str(tmp_path / "out.jsonl"), "-s", "obey_robots=false",
                             cwd=project, timeout=120)
    assert code == 1, err
    assert "start() broke before its first request" in err
    assert "All 2 worker processes exited" in err


@needs_redis_server
async def test_sigint_stops_every_worker_gracefully(site: TestSite, tmp_path: Path) -> None:
    """One Ctrl-C: each worker finishes what it has in flight, the outputs are merged, exit 0,
    and the private redis-server is gone."""
    project = make_project(tmp_path / "p", {"slow": SLOW_SPIDER})
    out = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "crawl"), "slow", "--processes", "2", "-O", str(out), "-a", f"base={site.url}",
        # 4 requests at a time per worker, 8 for the host across the cluster: both must work.
        "-s", "concurrency=4", "-s", "concurrency_per_host=8", "-s", "obey_robots=false",
        cwd=project, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    parts = [tmp_path / "out-1.jsonl", tmp_path / "out-2.jsonl"]
    for _ in range(400):  # wait until the workers write items (400 x 0.3 s, 4 at a time)
        await asyncio.sleep(0.05)
        if sum(p.stat().st_size for p in parts if p.exists()) > 1000:
            break
    assert proc.returncode is None, "the crawl ended before the signal"
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    merged = _lines(out)
    assert 0 < len(merged) < 400
    # Everything fetched was written: no request in flight was dropped by either worker.
    assert len(merged) == sum(n for p, n in site.stats.hits.items() if p.startswith("/delay"))
    assert "signal_SIGINT" in err.decode()
    assert all(_lines(p) for p in parts)  # both workers fetched and wrote


async def test_processes_without_redis_server_is_a_clear_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_SPIDER})
    bare = tmp_path / "bin"
    bare.mkdir()
    code, _, err = await run(
        sys.executable, "-m", "crawler.cli", "crawl", "slow", "--processes", "2", cwd=project,
        env={"PATH": str(bare)},
    )
    assert code == 2
    assert "install redis-server" in err and "--frontier" in err


async def test_processes_refuses_a_jobdir_and_csv(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_SPIDER})
    code, _, err = await run(str(BIN / "crawl"), "slow", "--processes", "2", "--jobdir",
                             str(tmp_path / "job"), cwd=project)
    assert code == 2 and "jobdir" in err
    code, _, err = await run(str(BIN / "crawl"), "slow", "--processes", "2", "-o", "x.csv",
                             cwd=project, env={"PATH": os.environ.get("PATH", "")})
    assert code == 2 and ".jsonl" in err
    code, _, err = await run(str(BIN / "crawl"), "slow", "--processes", "0", cwd=project)
    assert code == 2 and "at least 1" in err


@needs_redis_server
async def test_readme_books_with_two_processes(site: TestSite, tmp_path: Path) -> None:
    """The README's `crawl books --processes 2 -O books.jsonl`, in the repository's project."""
    from crawler.demosite import expected_books

    from .conftest import PROJECT

    out = tmp_path / "books.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "books", "--processes", "2", "-O", str(out),
                             "-a", f"start_url={site.url}/", "-s", "obey_robots=false",
                             cwd=PROJECT)
    assert code == 0, err
    assert {str(b["upc"]) for b in _lines(out)} == {b["upc"] for b in expected_books(100)}
    assert (tmp_path / "books-1.jsonl").exists() and (tmp_path / "books-2.jsonl").exists()
