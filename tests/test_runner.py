"""crawler.runner: run_spider builds a crawl from settings and the spider, refuses what
cannot be used, and always ends with its stats and summary."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawler.errors import ConfigError
from crawler.runner import run_spider
from crawler.testsite import TestSite

from .conftest import crawl, make_settings
from .test_middleware import EchoPages
from .test_nothing_lost import Pages


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("pipelines", "tests.test_middleware:Missing", "has no 'Missing'"),
    ("pipelines", "nowhere.at.all:Name", "cannot import"),
    ("middlewares", "tests.test_middleware:Tag", "is not a middleware"),
    ("pipelines", "tests.test_middleware:ReplaceHeader", "is not a pipeline"),
])
async def test_a_spider_component_that_cannot_be_used_is_refused(
    site: TestSite, tmp_path: Path, attribute: str, value: str, message: str
) -> None:
    Spider_ = type("Bad", (EchoPages,), {attribute: [value]})
    with pytest.raises(ConfigError, match=message) as info:
        await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert f"Bad.{attribute}" in str(info.value)
    assert site.stats.total == 0  # refused before any request



async def test_stats_and_summary_survive_an_error_at_the_end(
    site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "file").write_text("")
    stats = tmp_path / "file" / "stats.json"  # cannot be written: its folder is a file
    result = await run_spider(Pages, make_settings(), spider_args={"base": site.url},
                              stats_path=str(stats))
    assert result.reason == "finished" and result.stats["items_scraped"] == 6
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"Could not write the stats to {stats}") for m in messages)
    assert any(m.startswith("Crawl finished.") for m in messages)

