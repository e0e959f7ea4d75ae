"""Durable crawls through the real `crawl --jobdir` command: kill -9, Ctrl-C, resume."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import orjson
import pytest

from crawler.demosite import expected_shop_items

from .servers import TestSite
from .test_cli import BIN, make_project, run
from .test_readme import readme_block

PRODUCTS = 3000


def shop_project(root: Path) -> Path:
    return make_project(root, {"shop": readme_block("# spiders/shop.py")})


def crawl_args(site: TestSite, out: Path, jobdir: Path, concurrency: int = 8) -> list[str]:
    return [
        str(BIN / "crawl"), "shop", "-o", str(out), "--jobdir", str(jobdir),
        "-a", f"start_url={site.url}/shop/", "-s", f"concurrency={concurrency}",
        "-s", "log_level=WARNING",
    ]


def check_output(site: TestSite, out: Path) -> None:
    data = out.read_bytes()
    assert data.endswith(b"\n")
    items = [orjson.loads(line) for line in data.splitlines()]  # every line parses
    counts = Counter(i["sku"] for i in items)
    repeated = {sku: n for sku, n in counts.items() if n > 1}
    assert not repeated, f"items written more than once: {list(repeated.items())[:5]}"
    assert set(counts) == {e["sku"] for e in expected_shop_items(PRODUCTS)}


async def run_with_kills(
    args: list[str], cwd: Path, rng: random.Random, *, kill_runs: int, window: tuple[float, float]
) -> int:
    """Run the command again and again: the first ``kill_runs`` runs get SIGKILL after a
    random moment in ``window`` seconds (unless they finish first), then the job is left to
    finish (exit 0 asserted). Returns how many runs were killed."""
    kills = 0
    for run_no in range(40):
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        deadline = rng.uniform(*window) if run_no < kill_runs else 300
        try:
            await asyncio.wait_for(proc.wait(), deadline)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += 1
            continue
        finally:
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode()
        assert proc.returncode == 0, err[-2000:]
        return kills
    raise AssertionError("the job never finished")


def integrity(jobdir: Path) -> str:
    with sqlite3.connect(jobdir / "frontier.sqlite3") as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.slow
async def test_kill_9_soak_every_item_exactly_once(tmp_path: Path) -> None:
    project = shop_project(tmp_path / "p")
    out, jobdir = tmp_path / "products.jsonl", tmp_path / "job"
    rng = random.Random(20261125)
    async with TestSite(books=10, shop_products=PRODUCTS) as site:
        # One request at a time: the whole crawl takes several seconds even on a quiet
        # machine, so a dozen short runs cannot finish it before the kills are done.
        args = [*crawl_args(site, out, jobdir, concurrency=1), "-s", "download_delay=0.002"]
        # Twelve kills at random moments (start-up, seeding, mid-crawl, writing), then the
        # job is left to finish.
        kills = await run_with_kills(args, project, rng, kill_runs=12, window=(0.3, 1.0))
        assert kills >= 10, f"only {kills} kills happened: the crawl finished too fast"
        check_output(site, out)
        assert integrity(jobdir) == "ok"
        # A finished job run again says so and fetches nothing.
        site.reset_stats()
        code, _, err = await run(*args, "-s", "log_level=INFO", cwd=project)
        assert code == 0 and "already finished" in err
        assert site.stats.total == 0


@pytest.mark.slow
async def test_sigint_pauses_and_resume_fetches_nothing_twice(tmp_path: Path) -> None:
    project = shop_project(tmp_path / "p")
    out, jobdir = tmp_path / "products.jsonl", tmp_path / "job"
    pauses = 0
    async with TestSite(books=10, shop_products=PRODUCTS) as site:
        args = crawl_args(site, out, jobdir)
        for _ in range(30):
            before = out.stat().st_size if out.exists() else 0
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=project, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            finished_alone = True
            if pauses < 4:
                # Pause once this run has written something: mid-crawl, not mid-start-up.
                while proc.returncode is None and (
                    not out.exists() or out.stat().st_size < before + 20_000
                ):
                    await asyncio.sleep(0.02)
                if proc.returncode is None:
                    proc.send_signal(signal.SIGINT)
                    pauses += 1
                    finished_alone = False
            await asyncio.wait_for(proc.wait(), 300)
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode()
            assert proc.returncode == 0, err[-2000:]
            if finished_alone:
                break
        assert _finished(jobdir)
        assert pauses >= 3
        check_output(site, out)
        product_hits = [n for path, n in site.stats.hits.items() if path.startswith("/shop/p/")]
        assert len(product_hits) == PRODUCTS and max(product_hits) == 1
        assert integrity(jobdir) == "ok"


def _finished(jobdir: Path) -> bool:
    with sqlite3.connect(jobdir / "frontier.sqlite3") as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'finished'").fetchone()
    return bool(row and int(row[0]))


async def test_spider_state_and_stats_persist_across_resume(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", {"count": """
        from crawler import Request, Spider

        class Count(Spider):
            name = "count"

            async def start(self):
                for i in range(30):
                    yield Request(f"{self.base}/delay/0.05?i={i}")

            def parse(self, response):
                self.state["pages"] = self.state.get("pages", 0) + 1
                yield {"url": response.url, "seen_so_far": self.state["pages"]}
    """})
    out, jobdir, stats = tmp_path / "o.jsonl", tmp_path / "job", tmp_path / "stats.json"
    args = [str(BIN / "crawl"), "count", "-o", str(out), "--jobdir", str(jobdir),
            "-a", f"base={site.url}", "--stats", str(stats), "-s", "concurrency=2",
            "-s", "obey_robots=false"]
    code, _, err = await run(*args, "-s", "close_on.items=10", cwd=project)
    assert code == 0, err
    code, _, err = await run(*args, cwd=project)
    assert code == 0, err
    items = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert len(items) == 30 and len({i["url"] for i in items}) == 30
    assert max(i["seen_so_far"] for i in items) == 30  # the state went on counting
    final = orjson.loads(stats.read_bytes())
    assert final["items_scraped"] == 30  # the summary counts the whole job


async def test_job_dir_refusals(site: TestSite, tmp_path: Path) -> None:
    project = shop_project(tmp_path / "p")
    jobdir = tmp_path / "job"
    base = ["-a", f"start_url={site.url}/shop/", "-s", "close_on.items=1"]
    code, _, err = await run(str(BIN / "crawl"), "shop", "-o", str(tmp_path / "a.json"),
                             "--jobdir", str(jobdir), *base, cwd=project)
    assert code == 2 and ".json" in err
    code, _, err = await run(str(BIN / "crawl"), "shop", "-o", str(tmp_path / "a.jsonl"),
                             "--jobdir", str(jobdir), *base, cwd=project)
    assert code == 0, err
    (project / "spiders" / "other.py").write_text(
        "from crawler import Spider\n\nclass Other(Spider):\n    name = 'other'\n")
    code, _, err = await run(str(BIN / "crawl"), "other", "-o", str(tmp_path / "a.jsonl"),
                             "--jobdir", str(jobdir), cwd=project)
    assert code == 2 and "'shop'" in err and "'other'" in err
