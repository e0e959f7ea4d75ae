"""The Spider base class: what a user subclasses in ``spiders/``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import InvalidURL
from .http import Callback, Request, Response

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Spider"]

#: Scrapy spider attributes that are settings here, honoured at the spider's layer.
_SETTING_ATTRIBUTES = ("download_delay", "user_agent")


class Spider:
    """Base class of every spider.

    Class attributes:

    - ``name``: how ``crawl <name>`` finds the spider (required, unique in the project).
    - ``start_urls``: the first URLs, fetched with :meth:`parse` as callback by :meth:`start`.
    - ``allowed_domains``: when set, requests to other hosts (subdomains included) are dropped
      and counted as ``offsite_dropped``; start requests are not filtered.
    - ``custom_settings``: settings for this spider, above ``settings.toml`` and below the
      environment and ``-s``. Scrapy's ``download_delay`` and ``user_agent`` class attributes
      are read into that layer too (:meth:`spider_settings`).
    - ``item_model``: a pydantic model every dict item is validated against.
    - ``pipelines`` / ``middlewares``: objects (or classes, instantiated without arguments)
      run before those named in the settings.
    - ``handle_status``: non-2xx statuses that still go to callbacks, for every request.
    - ``browser``: render every request in Chromium unless the request says
      ``browser=False`` (:mod:`crawler.browser`).

    Spider arguments (``-a key=value``) arrive as keyword arguments and become attributes.
    ``state`` is a JSON-serialisable dict that durable crawls persist across resumes.
    """

    name: ClassVar[str] = ""
    start_urls: list[str] = []
    allowed_domains: ClassVar[list[str] | None] = None
    custom_settings: ClassVar[dict[str, Any]] = {}
    item_model: ClassVar[type[BaseModel] | None] = None
    pipelines: ClassVar[list[Any]] = []
    middlewares: ClassVar[list[Any]] = []
    handle_status: ClassVar[list[int]] = []
    browser: ClassVar[bool] = False

    @classmethod
    def spider_settings(cls) -> dict[str, Any]:
        """This spider's layer of settings: ``custom_settings``, plus Scrapy's per-spider
        attributes ``download_delay`` and ``user_agent`` when the class sets them (so a spider
        written for Scrapy keeps its politeness); ``custom_settings`` wins when both do."""
        layer = {name: getattr(cls, name) for name in _SETTING_ATTRIBUTES if hasattr(cls, name)}
        scrapy_named = {k: v for k, v in cls.custom_settings.items() if k.isupper()}
        if scrapy_named:  # Scrapy's names (DEPTH_LIMIT) are translated, never an error
            from .compat import translate_settings

            layer.update(translate_settings(scrapy_named, f"{cls.__name__}.custom_settings"))
        layer.update((k, v) for k, v in cls.custom_settings.items() if not k.isupper())
        return layer

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Spider:
        """Scrapy's constructor hook: the spider built with the spider arguments, with
        ``self.crawler`` and ``self.settings`` set. Override it (calling super) to connect
        signals, as in Scrapy."""
        spider = cls(*args, **kwargs)
        spider._set_crawler(crawler)
        return spider

    def _set_crawler(self, crawler: Any) -> None:
        self.crawler = crawler
        self.settings = crawler.settings

    def log(self, message: Any, level: int = logging.DEBUG, **kw: Any) -> None:
        """Scrapy's shortcut: log ``message`` through :attr:`logger` at ``level``."""
        self.logger.log(level, message, **kw)

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            if isinstance(value, str) and _is_list_attribute(type(self), key):
                # -a start_urls=http://a/,http://b/: a string for a list is its items.
                value = [part.strip() for part in value.split(",") if part.strip()]
            setattr(self, key, value)
        self.state: dict[str, Any] = {}
        self.logger = logging.getLogger(f"spiders.{self.name or type(self).__name__}")

    async def start(self) -> AsyncIterator[Request]:
        """The first requests of the crawl: by default those of :meth:`start_requests`, a GET
        per ``start_urls`` entry with :meth:`parse` as callback. Override (as an async
        generator) for anything else.

        Start requests from ``start_urls`` are ``dont_filter=True``, as in Scrapy: a later link
        back to a start page is still fetched. A resumed job or a second worker of a shared
        crawl does not fetch them twice all the same: a seeded frontier is not seeded again."""
        requests = self.start_requests()
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                yield request
        else:
            for request in requests:
                yield request

    def start_requests(self) -> Iterable[Request]:
        """Scrapy's older hook for the first requests, kept so spiders written for it run
        unchanged: a (sync or async) iterable of Requests. :meth:`start` is the one to
        override in new code.

        By default a GET per ``start_urls`` entry (a string is one URL); an entry that is not an
        http(s) URL is skipped with a warning giving the reason, and the others are still
        crawled."""
        urls = self.start_urls
        if isinstance(urls, str):  # `-a start_urls=URL` gives a string: one URL, not letters
            urls = [urls]
        return self._first_requests(urls, None, "start URL", dont_filter=True)

    def _first_requests(
        self, urls: Iterable[str], callback: Callback | None, what: str,
        dont_filter: bool = False,
    ) -> Iterator[Request]:
        """A GET per URL; a URL that is not http(s) is skipped with a warning naming ``what``
        it was and why, and the others still go."""
        for url in urls:
            try:
                request = Request(url, callback, dont_filter=dont_filter)
            except InvalidURL as exc:
                self.logger.warning("Skipped %s %r: %s", what, url, exc.reason)
                continue
            yield request

    def parse(self, response: Response) -> Any:
        """The default callback. Yield items (dicts, pydantic models, dataclasses) and
        Requests; a plain function, generator, async generator or coroutine all work."""
        raise NotImplementedError(f"{type(self).__name__}.parse() is not defined")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


#: List attributes that default to None, yet take a list (``-a allowed_domains=a.com,b.com``).
_LIST_ATTRIBUTES = frozenset({"start_urls", "allowed_domains", "sitemap_urls"})


def _is_list_attribute(cls: type[Spider], name: str) -> bool:
    """Whether ``name`` is a list attribute of the spider class (a string given for it with
    ``-a`` is split on commas, not iterated letter by letter)."""
    return name in _LIST_ATTRIBUTES or isinstance(getattr(cls, name, None), (list, tuple))
