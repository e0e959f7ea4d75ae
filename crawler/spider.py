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
        layer.update(cls.custom_settings)
        return layer

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.state: dict[str, Any] = {}
        self.logger = logging.getLogger(f"spiders.{self.name or type(self).__name__}")

    async def start(self) -> AsyncIterator[Request]:
        """The first requests of the crawl: by default those of :meth:`start_requests`, a GET
        per ``start_urls`` entry with :meth:`parse` as callback. Override (as an async
        generator) for anything else.

        Start requests go through the duplicate filter like any other, so a resumed job or a
        second worker of a shared crawl never fetches them twice."""
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

        By default a GET per ``start_urls`` entry; an entry that is not an http(s) URL is
        skipped with a warning giving the reason, and the others are still crawled."""
        return self._first_requests(self.start_urls, None, "start URL")

    def _first_requests(
        self, urls: Iterable[str], callback: Callback | None, what: str
    ) -> Iterator[Request]:
        """A GET per URL; a URL that is not http(s) is skipped with a warning naming ``what``
        it was and why, and the others still go."""
        for url in urls:
            try:
                request = Request(url, callback)
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
