"""Issue 11, "nothing lost, nothing silent": each defect, against a real local server."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from crawler import Failure, Request, Response, Spider
from crawler.dedup import merge_outputs
from crawler.downloader import Downloader
from crawler.errors import ConfigError
from crawler.jobdir import JobDir
from crawler.robots import RobotsCache, RobotsUnavailable
from crawler.stats import Stats, plural

from .conftest import crawl, make_settings
from .redis_util import free_port
from .servers import Canned, TestSite
from .test_cli import BIN, make_project, run

if TYPE_CHECKING:
    from .redis_util import RedisCrawl


class Pages(Spider):
    """/links?n=N, then one item per page; ``pipelines``/``middlewares`` set by subclasses."""

    name = "pages"
    base: str
    n = 5

    async def start(self) -> Any:
        yield Request(f"{self.base}/links?n={self.n}")

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "kind": "links"}
        yield from response.follow_all(css="a", callback=self.parse_page)

    def parse_page(self, response: Response) -> Any:
        yield {"url": response.url, "kind": "page"}


# ----------------------------------------------------------------- 2: pipeline errors


class FailOnLinks:
    """Raises on the start page's item only."""

    def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
        if item["kind"] == "links":
            raise RuntimeError("pipeline bug")
        return item


async def test_pipeline_error_costs_only_that_item(site: TestSite, tmp_path: Path) -> None:
    class Failing(Pages):
        pipelines = [FailOnLinks]

    result, items = await crawl(Failing, tmp_path, spider_args={"base": site.url})
    # The start page's links were still followed: every page's item is there.
    assert sorted(i["url"] for i in items) == sorted(f"{site.url}/page/{i}" for i in range(5))
    assert result.stats["errors/RuntimeError"] == 1
    assert result.stats["items_scraped"] == 5
    assert all(site.stats.hits[f"/page/{i}"] == 1 for i in range(5))


