"""The crawl report: recorded during real crawls, rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from crawler.report import build_report, field_coverage, load_stats, timeline
from crawler.stats import Stats

from .servers import Canned, TestSite
from .test_cli import BIN, make_project, run
from .test_readme import readme_block

PRODUCTS = 100  # every 10th product page has no price: its selector fails on 10% of pages


# -- a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed when missing (as root); skipped when it cannot be."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True,
                       timeout=900, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and cannot be installed here "
                    "(apt-get install chromium, as root)")
    return found


def render(chromium: str, page: Path, tmp_path: Path, *, screenshot: Path | None = None) -> str:
    """The DOM Chromium builds from ``page`` (and a screenshot of it, if asked)."""
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic", f"--user-data-dir={tmp_path / 'chromium'}"]
    if screenshot is not None:
        subprocess.run([*args, "--window-size=1000,2700", "--hide-scrollbars",
                        f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
    done = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True,
                          timeout=120, check=True, text=True)
    return done.stdout


def section(dom: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', dom, flags=re.S)
    assert match, f"no section {sid!r} in the rendered page"
    return match.group(1)


# -- a site whose prices are missing on 10% of the product pages -----------------------------


@contextlib.asynccontextmanager
async def _serve_patchy() -> AsyncIterator[str]:
    async def index(request: web.Request) -> web.Response:
        links = "".join(f'<a class="product" href="/p/{i}">p{i}</a>' for i in range(PRODUCTS))
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    async def product(request: web.Request) -> web.Response:
        i = int(request.match_info["id"])
        price = "" if i % 10 == 0 else f'<span class="price">${i}.00</span>'
        return web.Response(text=f'<html><body><h1>Product {i}</h1>{price}</body></html>',
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get(r"/p/{id:\d+}", product)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def patchy_shop() -> AsyncIterator[str]:
    async with _serve_patchy() as url:
        yield url


PATCHY_SPIDER = """
from crawler import Spider


class Patchy(Spider):
    name = "patchy"

    def __init__(self, start_url, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]

    def parse(self, response):
        yield from response.follow_all(css="a.product", callback=self.parse_product)

    def parse_product(self, response):
        yield {"title": response.css("h1::text").get(),
               "price": response.css("span.price::text").get()}
