"""crawler.compat: Scrapy setting names translated to native settings, FEEDS to an output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawler.compat import translate_settings
from crawler.errors import SettingsError
from crawler.settings import build_settings


def test_settings_translation(caplog: pytest.LogCaptureFixture) -> None:
    scrapy_names = {
        "DOWNLOAD_DELAY": 0.5, "CONCURRENT_REQUESTS_PER_DOMAIN": 3, "DEPTH_LIMIT": 4,
        "USER_AGENT": "bot/1", "ROBOTSTXT_OBEY": False, "CLOSESPIDER_ITEMCOUNT": 7,
        "AUTOTHROTTLE_ENABLED": True, "RETRY_ENABLED": False, "DOWNLOAD_TIMEOUT": 12,
        "HTTPCACHE_ENABLED": True, "COOKIES_ENABLED": False, "JOBDIR": "jobs/x",
        "DEFAULT_REQUEST_HEADERS": {"Accept-Language": "fr"}, "LOG_LEVEL": "WARNING",
        "ITEM_PIPELINES": {"pkg.b.Second": 800, "pkg.a.First": 100, "pkg.c.Off": None,
                           "scrapy.pipelines.images.ImagesPipeline": 1},
        "DEPTH_PRIORITY": 1, "MEMUSAGE_ENABLED": True, "MONGO_URI": "mongodb://x",
    }
    with caplog.at_level(logging.INFO, logger="crawler.compat"):
        layer = translate_settings(scrapy_names, "test settings")
        again = translate_settings(scrapy_names, "test settings")
    assert layer == again
    settings = build_settings(project_dir=None, custom_settings=layer, environ={})
    assert settings.download_delay == 0.5 and settings.concurrency_per_host == 3
    assert settings.depth_limit == 4 and settings.user_agent == "bot/1"
    assert settings.obey_robots is False and settings.close_on.items == 7
    assert settings.autothrottle and settings.retries == 0 and settings.timeout == 12
    assert settings.http_cache and settings.cookies is False and settings.jobdir == "jobs/x"
    assert settings.default_headers["Accept-Language"] == "fr"
    assert settings.log_level == "WARNING"
    assert settings.pipelines == ["pkg.a.First", "pkg.b.Second"]  # by order number
    assert settings.depth_priority == -1  # Scrapy's positive value means breadth-first
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # each logged once
    assert "MEMUSAGE_ENABLED" in messages[1]
    assert "ITEM_PIPELINES[scrapy.pipelines.images.ImagesPipeline]" in messages[1]
    assert "MONGO_URI" not in " ".join(messages)  # the project's own name, kept for pipelines
    # Native settings still refuse unknown names.
    with pytest.raises(SettingsError, match="depth_limt"):
        build_settings(project_dir=None, custom_settings={"depth_limt": 1}, environ={})



def test_feeds_give_the_output() -> None:
    from crawler.compat import feeds_output

    assert feeds_output({"FEEDS": {"out/%(name)s.jsonl": {"format": "jsonlines"}}},
                        "quotes") == ("out/quotes.jsonl", False)
    path, overwrite = feeds_output({Path("x-%(time)s.json"): {"overwrite": True}}, "q") or ("", 0)
    assert path.startswith("x-20") and path.endswith(".json") and ":" not in path and overwrite
    assert feeds_output({"FEEDS": {"s3://bucket/x.json": {}}}) is None  # not a local file
    assert feeds_output({}) is None

