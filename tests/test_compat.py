"""crawler.compat: Scrapy setting names translated to native settings, FEEDS to an output."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from crawler.compat import (
    Crawler,
    ScrapySettings,
    SignalManager,
    StatsCollector,
    build_component,
    signals,
    translate_settings,
)
from crawler.errors import SettingsError
from crawler.settings import build_settings
from crawler.stats import Stats


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
    # Settings without FEEDS name no output (their first name is not a file).
    assert feeds_output({"BOT_NAME": "proj", "ROBOTSTXT_OBEY": False}) is None



def test_scrapy_settings_answer_scrapy_and_native_names() -> None:
    native = build_settings(project_dir=None, cli={"concurrency": 12, "download_delay": 0.25,
                                                   "depth_priority": -1}, environ={})
    settings = ScrapySettings(native, {"MONGO_URI": "mongodb://x", "FLAG": "yes",
                                       "NAMES": "a,b", "MAP": '{"k": 1}'})
    assert settings.getint("CONCURRENT_REQUESTS") == 12 and settings["concurrency"] == 12
    assert settings.getfloat("DOWNLOAD_DELAY") == 0.25
    assert settings.get("DEPTH_PRIORITY") == 1  # Scrapy's sign: positive is breadth-first
    assert settings.get("MONGO_URI") == "mongodb://x" and "MONGO_URI" in settings
    assert settings.getbool("FLAG") is True and settings.getbool("ABSENT") is False
    assert settings.getlist("NAMES") == ["a", "b"] and settings.getdict("MAP") == {"k": 1}
    assert settings.get("ABSENT", "default") == "default" and "ABSENT" not in settings
    copy = settings.copy()
    copy.set("MONGO_URI", "mongodb://y")
    assert copy["MONGO_URI"] == "mongodb://y" and settings["MONGO_URI"] == "mongodb://x"
    assert ScrapySettings().get("CONCURRENT_REQUESTS") is None


def test_the_stats_collector_writes_the_native_stats() -> None:
    stats = Stats()
    collector = StatsCollector(stats)
    collector.inc_value("pages")
    collector.inc_value("pages", 2)
    collector.inc_value("started", start=10)
    collector.set_value("name", "x")
    collector.max_value("peak", 3)
    collector.max_value("peak", 2)
    collector.min_value("low", 5)
    collector.min_value("low", 7)
    native = stats.to_dict()
    assert (native["pages"], native["started"], native["name"]) == (3, 11, "x")
    assert (native["peak"], native["low"]) == (3, 5)
    assert collector.get_value("pages") == 3 and collector.get_value("nope", 0) == 0
    assert collector.get_stats()["name"] == "x"


async def test_signals_give_each_receiver_the_arguments_it_takes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = SignalManager()
    got: list[Any] = []

    def opened(spider: Any) -> None:
        got.append(("opened", spider))

    async def everything(**kwargs: Any) -> None:
        got.append(("all", sorted(kwargs)))

    def broken(spider: Any) -> None:
        raise RuntimeError("receiver bug")

    assert not manager.connected
    for receiver in (opened, broken, everything):
        manager.connect(receiver, signal=signals.spider_opened)
    assert manager.connected
    with caplog.at_level(logging.ERROR, logger="crawler.compat"):
        await manager.send(signals.spider_opened, spider="s", sender="c")
    assert got == [("opened", "s"), ("all", ["sender", "spider"])]  # broken: logged, skipped
    assert [r.getMessage().startswith("Signal receiver") for r in caplog.records] == [True]
    manager.disconnect(opened, signal=signals.spider_opened)
    await manager.send(signals.spider_closed, spider="s")  # nobody listens
    await manager.send(signals.spider_opened, spider="t")
    assert got[2:] == [("all", ["spider"])]


class FromCrawler:
    def __init__(self, how: str, value: Any) -> None:
        self.how, self.value = how, value

    @classmethod
    def from_crawler(cls, crawler: Any) -> FromCrawler:
        return cls("crawler", crawler.settings.get("MONGO_URI"))


class FromSettings:
    def __init__(self, value: Any) -> None:
        self.value = value

    @classmethod
    def from_settings(cls, settings: Any) -> FromSettings:
        return cls(settings.getint("CONCURRENT_REQUESTS"))


def test_components_are_built_as_scrapy_builds_them() -> None:
    from crawler import Spider

    class S(Spider):
        name = "s"
        custom_settings = {"MONGO_URI": "mongodb://spider"}

    native = build_settings(project_dir=None, cli={"concurrency": 5}, environ={})
    crawler = Crawler(S, native, Stats())
    built = build_component(FromCrawler, crawler)
    assert (built.how, built.value) == ("crawler", "mongodb://spider")
    assert build_component(FromSettings, crawler).value == 5
    instance = FromSettings(1)
    assert build_component(instance, crawler) is instance
    spider = crawler.create_spider(tag="t")
    assert crawler.spider is spider and spider.crawler is crawler and vars(spider)["tag"] == "t"