"""


async def test_a_selector_failing_on_10_percent_of_pages_shows_90_percent_covered(
    patchy_shop: str, tmp_path: Path, chromium: str
) -> None:
    project = make_project(tmp_path / "p", {"patchy": PATCHY_SPIDER}, "obey_robots = false\n")
    report, stats_path = tmp_path / "report.html", tmp_path / "stats.json"
    code, _, err = await run(str(BIN / "crawl"), "patchy", "-O", str(tmp_path / "out.jsonl"),
                             "-a", f"start_url={patchy_shop}/", "--report", str(report),
                             "--stats", str(stats_path), cwd=project)
    assert code == 0, err[-3000:]
    assert f"Wrote the crawl report {report}" in err
    stats = json.loads(stats_path.read_text())
    assert stats["fields_checked"] == PRODUCTS
    assert stats["fields/price/present"] == 90 and stats["fields/title/present"] == PRODUCTS
    coverage = {c.field: c for c in field_coverage(stats)}
    missing = {f"{patchy_shop}/p/{i}" for i in range(0, PRODUCTS, 10)}
    assert len(coverage["price"].missing_examples) == 5
    assert set(coverage["price"].missing_examples) <= missing

    dom = render(chromium, report, tmp_path)
    rows = dict(re.findall(r'<tr data-field="(\w+)">.*?<td class="pct">([\d.]+%)</td>',
                           section(dom, "coverage"), flags=re.S))
    assert rows == {"price": "90.0%", "title": "100.0%"}
    price_row = re.search(r'<tr data-field="price">(.*?)</tr>', dom, flags=re.S)
    assert price_row and "10 missing" in price_row.group(1)
    assert all(url in price_row.group(1) for url in coverage["price"].missing_examples)
    # The page loads nothing: no script, no external resource.
    html = report.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="https?://(?!127\.0\.0\.1)', html)


async def test_shop_report_renders_every_section_filled(tmp_path: Path, chromium: str) -> None:
    """The README's shop spider over the local shop, with a host pause (Retry-After) and a
    failing page: every section of the rendered report has something in it."""
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")},
                           "obey_robots = false\n")
    report, stats_path = tmp_path / "report.html", tmp_path / "stats.json"
    async with TestSite(books=10, shop_products=300) as site:
        site.canned["/shop/p/7.html"] = Canned(429, "slow down", {"Retry-After": "1"})
        site.canned["/shop/p/8.html"] = Canned(404, "gone")
        code, _, err = await run(str(BIN / "crawl"), "shop", "-O", str(tmp_path / "o.jsonl"),
                                 "-a", f"start_url={site.url}/shop/", "--report", str(report),
                                 "--stats", str(stats_path), "-s", "retries=1", cwd=project)
    assert code == 0, err[-3000:]
    assert re.search(r"INFO crawler\.stats: Host 127\.0\.0\.1(:\d+)? paused for 1\.0s "
                     r"\(Retry-After, HTTP 429\)", err), err[-3000:]
    assert re.search(r"INFO crawler\.stats: Host 127\.0\.0\.1(:\d+)? resumed", err)
    shot = Path(os.environ.get("CRAWLER_REPORT_SCREENSHOT") or tmp_path / "report.png")
    dom = render(chromium, report, tmp_path, screenshot=shot)
    assert shot.read_bytes().startswith(b"\x89PNG")
    for sid in ("over-time", "statuses", "errors", "slow-hosts", "failing-hosts", "depth",
                "drops", "coverage"):
        content = section(dom, sid)
        assert 'class="empty"' not in content, f"section {sid} is empty"
    assert "<polyline" in section(dom, "over-time")
    assert re.search(r">429<", section(dom, "statuses")) and ">404<" in section(dom, "statuses")
    failing = section(dom, "failing-hosts")
    assert "127.0.0.1" in failing
    stats = json.loads(stats_path.read_text())
    host = next(k.split("/")[1] for k in stats if k.startswith("hosts/"))
    assert stats[f"hosts/{host}/pauses"] >= 1 and stats[f"hosts/{host}/http_errors"] >= 3
    assert "duplicates_filtered" in section(dom, "drops")
    assert set(re.findall(r'data-field="(\w+)"', section(dom, "coverage"))) == {
        "title", "price", "sku", "url"}
    assert "depth 2" in section(dom, "depth")


# -- recording, merging, rebinning ------------------------------------------------------------


def test_timeline_spreads_wide_buckets_and_adds_workers() -> None:
    stats = {
        "timeline/1000/1/pages": 10, "timeline/1001/1/pages": 20,  # worker 1
        "timeline/1000/1/errors": 1,
        "timeline/1000/10/pages": 100,  # worker 2, a coarser bucket over the same seconds
    }
    width, xs, series = timeline(stats)
    assert width == 1.0 and len(xs) == 10
    assert series["pages"][0] == pytest.approx(10 + 10) and series["pages"][1] == 20 + 10
    assert sum(series["pages"]) == pytest.approx(130)
    assert series["errors"][0] == 1 and sum(series["errors"]) == 1


def test_report_data_survives_load_and_merge(tmp_path: Path) -> None:
    """What a resumed job (Stats.load) and `crawler report` over several workers' stats do:
    counters add up, max_host_latency keeps the largest."""
    a, b = Stats(), Stats()
    a.start()
    b.start()
    a.host_response("h:80", 200, 0.5)
    b.host_response("h:80", 503, 2.0)
    a.item_fields({"price": "1", "title": ""}, "http://h/1")
    b.item_fields({"price": None, "title": "t"}, "http://h/2")
    paths = []
    for i, s in enumerate((a, b)):
        s.finish("finished")
        paths.append(tmp_path / f"s{i}.json")
        s.dump_json(str(paths[-1]))
    merged = load_stats(paths)
    assert merged["hosts/h:80/responses"] == 2 and merged["hosts/h:80/http_errors"] == 1
    assert merged["hosts/h:80/latency"] == pytest.approx(2.5)
    assert merged["max_host_latency/h:80"] == 2.0
    cov = {c.field: c for c in field_coverage(merged)}
    assert (cov["price"].present, cov["price"].total) == (1, 2)
    assert cov["price"].missing_examples == ["http://h/2"]
    assert cov["title"].missing_examples == ["http://h/1"]
    assert "Crawl report" in build_report(merged)


async def test_crawler_report_command(tmp_path: Path) -> None:
    s = Stats()
    s.start()
    s.inc("responses", 5)
    s.inc("status/200", 5)
    s.finish("finished")
    s.dump_json(str(tmp_path / "s.json"))
    out = tmp_path / "r.html"
    code, _, err = await run(str(BIN / "crawler"), "report", str(tmp_path / "s.json"),
                             str(tmp_path / "s.json"), "-o", str(out))
    assert code == 0, err
    assert ">10<" in out.read_text()  # two files: the 200s added together
    code, _, err = await run(str(BIN / "crawler"), "report", str(tmp_path / "missing.json"),
                             "-o", str(out))
    assert code == 2 and "cannot read stats file" in err and "missing.json" in err


async def test_jobdir_keeps_the_report_data_across_a_resume(tmp_path: Path) -> None:
    """Stopped by close_on.pages, then resumed: the second run's report covers both runs."""
    project = make_project(tmp_path / "p", {"patchy": PATCHY_SPIDER}, "obey_robots = false\n")
    stats_path = tmp_path / "stats.json"
    app_out = tmp_path / "out.jsonl"
    async with _serve_patchy() as url:
        common = ["patchy", "-o", str(app_out), "-a", f"start_url={url}/", "--jobdir",
                  str(tmp_path / "job"), "--stats", str(stats_path), "-s", "concurrency=1"]
        code, _, err = await run(str(BIN / "crawl"), *common, "-s", "close_on.pages=31",
                                 cwd=project)
        assert code == 0, err[-3000:]
        first = json.loads(stats_path.read_text())
        assert 0 < first["fields_checked"] < PRODUCTS
        code, _, err = await run(str(BIN / "crawl"), *common, cwd=project)
        assert code == 0, err[-3000:]
    stats = json.loads(stats_path.read_text())
    assert stats["fields_checked"] == PRODUCTS
    assert stats["fields/price/present"] == 90
    # The job directory itself is a source for `crawler report` (no --stats needed).
    report = tmp_path / "job.html"
    code, _, err = await run(str(BIN / "crawler"), "report", str(tmp_path / "job"), "-o",
                             str(report))
    assert code == 0, err
    assert re.search(r'data-field="price">.*?<td>90 of 100</td>', report.read_text(), re.S)
    assert sum(v for k, v in stats.items() if k.startswith("timeline/")
               and k.endswith("/pages")) == stats["responses"]


