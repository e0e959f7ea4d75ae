"""Outputs: the shop crawl's pages/s into JSON lines, SQLite and PostgreSQL, in one run.

    .venv/bin/python bench/feeds.py                       # 20,000 products, 3 rounds
    .venv/bin/python bench/feeds.py --products 5000 --rounds 2 --server testsite

Each round crawls the shop (``bench/run.py``'s static shop under nginx, or the test site)
once per output, in rotating order: ``-O out.jsonl``, ``-O sqlite:///out.db?table=products``
and ``-O postgresql://...?table=<schema>.products`` (a schema of its own, dropped at the end).
Every crawl must fetch every page and store every product once (counted in the file or the
table). Goal: each database's pages/s no more than 10% below the JSON lines figure of the same
round, median of the rounds' ratios (the machine's load drifts between rounds more than within
one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    PROJECT,
    crawl_command,
    log,
    loop_env,
    machine_info,
    run_logged,
    serve_shop,
)
from bench.scenarios import compile_bytecode  # noqa: E402

GOAL = 0.90
PG = "postgresql://postgres@127.0.0.1:5432/test"


async def _pg(sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        if sql.startswith("SELECT"):
            return int(await conn.fetchval(sql))
        await conn.execute(sql)
        return 0
    finally:
        await conn.close()


def stored(kind: str, target: Path, schema: str) -> int:
    if kind == "jsonl":
        return len({json.loads(line)["id"] for line in target.read_bytes().splitlines()})
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(target) as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT json_extract(item, '$.id')) "
                                    "FROM products").fetchone()[0])
    # The bench spider has no item model: each item is one jsonb column.
    return asyncio.run(_pg(f"SELECT COUNT(DISTINCT item->>'id') FROM {schema}.products"))


def crawl(kind: str, url: str, work: Path, schema: str, concurrency: int,
          loop: str) -> tuple[int, float, float, Path]:
    """One crawl into ``kind``: (pages fetched, the crawl's own seconds, the process's CPU
    seconds, the file written)."""
    target = {"jsonl": work / "out.jsonl", "sqlite": work / "out.db"}.get(kind, work)
    uri = {"jsonl": str(target), "sqlite": f"sqlite:///{target}?table=products",
           "postgresql": f"{PG}?table={schema}.products"}[kind]
    stats_path = work / f"{kind}-stats.json"
    cmd = crawl_command("shop", "-O", uri, "-a", f"start_url={url}", "--stats", str(stats_path),
                        "-s", f"concurrency={concurrency}",
                        "-s", f"concurrency_per_host={concurrency}")
    proc = run_logged(cmd, work / f"{kind}.log", cwd=PROJECT, env=loop_env(loop))
    stats = json.loads(stats_path.read_text())
    return int(stats["status/200"]), float(stats["elapsed"]), proc.cpu, target


KINDS = ("jsonl", "sqlite", "postgresql")


def measure(*, products: int, rounds: int, concurrency: int, loop: str,
            server: str) -> dict[str, Any]:
    """The rounds: ``{"rates": {kind: [pages/s per round]}, "cpu": {kind: [µs per page]},
    "ratio": {kind: the median over rounds of its pages/s / the round's JSON lines pages/s},
    "ok": every database's goal met}``.
    Raises OSError when PostgreSQL does not answer."""
    kinds = list(KINDS)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg(f"CREATE SCHEMA {schema}"))
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        with tempfile.TemporaryDirectory(prefix="crawler-bench-feeds-") as tmp:
            work = Path(tmp)
            compile_bytecode()
            with serve_shop(work, products, prefer=server) as shop:
                log(f"shop: {shop.url} served by {shop.kind}, {shop.pages:,} pages")
                for n in range(rounds):
                    order = kinds[n % 3:] + kinds[: n % 3]
                    for kind in order:
                        pages, elapsed, seconds, target = crawl(
                            kind, shop.url, work, schema, concurrency, loop)
                        count = stored(kind, target, schema)
                        if pages != shop.pages or count != products:
                            raise AssertionError(f"{kind}: {pages} pages, {count} products "
                                                 f"stored; expected {shop.pages} and "
                                                 f"{products}")
                        rates[kind].append(pages / elapsed)
                        cpu[kind].append(seconds / pages * 1e6)
                        log(f"  round {n + 1}/{rounds} {kind:10s} {pages / elapsed:,.0f} "
                            "pages/s")
    finally:
        asyncio.run(_pg(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    ratio = {k: statistics.median([r / j for r, j in zip(rates[k], rates["jsonl"], strict=True)])
             for k in kinds}
    return {"rates": rates, "cpu": cpu, "ratio": ratio, "loop": loop,
            "ok": all(ratio[k] >= GOAL for k in kinds if k != "jsonl")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--products", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    p.add_argument("--server", choices=("nginx", "testsite"), default="nginx")
    args = p.parse_args(argv)
    kinds = list(KINDS)
    figures = measure(products=args.products, rounds=args.rounds,
                      concurrency=args.concurrency, loop=args.loop, server=args.server)
    rates, cpu = figures["rates"], figures["cpu"]
    info = machine_info()
    print(f"\nshop crawl, {args.products:,} products, {args.rounds} rounds, {args.loop}, "
          f"concurrency {args.concurrency}; {info.get('cpu', '')} load {info.get('load', '')}")
    print(f"{'output':12s} {'median pages/s':>15s} {'vs jsonl':>9s} {'CPU µs/page':>12s}"
          f"  goal: median ratio of rounds >= {GOAL:.2f}")
    ok = True
    for kind in kinds:
        median = statistics.median(rates[kind])
        ratio = figures["ratio"][kind]
        met = kind == "jsonl" or ratio >= GOAL
        ok &= met
        print(f"{kind:12s} {median:15,.0f} {ratio:9.2f} {statistics.median(cpu[kind]):12,.0f}"
              f"  {'ok' if met else 'MISSED'}"
              f"   (rounds: {', '.join(f'{r:,.0f}' for r in rates[kind])})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