async def test_pipeline_error_is_logged_under_the_pipelines_name(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(Pages):
        pipelines = [FailOnLinks]

    await crawl(Failing, tmp_path, spider_args={"base": site.url})
    errors = [r.getMessage() for r in caplog.records if "pipeline bug" in r.getMessage()]
    assert len(errors) == 1 and "pipeline FailOnLinks" in errors[0], errors


# ------------------------------------------- 15: no uvloop ImportError in tracebacks


async def test_tracebacks_do_not_carry_the_uvloop_import_error(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", {"boom": """
        from crawler import Spider

        class Boom(Spider):
            name = "boom"

            def parse(self, response):
                raise ValueError("callback bug")
                yield
        """})
    for env in ({"CRAWLER_NO_UVLOOP": "1"}, {}):
        code, _, err = await run(
            str(BIN / "crawl"), "boom", "-s", "obey_robots=false",
            "-a", f"start_urls={site.url}/page/x", cwd=project, env=env,
        )
        assert code == 0, err
        assert "ValueError: callback bug" in err
        assert "During handling" not in err and "uvloop" not in err, err


# ----------------------------------------------------------- 8: a start() that raises


START_SPIDERS = {"starts": """
    from crawler import Request, Spider

    class Broken(Spider):
        name = "broken"

        async def start(self):
            yield Request(self.base + "/page/0", callbak=self.parse)  # a typo: TypeError

    class Late(Spider):
        name = "late"

        async def start(self):
            yield Request(self.base + "/page/0")
            yield Request(self.base + "/page/1")
            raise RuntimeError("third one failed")

        def parse(self, response):
            yield {"url": response.url}
    """}


async def test_start_raising_before_any_request_fails_the_run(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", START_SPIDERS)
    stats = tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "broken", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "--stats", str(stats), cwd=project,
    )
    assert code == 1, err
    assert err.count("Traceback") == 1 and "callbak" in err
    assert "Crawl failed: the spider's start() raised before yielding any request" in err
    assert "Crawl finished" not in err
    data = orjson.loads(stats.read_bytes())
    assert data["finish_reason"] == "start_failed" and data["errors/TypeError"] == 1
    assert "unexpected keyword argument 'callbak'" in data["start_error"]
    assert site.stats.total == 0


async def test_start_raising_later_is_counted_and_the_crawl_goes_on(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", START_SPIDERS)
    out = tmp_path / "items.jsonl"
    code, _, err = await run(
        str(BIN / "crawl"), "late", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "-o", str(out), cwd=project,
    )
    assert code == 0, err
    assert len(out.read_bytes().splitlines()) == 2
    assert err.count("Traceback") == 1 and "third one failed" in err
    assert "Crawl finished" in err and "RuntimeError" in err


# ------------------------------------------------------ 16: a closed standard output


async def test_closed_stdout_stops_the_crawl_quietly(site: TestSite, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"pages": """
        from crawler import Request, Spider

        class Pages(Spider):
            name = "pages"

            async def start(self):
                for i in range(40):
                    yield Request(f"{self.base}/page/{i}")

            def parse(self, response):
                yield {"url": response.url}
        """})
    stats = tmp_path / "stats.json"
    crawl_cmd = (f"{BIN / 'crawl'} pages -o - -a base={site.url} -s obey_robots=false"
                 f" -s concurrency_per_host=1 -s download_delay=0.05 --stats {stats}")
    code, out, err = await run(
        "bash", "-c", f"{crawl_cmd} | head -1; echo exit=${{PIPESTATUS[0]}} >&2", cwd=project,
    )
    assert code == 0 and len(out.splitlines()) == 1, err
    assert "exit=0" in err
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err
    data = orjson.loads(stats.read_bytes())
    assert data["finish_reason"] == "output_closed"
    assert data["items_scraped"] < 40 and site.stats.total < 40  # it stopped early


async def test_crawler_parse_into_a_closed_pipe_is_quiet(site: TestSite, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"pages": """
        from crawler import Spider

        class Pages(Spider):
            name = "pages"

            def parse(self, response):
                for i in range(3000):
                    yield {"i": i, "text": "x" * 100}
                yield from response.follow_all(css="a")
        """})
    code, out, err = await run(
        "bash", "-c", f"{BIN / 'crawler'} parse {site.url}/links?n=500 --spider pages "
        "-s obey_robots=false | head -1; echo exit=${PIPESTATUS[0]} >&2", cwd=project,
    )
    assert code == 0 and out.splitlines() == ["# 3000 item(s)"], err
    assert "exit=0" in err
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err


# ------------------------------------------------------------------- 17: messages


async def test_frontier_status_of_an_unknown_crawl_is_unknown(
    redis_url: str, redis_crawl: RedisCrawl
) -> None:
    frontier = await redis_crawl.frontier()
    await frontier.add([Request("http://127.0.0.1:1/a")])
    base = [str(BIN / "crawler"), "frontier", "status", "--frontier", redis_url,
            "--spider", redis_crawl.spider]
    code, out, err = await run(*base, "--crawl-id", redis_crawl.crawl_id)
    assert code == 0 and "running" in out, err
    code, out, err = await run(*base, "--crawl-id", "TYPO")
    assert code == 1 and out == "", err
    assert "'TYPO': unknown" in err and redis_crawl.crawl_id in err


def test_an_empty_job_database_starts_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 0-byte database (a run killed while creating it) holds nothing: the job starts, and
    the log says the database was empty (it is not "not a crawl job's")."""
    path = tmp_path / "job"
    JobDir(path, "books", None).open().close()
    (path / "frontier.sqlite3").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="crawler.jobdir"):
        job = JobDir(path, "books", None).open()
    job.close()
    assert "is empty (a run stopped while creating it)" in caplog.text


SLOW_PAGES = """
    from crawler import Request, Spider

    class Slow(Spider):
        name = "slow"

        async def start(self):
            for i in range(400):
                yield Request(f"{self.base}/delay/0.2?i={i}")

        def parse(self, response):
            yield {"url": response.url}
    """


async def test_ctrl_c_on_a_jobdir_crawl_says_paused(site: TestSite, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_PAGES})
    out = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "crawl"), "slow", "-o", str(out), "-a", f"base={site.url}",
        "--jobdir", str(tmp_path / "job"), "-s", "concurrency=8", "-s", "obey_robots=false",
        cwd=project, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(400):
        await asyncio.sleep(0.05)
        if site.stats.hits["/delay/0.2"] >= 8:
            break
    proc.send_signal(signal.SIGINT)
    _, err_b = await asyncio.wait_for(proc.communicate(), 60)
    err = err_b.decode()
    assert proc.returncode == 0, err
    assert "Crawl paused by SIGINT: run the same command to resume" in err
    assert "finished" not in err.lower().replace("unfinished", "")


