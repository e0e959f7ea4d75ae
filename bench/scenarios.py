"""The bench's scenarios: each runs whole crawl processes and returns its figures.

The sections of ``bench/run.py`` (``--only``) call these; ``bench/report.py`` turns their
results into the table and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    BENCH,
    PROJECT,
    REDIS_URL,
    ROOT,
    ProcessTime,
    ShopServer,
    _tail,
    crawl_command,
    crawler_command,
    get_json,
    log,
    loop_env,
    run_logged,
    tree_cpu,
    wait_http,
)

#: Timer slack allowed below download_delay between two starts on one host (server clock).
BROAD_GAP_SLACK = 0.005


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
        return float(statistics.median(
            getattr(raw if who == "raw" else fw,
                    "process_pages_per_s" if process else "pages_per_s")
            for raw, fw in self.rounds
        ))

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
    #: (one process, ``workers`` processes) per round: CPU seconds of the shop's server
    server_cpu: list[tuple[float, float]] = field(default_factory=list)
    cores: int = 1

    @property
    def ratios(self) -> list[float]:
        """pages/s of ``--processes N`` over pages/s of one process, per round."""
        return [one.wall / many.wall for one, many in self.rounds]

    @property
    def predicted(self) -> list[float]:
        """The scale the CPU allows, per round, over one process's pages/s (one core over
        its CPU): the lower of the workers' limit (N cores over the N-process crawl's CPU:
        its whole tree, workers, redis-server and the merge) and the machine's (its cores
        over that CPU plus the shop server's during it)."""
        out = []
        for (one, many), (_, server) in zip(self.rounds, self.server_cpu, strict=True):
            if not many.cpu:
                out.append(0.0)
                continue
            out.append(min(self.workers / many.cpu, self.cores / (many.cpu + server)) * one.cpu)
        return out


def run_processes(server: ShopServer, workdir: Path, concurrency: int, loop: str,
                  workers: int) -> tuple[ProcessTime, float]:
    """``crawl shop --processes N`` (N = 1: the plain crawl), checked like the others; with
    the CPU seconds the shop's server spent meanwhile."""
    out = workdir / "processes.jsonl"
    stats_path = workdir / "processes-stats.json"
    cmd = crawl_command(
        "shop", "-O", str(out), "-a", f"start_url={server.url}", "--stats", str(stats_path),
        "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={concurrency}",
        "--processes", str(workers),
    )
    server_before = tree_cpu(server.pid) if server.pid else 0.0
    proc = run_logged(cmd, workdir / "processes.log", cwd=PROJECT, env=loop_env(loop))
    server_cpu = tree_cpu(server.pid) - server_before if server.pid else 0.0
    stats = json.loads(stats_path.read_text())
    if int(stats.get("status/200", 0)) != server.pages:
        raise AssertionError(f"--processes {workers}: {stats.get('status/200')} pages, the"
                             f" shop has {server.pages}")
    _check_items(out, int(stats.get("items_scraped", 0)))
    return proc, server_cpu


def processes_scenario(server: ShopServer, workdir: Path, *, rounds: int, concurrency: int,
                       loop: str, workers: int = 2) -> ProcessesRun:
    """Alternated rounds of ``--processes 1`` and ``--processes workers``."""
    result = ProcessesRun(loop, workers, server.pages, cores=os.cpu_count() or 1)
    for n in range(rounds):
        order = [1, workers] if n % 2 == 0 else [workers, 1]
        runs = {w: run_processes(server, workdir, concurrency, loop, w) for w in order}
        times = {w: run[0] for w, run in runs.items()}
        result.rounds.append((times[1], times[workers]))
        result.server_cpu.append((runs[1][1], runs[workers][1]))
        log(f"  [{loop}] round {n + 1}/{rounds}: 1 process {times[1].wall:.2f} s,"
            f" {workers} processes {times[workers].wall:.2f} s,"
            f" ratio {times[1].wall / times[workers].wall:.2f}")
    return result


# --------------------------------------------------------------------------------------------
# 6b. Redis workers against one memory worker


@dataclass(slots=True)
class ScaleRun:
    workers: int  #: 0: one worker on the memory frontier; else that many Redis workers
    pages: int  #: 200 responses, all workers together
    wall: float  #: from the first exec to the last exit
    cpu: float  #: CPU seconds of the workers
    redis_cpu: float  #: CPU seconds of redis-server over the run (INFO cpu)
    server_cpu: float  #: CPU seconds of the shop's server over the run

    def per_page(self, seconds: float) -> float:
        """µs per page."""
        return seconds / self.pages * 1e6 if self.pages else 0.0


