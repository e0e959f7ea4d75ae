"""The README is the user's manual: its spider example and its settings table are checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from crawler.demosite import expected_shop_items
from crawler.settings import settings_table_markdown

from .conftest import PROJECT
from .servers import TestSite
from .test_cli import BIN, make_project, run

README = (PROJECT / "README.md").read_text()


def readme_block(first_line: str) -> str:
    """The fenced code block of the README that starts with ``first_line``."""
    for block in re.findall(r"```(?:python|sh)?\n(.*?)```", README, flags=re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no README block starting with {first_line!r}")


def test_settings_table_is_in_sync() -> None:
    table = settings_table_markdown().strip()
    assert table in README, "regenerate the README settings table from crawler.settings"


@pytest.mark.slow
async def test_readme_spider_crawls_20000_pages_exactly_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"shop": readme_block("# spiders/shop.py")})
    out = tmp_path / "products.jsonl"
    async with TestSite(books=10, shop_products=20_000) as site:
        code, _, err = await run(
            str(BIN / "crawl"), "shop", "-o", str(out), "-a", f"start_url={site.url}/shop/",
            "-s", "obey_robots=false", cwd=project, timeout=400,
        )
    assert code == 0, err[-3000:]
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = {
        (f"{site.url}{e['url']}", e["title"], str(e["price"]), e["sku"])
        for e in expected_shop_items(20_000)
    }
    got = [(i["url"], i["title"], str(Decimal(i["price"])), i["sku"]) for i in items]
    assert len(got) == 20_000
    assert set(got) == expected


# -- the first screen, the table of contents, the docs pages, the synopsis -------------------

DOCS = sorted((PROJECT / "docs").glob("*.md"))


async def test_readme_quick_start_spider_crawls_the_bookstore(tmp_path: Path) -> None:
    """The spider of the first screen, run as the README says, against the local copy of
    books.toscrape.com (the same HTML)."""
    code = readme_block("# spiders/catalogue.py")
    assert "crawl catalogue -o books.jsonl --report report.html" in README
    async with TestSite(books=60) as site:
        project = make_project(tmp_path / "p", {
            "catalogue": code.replace("https://books.toscrape.com/", f"{site.url}/")
        }, "obey_robots = false\n")
        rc, _, err = await run(str(BIN / "crawl"), "catalogue", "-o", "books.jsonl",
                               "--report", "report.html", cwd=project)
    assert rc == 0, err[-3000:]
    items = [orjson.loads(line) for line in (project / "books.jsonl").read_bytes().splitlines()]
    assert len(items) == 60 and all(i["title"] and i["price"] for i in items)
    assert "Item field coverage" in (project / "report.html").read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_table_of_contents_points_at_real_headings() -> None:
    toc = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    anchors = set(re.findall(r"\]\(#([\w-]+)\)", toc))
    headings = {_slug(h) for h in re.findall(r"^## (.+)$", README, flags=re.M)}
    assert anchors and anchors <= headings, anchors - headings
    # Every section is in the table of contents.
    assert headings - {"contents"} <= anchors, (headings - {"contents"}) - anchors


def test_first_screen_answers_what_how_to_run_how_to_write() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    for words in ("**What it is**", "**Run it**", "**Write a spider**", "make demo",
                  "class CatalogueSpider(Spider)", "crawl catalogue -o books.jsonl"):
        assert words in first_screen


def test_docs_pages_exist_and_their_links_resolve() -> None:
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.(?:md|png))(?:#[\w-]+)?\)", README))
    assert {f"docs/{p.name}" for p in DOCS} <= linked, "every docs page is linked from README"
    for target in linked:
        assert (PROJECT / target).is_file(), target
    for page in DOCS:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[\w-]+)?\)", text):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).resolve().exists(), f"{page.name}: {target}"
        for anchor_page, anchor in re.findall(r"\]\((docs/[\w.-]+\.md)#([\w-]+)\)", README):
            if (PROJECT / anchor_page) == page:
                assert anchor in {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_every_figure_says_how_it_was_measured() -> None:
    """The throughput figure was measured with concurrency_per_host raised to the global
    concurrency: wherever it is quoted, that is said next to it."""
    bench = (PROJECT / "docs" / "benchmarks.md").read_text()
    section = README.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    assert "docs/benchmarks.md" in section
    for text in (section, bench):
        # The first throughput figure quoted: a number of pages/s.
        found = re.search(r"\d,\d{3}[^|]{0,60}pages/s", text)
        assert found is not None
        figure = found.start()
        assert "concurrency_per_host" in text[figure - 200:figure + 400]
    # Each row of the figures table has its method.
    rows = [r for r in bench.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert rows and all(len(r.split(" | ")) == 3 and len(r.split(" | ")[2]) > 40 for r in rows)


def _flags(help_text: str) -> set[str]:
    """The option strings of an argparse --help (its option lines, not their prose)."""
    flags: set[str] = set()
    for line in help_text.splitlines():
        match = re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line)
        if match:
            flags.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", match.group(1)))
    return flags - {"-h", "--help"}


def _help(main: Callable[[list[str]], int], argv: list[str],
          capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out


def test_synopsis_lists_every_flag_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.cli import crawl_main, crawler_main

    synopsis = README.split("## Command line", 1)[1].split("```", 2)[1]
    lines = synopsis.splitlines()

    def lines_of(command: str) -> str:
        """The synopsis lines of one command, with their continuation lines."""
        out, inside = [], False
        for line in lines:
            if line.startswith(("crawl ", "crawler ")):
                inside = line.startswith(command + " ") or line == command
            if inside:
                out.append(line)
        return "\n".join(out)

    commands = {"crawl": _help(crawl_main, ["--help"], capsys)}
    top = _help(crawler_main, ["--help"], capsys)
    subcommands = re.search(r"\{([\w,]+)\}", top)
    assert subcommands
    for name in subcommands.group(1).split(","):
        if name != "crawl":  # `crawler crawl` is `crawl`
            commands[f"crawler {name}"] = _help(crawler_main, [name, "--help"], capsys)
    for command, help_text in commands.items():
        documented = lines_of(command)
        if "[the options of crawl]" in documented:
            documented += "\n" + lines_of("crawl")
        assert documented, f"{command} is not in the README synopsis"
        missing = {f for f in _flags(help_text) if not re.search(
            rf"(?<![\w-]){re.escape(f)}(?![\w-])", documented)}
        assert not missing, f"{command}: --help shows {sorted(missing)}, the README does not"
