"""Run every benchmark, print a table with the goal beside each figure, write BENCHMARKS.md.

    make bench                      # = .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --quick
    .venv/bin/python bench/run.py --rounds 7 --products 20000 --only throughput

Figures, each with uvloop and with asyncio's own loop (``CRAWLER_NO_UVLOOP=1``):

1. Throughput: the static shop of ``crawler.demosite.write_static_shop`` served by nginx
   (``make bench-deps`` installs it; without it, the bundled test site in its own
   process, which is said in the output), crawled in alternating rounds by the fastest
   hand-written loop (``bench/raw_loop.py``: yarl joins, ``::attr(href)`` queries, orjson, a set
   of known links checked before anything is built) and by ``crawl shop``. Two ratios
   framework/raw per round: of the whole processes' wall time (exec to exit, start-up
   included) and of the crawls' own elapsed time. Goal: median whole-process ratio ≥ 0.95.
2. Seed scenario: 100 URLs answering after 1 s at concurrency 100. Goals: the whole process
   ≤ 1.25 s (start-up included), the crawl's own elapsed ≤ 1.05 x the server's latency.
3. 10,000 URLs at 100 ms over 10 loopback host names, ``concurrency_per_host = 10``.
   Goal ≤ 1.10 x the ideal 10 s, per-host in-flight (counted by the server) ≤ 10.
4. Memory: peak RSS with 1,000,000 requests pending in the in-memory frontier (≤ 250 MB) and,
   when ``bench/memory_sqlite.py`` exists, in the SQLite frontier (≤ 100 MB).
4b. Broad crawl (section ``broad``): 100 loopback hosts x 20 pages at 10 ms, yielded host after
   host, ``concurrency=64``, ``concurrency_per_host=1``, ``download_delay=0.5``, on the memory,
   SQLite (``--jobdir``) and Redis frontiers and with three workers on one Redis frontier;
   then 1,000 hosts x 10 pages, ``download_delay=1``, ``concurrency=128`` (memory). Wall time of
   the whole processes against the ideal ``(pages - 1) x download_delay + page time``;
   goals ≤ 1.15 x (≤ 1.20 x for 1,000 hosts); the server counts per host the most requests in
   flight (≤ 1) and the shortest gap between two arrivals, as the kernel stamped them
   (≥ download_delay - 5 ms), and
   every page's item must be written exactly once.
5. Start-up: ``crawl shop`` from exec to its first request at a local server (goal ≤ 200 ms),
   and ``crawler list`` from exec to exit (goal ≤ 150 ms), median of 7 runs after one
   uncounted warm-up start of each, the loops taking turns run by run.
6. Processes: ``crawl shop --processes 2`` (two workers on a private redis-server) against
   ``crawl shop`` (``--processes 1``, the default: one process, memory frontier), alternated,
   whole-process wall time. Goal: median ratio of pages/s ≥ 1.4.
6b. Redis workers (section ``redis``): the shop crawl by one memory worker and by 1, 2 and 4
   ``crawl shop --frontier`` processes on a private redis-server, alternated rounds (5; 2
   with ``--quick``), pages/s of the processes (first exec to last exit) and CPU per page of
   the workers, of redis-server (``INFO cpu``) and of the shop's server. Goals: one Redis
   worker ≥ 0.9 x one memory worker, two ≥ 1.4 x; the scale predicted from CPU per page
   (cores over the CPU a page costs workers + redis-server + server) is shown beside it,
   since on a shared machine the wall ratio also measures the others' work.
7. Pages that need JavaScript (``bench/browser.py``, Debian's Chromium through Playwright):
   rendered pages/s at ``browser_concurrency`` 2 and 4; the process tree's peak memory over
   1,000 rendered pages (goal: flat after warm-up); plain pages/s of a crawl rendering 1 page
   in 100 against none (goal: within 5 %). On asyncio's loop; skipped, saying why, without
   a browser.

8. Outputs (``bench/feeds.py``): the shop crawl into JSON lines, SQLite and PostgreSQL
   (``127.0.0.1:5432``, database ``test``, a schema of its own), rotating order, at most 5
   rounds, on the first loop. Goal: the median over rounds of each database's pages/s / the
   round's JSON lines pages/s ≥ 0.9. Skipped, saying why, when PostgreSQL does not answer.

Sections (``--only``, comma-separated; default all): ``throughput``, ``profile``,
``latency`` (2 and 3), ``broad`` (4b), ``memory`` and ``sqlite`` (4), ``startup`` (5),
``processes`` (6), ``redis`` (6b), ``browser`` (7), ``feeds`` (8). For example
``--only throughput`` with ``--rounds 3 --loops asyncio``; ``--quick`` shrinks every section.

Layout: ``bench/harness.py`` (processes, ports, the machine, nginx or the test site),
``bench/scenarios.py`` (each section's runs), ``bench/report.py`` (goals, the table,
BENCHMARKS.md), this file (options and the order of the sections). ``make bench-deps``
installs nginx; the bench itself installs nothing.

Process times are exec to exit, measured from here; crawl times are the crawl's own
(``elapsed`` of ``--stats``, the raw loop's own clock). Every server runs in another process
than the crawl it serves.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `crawler` importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    BENCH,
    LOOPS,
    PROJECT,
    _loadavg,
    crawl_command,
    log,
    loop_env,
    machine_info,
    run_logged,
    serve_shop,
)
from bench.profile_shop import profile_both  # noqa: E402
from bench.report import Results, browser_markdown, markdown, rows, text_table  # noqa: E402
from bench.scenarios import (  # noqa: E402
    broad_scenarios,
    compile_bytecode,
    hosts_scenario,
    memory_script,
    memory_sqlite,
    processes_scenario,
    redis_scale,
    run_browser,
    run_raw,
    seed_scenario,
    settle,
    startup_crawl,
    startup_floor,
    startup_list,
    throughput,
)

#: Names other scripts (bench/feeds.py, the tests) import from here.
__all__ = ["BENCH", "PROJECT", "ROOT", "Results", "browser_markdown", "compile_bytecode",
           "crawl_command", "log", "loop_env", "machine_info", "main", "markdown",
           "parse_args", "rows", "run", "run_logged", "serve_shop", "text_table"]

SECTIONS = ("throughput", "profile", "latency", "broad", "memory", "sqlite", "startup",
            "processes", "redis", "browser", "feeds")


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
    p.add_argument("--redis-rounds", type=int,
                   help="rounds of the redis section (5; 2 with --quick)")
    p.add_argument("--memory-requests", type=int, help="pending requests (1,000,000)")
    p.add_argument("--startup-runs", type=int, help="runs per start-up figure (7)")
    p.add_argument("--loops", default="uvloop,asyncio", help="comma-separated: uvloop,asyncio")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated sections to run (default: all)")
    p.add_argument("--server", choices=("nginx", "testsite"), default="nginx",
                   help="what serves the shop (default nginx; the test site when nginx is"
                        " not installed, which is said)")
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
    args.redis_rounds = args.redis_rounds or (2 if q else 5)
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
            log(f"start-up, {' and '.join(args.loops)} in turn ...")
            # One uncounted start of each command first, as a benchmark tool's warm-up: the
            # first starts after a quiet spell ran 30-50 % slower than the next ones (seen on
            # a VM). Then the loops take turns, run by run, so a drift hits them alike.
            for loop in args.loops:
                startup_crawl(work, loop, 1)
                startup_list(work, loop, 1)
                res.start_crawl[loop], res.start_list[loop] = [], []
            for _ in range(args.startup_runs):
                for loop in args.loops:
                    res.start_crawl[loop] += startup_crawl(work, loop, 1)
                    res.start_list[loop] += startup_list(work, loop, 1)
        if {"throughput", "profile", "processes", "redis"} & args.only:
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
                if "redis" in args.only:
                    for loop in args.loops:
                        log(f"redis, {loop}: {args.redis_rounds} rounds of one memory worker"
                            " and 1, 2, 4 Redis workers ...")
                        res.redis[loop] = redis_scale(
                            server, work, rounds=args.redis_rounds,
                            concurrency=args.concurrency, loop=loop, products=args.products)
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
        if "feeds" in args.only:
            from bench.feeds import measure

            rounds = min(args.rounds, 5)
            log(f"outputs, {args.loops[0]}: {rounds} rounds of JSON lines, SQLite, PostgreSQL ...")
            try:
                res.feeds = measure(products=args.products, rounds=rounds,
                                    concurrency=args.concurrency, loop=args.loops[0],
                                    server=args.server)
            except OSError as exc:
                log(f"outputs section skipped: PostgreSQL does not answer ({exc})")
                res.notes.append("Outputs section skipped: PostgreSQL does not answer.")
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