@dataclass(slots=True)
class RedisScale:
    loop: str
    pages: int
    workers: list[int]  #: the Redis worker counts measured
    cores: int
    rounds: list[dict[int, ScaleRun]] = field(default_factory=list)

    def ratios(self, workers: int) -> list[float]:
        """pages/s of ``workers`` Redis workers over one memory worker's, per round."""
        return [r[0].wall / r[workers].wall for r in self.rounds]

    def median_per_page(self, workers: int, what: str = "cpu") -> float:
        return statistics.median(r[workers].per_page(getattr(r[workers], what))
                                 for r in self.rounds)

    def predicted(self, workers: int) -> list[float]:
        """The scale the CPU allows, per round, over one memory worker's pages/s (one core
        over its CPU per page): the lower of the workers' own limit (each one core:
        ``workers`` over their CPU per page) and the machine's (its cores over the CPU a
        page costs workers, redis-server and the shop's server together). Holds on a
        machine that nothing else uses; the wall ratio is that figure less what other work
        on the machine takes."""
        out = []
        for r in self.rounds:
            memory, run = r[0], r[workers]
            total = run.cpu + run.redis_cpu + run.server_cpu
            if not run.cpu or not total:
                out.append(0.0)
                continue
            out.append(min(workers / run.cpu, self.cores / total) * memory.cpu)
        return out


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_together(commands: list[tuple[list[str], Path]], loop: str) -> list[int]:
    """Start every ``(command, log file)`` at once (in the bench project, on ``loop``), wait
    for them all and return their exit codes; any still running when this is interrupted is
    killed."""
    procs: list[tuple[subprocess.Popen[bytes], Any]] = []
    try:
        for cmd, log_path in commands:
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed below
            procs.append((subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                           cwd=PROJECT, env=loop_env(loop)), log_file))
        return [proc.wait() for proc, _ in procs]
    finally:
        for proc, log_file in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log_file.close()


def scale_run(server: ShopServer, workdir: Path, *, workers: int, redis_url: str | None,
              concurrency: int, loop: str, products: int) -> ScaleRun:
    """One shop crawl: one memory worker (``workers`` 0) or ``workers`` ``crawl shop
    --frontier`` processes started together on the Redis at ``redis_url`` (emptied first);
    every page fetched once and every product written once, all workers together."""
    import redis  # the package's own dependency; imported when this section runs

    client = redis.Redis.from_url(redis_url) if redis_url else None
    if client is not None:
        client.flushdb()
    before = resource_children()
    redis_before = _redis_cpu(client) if client is not None else 0.0
    server_before = tree_cpu(server.pid) if server.pid else 0.0
    outputs = [workdir / f"scale-{n}.jsonl" for n in range(max(workers, 1))]
    stats_paths = [workdir / f"scale-{n}.json" for n in range(len(outputs))]
    commands = []
    for n, out in enumerate(outputs):
        args = ["shop", "-O", str(out), "-a", f"start_url={server.url}",
                "--stats", str(stats_paths[n]), "--no-summary",
                "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={concurrency}"]
        if redis_url:
            args += ["--frontier", redis_url]
        commands.append((crawl_command(*args), workdir / f"scale-{n}.log"))
    t0 = time.perf_counter()
    codes = run_together(commands, loop)
    wall = time.perf_counter() - t0
    after = resource_children()
    redis_cpu = _redis_cpu(client) - redis_before if client is not None else 0.0
    server_cpu = tree_cpu(server.pid) - server_before if server.pid else 0.0
    if client is not None:
        client.close()
    if any(codes):
        bad = codes.index(next(c for c in codes if c))
        raise RuntimeError(f"shop worker {bad} exited {codes[bad]}:\n"
                           f"{_tail(workdir / f'scale-{bad}.log')}")
    pages = sum(int(json.loads(p.read_text()).get("status/200", 0)) for p in stats_paths)
    ids = [json.loads(line)["id"] for out in outputs for line in out.read_bytes().splitlines()]
    if pages != server.pages or len(ids) != products or set(ids) != set(range(1, products + 1)):
        raise AssertionError(f"{max(workers, 1)} workers fetched {pages} pages and wrote"
                             f" {len(ids)} items ({len(set(ids))} distinct); the shop has"
                             f" {server.pages} pages and {products} products")
    return ScaleRun(workers, pages, wall, after - before, redis_cpu, server_cpu)


def resource_children() -> float:
    """User + system CPU seconds of this process's children that were waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_scale(server: ShopServer, workdir: Path, *, rounds: int, concurrency: int,
                loop: str, products: int, workers: tuple[int, ...] = (1, 2, 4)) -> RedisScale:
    """Alternated rounds (each round's order reversed from the last) of one memory worker and
    1, 2 and 4 Redis workers, on a private redis-server started here (so its CPU is the
    crawl's alone)."""
    from crawler.processes import private_redis

    result = RedisScale(loop, server.pages, list(workers), os.cpu_count() or 1)
    plan = [0, *workers]
    with private_redis() as url:
        for n in range(rounds):
            order = plan if n % 2 == 0 else plan[::-1]
            runs = {w: scale_run(server, workdir, workers=w, redis_url=url if w else None,
                                 concurrency=concurrency, loop=loop, products=products)
                    for w in order}
            result.rounds.append(runs)
            memory = runs[0]
            log(f"  [{loop}] round {n + 1}/{rounds}: memory {memory.wall:.2f} s"
                f" ({memory.per_page(memory.cpu):.0f} µs CPU/page); " + "; ".join(
                    f"{w} Redis {runs[w].wall:.2f} s ({runs[w].per_page(runs[w].cpu):.0f}"
                    f" + redis-server {runs[w].per_page(runs[w].redis_cpu):.0f} µs/page)"
                    for w in workers))
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
        t0 = time.perf_counter()
        codes = run_together([(crawl_command(*args, "-O", str(out)), run_dir / f"crawl-{n}.log")
                              for n, out in enumerate(outputs)], loop)
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
    """Milliseconds from exec of ``crawl shop -O FILE.jsonl`` (as a crawl is run: into an
    output, whose check comes before the first request) to its first request at a local
    server."""
    server = FirstRequestServer()
    out: list[float] = []
    try:
        for _ in range(runs):
            server.arm()
            cmd = crawl_command("shop", "-a", f"start_url=http://127.0.0.1:{server.port}/shop/",
                                "-O", str(workdir / "startup.jsonl"))
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

