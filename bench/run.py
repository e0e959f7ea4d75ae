"""Run every benchmark, print a table with the goal beside each figure, write BENCHMARKS.md.

    make bench                      # = .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --quick
    .venv/bin/python bench/run.py --rounds 7 --products 20000 --only throughput

Figures, each with uvloop and with asyncio's own loop (``CRAWLER_NO_UVLOOP=1``):

1. Throughput: the static shop of ``crawler.demosite.write_static_shop`` served by nginx
   (installed with apt-get when missing and allowed; else the bundled test site in its own
   process, which is said in the output), crawled in alternating rounds by the fastest
   hand-written loop (``bench/raw_loop.py``: yarl joins, ``::attr(href)`` queries, orjson, a set
   of known links checked before anything is built) and by ``crawl shop``. Two ratios
   framework/raw per round: of the whole processes' wall time (exec to exit, start-up
   included) and of the crawls' own elapsed time. Goal: median whole-process ratio ≥ 0.95.
2. Seed scenario: 100 URLs answering after 1 s at concurrency 100. Goals: the whole process
   ≤ 1.25 s (start-up included), the crawl's own elapsed ≤ 1.05 x the server's latency.
3. 10,000 URLs at 100 ms over 10 loopback host names, ``concurrency_per_host = 10``.
   Goal ≤ 1.10 x the ideal 10 s, per-host in-flight (counted by the server) ≤ 10.
4. Memory: peak RSS with 1,000,000 requests pending in the in-memory frontier (≤ 300 MB) and,
   when ``bench/memory_sqlite.py`` exists, in the SQLite frontier (≤ 150 MB).
4b. Broad crawl (section ``broad``): 100 loopback hosts x 20 pages at 10 ms, yielded host after
   host, ``concurrency=64``, ``concurrency_per_host=1``, ``download_delay=0.5``, on the memory,
   SQLite (``--jobdir``) and Redis frontiers and with three workers on one Redis frontier;
   then 1,000 hosts x 10 pages, ``download_delay=1``, ``concurrency=128`` (memory). Wall time of
   the whole processes against the ideal ``(pages - 1) x download_delay + page time``;
   goals ≤ 1.15 x (≤ 1.20 x for 1,000 hosts); the server counts per host the most requests in
   flight (≤ 1) and the shortest gap between two arrivals (≥ download_delay - 5 ms), and
   every page's item must be written exactly once.
5. Start-up: ``crawl shop`` from exec to its first request at a local server (goal ≤ 200 ms),
   and ``crawler list`` from exec to exit (goal ≤ 150 ms), median of several runs.
6. Processes: ``crawl shop --processes 2`` (two workers on a private redis-server) against
   ``crawl shop`` (``--processes 1``, the default: one process, memory frontier), alternated,
   whole-process wall time. Goal: median ratio of pages/s ≥ 1.4.
7. Pages that need JavaScript (``bench/browser.py``, Debian's Chromium through Playwright):
   rendered pages/s at ``browser_concurrency`` 2 and 4; the process tree's peak memory over
   1,000 rendered pages (goal: flat after warm-up); plain pages/s of a crawl rendering 1 page
   in 100 against none (goal: within 5 %). On asyncio's loop; skipped, saying why, without
   a browser.

Process times are exec to exit, measured from here; crawl times are the crawl's own
(``elapsed`` of ``--stats``, the raw loop's own clock). Every server runs in another process
than the crawl it serves.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECT = BENCH / "project"
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `crawler` importable
    sys.path.insert(0, str(ROOT))

from bench.profile_shop import Profile, profile_both, render  # noqa: E402

LOOPS = ("uvloop", "asyncio")
SECTIONS = ("throughput", "profile", "latency", "broad", "memory", "sqlite", "startup",
            "processes", "browser")
GOAL_RATIO = 0.95
GOAL_SEED_PROCESS_S = 1.25
GOAL_SEED_FACTOR = 1.05
GOAL_PROCESSES_RATIO = 1.4
GOAL_HOSTS_FACTOR = 1.10
GOAL_MEMORY_MB = 300.0  #: 1M pending over 100,000 hosts
GOAL_MEMORY_FEW_HOSTS_MB = 250.0  #: 1M pending over 1,000 hosts
GOAL_SQLITE_MB = 150.0
GOAL_STARTUP_MS = 200.0
GOAL_LIST_MS = 150.0
GOAL_BROAD_FACTOR = 1.15  #: 100 hosts x 20 pages, each frontier and three Redis workers
GOAL_WIDE_FACTOR = 1.20  #: 1,000 hosts x 10 pages, memory frontier
#: Timer slack allowed below download_delay between two starts on one host (server clock).
BROAD_GAP_SLACK = 0.005
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
GOAL_BROWSER_MIXED = 0.95  # bench/browser.py's GOAL_MIXED


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Processes


def loop_env(loop: str) -> dict[str, str]:
    """The environment of a crawl on ``loop`` ("uvloop" or "asyncio")."""
    env = dict(os.environ)
    env.pop("CRAWLER_NO_UVLOOP", None)
    if loop == "asyncio":
        env["CRAWLER_NO_UVLOOP"] = "1"
    return env


def _script(name: str) -> list[str]:
    """The console script ``name`` of this venv, else the module behind it."""
    path = Path(sys.executable).with_name(name)
    if path.exists():
        return [str(path)]
    return [sys.executable, "-m", "crawler.cli"] + (["crawl"] if name == "crawl" else [])


def crawl_command(*args: str) -> list[str]:
    return _script("crawl") + list(args)


def crawler_command(*args: str) -> list[str]:
    return _script("crawler") + list(args)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(slots=True)
class ProcessTime:
    wall: float  #: seconds from exec to exit
    cpu: float  #: user + system CPU seconds of the process (and any child it waited for)


def run_logged(cmd: list[str], logfile: Path, **kwargs: Any) -> ProcessTime:
    """Run ``cmd`` with its output in ``logfile``; returns its wall and CPU seconds. Raises
    with the log's tail when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(logfile, "wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{_tail(logfile)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ProcessTime(wall, cpu)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0) -> None:
    """Wait until ``url`` answers (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.05)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


# --------------------------------------------------------------------------------------------
# Machine


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, str]:
    """CPU model, cores, Python, versions and date, for the record."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("aiohttp", "parsel", "lxml", "yarl", "uvloop"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # not installed
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": _loadavg(),
        "uvloop": versions["uvloop"],
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items() if k != "uvloop"),
    }


# --------------------------------------------------------------------------------------------
# The static shop server


def ensure_nginx() -> str | None:
    """The nginx binary; installed from Debian's packages when missing and we are root."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("nginx not found: installing it with apt-get (nginx-light, else nginx) ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():  # never start the system's nginx service while installing it
        with contextlib.suppress(OSError):
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            made_policy = True

    def install() -> bool:
        for package in ("nginx-light", "nginx"):
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )
            if done.returncode == 0 and shutil.which("nginx"):
                return True
        return False

    try:
        if not install():
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            install()
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return shutil.which("nginx")


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    charset utf-8;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name localhost;
        root {root};
        index index.html;
    }}
}}
"""


@dataclass(slots=True)
class ShopServer:
    url: str  #: the shop's index, ``http://127.0.0.1:PORT/shop/``
    kind: str  #: what serves it, for the report
    pages: int  #: pages a full crawl fetches


