"""The `crawl` and `crawler` commands end to end, in subprocesses, against the local site."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import orjson

from crawler.demosite import expected_books

from .conftest import PROJECT, assert_spaced
from .servers import TestSite

BIN = Path(sys.executable).parent


async def run(
    *args: str, cwd: Path = PROJECT, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def make_project(root: Path, spiders: dict[str, str], settings: str = "") -> Path:
    (root / "spiders").mkdir(parents=True)
    (root / "spiders" / "__init__.py").write_text("")
    (root / "settings.toml").write_text(settings)
    for name, code in spiders.items():
        (root / "spiders" / f"{name}.py").write_text(textwrap.dedent(code))
    return root


async def test_crawl_books_writes_every_book_once(site: TestSite, tmp_path: Path) -> None:
    out = tmp_path / "books.jsonl"
    stats = tmp_path / "stats.json"
    code, _, err = await run(
        str(BIN / "crawl"), "books", "-o", str(out), "-a", f"start_url={site.url}/",
        "--stats", str(stats), "-s", "obey_robots=false",
    )
    assert code == 0, err
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = {b["upc"] for b in expected_books(100)}
    assert len(items) == 100 and {i["upc"] for i in items} == expected
    data = json.loads(stats.read_text())
    assert data["items_scraped"] == 100 and data["finish_reason"] == "finished"
    assert "Crawl finished" in err


async def test_output_formats_and_stdout(site: TestSite, tmp_path: Path) -> None:
    args = ["-a", f"start_url={site.url}/quotes/", "-s", "obey_robots=false"]
    code, _, err = await run(str(BIN / "crawl"), "quotes", "-O", str(tmp_path / "q.json"), *args)
    assert code == 0, err
    assert len(json.loads((tmp_path / "q.json").read_text())) == 100
    code, _, err = await run(str(BIN / "crawl"), "quotes", "-O", str(tmp_path / "q.csv"), *args)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "q.csv").open(newline="")))
    assert len(rows) == 100 and set(rows[0]) == {"text", "author", "tags"}
    code, out, err = await run(str(BIN / "crawl"), "quotes", "-o", "-", *args)
    assert code == 0, err
    assert len([orjson.loads(x) for x in out.splitlines()]) == 100
    assert "Crawl finished" in err and "Crawl finished" not in out
    # -o onto an existing JSON array is refused before anything is fetched.
    site.reset_stats()
    code, _, err = await run(str(BIN / "crawl"), "quotes", "-o", str(tmp_path / "q.json"), *args)
    assert code == 2 and "use -O" in err
    assert site.stats.total == 0


async def test_unknown_spider_lists_available(tmp_path: Path) -> None:
    code, _, err = await run(str(BIN / "crawl"), "nope")
    assert code == 2
    assert "spider not found: 'nope'" in err and "books" in err and "quotes" in err


async def test_broken_spider_module_is_named(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"broken": "import does_not_exist\n"})
    code, _, err = await run(str(BIN / "crawl"), "whatever", cwd=project)
    assert code == 2
    assert "spiders.broken" in err and "does_not_exist" in err


async def test_settings_errors_name_setting_and_source(tmp_path: Path) -> None:
    code, _, err = await run(str(BIN / "crawl"), "books", "-s", "concurency=3")
    assert code == 2 and "'concurency'" in err and "CLI -s" in err and "concurrency" in err
    code, _, err = await run(str(BIN / "crawl"), "books", env={"CRAWLER_TIMEOUT": "soon"})
    assert code == 2 and "CRAWLER_TIMEOUT" in err
    project = make_project(tmp_path, {}, settings="concurrency = 'many'\n")
    code, _, err = await run(str(BIN / "crawl"), "books", cwd=project)
    assert code == 2 and "settings.toml" in err and "concurrency" in err


async def test_crawler_list_and_version() -> None:
    code, out, _ = await run(str(BIN / "crawler"), "list")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["books", "spiders.books"], ["quotes", "spiders.quotes"]]
    code, out, _ = await run(str(BIN / "crawler"), "version")
    assert code == 0 and out.startswith("crawler ")


async def test_startproject_genspider_crawl(site: TestSite, tmp_path: Path) -> None:
    """The Scrapy way in: a new project, a generated spider, a crawl with it."""
    project = tmp_path / "myproject"
    code, out, err = await run(str(BIN / "crawler"), "startproject", str(project))
    assert code == 0, err
    assert "crawler genspider" in out
    assert (project / "settings.toml").is_file() and (project / "spiders/__init__.py").is_file()
    assert ".httpcache/" in (project / ".gitignore").read_text()
    code, out, err = await run(str(BIN / "crawler"), "genspider", "local", f"{site.url}/page/1",
                               cwd=project)
    assert code == 0, err
    assert "crawl local" in out
    code, out, _ = await run(str(BIN / "crawler"), "list", cwd=project)
    assert out.split() == ["local", "spiders.local"]
    items = project / "items.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "local", "-o", str(items), cwd=project)
    assert code == 0, err
    assert [orjson.loads(line) for line in items.read_bytes().splitlines()] == [
        {"url": f"{site.url}/page/1", "title": "Page 1"}]
    # A bare domain starts at https://domain/ and keeps the crawl on it.
    code, _, err = await run(str(BIN / "crawler"), "genspider", "shop_fr", "shop.example.fr",
                             "--project", str(project))
    assert code == 0, err
    text = (project / "spiders/shop_fr.py").read_text()
    assert "class ShopFrSpider(Spider):" in text
    assert 'allowed_domains = ["shop.example.fr"]' in text
    assert 'start_urls = ["https://shop.example.fr/"]' in text


async def test_startproject_and_genspider_refuse_with_a_reason(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert (await run(str(BIN / "crawler"), "startproject", str(project)))[0] == 0
    settings = (project / "settings.toml").read_text()
    cases = [
        (["startproject", str(project)], "already holds a project (settings.toml exists)"),
        (["genspider", "My-Spider", "example.com"], "e.g. 'my_spider'"),
        (["genspider", "class", "example.com"], "e.g. 'class_spider'"),
        (["genspider", "ok", "mailto:someone@example.com"], "give an http(s) URL or a domain"),
        (["genspider", "ok", "ftp://example.com/"], "scheme 'ftp' is not http or https"),
        (["genspider", "ok", "http://exa mple.com/"], "cannot start a spider at"),
    ]
    for args, message in cases:
        code, _, err = await run(str(BIN / "crawler"), *args, cwd=project)
        assert code == 2 and message in err, (args, err)
    assert (project / "settings.toml").read_text() == settings  # nothing overwritten
    assert sorted(p.name for p in (project / "spiders").iterdir()) == ["__init__.py"]
    assert (await run(str(BIN / "crawler"), "genspider", "ok", "example.com", cwd=project))[0] == 0
    code, _, err = await run(str(BIN / "crawler"), "genspider", "ok", "example.org", cwd=project)
    assert code == 2 and "ok.py exists already" in err
    code, _, err = await run(str(BIN / "crawler"), "genspider", "ok", "example.org",
                             cwd=tmp_path)
    assert code == 2 and "no spiders/ folder" in err


async def test_parse_shows_what_one_page_gives(site: TestSite, tmp_path: Path) -> None:
    """`crawler parse`: Scrapy's selector-debugging command. One page, the spider's callback,
    its items and requests on stdout; nothing followed, written or stored, even in a project
    whose settings name a jobdir and a shared frontier."""
    opened = tmp_path / "pipeline-opened"
    pipeline = f"""
        class Store:
            def open(self, spider):
                open({str(opened)!r}, "w").close()

            def process_item(self, item, spider):
                return item
    """
    project = make_project(
        tmp_path / "p",
        {"books": (PROJECT / "spiders/books.py").read_text(), "store": pipeline},
        settings='jobdir = "job"\nfrontier_url = "redis://127.0.0.1:1/0"\n'
                 'pipelines = ["spiders.store:Store"]\n',
    )
    crawler = str(BIN / "crawler")
    code, out, err = await run(crawler, "parse", f"{site.url}/", "--spider", "books",
                               "-s", "obey_robots=false", cwd=project)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "# 0 item(s)" and lines[1].startswith("# ") and "request(s)" in lines[1]
    requests = lines[2:]
    assert requests and all(r.startswith(f"GET {site.url}/") for r in requests)
    assert any(r.endswith("callback=parse_book") for r in requests)

    book = expected_books(100)[0]
    code, out, err = await run(crawler, "parse", f"{site.url}/{book['url']}", "--spider",
                               "books", "-c", "parse_book", "-s", "obey_robots=false",
                               cwd=project)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "# 1 item(s)" and lines[-1] == "# 0 request(s)"
    assert orjson.loads(lines[1])["upc"] == book["upc"]
    # The index page is no book: the item is shown with why the model refuses it.
    code, out, _ = await run(crawler, "parse", f"{site.url}/", "--spider", "books", "-c",
                             "parse_book", "-s", "obey_robots=false", cwd=project)
    assert code == 0 and "#   invalid Book: title: " in out
    assert not (project / "job").exists()  # the project's jobdir was left alone
    assert not opened.exists()  # and its pipelines too

    code, _, err = await run(crawler, "parse", f"{site.url}/missing", "--spider", "books",
                             "-s", "obey_robots=false", cwd=project)
    assert code == 1 and "callback did not run" in err and "HTTP status 404" in err
    code, _, err = await run(crawler, "parse", f"{site.url}/", "--spider", "books", "-c",
                             "parse_bok", cwd=project)
    assert code == 2 and "has no method 'parse_bok' (its parse methods: parse, parse_book)" in err
    code, _, err = await run(crawler, "parse", "not a url", "--spider", "books", cwd=project)
    assert code == 2 and "invalid URL 'not a url'" in err


async def test_scrapy_spider_attributes_are_settings(site: TestSite, tmp_path: Path) -> None:
    """`download_delay` and `user_agent` on a spider class, as Scrapy spiders set them, are
    honoured (a copied spider keeps its politeness), below `-s`."""
    spider = """
        from crawler import Request, Spider

        class Polite(Spider):
            name = "polite"
            download_delay = 0.3
            user_agent = "politebot/2.0"

            async def start(self):
                for i in range(4):
                    yield Request(f"{self.base}/echo?i={i}")

            def parse(self, response):
                yield {"ua": response.json()["headers"]["user-agent"]}
    """
    project = make_project(tmp_path / "p", {"polite": spider})
    out = tmp_path / "items.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "polite", "-O", str(out), "-a",
                             f"base={site.url}", "-s", "obey_robots=false", cwd=project)
    assert code == 0, err
    assert {orjson.loads(line)["ua"] for line in out.read_bytes().splitlines()} == {
        "politebot/2.0"}
    times = sorted(t for t, path, _ in site.stats.log if path.startswith("/echo"))
    assert len(times) == 4
    assert_spaced(times, 0.3)
    # -s is above the spider's layer.
    code, _, err = await run(str(BIN / "crawl"), "polite", "-O", str(out), "-a",
                             f"base={site.url}", "-s", "obey_robots=false",
                             "-s", "user_agent=other/1", "-s", "download_delay=0", cwd=project)
    assert code == 0, err
    assert {orjson.loads(line)["ua"] for line in out.read_bytes().splitlines()} == {"other/1"}


HEAVY = ("aiohttp", "pydantic", "parsel", "lxml", "rich", "redis", "sqlite3",
         "publicsuffixlist", "playwright", "asyncpg")
_LOADED = "import sys; print('LOADED', *(m for m in {heavy!r} if m in sys.modules))"


async def test_heavy_packages_load_only_when_used() -> None:
    """Start-up stays short: the commands and the public names import what they use only."""

    async def loaded(code: str) -> set[str]:
        rc, out, err = await run(sys.executable, "-c", f"{code}; {_LOADED.format(heavy=HEAVY)}")
        assert rc == 0, err
        return set(out.splitlines()[-1].split()[1:])

    assert await loaded("import crawler.cli") == set()
    assert await loaded("from crawler import Spider, Request, Response, DropItem") == set()
    assert await loaded("from crawler import Item") == {"pydantic"}
    # `crawler list` validates the settings (pydantic-core alone) and imports the spiders,
    # nothing else: this project's spiders define pydantic items.
    listing = "from crawler.cli import crawler_main; crawler_main(['list'])"
    assert await loaded(listing) == {"pydantic"}
    assert await loaded("from crawler.settings import build_settings; "
                        "build_settings(project_dir=None)") == set()
    # A crawl needs aiohttp; pydantic waits for a model, parsel for the first .css(), rich
    # for a terminal, redis for a shared frontier, sqlite3 for a jobdir, the suffix list for
    # a Domain= cookie, asyncpg for a postgresql:// output.
    assert await loaded("import crawler.runner") == {"aiohttp"}
    # `-o items.jsonl` is checked before the crawl starts: a file output needs neither
    # pydantic nor the database feeds.
    target = ("from crawler.feeds import parse_target; from crawler.settings import "
              "FeedOptions; parse_target('items.jsonl', FeedOptions())")
    assert await loaded(target) == set()
    assert await loaded(f"{target}; import sys; assert 'crawler.dbfeeds' not in sys.modules"
                        ) == set()


SLOW_SPIDER = """
    from crawler import Request, Spider

    class Slow(Spider):
        name = "slow"

        delay = "0.3"

        async def start(self):
            for i in range(400):
                yield Request(f"{self.base}/delay/{self.delay}?i={i}")

        def parse(self, response):
            yield {"url": response.url, "pad": "x" * 2000}
