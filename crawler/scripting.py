"""Running spiders from Python: the native :func:`run`, and Scrapy's ``CrawlerProcess``.

::

    from crawler import run
    result = run(QuotesSpider, settings={"concurrency": 8}, output="quotes.jsonl")

    from scrapy.crawler import CrawlerProcess        # a Scrapy script, unchanged
    process = CrawlerProcess(settings={"FEEDS": {"quotes.json": {"format": "json"}}})
    process.crawl(QuotesSpider, tag="humor")
    process.start()                                   # blocks until every crawl ends
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compat import ScrapySettings, feeds_output, is_scrapy_name, translate_settings

if TYPE_CHECKING:
    from .runner import CrawlResult
    from .spider import Spider

__all__ = ["CrawlerProcess", "CrawlerRunner", "run", "run_async"]


def _split(settings: Mapping[str, Any] | ScrapySettings | None) -> tuple[dict[str, Any],
                                                                          dict[str, Any]]:
    """(native dotted names, Scrapy names) of a settings mapping."""
    if isinstance(settings, ScrapySettings):
        raw = dict(settings._raw)
        return {}, raw
    native: dict[str, Any] = {}
    scrapy: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        (scrapy if is_scrapy_name(key) else native)[key] = value
    return native, scrapy


async def run_async(
    spider_cls: type[Spider],
    *,
    settings: Mapping[str, Any] | None = None,
    output: str | None = None,
    overwrite: bool = False,
    spider_args: Mapping[str, Any] | None = None,
    project_dir: Path | None = None,
    scrapy_settings: Mapping[str, Any] | None = None,
) -> CrawlResult:
    """Run one crawl in the running event loop; see :func:`run`."""
    from .runner import run_spider
    from .settings import build_settings

    native, scrapy = _split(settings)
    scrapy = {**(scrapy_settings or {}), **scrapy}
    if output is None:
        feed = feeds_output(scrapy, spider_cls.name)
        if feed is not None:
            output, overwrite = feed
    built = build_settings(
        project_dir=project_dir,
        project_settings=translate_settings(scrapy, "the script's settings") if scrapy else None,
        custom_settings=spider_cls.spider_settings(),
        cli=native,
    )
    return await run_spider(spider_cls, built, spider_args=dict(spider_args or {}),
                            output=output, overwrite=overwrite, scrapy_settings=scrapy)


def run(
    spider_cls: type[Spider],
    *,
    settings: Mapping[str, Any] | None = None,
    output: str | None = None,
    overwrite: bool = False,
    spider_args: Mapping[str, Any] | None = None,
    project_dir: Path | None = None,
) -> CrawlResult:
    """Run a crawl of ``spider_cls`` to its end and return its :class:`CrawlResult` (finish
    reason and stats).

    ``settings``: native names (``{"concurrency": 8, "close_on.items": 100}``, the highest
    layer, like ``-s``) and/or Scrapy names (``{"DOWNLOAD_DELAY": 1}``, translated, a layer
    below the spider's ``custom_settings`` as in Scrapy). ``output``: a feed file as for
    ``crawl -o`` (``overwrite`` for ``-O``); Scrapy's ``FEEDS`` gives one when it is not set.
    ``spider_args``: the spider's arguments (``-a``). ``project_dir``: the folder whose
    ``settings.toml`` is read (default: none). Not for use inside a running event loop (await
    :func:`run_async` there)."""
    from .cli import run_async as run_loop

    return run_loop(run_async(spider_cls, settings=settings, output=output, overwrite=overwrite,  # type: ignore[no-any-return]
                              spider_args=spider_args, project_dir=project_dir))


class CrawlerRunner:
    """Scrapy's CrawlerRunner: :meth:`crawl` queues a crawl and :meth:`join` (awaitable)
    runs every queued crawl concurrently in the running loop."""

    def __init__(self, settings: Mapping[str, Any] | ScrapySettings | None = None) -> None:
        native, scrapy = _split(settings)
        self._native = native
        self._scrapy = scrapy
        self._queued: list[tuple[type[Spider], dict[str, Any]]] = []
        self.results: list[CrawlResult] = []

    @property
    def settings(self) -> ScrapySettings:
        return ScrapySettings(None, self._scrapy)

    def crawl(self, spider: type[Spider] | str, *args: Any, **kwargs: Any) -> None:
        if isinstance(spider, str):
            spider = self._by_name(spider)
        self._queued.append((spider, kwargs))

    def _by_name(self, name: str) -> type[Spider]:
        from .loader import discover
        from .scrapyproject import find_project

        project = find_project(Path.cwd())
        modules = project.spider_modules if project is not None else ["spiders"]
        for module in modules:
            found = discover(module, project.root if project is not None else Path.cwd())
            if name in found:
                return found[name].cls
        from .errors import SpiderNotFound

        raise SpiderNotFound(name, [])

    async def join(self) -> list[CrawlResult]:
        queued, self._queued = self._queued, []
        project = None
        from .scrapyproject import find_project

        project = find_project(Path.cwd())
        base = project.settings if project is not None else {}
        results = await asyncio.gather(*(
            run_async(cls, settings=self._native, spider_args=kwargs,
                      scrapy_settings={**base, **self._scrapy})
            for cls, kwargs in queued))
        self.results.extend(results)
        return list(results)


class CrawlerProcess(CrawlerRunner):
    """Scrapy's CrawlerProcess: :meth:`crawl` queues, :meth:`start` runs every queued crawl
    (concurrently, in one event loop) and returns when all have ended. Logging is set up at
    the settings' ``LOG_LEVEL`` (INFO by default)."""

    def __init__(self, settings: Mapping[str, Any] | ScrapySettings | None = None,
                 install_root_handler: bool = True) -> None:
        super().__init__(settings)
        if install_root_handler:
            from .cli import setup_logging

            level = str(self._scrapy.get("LOG_LEVEL") or self._native.get("log_level") or "INFO")
            setup_logging(level.upper())

    def start(self, stop_after_crawl: bool = True, install_signal_handlers: bool = True) -> None:
        from .cli import run_async as run_loop

        run_loop(self.join())
