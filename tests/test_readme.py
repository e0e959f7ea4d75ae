"""The README is the user's manual: its spider example and its settings table are checked."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from crawler.settings import settings_table_markdown
from crawler.testsite import TestSite, expected_shop_items

from .conftest import PROJECT
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
