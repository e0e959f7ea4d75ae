"""What a crawl's log says, end to end through the `crawl` command against the local site:
the banner at the start, a line per response and per item at DEBUG, the warning when items go
nowhere, and the counts that the progress and summary show (issue 11 item 14)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .servers import TestSite
from .test_cli import BIN, run


async def test_banner_says_what_runs_and_which_settings_changed(site: TestSite,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "books.jsonl"
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-o", str(out), "-a", f"start_url={site.url}/",
        "-s", "obey_robots=false", "-s", "close_on.pages=5",
        env={"CRAWLER_CONCURRENCY": "7"},
    )
    assert code == 0, err
    banner = next(line for line in err.splitlines() if "INFO crawler.runner: Spider" in line)
    assert "Spider 'books' (spiders/books.py)" in banner
    assert "frontier: memory" in banner
    assert f"output: {out} (JSON lines, append)" in banner
    changed = next(line for line in err.splitlines() if "Settings changed" in line)
    assert "concurrency=7 (environment CRAWLER_CONCURRENCY)" in changed
    assert "obey_robots=False (CLI -s)" in changed and "close_on.pages=5 (CLI -s)" in changed
    assert "concurrency_per_host" not in changed  # at its default: not listed
    assert "No output and no pipeline" not in err


async def test_banner_names_the_job_directory(site: TestSite, tmp_path: Path) -> None:
    job = tmp_path / "job"
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-o", str(tmp_path / "b.jsonl"), "-a",
        f"start_url={site.url}/", "-s", "obey_robots=false", "--jobdir", str(job),
        "-s", "close_on.pages=3",
    )
    assert code == 0, err
    assert f"frontier: SQLite in job directory {job} (durable)" in err


async def test_debug_logs_a_line_per_response_and_per_item(site: TestSite,
                                                           tmp_path: Path) -> None:
    stats_path = tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-o", str(tmp_path / "b.jsonl"), "-a",
        f"start_url={site.url}/", "-s", "obey_robots=false", "-L", "DEBUG",
        "--stats", str(stats_path),
    )
    assert code == 0, err[-2000:]
    stats = json.loads(stats_path.read_text())
    crawled = re.findall(r"DEBUG crawler\.engine: Crawled \((\d+)\) <GET (\S+)> \(referer: ",
                         err)
    scraped = re.findall(r"DEBUG crawler\.engine: Scraped from <(\d+) (\S+)>\n\{", err)
    assert len(crawled) == stats["responses"] == 105  # 100 books, their 5 listing pages
    assert len(scraped) == stats["items_scraped"] == 100
    assert {url for _, url in scraped} <= {url for _, url in crawled}
    assert f"Crawled (200) <GET {site.url}/> (referer: None)" in err


async def test_a_crawl_without_output_or_pipeline_warns(site: TestSite) -> None:
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-a", f"start_url={site.url}/", "-s", "obey_robots=false",
        "-s", "close_on.pages=2",
    )
    assert code == 0, err
    assert "WARNING crawler.runner: No output and no pipeline: the items of this crawl are " \
           "not kept (give -o FILE to write them)" in err


async def test_requests_enqueued_counts_every_request(site: TestSite, tmp_path: Path) -> None:
    stats_path = tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-o", str(tmp_path / "b.jsonl"), "-a",
        f"start_url={site.url}/", "-s", "obey_robots=false", "--stats", str(stats_path),
    )
    assert code == 0, err
    stats = json.loads(stats_path.read_text())
    # Every page was enqueued once (start request and children alike) and fetched once.
    assert stats["requests_enqueued"] == stats["requests"] == stats["responses"] == 105


async def test_close_on_items_writes_only_the_items_of_requests_in_flight(
    tmp_path: Path,
) -> None:
    async with TestSite(books=1000) as site:
        out = tmp_path / "b.jsonl"
        code, _, err = await run(
            str(BIN / "crawl"), "books", "-O", str(out), "-a", f"start_url={site.url}/",
            "-s", "obey_robots=false", "-s", "close_on.items=10", "-s", "concurrency=64",
        )
    assert code == 0, err
    in_flight = int(re.search(r"Stopping \(close_on_items\): finishing (\d+) requests? in "
                              r"flight", err).group(1))  # type: ignore[union-attr]
    items = len(out.read_bytes().splitlines())
    # A book page yields one item; the one that reached the limit is among those in flight.
    assert 10 <= items <= 10 + in_flight - 1, (items, in_flight)