async def test_finish_reasons_read_as_sentences(site: TestSite, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_PAGES})
    code, _, err = await run(
        str(BIN / "crawl"), "slow", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "-s", "close_on.items=3", "-s", "concurrency=2", cwd=project,
    )
    assert code == 0, err
    assert "Crawl stopped: close_on.items reached." in err
    assert "close_on_items." not in err and "Crawl finished" not in err


async def test_bytes_and_nan_in_items_warn_once_per_field(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Odd(Pages):
        def parse_page(self, response: Response) -> Any:
            yield {"url": response.url, "raw": b"\xff" + response.body[:5],
                   "score": float("nan"), "top": float("inf"), "ok": 1.5}

    _, items = await crawl(Odd, tmp_path, spider_args={"base": site.url})
    assert len(items) == 5 + 1
    odd = [i for i in items if "raw" in i]
    assert {i["score"] for i in odd} == {None} and {i["top"] for i in odd} == {None}
    warnings = sorted(r.getMessage() for r in caplog.records if "Item field" in r.getMessage())
    assert warnings == [
        "Item field 'raw' holds bytes: written as text decoded as UTF-8 (warned once per field)",
        "Item field 'score' holds NaN: written as null (warned once per field)",
        "Item field 'top' holds infinity: written as null (warned once per field)",
    ]


def test_messages_name_flags_and_count_in_words(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"url": "a"}\n')
    (tmp_path / "out.jsonl").write_text("")
    with pytest.raises(ConfigError) as info:
        merge_outputs([str(tmp_path / "in.jsonl")], str(tmp_path / "out.jsonl"), key=("url",))
    assert "-O" in str(info.value) and "overwrite=" not in str(info.value)
    assert plural(1, "attempt") == "1 attempt" and plural(4, "attempt") == "4 attempts"


async def test_robots_gives_up_after_1_attempt_not_1_attempts(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site.canned["/robots.txt"] = Canned(503, b"busy")
    result, items = await crawl(Pages, tmp_path, spider_args={"base": site.url},
                                obey_robots=True, retries=0)
    assert items == [] and result.stats["dropped/robots_unavailable"] == 1
    messages = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert any("after 1 attempt:" in m for m in messages), messages


# ------------------------------------------------- 13: a host that cannot be reached


class DeadAndAlive(Spider):
    """Requests to ``dead`` hosts (refused or not resolving) and one good page."""

    name = "dead_and_alive"
    base: str
    dead: list[str]

    async def start(self) -> Any:
        for url in self.dead:
            yield Request(url, errback=self.failed)
        yield Request(f"{self.base}/page/good", errback=self.failed)

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}

    def failed(self, failure: Failure) -> Any:
        yield {"failed": failure.request.url, "error": type(failure.value).__name__,
               "message": str(failure.value)}


def _host_failed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()
            and r.getMessage().startswith("Host ")]