"""


async def _start_slow(
    site: TestSite, project: Path, out: Path, delay: float = 0.3
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "crawl"), "slow", "-o", str(out), "-a", f"base={site.url}",
        "-a", f"delay={delay}",
        "-s", "concurrency=16", "-s", "obey_robots=false", cwd=project,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(200):  # wait until items are being written
        await asyncio.sleep(0.05)
        if out.exists() and out.stat().st_size > 20_000:
            break
    return proc


async def test_sigint_finishes_in_flight_and_exits_0(site: TestSite, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_SPIDER})
    out = tmp_path / "out.jsonl"
    proc = await _start_slow(site, project, out)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.read_bytes().splitlines()
    assert 0 < len(lines) < 400
    assert all(orjson.loads(line)["pad"] for line in lines)
    assert out.read_bytes().endswith(b"\n")
    # Everything that was fetched was written: no request in flight was dropped.
    assert len(lines) == sum(n for p, n in site.stats.hits.items() if p.startswith("/delay"))


async def test_second_sigint_stops_at_once_with_whole_lines(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p", {"slow": SLOW_SPIDER})
    out = tmp_path / "out.jsonl"
    # Pages of 2 s: the requests in flight at the first SIGINT are still in flight at the
    # second (they start together, so with short pages they could all end in between).
    proc = await _start_slow(site, project, out, delay=2)
    proc.send_signal(signal.SIGINT)
    # The second SIGINT once the first was handled: two sent while the process is not
    # scheduled (a loaded machine) would arrive as one, a pending signal being kept once.
    assert proc.stderr is not None
    handled = b""
    async with asyncio.timeout(30):
        while b"again to stop now" not in handled:
            line = await proc.stderr.readline()
            assert line, f"exited before stopping gracefully: {handled.decode()}"
            handled += line
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, (handled + err).decode()
    data = out.read_bytes()
    assert data.endswith(b"\n")
    assert all(orjson.loads(line) for line in data.splitlines())


async def test_demo_writes_1000_valid_books(tmp_path: Path) -> None:
    from spiders.books import Book

    out = tmp_path / "books.jsonl"
    code, _, err = await run(str(BIN / "crawler"), "demo", "-O", "books.jsonl", cwd=tmp_path)
    assert code == 0, err
    books = [Book.model_validate_json(line) for line in out.read_bytes().splitlines()]
    assert len(books) == 1000 and len({b.upc for b in books}) == 1000


async def test_csv_columns_follow_the_item_model(site: TestSite, tmp_path: Path) -> None:
    out = tmp_path / "books.csv"
    code, _, err = await run(str(BIN / "crawl"), "books", "-O", str(out),
                             "-a", f"start_url={site.url}/", "-s", "close_on.items=5")
    assert code == 0, err
    header = out.read_text().splitlines()[0]
    assert header == "title,price,availability,rating,upc,category,url"


async def test_crawler_list_loads_no_event_loop() -> None:
    """`crawler list` is measured against a start-up goal: it imports no asyncio at all."""
    code = ("import sys; from crawler.cli import crawler_main; crawler_main(['list']);"
            " print('ASYNCIO', 'asyncio' in sys.modules)")
    rc, out, err = await run(sys.executable, "-c", code)
    assert rc == 0, err
    assert out.splitlines()[-1] == "ASYNCIO False"


async def test_spider_modules_import_after_aiohttp(site: TestSite, tmp_path: Path) -> None:
    """A crawl imports aiohttp in a thread while its settings are built: the project's own
    modules are imported once that thread is done, never alongside it."""
    spider = f"""
        import sys, threading

        from crawler import Request, Spider

        importing = [t.name for t in threading.enumerate() if t.name.startswith("import ")]
        print("AT-IMPORT", importing, "aiohttp" in sys.modules, file=sys.stderr)

        class Probe(Spider):
            name = "probe"

            async def start(self):
                yield Request("{site.url}/")

            def parse(self, response):
                yield {{"url": response.url}}
    """
    project = make_project(tmp_path, {"probe": spider}, settings="obey_robots = false\n")
    out = tmp_path / "items.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "probe", "-O", str(out), cwd=project)
    assert code == 0, err
    assert "AT-IMPORT [] True" in err
    assert len(out.read_bytes().splitlines()) == 1


async def test_in_process_commands_keep_the_garbage_collector() -> None:
    """The console scripts run their start-up without the cyclic collector and freeze it;
    a program calling the command functions keeps its collector as it was."""
    code = ("import gc; from crawler.cli import crawler_main; crawler_main(['list']);"
            " print('GC', gc.isenabled(), gc.get_freeze_count())")
    rc, out, err = await run(sys.executable, "-c", code)
    assert rc == 0, err
    assert out.splitlines()[-1] == "GC True 0"
