"""Several outputs at once, and items into SQLite and PostgreSQL tables (issue 14).

Against real files, real SQLite databases and the real PostgreSQL server on 127.0.0.1:5432
(database ``test``, a schema of each test's own, dropped after it); the outage test runs a
private cluster of its own with ``pg_ctl``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.demosite import expected_books, expected_shop_items
from crawler.errors import ConfigError
from crawler.runner import run_spider
from spiders.books import BooksSpider

from .conftest import make_settings
from .servers import TestSite
from .test_cli import BIN, make_project, run
from .test_durable import run_with_kills
from .test_readme import readme_block

asyncpg = pytest.importorskip("asyncpg")

PG = "postgresql://postgres@127.0.0.1:5432/test"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pg_answers(port: int = 5432) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A schema of this test's own in the shared server, dropped at the end."""
    if not _pg_answers():
        pytest.fail("PostgreSQL does not answer on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()


async def pg_rows(table: str, dsn: str = PG) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
    finally:
        await conn.close()


async def pg_types(schema: str, table: str) -> dict[str, str]:
    conn = await asyncpg.connect(PG)
    try:
        rows = await conn.fetch("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_schema = $1 AND table_name = $2", schema, table)
        return {r["column_name"]: r["data_type"] for r in rows}
    finally:
        await conn.close()


def sqlite_rows(path: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]


async def crawl_books(site: TestSite, outputs: list[tuple[str, bool]], **settings: Any) -> Any:
    return await run_spider(BooksSpider, make_settings(**settings),
                            spider_args={"start_url": f"{site.url}/"}, outputs=outputs)


def cheap_book(item: dict[str, Any]) -> bool:
    return Decimal(str(item["price"])) < 30


def cheap(item: dict[str, Any]) -> bool:
    """The item_filter of a feed in the options test."""
    return cheap_book(item)


# -- several feeds, each format ------------------------------------------------------------


async def test_every_format_at_once(site: TestSite, tmp_path: Path, schema: str) -> None:
    db = tmp_path / "items.db"
    outputs = [
        (str(tmp_path / "b.jsonl"), True), (str(tmp_path / "b.json"), True),
        (str(tmp_path / "b.csv"), True), (f"sqlite:///{db}?table=books", True),
        (f"{PG}?table={schema}.books", True),
    ]
    result = await crawl_books(site, outputs)
    assert result.error is None and result.stats["items_scraped"] == 100
    expected = {b["upc"]: b for b in expected_books(100)}
    lines = [orjson.loads(x) for x in (tmp_path / "b.jsonl").read_bytes().splitlines()]
    array = json.loads((tmp_path / "b.json").read_text())
    with open(tmp_path / "b.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lite = sqlite_rows(db, "books")
    pg = await pg_rows(f"{schema}.books")
    for got in (lines, array, rows, lite, pg):
        assert len(got) == 100 and {r["upc"] for r in got} == set(expected)
    # Typed columns from the item model, a crawled-at column and the token.
    assert await pg_types(schema, "books") == {
        "title": "text", "price": "numeric", "availability": "bigint", "rating": "bigint",
        "upc": "text", "category": "text", "url": "text",
        "crawled_at": "timestamp with time zone", "crawl_token": "text",
    }
    by_upc = {r["upc"]: r for r in pg}
    for upc, book in expected.items():
        assert by_upc[upc]["price"] == Decimal(str(book["price"]))
        assert isinstance(by_upc[upc]["rating"], int)
    assert all(r["crawled_at"] is not None for r in pg)
    assert {r["upc"]: Decimal(r["price"]) for r in lite} == {
        u: Decimal(str(b["price"])) for u, b in expected.items()}


async def test_feeds_setting_options(site: TestSite, tmp_path: Path) -> None:
    """The feeds table: fields, item filter by class, batches of files, store_empty, indent."""
    feeds = {
        str(tmp_path / "part-{batch_id}.jsonl"): {"batch_item_count": 30, "overwrite": True},
        str(tmp_path / "slim.csv"): {"fields": ["upc", "price"], "overwrite": True},
        str(tmp_path / "pretty.json"): {"indent": 4, "overwrite": True},
        str(tmp_path / "none.jsonl"): {"item_classes": ["Nope"], "store_empty": False},
        str(tmp_path / "books.jsonl"): {"item_classes": ["spiders.books.Book"],
                                        "encoding": "latin-1"},
        str(tmp_path / "cheap.txt"): {"format": "jsonlines", "overwrite": True,
                                      "item_filter": "tests.test_feeds:cheap"},
    }
    result = await run_spider(BooksSpider, make_settings(feeds=feeds),
                              spider_args={"start_url": f"{site.url}/"})
    assert result.error is None
    parts = sorted(tmp_path.glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-1.jsonl", "part-2.jsonl", "part-3.jsonl",
                                       "part-4.jsonl"]
    assert [len(p.read_bytes().splitlines()) for p in parts] == [30, 30, 30, 10]
    with open(tmp_path / "slim.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["upc", "price"] and len(rows) == 101
    pretty = (tmp_path / "pretty.json").read_text()
    assert '\n    "title": ' in pretty and len(json.loads(pretty)) == 100
    assert not (tmp_path / "none.jsonl").exists()  # no item of that class, store_empty off
    assert len((tmp_path / "books.jsonl").read_bytes().splitlines()) == 100
    (tmp_path / "books.jsonl").read_bytes().decode("ascii")  # escaped, valid latin-1
    cheap = [orjson.loads(x) for x in (tmp_path / "cheap.txt").read_bytes().splitlines()]
    assert cheap and len(cheap) == sum(1 for b in expected_books(100) if cheap_book(b))
    assert all(Decimal(b["price"]) < 30 for b in cheap)


async def test_readme_feeds_example(site: TestSite, tmp_path: Path) -> None:
    books = (Path(__file__).parent.parent / "spiders" / "books.py").read_text()
    project = make_project(tmp_path / "p", {"books": books},
                           settings=readme_block("# settings.toml: feeds"))
    code, _, err = await run(str(BIN / "crawl"), "books", "-a", f"start_url={site.url}/",
                             "-s", "obey_robots=false", cwd=project)
    assert code == 0, err
    out = project / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "books-1.jsonl", "books.db", "books.json", "prices.csv"]
    assert len(json.loads((out / "books.json").read_text())) == 100
    assert len(sqlite_rows(out / "books.db", "books")) == 100
    assert (out / "prices.csv").read_text().splitlines()[0] == "upc,price"


async def test_repeated_o_on_the_command_line(site: TestSite, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.csv"
    code, _, err = await run(str(BIN / "crawl"), "books", "-o", str(a), "-O", str(b),
                             "-a", f"start_url={site.url}/", "-s", "obey_robots=false")
    assert code == 0, err
    assert len(a.read_bytes().splitlines()) == 100
    assert len(b.read_bytes().splitlines()) == 101
    code, _, err = await run(str(BIN / "crawl"), "books", "-o", str(a), "-o", str(a))
    assert code == 2 and "given twice" in err


# -- upsert, invalid values, refusals --------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_upsert_by_key_refreshes_rows(
    site: TestSite, tmp_path: Path, schema: str, kind: str
) -> None:
    keyed = (f"sqlite:///{tmp_path}/k.db?table=books&key=url" if kind == "sqlite"
             else f"{PG}?table={schema}.books&key=url")
    plain = (f"sqlite:///{tmp_path}/p.db?table=books" if kind == "sqlite"
             else f"{PG}?table={schema}.plain")
    for _ in range(2):
        result = await crawl_books(site, [(keyed, False), (plain, False)])
        assert result.error is None
    if kind == "sqlite":
        keyed_rows, plain_rows = (sqlite_rows(tmp_path / "k.db", "books"),
                                  sqlite_rows(tmp_path / "p.db", "books"))
    else:
        keyed_rows, plain_rows = (await pg_rows(f"{schema}.books"),
                                  await pg_rows(f"{schema}.plain"))
    assert len(keyed_rows) == 100 and len({r["url"] for r in keyed_rows}) == 100
    assert len(plain_rows) == 200  # two runs without a key: each run's items, once each


ODD_SPIDER = """
    from crawler import Item, Spider

    class Row(Item):
        n: int
        name: str
        tags: list[str] = []

    class Odd(Spider):
        name = "odd"
        item_model = Row
        start_urls = []

        async def start(self):
            from crawler import Request
            yield Request(self.base + "/")

        def parse(self, response):
            yield {"n": 1, "name": "fine", "tags": ["a"]}
            yield {"n": 2 ** 70, "name": "too big"}
            yield {"n": 3, "name": "nul \\x00 inside"}
            yield {"n": 4, "name": "fine too"}
"""


async def test_a_value_the_column_cannot_hold_is_an_invalid_item(
    site: TestSite, tmp_path: Path, schema: str
) -> None:
    project = make_project(tmp_path / "p", {"odd": ODD_SPIDER})
    db = tmp_path / "odd.db"
    code, _, err = await run(
        str(BIN / "crawl"), "odd", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "-o", f"{PG}?table={schema}.odd", "-o", f"sqlite:///{db}?table=odd", cwd=project)
    assert code == 0, err
    assert sorted(r["n"] for r in await pg_rows(f"{schema}.odd")) == [1, 4]
    assert sorted(r["n"] for r in sqlite_rows(db, "odd")) == [1, 3, 4]  # SQLite holds a NUL
    invalid = [orjson.loads(x) for x in (project / "test.odd.invalid.jsonl").read_bytes()
               .splitlines()]
    assert sorted(r["item"]["name"] for r in invalid) == ["nul \x00 inside", "too big"]
    assert [orjson.loads(x)["item"]["name"] for x in
            Path(f"{db}.invalid.jsonl").read_bytes().splitlines()] == ["too big"]
    assert (await pg_types(schema, "odd"))["tags"] == "jsonb"


MANY_SPIDER = """
    from crawler import Spider

    class Many(Spider):
        name = "many"
        start_urls = []

        async def start(self):
            from crawler import Request
            yield Request(self.base + "/")

        def parse(self, response):
            for n in range(2500):  # more than one batch of a callback's output (1,000)
                yield {"n": n}
"""


async def test_items_of_a_long_callback_are_numbered_across_its_batches(
    site: TestSite, tmp_path: Path
) -> None:
    # The engine writes a long callback's items in batches while it runs; each item's token
    # is still its request and its index among all the request's items, so a redelivered
    # request (a shared crawl) rewrites the same rows.
    project = make_project(tmp_path / "p", {"many": MANY_SPIDER})
    db = tmp_path / "many.db"
    code, _, err = await run(
        str(BIN / "crawl"), "many", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "-o", f"sqlite:///{db}?table=many", cwd=project)
    assert code == 0, err
    stored = sqlite_rows(db, "many")
    tokens = [r["crawl_token"].rsplit(":", 2) for r in stored]
    assert len({(run_id, ref) for run_id, ref, _ in tokens}) == 1  # one request
    assert sorted(int(index) for _, _, index in tokens) == list(range(2500))
    assert sorted(orjson.loads(r["item"])["n"] for r in stored) == list(range(2500))


async def test_mismatched_table_is_refused_naming_the_difference(
    site: TestSite, tmp_path: Path, schema: str
) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f"CREATE TABLE {schema}.books (title text, price text, upc text)")
    finally:
        await conn.close()
    with pytest.raises(ConfigError) as info:
        await crawl_books(site, [(f"{PG}?table={schema}.books", False)])
    message = str(info.value)
    assert "column 'price' is text, not numeric" in message
    assert "column 'rating' is missing" in message
    assert site.stats.total == 0  # refused before the first request
    # -O drops and recreates it.
    result = await crawl_books(site, [(f"{PG}?table={schema}.books", True)])
    assert result.error is None and len(await pg_rows(f"{schema}.books")) == 100


async def test_unreachable_database_and_bad_uris_stop_before_the_first_request(
    site: TestSite, tmp_path: Path
) -> None:
    base = [str(BIN / "crawl"), "books", "-a", f"start_url={site.url}/", "-s",
            "obey_robots=false"]
    code, _, err = await run(*base, "-o", "postgresql://bob:s3cret@127.0.0.1:1/db?table=t")
    assert code == 2 and "cannot connect to postgresql://bob:***@127.0.0.1:1/db" in err
    assert "s3cret" not in err
    code, _, err = await run(*base, "-o", "postgresql://127.0.0.1/test")
    assert code == 2 and "needs a host, a database and a table" in err
    code, _, err = await run(*base, "-o", "mysql://x/y?table=t")
    assert code == 2 and "mysql:// outputs are not supported" in err
    code, _, err = await run(*base, "-o", f"sqlite:///{tmp_path}?table=t")  # a folder
    assert code == 2 and "cannot use SQLite database" in err
    assert site.stats.total == 0


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv"])
async def test_full_disk_fails_the_crawl_and_leaves_a_whole_file(
    tmp_path: Path, small_disk: Path, ext: str
) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    out = small_disk / f"items.{ext}"
    stats = tmp_path / "stats.json"
    async with TestSite(books=10, shop_products=3000) as site:
        code, _, err = await run(str(BIN / "crawl"), "shop", "-O", str(out), "--stats",
                                 str(stats), "-a", f"start_url={site.url}/shop/", cwd=project)
    assert code == 1, err[-2000:]
    data = out.read_bytes()
    if ext == "jsonl":
        written = [orjson.loads(x) for x in data.splitlines()]
        assert data.endswith(b"\n")
    elif ext == "json":
        written = json.loads(data)
    else:
        with open(out, newline="") as f:
            written = list(csv.DictReader(f))
    report = json.loads(stats.read_text())
    assert report["items_scraped"] == len(written) > 0
    assert report["finish_reason"] == "output_failed"
    failed = [x for x in err.splitlines() if f"output {out} failed" in x]
    assert len(failed) == 1 and "No space left on device" in failed[0]
    lost = int(failed[0].split("): ")[1].split()[0])
    assert lost > 0 and len(written) + lost <= 3000
    assert "Traceback" not in err


# -- exactly once ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_soak_with_jobdir_into_postgresql(tmp_path: Path, schema: str) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    jobdir, out = tmp_path / "job", tmp_path / "products.jsonl"
    products = 2000
    rng = random.Random(14)
    async with TestSite(books=10, shop_products=products) as site:
        args = [str(BIN / "crawl"), "shop", "--jobdir", str(jobdir), "-o", str(out),
                "-o", f"{PG}?table={schema}.products", "-a", f"start_url={site.url}/shop/",
                "-s", "concurrency=1", "-s", "download_delay=0.002", "-s", "log_level=WARNING"]
        kills = await run_with_kills(args, project, rng, kill_runs=10, window=(0.4, 1.2))
    assert kills >= 8
    rows = await pg_rows(f"{schema}.products")
    counts = Counter(r["sku"] for r in rows)
    assert {s: n for s, n in counts.items() if n > 1} == {}
    assert set(counts) == {e["sku"] for e in expected_shop_items(products)}
    lines = Counter(orjson.loads(x)["sku"] for x in out.read_bytes().splitlines())
    assert lines == counts  # the file and the table hold the same items, once each


@pytest.mark.redis
@pytest.mark.slow
async def test_three_redis_workers_into_one_table(
    redis_url: str, tmp_path: Path, schema: str
) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    crawl_id = uuid.uuid4().hex
    products = 1500
    async with TestSite(books=10, shop_products=products) as site:
        args = [str(BIN / "crawl"), "shop", "--frontier", redis_url,
                "-o", f"{PG}?table={schema}.products&key=sku", "-a", f"start_url={site.url}/shop/",
                "-s", f"crawl_id={crawl_id}", "-s", "concurrency=8", "-s", "lease_timeout=3",
                "-s", "log_level=WARNING"]
        procs = [await asyncio.create_subprocess_exec(
            *args, cwd=project, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE) for _ in range(3)]
        errs = [(await asyncio.wait_for(p.communicate(), 240))[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errs
    from crawler.frontier.redis import frontier_purge

    await frontier_purge(redis_url, "shop", crawl_id)
    rows = await pg_rows(f"{schema}.products")
    assert len(rows) == products
    assert {r["sku"] for r in rows} == {e["sku"] for e in expected_shop_items(products)}
    # The workers' rows carry the crawl's tokens, not a worker's or a run's.
    assert {r["crawl_token"].rsplit(":", 2)[0] for r in rows} == {f"shared:{crawl_id}"}


# -- PostgreSQL going away -------------------------------------------------------------------


class PrivateCluster:
    """A PostgreSQL cluster of the test's own on a free port (as the postgres user when the
    tests run as root: the server refuses to run as root)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pg"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            os.chmod(self.dir.parent, 0o755)
        self._cmd(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-l",
                  str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self) -> None:
        self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-m", "fast",
                  "stop")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    if not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"no {PG_BIN}/pg_ctl")
    root = Path(f"/tmp/pgtest-{uuid.uuid4().hex[:8]}")  # short: the socket path has a limit
    root.mkdir()
    pg = PrivateCluster(root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        try:
            pg.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)


SLOW_BOOKS = ["-s", "concurrency=1", "-s", "download_delay=0.05", "-s", "obey_robots=false"]


@pytest.mark.slow
async def test_postgresql_stopped_and_started_mid_crawl(
    site: TestSite, tmp_path: Path, cluster: PrivateCluster
) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "crawl"), "books", "-a", f"start_url={site.url}/", *SLOW_BOOKS,
        "-o", f"{cluster.dsn}?table=books&key=upc", "-s", "feed_error_timeout=60",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    while site.stats.total < 20:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(cluster.stop)
    at_stop = site.stats.total
    await asyncio.sleep(3)
    await asyncio.to_thread(cluster.start)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
    err = err_bytes.decode()
    assert proc.returncode == 0, err[-2000:]
    assert site.stats.total > at_stop  # the crawl went on meanwhile
    assert err.count("cannot write") == 1 and "writing again" in err
    rows = await pg_rows("books", cluster.dsn)
    assert len(rows) == 100 and {r["upc"] for r in rows} == {
        b["upc"] for b in expected_books(100)}


@pytest.mark.slow
async def test_postgresql_gone_for_good_stops_after_feed_error_timeout(
    site: TestSite, tmp_path: Path, cluster: PrivateCluster
) -> None:
    stats = tmp_path / "stats.json"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "crawl"), "books", "-a", f"start_url={site.url}/", *SLOW_BOOKS,
        "-o", f"{cluster.dsn}?table=books", "-s", "feed_error_timeout=2", "--stats", str(stats),
        "-s", "feed_buffer_items=1000", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    while site.stats.total < 20:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(cluster.stop)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
    err = err_bytes.decode()
    assert proc.returncode == 1, err[-2000:]
    await asyncio.to_thread(cluster.start)
    stored = len(await pg_rows("books", cluster.dsn))
    report = json.loads(stats.read_text())
    line = next(x for x in err.splitlines() if "failed (unreachable for 2s" in x)
    lost = int(line.split("): ")[1].split()[0])
    assert lost > 0 and report["items_scraped"] == stored
    assert report["finish_reason"] == "output_failed"
    assert site.stats.total < 110  # it stopped: not every page was fetched


# -- crawler merge ---------------------------------------------------------------------------


async def test_merge_reads_and_writes_every_format(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.csv", tmp_path / "c.json"
    a.write_bytes(b'{"url":"u1","v":"1"}\n{"url":"u2","v":"1"}\n')
    b.write_text("url,v\r\nu2,2\r\nu3,2\r\n")
    c.write_text('[{"url": "u3", "v": "3"}, {"url": "u4", "v": "3"}]')
    merge = str(BIN / "crawler")
    for name in ("all.csv", "all.json", "all.jsonl"):
        out = tmp_path / name
        code, _, err = await run(merge, "merge", str(out), str(a), str(b), str(c))
        assert code == 0 and "read 6, wrote 4, dropped 2 repeats" in err, err
        if name.endswith(".csv"):
            with open(out, newline="") as f:
                got = list(csv.DictReader(f))
        elif name.endswith(".jsonl"):
            got = [orjson.loads(x) for x in out.read_bytes().splitlines()]
        else:
            got = json.loads(out.read_text())
        assert got == [{"url": "u1", "v": "1"}, {"url": "u2", "v": "1"},
                       {"url": "u3", "v": "2"}, {"url": "u4", "v": "3"}]
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    code, _, err = await run(merge, "merge", str(tmp_path / "m.jsonl"), str(a), str(bad))
    assert code == 2 and "cannot merge" in err and "x.txt" in err
    assert not (tmp_path / "m.jsonl").exists()
    torn = tmp_path / "torn.json"
    torn.write_text('[{"url": "u1"},')
    code, _, err = await run(merge, "merge", str(tmp_path / "m.csv"), str(torn))
    assert code == 2 and "not valid JSON" in err


async def test_full_disk_with_jobdir_resumes_exactly_once(
    tmp_path: Path, small_disk: Path
) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    out = small_disk / "items.jsonl"
    async with TestSite(books=10, shop_products=3000) as site:
        args = [str(BIN / "crawl"), "shop", "-o", str(out), "--jobdir", str(tmp_path / "job"),
                "-a", f"start_url={site.url}/shop/", "-s", "log_level=WARNING"]
        code, _, err = await run(*args, cwd=project)
        assert code == 1
        assert f"output {out} failed (No space left on device)" in err
        assert "run the same command to resume them" in err
        # One message says it: no traceback of the same failure besides.
        assert "Traceback" not in err and err.count("No space left on device") == 1, err
        subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
        code, _, err = await run(*args, cwd=project)
        assert code == 0, err[-2000:]
    skus = Counter(orjson.loads(x)["sku"] for x in out.read_bytes().splitlines())
    assert max(skus.values()) == 1 and set(skus) == {e["sku"] for e in expected_shop_items(3000)}


async def test_jobdir_with_only_a_database_output_resumes_exactly_once(tmp_path: Path) -> None:
    """No file at all: the job writes its outbox to the table, and kills never double a row."""
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    db = tmp_path / "items.db"
    products = 600
    async with TestSite(books=10, shop_products=products) as site:
        args = [str(BIN / "crawl"), "shop", "--jobdir", str(tmp_path / "job"),
                "-o", f"sqlite:///{db}?table=products", "-a", f"start_url={site.url}/shop/",
                "-s", "concurrency=1", "-s", "download_delay=0.002", "-s", "log_level=WARNING"]
        kills = 0
        for delay in (0.8, 1.2, 1.6, 300):
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=project, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            try:
                await asyncio.wait_for(proc.wait(), delay)
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
                continue
            assert proc.stderr is not None
            assert proc.returncode == 0, (await proc.stderr.read()).decode()[-2000:]
            break
    assert kills >= 2
    rows = sqlite_rows(db, "products")
    counts = Counter(r["sku"] for r in rows)
    assert max(counts.values()) == 1
    assert set(counts) == {e["sku"] for e in expected_shop_items(products)}


async def test_the_feed_tag_never_reaches_an_output_or_the_stats(
    site: TestSite, tmp_path: Path
) -> None:
    """Without an item model, a table feed makes the engine tag items: the tag stays inside."""
    project = make_project(tmp_path / "p", {"odd": ODD_SPIDER.replace("item_model = Row", "")})
    out, stats = tmp_path / "odd.jsonl", tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "odd", "-a", f"base={site.url}", "-s", "obey_robots=false",
        "-o", str(out), "-o", f"sqlite:///{tmp_path}/odd.db?table=odd", "--stats", str(stats),
        cwd=project)
    assert code == 0, err
    assert all("\x00" not in key for line in out.read_bytes().splitlines()
               for key in orjson.loads(line))
    rows = sqlite_rows(tmp_path / "odd.db", "odd")
    assert len(rows) == 4 and all("\\u0000feed" not in r["item"] for r in rows)
    assert not any("\x00feed" in key for key in json.loads(stats.read_text()))