@pytest.mark.parametrize("obey_robots", [True, False])
async def test_a_refusing_host_fails_its_requests_through_the_errback(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture, obey_robots: bool
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()  # nothing listens there: connection refused
    dead = [f"http://127.0.0.1:{port}/p{i}" for i in range(5)]
    result, items = await crawl(DeadAndAlive, tmp_path, spider_args={"base": site.url,
                                                                     "dead": dead},
                                obey_robots=obey_robots, retries=2, retry_backoff=0.05)
    failed = sorted(i["failed"] for i in items if "failed" in i)
    assert failed == sorted(dead)
    assert {i["error"] for i in items if "failed" in i} == {"ConnectError"}
    assert [i["url"] for i in items if "url" in i] == [f"{site.url}/page/good"]
    assert result.stats["errors/ConnectError"] == 5 and result.stats["hosts_failed"] == 1
    assert "dropped/robots_unavailable" not in result.stats
    lines = _host_failed_lines(caplog)
    assert lines == [f"Host http://127.0.0.1:{port} failed (connection refused) after its "
                     "retries: its requests fail through their errbacks without being fetched"]
    assert not [r for r in caplog.records if r.getMessage().startswith("Failed http://127")]
    if obey_robots:
        # robots.txt tried on the pages' own retry schedule: 1 + retries attempts.
        assert result.stats["robots/errors/ConnectError"] == 3
        waits = [r.getMessage() for r in caplog.records if "wait until" in r.getMessage()]
        assert len(waits) == 2 and all(r"(connection refused)" in w for w in waits), waits
        assert all(re.search(r"wait until \d\d:\d\d:\d\d \(next try in", w) for w in waits)


async def test_a_host_that_does_not_resolve_is_a_failed_host(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = ["http://no-such-host.invalid/a", "http://no-such-host.invalid/b"]
    result, items = await crawl(DeadAndAlive, tmp_path, spider_args={"base": site.url,
                                                                     "dead": dead},
                                obey_robots=True, retries=1, retry_backoff=0.05)
    assert sorted(i["failed"] for i in items if "failed" in i) == dead
    assert result.stats["hosts_failed"] == 1
    lines = _host_failed_lines(caplog)
    assert len(lines) == 1 and "name does not resolve" in lines[0], lines


async def test_robots_txt_503_still_holds_the_origin_back(
    site: TestSite, tmp_path: Path
) -> None:
    """Other robots.txt failures stay a temporary disallow (RFC 9309): nothing fails."""
    site.canned["/robots.txt"] = [Canned(503), Canned(200, "User-agent: *\nAllow: /\n")]
    settings = make_settings(obey_robots=True)
    stats = Stats()
    async with Downloader(settings, stats) as downloader:
        robots = RobotsCache.from_settings(settings, downloader.fetch, stats)
        state = await robots.resolve(Request(f"{site.url}/page/1"))
    assert isinstance(state, RobotsUnavailable) and not state.host_down and not state.final
    assert 50 < state.retry_in() <= 60


# --------------------------------------------------------- 12: file descriptors


FD_SPIDERS = {"fds": """
    import asyncio
    import os

    from crawler import Request, Spider

    class Many(Spider):
        name = "many"

        async def start(self):
            for i in range(int(self.n)):
                yield Request(f"{self.base}/page/{i}")

        def parse(self, response):
            yield {"url": response.url}

    class Starved(Many):
        \"\"\"Takes every free descriptor for the first second of the crawl.\"\"\"

        name = "starved"

        def opened(self):
            held = []
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass

            def give_back():
                for fd in held:
                    os.close(fd)

            asyncio.get_running_loop().call_later(1.0, give_back)
    """}


@pytest.mark.parametrize("ulimit", ["-Sn 128", "-n 160"])
async def test_a_low_open_files_limit_loses_no_page(
    site: TestSite, tmp_path: Path, ulimit: str
) -> None:
    """``-Sn``: only the soft limit is low, and it is raised to the hard one. ``-n``: both are
    low, so concurrency is lowered to fit, with a warning. Either way every page once."""
    project = make_project(tmp_path / "p", FD_SPIDERS)
    out, stats = tmp_path / "items.jsonl", tmp_path / "stats.json"
    crawl_cmd = (f"{BIN / 'crawl'} many -o {out} --stats {stats} -a base={site.url} -a n=1500"
                 " -s obey_robots=false -s concurrency=500 -s concurrency_per_host=500")
    code, _, err = await run("bash", "-c", f"ulimit {ulimit} && {crawl_cmd}", cwd=project)
    assert code == 0, err[-3000:]
    assert len(out.read_bytes().splitlines()) == 1500
    data = orjson.loads(stats.read_bytes())
    assert data["items_scraped"] == 1500 and data["finish_reason"] == "finished"
    assert not [k for k in data if k.startswith("errors/")], data
    assert all(site.stats.hits[f"/page/{i}"] == 1 for i in range(1500))
    capped = "needs more file descriptors than the limit of 160" in err
    assert capped == (ulimit == "-n 160"), err[-3000:]


async def test_running_out_of_descriptors_is_back_pressure(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", FD_SPIDERS)
    out, stats = tmp_path / "items.jsonl", tmp_path / "stats.json"
    crawl_cmd = (f"{BIN / 'crawl'} starved -o {out} --stats {stats} -a base={site.url} -a n=50"
                 " -s obey_robots=false -s retries=0")
    code, _, err = await run("bash", "-c", f"ulimit -n 256 && {crawl_cmd}", cwd=project)
    assert code == 0, err[-3000:]
    data = orjson.loads(stats.read_bytes())
    assert data["backpressure/open_files"] > 0  # it did run out...
    assert data["items_scraped"] == 50  # ...and lost nothing, with no retry to spend
    assert not [k for k in data if k.startswith("errors/")], data
    assert "Crawl finished" in err and "Out of file descriptors" in err


# ------------------------------------------- 10: a callback's output is a stream


class Streaming(Spider):
    """One page whose callback yields ``n`` requests, and after 2,500 of them waits until the
    server has answered one of those: that happens only if its output reaches the frontier
    and gets fetched while the callback is still running."""

    name = "streaming"
    site: TestSite
    n = 3000

    async def start(self) -> Any:
        yield Request(f"{self.site.url}/links?n=0", callback=self.parse_many)

    async def parse_many(self, response: Response) -> Any:
        for i in range(int(self.n)):
            yield Request(f"{self.site.url}/page/{i}")
            if i == 2500:
                for _ in range(2000):  # up to 20 s
                    if self.site.stats.hits["/page/0"]:
                        break
                    await asyncio.sleep(0.01)
                self.fetched_meanwhile = self.site.stats.hits["/page/0"] > 0
                yield {"fetched_meanwhile": self.fetched_meanwhile}

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}


@pytest.mark.parametrize("kind", ["memory", "jobdir"])
async def test_a_callbacks_requests_are_fetched_while_it_runs(
    site: TestSite, tmp_path: Path, kind: str
) -> None:
    jobdir = {"jobdir": str(tmp_path / "job")} if kind == "jobdir" else {}
    await _crawl_streaming(site, tmp_path, **jobdir)


async def test_a_callbacks_requests_are_fetched_while_it_runs_shared(
    site: TestSite, tmp_path: Path, redis_crawl: RedisCrawl
) -> None:
    await _crawl_streaming(site, tmp_path, frontier_url=redis_crawl.url,
                           crawl_id=redis_crawl.crawl_id)


async def _crawl_streaming(site: TestSite, tmp_path: Path, **settings: Any) -> None:
    result, items = await crawl(Streaming, tmp_path, spider_args={"site": site},
                                concurrency=16, concurrency_per_host=16, **settings)
    assert {"fetched_meanwhile": True} in items
    pages = [i["url"] for i in items if "url" in i]
    assert sorted(pages) == sorted(f"{site.url}/page/{i}" for i in range(3000))  # once each
    assert all(site.stats.hits[f"/page/{i}"] == 1 for i in range(3000))
    assert result.stats["items_scraped"] == 3001 and result.reason == "finished"


async def test_a_spider_argument_it_does_not_take_names_the_flag(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", {"strict": """
        from crawler import Spider

        class Strict(Spider):
            name = "strict"

            def __init__(self, start_url=None):
                super().__init__()
        """})
    code, _, err = await run(str(BIN / "crawl"), "strict", "-a", "start_ulr=x", cwd=project)
    assert code == 2 and "Traceback" not in err, err
    assert "spider 'strict' does not take -a start_ulr=..." in err


STREAMING_JOB = """
    import time

    from crawler import Request, Spider

    class Big(Spider):
        name = "big"

        async def start(self):
            yield Request(f"{self.base}/links?n=0", callback=self.parse_big)

        def parse_big(self, response):
            # Slow enough for a kill to land in the middle; more than one batch of each.
            for i in range(4000):
                yield Request(f"{self.base}/page/{i}")
                if i % 2 == 0:
                    yield {"big": i}
                time.sleep(0.0004)

        def parse(self, response):
            yield {"page": response.url.rsplit("/", 1)[1]}
    """


@pytest.mark.slow
async def test_kill_9_during_a_streaming_callback_keeps_items_exactly_once(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", {"big": STREAMING_JOB})
    out, jobdir = tmp_path / "items.jsonl", tmp_path / "job"
    args = [str(BIN / "crawl"), "big", "-o", str(out), "--jobdir", str(jobdir),
            "-a", f"base={site.url}", "-s", "obey_robots=false", "-s", "log_level=WARNING"]
    kills = 0
    for run_no in range(30):
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=project, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        # Killed while the big callback runs (some of its requests already in the frontier,
        # some fetched), three times; then left to finish.
        if run_no < 3:
            for _ in range(600):
                await asyncio.sleep(0.01)
                if sum(site.stats.hits[f"/page/{i}"] for i in range(4000)) > 20 * (run_no + 1):
                    break
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += 1
            assert proc.stderr is not None
            await proc.stderr.read()
            continue
        assert proc.stderr is not None
        err = (await asyncio.wait_for(proc.stderr.read(), 240)).decode()
        await proc.wait()
        assert proc.returncode == 0, err[-2000:]
        break
    assert kills == 3
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    big = [i["big"] for i in items if "big" in i]
    pages = [i["page"] for i in items if "page" in i]
    assert sorted(big) == list(range(0, 4000, 2))  # the callback's items exactly once
    assert sorted(pages, key=int) == [str(i) for i in range(4000)]  # every page exactly once