@pytest.mark.redis
async def test_redis_workers_report_the_whole_cluster(redis_url: str, tmp_path: Path) -> None:
    """Two workers share a crawl: the report data is summed in the crawl's shared stats, and
    the last worker's --report covers every item of both."""
    import uuid

    from crawler.frontier.redis import RedisFrontier, frontier_purge
    from crawler.settings import build_settings

    crawl_id = uuid.uuid4().hex
    project = make_project(tmp_path / "p", {"patchy": PATCHY_SPIDER}, "obey_robots = false\n")
    try:
        async with _serve_patchy() as url:
            def args(i: int) -> list[str]:
                return [str(BIN / "crawl"), "patchy", "-o", str(tmp_path / f"o{i}.jsonl"),
                        "-a", f"start_url={url}/", "--frontier", redis_url,
                        "-s", f"crawl_id={crawl_id}", "-s", "concurrency=2",
                        "-s", "download_delay=0.01", "--stats", str(tmp_path / f"s{i}.json"),
                        "--report", str(tmp_path / f"r{i}.html")]
            results = await asyncio.gather(run(*args(0), cwd=project),
                                           run(*args(1), cwd=project))
        for code, _, err in results:
            assert code == 0, err[-3000:]
        per_worker = [json.loads((tmp_path / f"s{i}.json").read_text()) for i in (0, 1)]
        assert sum(s.get("fields_checked", 0) for s in per_worker) == PRODUCTS
        frontier = RedisFrontier.from_settings(
            build_settings(project_dir=None, cli={"frontier_url": redis_url,
                                                  "crawl_id": crawl_id}, environ={}), "patchy")
        await frontier.open()
        try:
            shared = await frontier.shared_stats()
        finally:
            await frontier.close()
        assert shared["fields_checked"] == PRODUCTS and shared["fields/price/present"] == 90
        assert sum(v for k, v in shared.items()
                   if k.startswith("timeline/") and k.endswith("/pages")) == shared["responses"]
        # The worker that finished last saw everything in the shared record.
        covered = [re.search(r'data-field="price">.*?<td>([\d,]+) of ([\d,]+)</td>',
                             (tmp_path / f"r{i}.html").read_text(), flags=re.S) for i in (0, 1)]
        assert ("90", str(PRODUCTS)) in {m.groups() for m in covered if m}
    finally:
        await frontier_purge(redis_url, "patchy", crawl_id)