@contextlib.contextmanager
def serve_shop(workdir: Path, products: int, prefer: str = "nginx") -> Iterator[ShopServer]:
    """Serve a shop of ``products`` products from another process: nginx over static files,
    or (``prefer="testsite"``, or nginx unavailable) ``python -m crawler.demosite``."""
    nginx = ensure_nginx() if prefer == "nginx" else None
    if nginx is None:
        if prefer == "nginx":
            log("nginx unavailable: serving the shop with crawler.demosite in its own process"
                " (an aiohttp server; it may be the bottleneck)")
        with _serve_testsite(products) as server:
            yield server
        return
    from crawler.demosite import write_static_shop

    docroot = workdir / "www"
    log(f"writing the static shop ({products:,} products) ...")
    pages = write_static_shop(docroot, products)
    for path in (workdir, docroot):
        path.chmod(0o755)  # nginx's worker may run as another user
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir()
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    kind = (version.stderr.strip().replace("nginx version: ", "") or "nginx") + \
        " (1 worker, access log off, static files)"
    for _attempt in range(5):
        port = free_port()
        conf = nginx_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=nginx_dir, port=port, root=docroot))
        proc = subprocess.Popen(
            [nginx, "-p", str(nginx_dir), "-c", str(conf), "-e", str(nginx_dir / "error.log"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/shop/", timeout=5)
        except RuntimeError:
            proc.terminate()
            proc.wait()
            continue
        try:
            yield ShopServer(f"http://127.0.0.1:{port}/shop/", kind, pages)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return
    raise RuntimeError(f"nginx did not start: {_tail(nginx_dir / 'error.log')}")


@contextlib.contextmanager
def _serve_testsite(products: int) -> Iterator[ShopServer]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.demosite", "--port", "0", "--shop", str(products)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"crawler.demosite did not start (printed {base!r})")
        listings = -(-products // 20)
        yield ShopServer(f"{base}/shop/", "crawler.demosite in its own process (aiohttp)",
                         1 + listings + products)
    finally:
        proc.terminate()
        proc.wait()


# --------------------------------------------------------------------------------------------
# 1. Throughput


@dataclass(slots=True)
class CrawlRun:
    who: str  #: "raw" or "framework"
    pages: int  #: 200 responses
    items: int
    elapsed: float  #: the crawl's own seconds
    wall: float  #: the process, start-up included
    cpu: float  #: CPU seconds of the process, start-up included

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed if self.elapsed else 0.0

    @property
    def process_pages_per_s(self) -> float:
        """Pages per second of the whole process, exec to exit."""
        return self.pages / self.wall if self.wall else 0.0


def _check_items(path: Path, products: int) -> int:
    ids = set()
    count = 0
    with open(path, "rb") as f:
        for line in f:
            ids.add(json.loads(line)["id"])
            count += 1
    if count != products or ids != set(range(1, products + 1)):
        raise AssertionError(f"{path}: {count} items, {len(ids)} distinct ids, expected "
                             f"the {products} products once each")
    return count


def run_raw(server: ShopServer, workdir: Path, concurrency: int, loop: str) -> CrawlRun:
    """One crawl of the shop by the hand-written loop."""
    out = workdir / "raw.jsonl"
    cmd = [sys.executable, str(BENCH / "raw_loop.py"), server.url, str(out),
           "--concurrency", str(concurrency)]
    if loop == "asyncio":
        cmd.append("--no-uvloop")
    logfile = workdir / "raw.log"
    proc = run_logged(cmd, logfile)
    result = json.loads(logfile.read_text().strip().splitlines()[-1])
    items = _check_items(out, result["items"])
    return CrawlRun("raw", int(result["pages"]), items, float(result["elapsed"]), proc.wall,
                    proc.cpu)


def run_framework(server: ShopServer, workdir: Path, concurrency: int, loop: str) -> CrawlRun:
    """One crawl of the shop by ``crawl shop`` (the bench project, robots.txt obeyed)."""
    out = workdir / "framework.jsonl"
    stats_path = workdir / "framework-stats.json"
    cmd = crawl_command(
        "shop", "-O", str(out), "-a", f"start_url={server.url}", "--stats", str(stats_path),
        "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={concurrency}",
    )
    proc = run_logged(cmd, workdir / "framework.log", cwd=PROJECT, env=loop_env(loop))
    stats = json.loads(stats_path.read_text())
    items = _check_items(out, int(stats.get("items_scraped", 0)))
    return CrawlRun("framework", int(stats.get("status/200", 0)), items,
                    float(stats["elapsed"]), proc.wall, proc.cpu)


@dataclass(slots=True)
class Throughput:
    loop: str
    server: str
    pages: int
    concurrency: int
    rounds: list[tuple[CrawlRun, CrawlRun]] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """framework/raw of the whole processes' pages/s (wall time exec to exit), per round."""
        return [raw.wall / fw.wall for raw, fw in self.rounds]

    @property
    def crawl_ratios(self) -> list[float]:
        """framework/raw of the crawls' own pages/s (their elapsed time), per round."""
        return [fw.pages_per_s / raw.pages_per_s for raw, fw in self.rounds]

    def median(self, who: str, process: bool = False) -> float:
        return statistics.median(
            getattr(raw if who == "raw" else fw,
                    "process_pages_per_s" if process else "pages_per_s")
            for raw, fw in self.rounds
        )

    def cpu_per_page(self, who: str) -> float:
        """Median CPU µs per page of the process (start-up included): less sensitive than
        pages/s to other work on the machine."""
        return statistics.median(
            (raw if who == "raw" else fw).cpu / self.pages * 1e6 for raw, fw in self.rounds
        )


def throughput(server: ShopServer, workdir: Path, *, rounds: int, concurrency: int,
               loop: str, products: int) -> Throughput:
    """``rounds`` alternating rounds (raw then framework, framework then raw, ...); every
    crawl must fetch exactly the shop's pages and write every product once."""
    result = Throughput(loop, server.kind, server.pages, concurrency)
    for n in range(rounds):
        order: list[Callable[..., CrawlRun]] = [run_raw, run_framework]
        if n % 2:
            order.reverse()
        runs = {}
        for fn in order:
            run = fn(server, workdir, concurrency, loop)
            if run.pages != server.pages or run.items != products:
                raise AssertionError(
                    f"{run.who} crawl fetched {run.pages} pages and wrote {run.items} items;"
                    f" the shop has {server.pages} pages and {products} products"
                )
            runs[run.who] = run
        raw, fw = runs["raw"], runs["framework"]
        result.rounds.append((raw, fw))
        log(f"  [{loop}] round {n + 1}/{rounds}: process {raw.wall:.2f} s raw,"
            f" {fw.wall:.2f} s framework, ratio {raw.wall / fw.wall:.2f}; crawl ratio"
            f" {fw.pages_per_s / raw.pages_per_s:.2f} ({raw.pages} pages each)")
    return result


@dataclass(slots=True)
class ProcessesRun:
    loop: str
    workers: int
    pages: int
    #: (one process, ``workers`` processes) per round, whole-process wall seconds
    rounds: list[tuple[ProcessTime, ProcessTime]] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """pages/s of ``--processes N`` over pages/s of one process, per round."""
        return [one.wall / many.wall for one, many in self.rounds]


def run_processes(server: ShopServer, workdir: Path, concurrency: int, loop: str,
                  workers: int) -> ProcessTime:
    """``crawl shop --processes N`` (N = 1: the plain crawl), checked like the others."""
    out = workdir / "processes.jsonl"
    stats_path = workdir / "processes-stats.json"
    cmd = crawl_command(
        "shop", "-O", str(out), "-a", f"start_url={server.url}", "--stats", str(stats_path),
        "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={concurrency}",
        "--processes", str(workers),
    )
    proc = run_logged(cmd, workdir / "processes.log", cwd=PROJECT, env=loop_env(loop))
    stats = json.loads(stats_path.read_text())
    if int(stats.get("status/200", 0)) != server.pages:
        raise AssertionError(f"--processes {workers}: {stats.get('status/200')} pages, the"
                             f" shop has {server.pages}")
    _check_items(out, int(stats.get("items_scraped", 0)))
    return proc


def processes_scenario(server: ShopServer, workdir: Path, *, rounds: int, concurrency: int,
                       loop: str, workers: int = 2) -> ProcessesRun:
    """Alternated rounds of ``--processes 1`` and ``--processes workers``."""
    result = ProcessesRun(loop, workers, server.pages)
    for n in range(rounds):
        order = [1, workers] if n % 2 == 0 else [workers, 1]
        times = {w: run_processes(server, workdir, concurrency, loop, w) for w in order}
        result.rounds.append((times[1], times[workers]))
        log(f"  [{loop}] round {n + 1}/{rounds}: 1 process {times[1].wall:.2f} s,"
            f" {workers} processes {times[workers].wall:.2f} s,"
            f" ratio {times[1].wall / times[workers].wall:.2f}")
    return result


# --------------------------------------------------------------------------------------------
# 2-3. Latency scenarios


@contextlib.contextmanager
def latency_server(hosts: list[str]) -> Iterator[int]:
    """``bench/latency_server.py`` on every host of ``hosts`` (one port); yields the port."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "latency_server.py"), "--hosts", ",".join(hosts)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"latency server did not start (printed {line!r})")
        port = int(line)
        wait_http(f"http://{hosts[0]}:{port}/stats")
        yield port
    finally:
        proc.terminate()
        proc.wait()


@dataclass(slots=True)
class LatencyRun:
    loop: str
    urls: int
    hosts: int
    delay: float
    concurrency: int
    per_host: int
    elapsed: float  #: the crawl's own seconds (stats ``elapsed``)
    wall: float  #: the process, start-up included
    cpu: float  #: CPU seconds of the crawl process
    responses: int
    hits: int  #: /delay/ requests the server saw
    max_inflight: int
    max_inflight_by_host: dict[str, int]
    first_request_after: float | None = None  #: s from the crawl's start to the first request
    tail_after_last: float | None = None  #: s from the last response to the crawl's end
    #: (process s, crawl s) of every run when several were made
    runs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def ideal(self) -> float:
        """Seconds with every slot always busy: rounds of (hosts x per-host) requests."""
        parallel = min(self.concurrency, self.hosts * self.per_host, self.urls)
        return -(-self.urls // parallel) * self.delay


def latency_crawl(workdir: Path, *, loop: str, urls: int, delay: float, hosts: list[str],
                  concurrency: int, per_host: int) -> LatencyRun:
    """``crawl latency`` over ``urls`` URLs of ``hosts`` against the slow server."""
    with latency_server(hosts) as port:
        stats_path = workdir / "latency-stats.json"
        cmd = crawl_command(
            "latency", "-a", f"port={port}", "-a", f"n={urls}", "-a", f"delay={delay:g}",
            "-a", f"hosts={','.join(hosts)}", "--stats", str(stats_path),
            "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={per_host}",
        )
        proc = run_logged(cmd, workdir / "latency.log", cwd=PROJECT, env=loop_env(loop))
        server = get_json(f"http://{hosts[0]}:{port}/stats")
    stats = json.loads(stats_path.read_text())
    run = LatencyRun(
        loop, urls, len(hosts), delay, concurrency, per_host, float(stats["elapsed"]),
        proc.wall, proc.cpu,
        int(stats.get("status/200", 0)), int(server["hits"]), int(server["max_inflight"]),
        {h: int(n) for h, n in server["max_inflight_by_host"].items()},
    )
    start, finish = _epoch(stats.get("start_time")), _epoch(stats.get("finish_time"))
    if start is not None and server.get("first_at") is not None:
        run.first_request_after = float(server["first_at"]) - start
    if finish is not None and server.get("last_at") is not None:
        run.tail_after_last = finish - float(server["last_at"])
    if run.responses != urls or run.hits != urls:
        raise AssertionError(f"latency crawl: {run.responses} responses, server saw {run.hits}"
                             f" requests; expected {urls}")
    return run


def _epoch(iso: Any) -> float | None:
    """Seconds since the epoch of a stats timestamp (ISO 8601, ``Z``), else None."""
    if not isinstance(iso, str):
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def seed_scenario(workdir: Path, loop: str, urls: int = 100, delay: float = 1.0,
                  runs: int = 1) -> LatencyRun:
    """The article's scenario: ``urls`` URLs that each take ``delay`` s, all at once; with
    several ``runs``, the median run by whole-process time, with the median crawl time."""
    done = [latency_crawl(workdir, loop=loop, urls=urls, delay=delay, hosts=["127.0.0.1"],
                          concurrency=urls, per_host=urls) for _ in range(runs)]
    done.sort(key=lambda r: r.wall)
    median = done[len(done) // 2]
    median.elapsed = statistics.median(r.elapsed for r in done)
    median.runs = [(r.wall, r.elapsed) for r in done]
    return median


def hosts_scenario(workdir: Path, loop: str, urls: int = 10_000, delay: float = 0.1,
                   hosts: int = 10, per_host: int = 10) -> LatencyRun:
    """``urls`` URLs at ``delay`` s spread over ``hosts`` loopback addresses."""
    names = [f"127.0.0.{i}" for i in range(1, hosts + 1)]
    return latency_crawl(workdir, loop=loop, urls=urls, delay=delay, hosts=names,
                         concurrency=hosts * per_host, per_host=per_host)


# --------------------------------------------------------------------------------------------
# 4b. Broad crawl: many hosts, each polite


@dataclass(slots=True)
class BroadRun:
    frontier: str  #: memory, sqlite or redis
    workers: int
    hosts: int
    pages: int  #: per host
    page_delay: float
    download_delay: float
    concurrency: int
    wall: float  #: seconds from the first exec to the last exit
    items: int
    distinct_items: int
    hits: int
    repeats: int
    max_per_host: int
    min_gap: float | None

    @property
    def ideal(self) -> float:
        """Every host busy from the start: its pages ``download_delay`` apart."""
        return (self.pages - 1) * self.download_delay + self.page_delay

    @property
    def label(self) -> str:
        who = f"{self.workers} Redis workers" if self.workers > 1 else self.frontier
        return (f"{self.hosts:,} hosts x {self.pages} pages, delay {self.download_delay:g} s,"
                f" {who}")

    def ok(self, factor: float, *, gaps: bool = True) -> bool:
        """The wall-time goal, every item once, one request per host at a time and, with
        ``gaps``, no two starts on a host closer than the delay (timer slack allowed)."""
        return (
            self.wall <= factor * self.ideal
            and self.items == self.distinct_items == self.hosts * self.pages
            and self.max_per_host <= 1
            and (not gaps or (
                self.min_gap is not None
                and self.min_gap >= self.download_delay - BROAD_GAP_SLACK
            ))
        )


def broad_crawl(workdir: Path, *, loop: str, frontier: str, hosts: int, pages: int,
                page_delay: float, download_delay: float, concurrency: int,
                workers: int = 1) -> BroadRun:
    """``crawl broad`` over ``hosts`` loopback addresses (127.0.0.2 ...), ``workers``
    processes started together (several only on Redis)."""
    names = [f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(2, hosts + 2)]
    run_dir = workdir / f"broad-{frontier}-{workers}-{hosts}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    crawl_id = f"bench{os.getpid()}{int(time.time() * 1000)}"
    with latency_server(names) as port:
        args = [
            "broad", "-a", f"port={port}", "-a", f"hosts={','.join(names)}",
            "-a", f"pages={pages}", "-a", f"delay={page_delay:g}",
            "-s", f"concurrency={concurrency}", "-s", "concurrency_per_host=1",
            "-s", f"download_delay={download_delay:g}", "-s", "obey_robots=false",
            "-s", "log_level=WARNING",
        ]
        if frontier == "sqlite":
            args += ["--jobdir", str(run_dir / "job")]
        elif frontier == "redis":
            args += ["--frontier", REDIS_URL, "-s", f"crawl_id={crawl_id}"]
        outputs = [run_dir / f"items-{n}.jsonl" for n in range(workers)]
        procs: list[tuple[subprocess.Popen[bytes], Any]] = []
        t0 = time.perf_counter()
        try:
            for n, out in enumerate(outputs):
                log_file = open(run_dir / f"crawl-{n}.log", "wb")  # noqa: SIM115 - closed below
                cmd = crawl_command(*args, "-O", str(out))
                procs.append((subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                               cwd=PROJECT, env=loop_env(loop)), log_file))
            codes = [proc.wait() for proc, _ in procs]
        finally:
            for proc, log_file in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log_file.close()
        wall = time.perf_counter() - t0
        server = get_json(f"http://{names[0]}:{port}/stats")
    if frontier == "redis":
        import asyncio

        from crawler.frontier.redis import frontier_purge

        asyncio.run(frontier_purge(REDIS_URL, "broad", crawl_id))
    if any(codes):
        bad = codes.index(next(c for c in codes if c))
        raise RuntimeError(f"broad crawl worker {bad} exited {codes[bad]}:\n"
                           f"{_tail(run_dir / f'crawl-{bad}.log')}")
    urls = [json.loads(line)["url"] for out in outputs
            for line in out.read_text().splitlines() if line]
    return BroadRun(
        frontier, workers, hosts, pages, page_delay, download_delay, concurrency, wall,
        len(urls), len(set(urls)), int(server["hits"]), int(server["repeats"]),
        max(server["max_inflight_by_host"].values(), default=0),
        None if server["min_gap"] is None else float(server["min_gap"]),
    )


def broad_scenarios(workdir: Path, loop: str, quick: bool) -> list[BroadRun]:
    """The broad crawls of the table: each frontier, three Redis workers, 1,000 hosts."""
    hosts, pages = (20, 10) if quick else (100, 20)
    runs: list[BroadRun] = []
    plan: list[tuple[str, int]] = [("memory", 1), ("sqlite", 1)]
    if _redis_answers():
        plan += [("redis", 1), ("redis", 3)]
    else:
        log(f"  no Redis at {REDIS_URL}: the Redis broad crawls are skipped")
    only = os.environ.get("BENCH_BROAD_ONLY")  # e.g. "memory" while working on one backend
    if only:
        plan = [p for p in plan if p[0] in only.split(",")]
    for frontier, workers in plan:
        log(f"broad crawl, {loop}: {hosts} hosts x {pages} pages, {frontier} x {workers} ...")
        run = broad_crawl(workdir, loop=loop, frontier=frontier, hosts=hosts, pages=pages,
                          page_delay=0.01, download_delay=0.5, concurrency=64, workers=workers)
        log(f"  {run.wall:.2f} s ({run.wall / run.ideal:.2f} x ideal), min gap "
            f"{run.min_gap if run.min_gap is None else round(run.min_gap, 4)} s,"
            f" max per host {run.max_per_host}")
        runs.append(run)
    wide_hosts = 200 if quick else 1000
    log(f"broad crawl, {loop}: {wide_hosts} hosts x 10 pages, delay 1 s, memory ...")
    run = broad_crawl(workdir, loop=loop, frontier="memory", hosts=wide_hosts, pages=10,
                      page_delay=0.01, download_delay=1.0, concurrency=128)
    log(f"  {run.wall:.2f} s ({run.wall / run.ideal:.2f} x ideal)")
    runs.append(run)
    return runs


def _redis_answers() -> bool:
    host, _, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# 4. Memory


def memory_script(script: Path, requests: int, loop: str, *extra: str) -> dict[str, Any]:
    """Run ``bench/memory_frontier.py``-like script (``--requests N [--no-uvloop]``) whose last
    line is JSON with ``peak_rss_mb``."""
    cmd = [sys.executable, str(script), "--requests", str(requests), *extra]
    if loop == "asyncio":
        cmd.append("--no-uvloop")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT,
                          env=loop_env(loop))
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_PEAK = re.compile(r"peak RSS ([0-9.]+) MB")


def memory_sqlite(requests: int) -> dict[str, Any] | None:
    """``bench/memory_sqlite.py N`` (written with the SQLite frontier): its last line says
    ``peak RSS <MB> MB``. None when the script does not exist or says nothing readable."""
    script = BENCH / "memory_sqlite.py"
    if not script.exists():
        return None
    done = subprocess.run([sys.executable, str(script), str(requests)], capture_output=True,
                          text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} exited {done.returncode}: {done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    found = _PEAK.search(lines[-1]) if lines else None
    if found is None:
        return None
    return {"requests": requests, "peak_rss_mb": float(found.group(1)), "output": lines}


# --------------------------------------------------------------------------------------------
# 5. Start-up


class FirstRequestServer:
    """A plain socket server in a thread: notes when the first request of a run arrives and
    answers every request with an immediate ``404`` (robots.txt included)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = int(self._sock.getsockname()[1])
        self.first: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def arm(self) -> None:
        with self._lock:
            self.first = None

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                now = time.monotonic()
                with self._lock:
                    if self.first is None and data:
                        self.first = now
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self._sock.close()


def startup_crawl(workdir: Path, loop: str, runs: int) -> list[float]:
    """Milliseconds from exec of ``crawl shop`` to its first request at a local server."""
    server = FirstRequestServer()
    out: list[float] = []
    try:
        for _ in range(runs):
            server.arm()
            cmd = crawl_command("shop", "-a", f"start_url=http://127.0.0.1:{server.port}/shop/")
            t0 = time.monotonic()
            run_logged(cmd, workdir / "startup.log", cwd=PROJECT, env=loop_env(loop))
            if server.first is None:
                raise RuntimeError("crawl shop made no request")
            out.append((server.first - t0) * 1000)
    finally:
        server.close()
    return out


def startup_list(workdir: Path, loop: str, runs: int) -> list[float]:
    """Milliseconds from exec to exit of ``crawler list`` in the bench project."""
    out = []
    for _ in range(runs):
        proc = run_logged(crawler_command("list"), workdir / "list.log", cwd=PROJECT,
                          env=loop_env(loop))
        out.append(proc.wall * 1000)
    return out


def settle(seconds: float = 2.0) -> None:
    """Let the machine calm down before the millisecond figures: pending writeback (the
    bytecode just written, an earlier run's files) must not compete with the start-ups."""
    os.sync()
    time.sleep(seconds)


def compile_bytecode() -> None:
    """Write the ``.pyc`` files of the framework and the bench project, as ``pip install``
    does for an installed package. An editable install has none until Python writes them on
    first import, which ``PYTHONDONTWRITEBYTECODE`` (set on some machines) prevents: then every
    start would compile the framework from source, ~50 ms that no installed copy pays."""
    import compileall

    for folder in (ROOT / "crawler", PROJECT / "spiders"):
        compileall.compile_dir(str(folder), quiet=1)


def startup_floor(runs: int) -> float:
    """Milliseconds of ``python -c pass``: the interpreter's own start-up."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------
# Report


@dataclass(slots=True)
class Results:
    machine: dict[str, str]
    options: dict[str, Any]
    throughput: dict[str, Throughput] = field(default_factory=dict)
    seed: dict[str, LatencyRun] = field(default_factory=dict)
    hosts: dict[str, LatencyRun] = field(default_factory=dict)
    broad: list[BroadRun] = field(default_factory=list)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_few_hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sqlite: dict[str, Any] | None = None
    sqlite_checked: bool = False
    start_crawl: dict[str, list[float]] = field(default_factory=dict)
    start_list: dict[str, list[float]] = field(default_factory=dict)
    processes: dict[str, ProcessesRun] = field(default_factory=dict)
    python_floor_ms: float | None = None
    profile: list[Profile] = field(default_factory=list)
    browser: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Row:
    figure: str
    goal: str
    cells: dict[str, str]
    ok: dict[str, bool | None]


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def rows(res: Results) -> list[Row]:
    """The table: one row per figure, a cell per loop."""
    out: list[Row] = []

    def add(figure: str, goal: str, fn: Callable[[str], tuple[str, bool | None] | None]) -> None:
        cells: dict[str, str] = {}
        oks: dict[str, bool | None] = {}
        for loop in LOOPS:
            got = fn(loop)
            if got is not None:
                cells[loop], oks[loop] = got
        if cells:
            out.append(Row(figure, goal, cells, oks))

    def tp(loop: str, who: str, process: bool) -> tuple[str, bool | None] | None:
        t = res.throughput.get(loop)
        return None if t is None else (f"{t.median(who, process):,.0f}", None)

    def ratio(loop: str, process: bool) -> tuple[str, bool | None] | None:
        t = res.throughput.get(loop)
        if t is None:
            return None
        r = t.ratios if process else t.crawl_ratios
        med = statistics.median(r)
        return f"{min(r):.2f} / {med:.2f} / {max(r):.2f}", med >= GOAL_RATIO

    add("Throughput, fastest hand-written loop (pages/s of the process, median)", "",
        lambda lp: tp(lp, "raw", True))
    add("Throughput, framework (pages/s of the process, median)", "",
        lambda lp: tp(lp, "framework", True))
    add("Ratio framework/raw, whole process (min / median / max)", f"median ≥ {GOAL_RATIO}",
        lambda lp: ratio(lp, True))
    add("  pages/s of the crawl's own elapsed: raw / framework (median)", "",
        lambda lp: None if lp not in res.throughput else (
            f"{res.throughput[lp].median('raw'):,.0f} / "
            f"{res.throughput[lp].median('framework'):,.0f}", None))
    add("  Ratio framework/raw, crawl elapsed (min / median / max)", f"median ≥ {GOAL_RATIO}",
        lambda lp: ratio(lp, False))

    def cpu(loop: str) -> tuple[str, bool | None] | None:
        t = res.throughput.get(loop)
        if t is None:
            return None
        raw, fw = t.cpu_per_page("raw"), t.cpu_per_page("framework")
        return f"{raw:,.0f} / {fw:,.0f} µs (ratio {raw / fw:.2f})", None

    add("  CPU per page, raw / framework (median, process)", "", cpu)

    def seed(loop: str) -> tuple[str, bool | None] | None:
        s = res.seed.get(loop)
        if s is None:
            return None
        return f"{s.elapsed:.3f} s", s.elapsed <= GOAL_SEED_FACTOR * s.delay

    def seed_process(loop: str) -> tuple[str, bool | None] | None:
        s = res.seed.get(loop)
        if s is None:
            return None
        # The goal is for the article's 1 s latency; another --seed-delay shifts it as much.
        return f"{s.wall:.3f} s", s.wall <= GOAL_SEED_PROCESS_S - 1.0 + s.delay

    any_seed = next(iter(res.seed.values()), None)
    if any_seed is not None:
        add(f"{any_seed.urls} URLs x {any_seed.delay:g} s at concurrency {any_seed.concurrency}"
            " (whole process, median)", f"≤ {GOAL_SEED_PROCESS_S - 1.0 + any_seed.delay:g} s",
            seed_process)
        add("  the crawl's own elapsed (median)",
            f"≤ {GOAL_SEED_FACTOR * any_seed.delay:g} s", seed)

    def hosts(loop: str) -> tuple[str, bool | None] | None:
        h = res.hosts.get(loop)
        if h is None:
            return None
        ok = h.elapsed <= GOAL_HOSTS_FACTOR * h.ideal
        return f"{h.elapsed:.2f} s ({h.elapsed / h.ideal:.3f} x ideal)", ok

    def per_host(loop: str) -> tuple[str, bool | None] | None:
        h = res.hosts.get(loop)
        if h is None:
            return None
        top = max(h.max_inflight_by_host.values(), default=0)
        return f"{top} (over {len(h.max_inflight_by_host)} hosts)", top <= h.per_host

    any_hosts = next(iter(res.hosts.values()), None)
    if any_hosts is not None:
        label = (f"{any_hosts.urls:,} URLs x {any_hosts.delay:g} s over {any_hosts.hosts} hosts,"
                 f" {any_hosts.per_host}/host (crawl wall)")
        add(label, f"≤ {GOAL_HOSTS_FACTOR} x {any_hosts.ideal:g} s", hosts)
        add("  max in flight per host, counted by the server", f"≤ {any_hosts.per_host}",
            per_host)

    for b in res.broad:
        # The 1,000-host crawl's goal is its wall time; its shortest gap is shown, not judged.
        wide = b.hosts >= 1000
        factor = GOAL_WIDE_FACTOR if wide else GOAL_BROAD_FACTOR
        cell = (f"{b.wall:.2f} s ({b.wall / b.ideal:.2f} x), gap ≥"
                f" {b.min_gap if b.min_gap is None else round(b.min_gap, 3)} s,"
                f" ≤ {b.max_per_host}/host, {b.distinct_items}/{b.items} items")
        goal = f"≤ {factor} x {b.ideal:g} s, 1/host" + (
            "" if wide else f", gap ≥ {b.download_delay:g} s")
        out.append(Row(f"Broad: {b.label} (process wall)", goal,
                       {"uvloop": cell}, {"uvloop": b.ok(factor, gaps=not wide)}))

    def memory(
        which: dict[str, dict[str, Any]], goal: float
    ) -> Callable[[str], tuple[str, bool | None] | None]:
        def cell(loop: str) -> tuple[str, bool | None] | None:
            m = which.get(loop)
            if m is None:
                return None
            return (f"{m['peak_rss_mb']:.0f} MB ({m['bytes_per_request']} B/request)",
                    m["peak_rss_mb"] <= goal)

        return cell

    any_mem = next(iter(res.memory.values()), None)
    if any_mem is not None:
        add(f"Peak RSS, {any_mem['requests']:,} pending over 100,000 hosts, memory frontier",
            f"≤ {GOAL_MEMORY_MB:.0f} MB", memory(res.memory, GOAL_MEMORY_MB))
        add(f"Peak RSS, {any_mem['requests']:,} pending over 1,000 hosts, memory frontier",
            f"≤ {GOAL_MEMORY_FEW_HOSTS_MB:.0f} MB",
            memory(res.memory_few_hosts, GOAL_MEMORY_FEW_HOSTS_MB))

    def sqlite(loop: str) -> tuple[str, bool | None] | None:
        if not res.sqlite_checked:
            return None
        m = res.sqlite
        if m is None:
            return "not available", None
        if loop == "uvloop":
            return "— (runs on asyncio)", None
        return f"{m['peak_rss_mb']:.0f} MB", m["peak_rss_mb"] <= GOAL_SQLITE_MB

    add("Peak RSS, pending requests, SQLite frontier", f"≤ {GOAL_SQLITE_MB:.0f} MB", sqlite)

    def start(
        which: dict[str, list[float]], goal: float
    ) -> Callable[[str], tuple[str, bool | None] | None]:
        def cell(loop: str) -> tuple[str, bool | None] | None:
            t = which.get(loop)
            if not t:
                return None
            med = statistics.median(t)
            return f"{med:.0f} ms", med <= goal

        return cell

    add("Start-up: `crawl shop` exec → first request (median)", f"≤ {GOAL_STARTUP_MS:.0f} ms",
        start(res.start_crawl, GOAL_STARTUP_MS))
    add("Start-up: `crawler list` exec → exit (median)", f"≤ {GOAL_LIST_MS:.0f} ms",
        start(res.start_list, GOAL_LIST_MS))

    def processes(loop: str) -> tuple[str, bool | None] | None:
        p = res.processes.get(loop)
        if p is None:
            return None
        r = p.ratios
        med = statistics.median(r)
        return f"{min(r):.2f} / {med:.2f} / {max(r):.2f}", med >= GOAL_PROCESSES_RATIO

    any_p = next(iter(res.processes.values()), None)
    if any_p is not None:
        add(f"`--processes {any_p.workers}` / `--processes 1`, shop pages/s of the process"
            " (min / median / max)", f"median ≥ {GOAL_PROCESSES_RATIO}", processes)
    b = res.browser
    if b is not None:
        def on_asyncio(text: str, ok: bool | None = None) -> Callable[
                [str], tuple[str, bool | None] | None]:
            return lambda loop: (text, ok) if loop == "asyncio" else ("— (runs on asyncio)", None)

        rates = b["rates"]
        for conc in (2, 4):
            add(f"Rendered pages/s, browser_concurrency {conc} (default wait / wait=load)", "",
                on_asyncio(f"{rates[f'networkidle/{conc}']:g} / {rates[f'load/{conc}']:g}"))
        m, mixed = b["memory"], b["mixed"]
        add(f"Peak RSS of the process tree, {m['pages']:,} rendered pages (PSS)",
            "flat after warm-up", on_asyncio(
                f"{m['peak_rss_mb']} MB ({m['peak_pss_mb']} MB); pages 10-50 %:"
                f" {m['warm_peak_rss_mb']} MB, 50-100 %: {m['late_peak_rss_mb']} MB", m["flat"]))
        add("Plain pages/s, 1 page in 100 rendered / none (median)",
            f"≥ {GOAL_BROWSER_MIXED}", on_asyncio(
                f"{statistics.median(mixed['one_in_100']):,.0f} / "
                f"{statistics.median(mixed['none']):,.0f} (ratio {mixed['ratio']:.3f})",
                mixed["ok"]))
    return out


def text_table(table: list[Row]) -> str:
    header = ["Figure", "Goal", "uvloop", "ok", "asyncio", "ok"]
    lines = [[r.figure, r.goal, r.cells.get("uvloop", "—"), _mark(r.ok.get("uvloop")),
              r.cells.get("asyncio", "—"), _mark(r.ok.get("asyncio"))] for r in table]
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), sep] + [fmt.format(*line) for line in lines])


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f}"


def markdown(res: Results) -> str:
    """BENCHMARKS.md: the machine, the table, the details of every figure, the profile."""
    m = res.machine
    o = res.options
    md: list[str] = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python bench/run.py`"
        + (f" {o['argv']}" if o.get("argv") else "") + "); every figure below comes from the"
        " run recorded here. How each figure is measured: the docstring of `bench/run.py`.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores",
        f"- Python {m['python']} on {m['os']}",
        f"- uvloop: {m['uvloop']}; {m['libraries']}",
        f"- Date: {m['date']}",
        f"- Load average (1, 5, 15 min) when the run started: {m['load']}; at its end:"
        f" {m.get('load_end', '?')}. Other work on the machine shows up as noise between rounds.",
        "",
        "## Results",
        "",
        "| Figure | Goal | uvloop | | asyncio | |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in rows(res):
        md.append(f"| {r.figure.strip()} | {r.goal} | {r.cells.get('uvloop', '—')} | "
                  f"{_mark(r.ok.get('uvloop'))} | {r.cells.get('asyncio', '—')} | "
                  f"{_mark(r.ok.get('asyncio'))} |")
    if res.throughput:
        t0 = next(iter(res.throughput.values()))
        md += [
            "",
            "## Throughput rounds",
            "",
            f"Server: {t0.server}. {t0.pages:,} pages ({o.get('products', 0):,} products), "
            f"concurrency {t0.concurrency} for both (per host {t0.concurrency}: one host). Both"
            " crawls fetch exactly these pages (checked every round) and write every product"
            " once as a JSON line. Process s = exec to exit, as timed from the bench (the"
            " ratio of the table); the crawl ratio is of pages/s = 200 responses / the crawl's"
            " own elapsed time. The hand-written loop is `bench/raw_loop.py` (see its"
            " docstring: yarl joins, `::attr(href)` queries, orjson, known links skipped before"
            " any join)."
            " The framework obeys robots.txt (nginx answers a fast 404, so one extra request);"
            " its items are plain dicts (no item model), as the raw loop's.",
            "",
            "| loop | round | raw crawl pages/s | framework crawl pages/s | crawl ratio |"
            " raw process s (CPU s) | framework process s (CPU s) | process ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for loop, t in res.throughput.items():
            for i, (raw, fw) in enumerate(t.rounds, 1):
                md.append(f"| {loop} | {i} | {raw.pages_per_s:,.0f} | {fw.pages_per_s:,.0f} |"
                          f" {fw.pages_per_s / raw.pages_per_s:.3f} | {raw.wall:.2f}"
                          f" ({raw.cpu:.2f}) | {fw.wall:.2f} ({fw.cpu:.2f}) |"
                          f" {raw.wall / fw.wall:.3f} |")
    if res.seed or res.hosts:
        md += ["", "## Latency scenarios", "",
               "Server: `bench/latency_server.py` (aiohttp on uvloop) in its own process;"
               " crawl wall = stats `elapsed` of `crawl latency --stats`. The first request"
               " and last response are timed by the server (wall clock, ms resolution of the"
               " crawl's start/finish stamps).", "",
               "| scenario | loop | crawl s | ideal s | first request after (ms) |"
               " after last response (ms) | process s (CPU s) | server max in flight |"
               " max per host |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for runs in (res.seed, res.hosts):
            for loop, lr in runs.items():
                md.append(f"| {lr.urls:,} x {lr.delay:g} s, {lr.hosts} host(s) | {loop} |"
                          f" {lr.elapsed:.3f} | {lr.ideal:g} | {_ms(lr.first_request_after)} |"
                          f" {_ms(lr.tail_after_last)} | {lr.wall:.2f} ({lr.cpu:.2f}) |"
                          f" {lr.max_inflight} |"
                          f" {max(lr.max_inflight_by_host.values(), default=0)} |")
    if res.seed:
        for loop, lr in res.seed.items():
            if lr.runs:
                md.append(f"- seed scenario runs, {loop} (process s / crawl s): " + ", ".join(
                    f"{w:.3f} / {e:.3f}" for w, e in lr.runs))
    if res.processes:
        md += ["", "## Processes", "",
               "`crawl shop --processes N` (N workers on a private redis-server the command"
               " starts and stops, outputs merged at the end) against `crawl shop` (one process,"
               " memory frontier), same shop and server, alternated; whole-process wall time,"
               " start-up, redis-server and merge included.", "",
               "| loop | round | 1 process s (CPU s) | N processes s (CPU s) | ratio |",
               "|---|---:|---:|---:|---:|"]
        for loop, pr in res.processes.items():
            for i, (one, many) in enumerate(pr.rounds, 1):
                md.append(f"| {loop} | {i} | {one.wall:.2f} ({one.cpu:.2f}) |"
                          f" {many.wall:.2f} ({many.cpu:.2f}) | {one.wall / many.wall:.2f} |")
    if res.broad:
        md += ["", "## Broad crawl: many hosts, each polite", "",
               "`crawl broad` (bench/project/spiders/broad.py): start requests yielded host after"
               " host, each page answered after 10 ms by `bench/latency_server.py` bound on"
               " every host (127.0.0.2 ...), `concurrency_per_host=1`, `obey_robots=false`."
               " Wall: from the exec of the first process to the exit of the last. Ideal:"
               " `(pages - 1) x download_delay + 10 ms`. The server counts per host the most"
               " requests in flight and the shortest gap between two arrivals; items are read"
               " back from the outputs.", "",
               "| crawl | concurrency | wall s | ideal s | x ideal | min gap s | max per host |"
               " items (distinct) | server hits (repeats) |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for b in res.broad:
            md.append(f"| {b.label} | {b.concurrency} | {b.wall:.2f} | {b.ideal:.2f} |"
                      f" {b.wall / b.ideal:.3f} |"
                      f" {'?' if b.min_gap is None else f'{b.min_gap:.4f}'} |"
                      f" {b.max_per_host} | {b.items:,} ({b.distinct_items:,}) |"
                      f" {b.hits:,} ({b.repeats}) |")
    if res.memory:
        md += ["", "## Memory", "", "`bench/memory_frontier.py`: realistic requests (80-character"
               " URLs over 1,000 hosts, a bound-method callback) added in batches of 1,000 to"
               " `MemoryFrontier` and kept pending; peak RSS of the whole process.", ""]
        for loop, mem in res.memory.items():
            md.append(f"- {loop}: {mem['requests']:,} requests, peak RSS {mem['peak_rss_mb']} MB"
                      f" (baseline after imports {mem['baseline_rss_mb']} MB,"
                      f" {mem['bytes_per_request']} B per request), filled in {mem['seconds']} s")
        if res.sqlite_checked:
            sq = res.sqlite
            md.append("- SQLite frontier (`bench/memory_sqlite.py`, on asyncio): " + (
                "not available" if sq is None
                else f"{sq['requests']:,} pending requests, peak RSS {sq['peak_rss_mb']} MB"))
            if sq is not None:
                md += ["", "```"] + [str(x) for x in sq["output"]] + ["```"]
    if res.start_crawl or res.start_list:
        md += ["", "## Start-up", ""]
        if res.python_floor_ms is not None:
            md.append(f"- `python -c pass` alone: {res.python_floor_ms:.0f} ms (median)")
        md.append("- Bytecode (`.pyc`) of `crawler/` and the bench project is written first, as"
                  " `pip install` does: an editable install under `PYTHONDONTWRITEBYTECODE`"
                  " would otherwise compile the framework on every start (~50 ms).")
        for loop, times in res.start_crawl.items():
            md.append(f"- `crawl shop` → first request, {loop}: "
                      + ", ".join(f"{t:.0f}" for t in times) + " ms")
        for loop, times in res.start_list.items():
            md.append(f"- `crawler list`, {loop}: " + ", ".join(f"{t:.0f}" for t in times) + " ms")
    if res.profile:
        md += ["", "## Profile of the throughput crawl", "",
               "`bench/profile_shop.py`: one crawl of each under cProfile, on asyncio's loop;"
               " shares are of the busy time (the loop's `epoll.poll` sleep removed). cProfile"
               " inflates many small Python calls, so read the shares as a guide.", "",
               render(res.profile)]
    if res.browser is not None:
        md += ["", browser_markdown(res.browser)]
    if res.notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    return "\n".join(md) + "\n"


def browser_markdown(b: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md on rendered pages."""
    m, mixed, rates = b["memory"], b["mixed"], b["rates"]
    lines = [
        "## Pages that need JavaScript", "",
        "`bench/browser.py`: Debian's Chromium driven by Playwright, against the JS pages of"
        " `tests/browser_site.py` (aiohttp in its own process; each page builds a 20-item list"
        " in a script). pages/s from the first page to the last (the browser's start-up"
        " excluded), at concurrency 64, retries off.", "",
        "| browser_concurrency | default wait (load + network quiet 0.5 s) | wait = load |",
        "|---:|---:|---:|",
    ]
    for conc in (2, 4):
        lines.append(f"| {conc} | {rates[f'networkidle/{conc}']:g} pages/s |"
                     f" {rates[f'load/{conc}']:g} pages/s |")
    lines += [
        "",
        f"Memory over {m['pages']:,} rendered pages (browser_concurrency 4, wait = load,"
        f" {m['seconds']} s; contexts made: {m['contexts']}, one per"
        " `browser_recycle_pages` = 100): the whole process tree (crawl, Playwright's driver,"
        " every Chromium process), sampled every 0.2 s. RSS adds up each process's resident"
        " pages (a library shared by ten renderers counts ten times); PSS counts a shared page"
        " once.", "",
        f"- peak RSS {m['peak_rss_mb']} MB, peak PSS {m['peak_pss_mb']} MB",
        f"- peak RSS over pages 10-50 %: {m['warm_peak_rss_mb']} MB; over pages 50-100 %:"
        f" {m['late_peak_rss_mb']} MB (goal: within 10 %: "
        f"{'met' if m['flat'] else 'NOT met'}); PSS {m['warm_peak_pss_mb']} MB /"
        f" {m['late_peak_pss_mb']} MB",
        "- peak RSS per 100 pages: " + ", ".join(
            f"{k}: {v}" for k, v in m["rss_by_hundred_mb"].items()) + " MB",
        "",
        f"Mixed crawl: {mixed['plain_pages']:,} pages, every 100th rendered, against the same"
        f" crawl rendering none, {mixed['rounds']} alternated pairs; plain pages/s = plain"
        " responses over the time from the first to the last of them (the browser's start-up"
        " inside that window); the ratio is the median of the pairs' ratios.", "",
        f"- none: {', '.join(f'{x:,}' for x in mixed['none'])} pages/s;"
        f" 1 in 100 rendered: {', '.join(f'{x:,}' for x in mixed['one_in_100'])} pages/s",
        f"- ratios {', '.join(f'{x:.3f}' for x in mixed['ratios'])}: median"
        f" {mixed['ratio']:.3f} (goal ≥ {GOAL_BROWSER_MIXED})",
        "- the crawl process's CPU per plain page (median): none"
        f" {mixed['cpu_us_per_plain_page']['none']} µs, 1 in 100 rendered"
        f" {mixed['cpu_us_per_plain_page']['one_in_100']} µs (the rendering itself runs in"
        " Chromium's processes)",
    ]
    return "\n".join(lines)


def run_browser(args: argparse.Namespace) -> dict[str, Any] | None:
    """``bench/browser.py`` in its own process; None (said why) without Playwright or
    Chromium."""
    from crawler.browser import check_browser
    from crawler.errors import BrowserUnavailable
    from crawler.settings import build_settings

    try:
        check_browser(build_settings(project_dir=None, environ={}))
    except BrowserUnavailable as exc:
        log(f"browser section skipped: {exc}")
        return None
    cmd = [sys.executable, str(BENCH / "browser.py"), *(["--quick"] if args.quick else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT,
                          env=loop_env("asyncio"))
    if done.returncode != 0:
        raise RuntimeError(f"browser.py exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run the benchmarks and write BENCHMARKS.md.")
    p.add_argument("--quick", action="store_true",
                   help="smaller and fewer runs (2,000 products, 2 rounds, 1,000 latency URLs,"
                        " 100,000 pending requests); goals are still shown")
    p.add_argument("--rounds", type=int, help="throughput rounds per loop (default 5)")
    p.add_argument("--products", type=int, help="products in the shop (default 20,000)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--hosts-urls", type=int, help="URLs of the 10-host scenario (10,000)")
    p.add_argument("--hosts-delay", type=float, default=0.1, help="seconds per URL (0.1)")
    p.add_argument("--hosts-count", type=int, default=10, help="loopback host names (10)")
    p.add_argument("--per-host", type=int, default=10, help="concurrency_per_host (10)")
    p.add_argument("--seed-urls", type=int, default=100, help="URLs of the seed scenario (100)")
    p.add_argument("--seed-delay", type=float, default=1.0, help="seconds per URL (1.0)")
    p.add_argument("--seed-runs", type=int, help="runs of the seed scenario, median (5)")
    p.add_argument("--processes", type=int, default=2,
                   help="worker processes of the processes section (2)")
    p.add_argument("--memory-requests", type=int, help="pending requests (1,000,000)")
    p.add_argument("--startup-runs", type=int, help="runs per start-up figure (7)")
    p.add_argument("--loops", default="uvloop,asyncio", help="comma-separated: uvloop,asyncio")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated sections to run (default: all)")
    p.add_argument("--server", choices=("nginx", "testsite"), default="nginx",
                   help="what serves the shop (default nginx, installed when missing)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the uncounted crawl that warms the server and the page cache")
    p.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"),
                   help="where to write the report ('-' = do not write)")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (2 if q else 5)
    args.products = args.products or (2_000 if q else 20_000)
    args.hosts_urls = args.hosts_urls or (1_000 if q else 10_000)
    args.memory_requests = args.memory_requests or (100_000 if q else 1_000_000)
    args.startup_runs = args.startup_runs or (3 if q else 7)
    args.seed_runs = args.seed_runs or (1 if q else 5)
    args.loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = args.only - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    for loop in args.loops:
        if loop not in LOOPS:
            p.error(f"unknown loop {loop!r} (uvloop or asyncio)")
    if "uvloop" in args.loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            log("uvloop is not installed (pip install '.[speed]'): measuring asyncio only")
            args.loops = [x for x in args.loops if x != "uvloop"]
    return args


def run(args: argparse.Namespace, argv: list[str] | None = None) -> Results:
    """Run the sections ``args.only`` asks for, on every loop of ``args.loops``."""
    res = Results(machine_info(), {"products": args.products,
                                   "argv": " ".join(argv if argv is not None else sys.argv[1:])})
    with tempfile.TemporaryDirectory(prefix="crawler-bench-") as tmp:
        work = Path(tmp)
        # Every section runs the framework in new processes: without .pyc files (or with stale
        # ones) each would compile the edited modules again, a cost no installed copy pays.
        compile_bytecode()
        if "startup" in args.only:
            # First, on a quiet machine: after the other sections, the memory they freed and
            # the files they wrote keep the kernel busy for a while (seen as ~100 ms of
            # spread between start-ups run after the SQLite section).
            settle()
            res.python_floor_ms = startup_floor(args.startup_runs)
            for loop in args.loops:
                log(f"start-up, {loop} ...")
                res.start_crawl[loop] = startup_crawl(work, loop, args.startup_runs)
                res.start_list[loop] = startup_list(work, loop, args.startup_runs)
        if {"throughput", "profile", "processes"} & args.only:
            with serve_shop(work, args.products, prefer=args.server) as server:
                log(f"shop: {server.url} served by {server.kind}, {server.pages:,} pages")
                if "throughput" in args.only:
                    if args.warmup:
                        log("warm-up crawl (not counted) ...")
                        run_raw(server, work, args.concurrency, args.loops[0])
                    for loop in args.loops:
                        log(f"throughput, {loop}: {args.rounds} rounds ...")
                        res.throughput[loop] = throughput(
                            server, work, rounds=args.rounds, concurrency=args.concurrency,
                            loop=loop, products=args.products,
                        )
                if "processes" in args.only:
                    for loop in args.loops:
                        log(f"processes, {loop}: {args.rounds} rounds of --processes 1 and"
                            f" --processes {args.processes} ...")
                        res.processes[loop] = processes_scenario(
                            server, work, rounds=args.rounds, concurrency=args.concurrency,
                            loop=loop, workers=args.processes)
                if "profile" in args.only:
                    log("profiling both crawls under cProfile ...")
                    prof_dir = work / "profile"
                    prof_dir.mkdir()
                    res.profile = profile_both(server.url, prof_dir, args.concurrency,
                                               server.pages)
        if "latency" in args.only:
            for loop in args.loops:
                log(f"seed scenario, {loop}: {args.seed_urls} URLs x {args.seed_delay:g} s ...")
                res.seed[loop] = seed_scenario(work, loop, urls=args.seed_urls,
                                               delay=args.seed_delay, runs=args.seed_runs)
                log(f"  process {res.seed[loop].wall:.3f} s, crawl {res.seed[loop].elapsed:.3f} s")
                log(f"{args.hosts_count}-host scenario, {loop}: {args.hosts_urls:,} URLs"
                    f" x {args.hosts_delay:g} s ...")
                res.hosts[loop] = hosts_scenario(work, loop, urls=args.hosts_urls,
                                                 delay=args.hosts_delay,
                                                 hosts=args.hosts_count, per_host=args.per_host)
                log(f"  {res.hosts[loop].elapsed:.2f} s")
        if "broad" in args.only:
            # One loop: the figure is the schedule's (timers and politeness), not the CPU's.
            res.broad = broad_scenarios(work, args.loops[0], args.quick)
        if "memory" in args.only:
            for loop in args.loops:
                log(f"memory, {loop} ({args.memory_requests:,} pending requests) ...")
                mem = memory_script(BENCH / "memory_frontier.py", args.memory_requests, loop)
                res.memory[loop] = mem
                log(f"  peak RSS {mem['peak_rss_mb']} MB over 100,000 hosts")
                few = memory_script(BENCH / "memory_frontier.py", args.memory_requests, loop,
                                    "--hosts", "1000")
                res.memory_few_hosts[loop] = few
                log(f"  peak RSS {few['peak_rss_mb']} MB over 1,000 hosts")
        if "sqlite" in args.only:
            # The SQLite script runs on asyncio.run whatever the loop setting: measured once.
            log(f"memory, SQLite frontier ({args.memory_requests:,} pending requests) ...")
            res.sqlite = memory_sqlite(args.memory_requests)
            res.sqlite_checked = True
        if "browser" in args.only:
            log("pages that need JavaScript (bench/browser.py) ...")
            res.browser = run_browser(args)
            if res.browser is None:
                res.notes.append("Browser section skipped: no Playwright or no Chromium.")
    res.machine["load_end"] = _loadavg()
    if args.quick:
        res.notes.append("--quick run: smaller figures than the goals are stated for.")
    return res


def _stop_on_sigterm() -> None:
    """SIGTERM (and SIGINT, which a shell ignores in background jobs) end the run through
    SystemExit, so every server and crawl it started is stopped by its ``finally``."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        _stop_on_sigterm()
    res = run(args, argv)
    print(text_table(rows(res)))
    if res.throughput:
        for loop, t in res.throughput.items():
            print(f"\n{loop}: {t.pages:,} pages per crawl, both crawls the same; server: "
                  f"{t.server}")
    if args.markdown != "-":
        Path(args.markdown).write_text(markdown(res))
        print(f"\nWrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
