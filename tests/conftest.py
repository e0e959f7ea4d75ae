"""Shared fixtures: a real local test site and a helper that runs a spider in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.runner import CrawlResult, run_spider
from crawler.settings import Settings, build_settings
from crawler.spider import Spider
from crawler.testsite import TestSite

pytest_plugins = ["tests.redis_util"]  # fixtures: redis_url, redis_crawl, redis_server

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def site() -> AsyncIterator[TestSite]:
    async with TestSite(books=100, shop_products=400) as s:
        yield s


def make_settings(**overrides: Any) -> Settings:
    """Settings from defaults plus ``overrides`` (as the CLI layer), ignoring the environment."""
    base: dict[str, Any] = {"obey_robots": False, "log_interval": 3600}
    base.update(overrides)
    return build_settings(project_dir=None, cli=base, environ={})


async def crawl(
    spider_cls: type[Spider],
    tmp_path: Path,
    *,
    spider_args: dict[str, Any] | None = None,
    output: str = "items.jsonl",
    **settings: Any,
) -> tuple[CrawlResult, list[dict[str, Any]]]:
    """Run a spider against the local site; returns the result and the items written."""
    out = tmp_path / output
    result = await run_spider(
        spider_cls, make_settings(**settings), spider_args=spider_args, output=str(out),
        overwrite=True,
    )
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return result, items
