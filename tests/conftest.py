"""Shared fixtures: a real local test site and a helper that runs a spider in-process."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.runner import CrawlResult, run_spider
from crawler.settings import Settings, build_settings
from crawler.spider import Spider

from .servers import TestSite

pytest_plugins = ["tests.redis_util"]  # fixtures: redis_url, redis_crawl, redis_server

PROJECT = Path(__file__).resolve().parent.parent

#: How late a loaded machine may run one request (seconds): the engine spaces the dispatches
#: exactly, but each request reaches the server (or a middleware) late by a scheduling latency
#: of its own, so one gap can come short by as much as the request before it was late. 0.15 s
#: covers a 2-core machine at a load average of 10.
TIMER_SLACK = 0.15


def assert_spaced(times: list[float], delay: float) -> None:
    """Requests at ``times`` were spaced by ``delay``: each gap within :data:`TIMER_SLACK`,
    and the whole span, where lateness cannot add up, within it once."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps, times
    assert min(gaps) >= delay - TIMER_SLACK, gaps
    assert times[-1] - times[0] >= delay * len(gaps) - TIMER_SLACK, gaps


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


@pytest.fixture
def site_thread() -> Any:
    from .servers import run_in_thread

    with run_in_thread() as s:
        yield s.url

