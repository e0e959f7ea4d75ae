"""``CrawlSpider`` and ``Rule``: follow links by rules, with Scrapy's semantics.

Every HTML response of a CrawlSpider is handed to its ``rules`` in order; each rule's link
extractor gives links, and a link is taken by the first rule that extracts it (later rules
skip it). A rule's request carries only the rule's index and the link text in ``meta`` and the
spider method ``_callback`` by name, so durable and shared (Redis) frontiers store it like any
other request. When the response comes back, the rule's ``callback`` runs (with the rule's
``cb_kwargs``), its output goes through :meth:`CrawlSpider.process_results`, and when the rule
``follow``\\ s (by default: when it has no callback) the rules are applied to the page again.
Start URLs go to :meth:`CrawlSpider.parse_start_url`, and their links are always followed.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .http import Request, Response
from .linkextractor import Link, LinkExtractor
from .middleware import aiter_outputs
from .spider import Spider

if TYPE_CHECKING:
    from .http import Failure

__all__ = ["CrawlSpider", "Rule"]


def _identity(x: Any) -> Any:
    return x


def _identity_request(request: Request, response: Response) -> Request:
    return request


class Rule:
    """How a :class:`CrawlSpider` treats the links of one link extractor.

    ``callback``: the method (or its name) called with each fetched link's response, or None.
    ``follow``: whether the rules are applied again to those responses; by default ``True``
    without a callback and ``False`` with one, as in Scrapy. ``process_links(links)`` may
    filter or change the extracted links, ``process_request(request, response)`` each request
    (return None to drop it); both may be given as method names. ``errback`` gets the
    :class:`~crawler.http.Failure` of a link that failed.
    """

    def __init__(
        self,
        link_extractor: LinkExtractor | None = None,
        callback: Callable[..., Any] | str | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        follow: bool | None = None,
        process_links: Callable[..., Any] | str | None = None,
        process_request: Callable[..., Any] | str | None = None,
        errback: Callable[..., Any] | str | None = None,
    ) -> None:
        self.link_extractor = link_extractor if link_extractor is not None else LinkExtractor()
        self.callback = callback
        self.errback = errback
        self.cb_kwargs = cb_kwargs or {}
        self.process_links: Any = process_links or _identity
        self.process_request: Any = process_request or _identity_request
        self.follow = follow if follow is not None else not callback

    def _compile(self, spider: Spider) -> None:
        """Names become the spider's bound methods (on this spider's copy of the rule)."""
        self.callback = _method(spider, self.callback)
        self.errback = _method(spider, self.errback)
        self.process_links = _method(spider, self.process_links)
        self.process_request = _method(spider, self.process_request)


def _method(spider: Spider, method: Any) -> Any:
    if isinstance(method, str):
        found = getattr(spider, method, None)
        if not callable(found):
            raise AttributeError(f"{type(spider).__name__} has no method {method!r} (in a Rule)")
        return found
    return method


def is_html(response: Response) -> bool:
    """Whether Scrapy would make ``response`` an HtmlResponse: an HTML or XHTML Content-Type,
    or none and a body that looks like HTML."""
    ctype = response.headers.get("Content-Type", "").lower()
    if ctype:
        return "html" in ctype
    return b"<html" in response.body[:4096].lower()


class CrawlSpider(Spider):
    """A spider that follows links by :attr:`rules` (a sequence of :class:`Rule`); see the
    module docstring. Requests without a callback (the start URLs) go to the rules, and to
    :meth:`parse_start_url` for items of their own; as in Scrapy, a ``parse`` method of a
    subclass is only called when a rule names it."""

    rules: ClassVar[Sequence[Rule]] = ()
    #: Scrapy's CRAWLSPIDER_FOLLOW_LINKS: False stops every rule from following.
    _follow_links: bool = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._compile_rules()

    def _compile_rules(self) -> None:
        self._rules: list[Rule] = []
        for rule in self.rules:
            own = copy.copy(rule)
            own._compile(self)
            self._rules.append(own)

    def _parse(self, response: Response, **kwargs: Any) -> AsyncIterator[Any]:
        # The start pages' callback (requests that name none), as in Scrapy: a subclass may
        # still define parse() and use it as a rule callback.
        return self._parse_response(response, self.parse_start_url, kwargs, follow=True)

    def parse_start_url(self, response: Response, **kwargs: Any) -> Any:
        """What a start page gives besides its links (nothing by default)."""
        return []

    def process_results(self, response: Response, results: Any) -> Any:
        """A rule callback's output, to change before it is used (unchanged by default)."""
        return results

    def _build_request(self, rule_index: int, link: Link) -> Request:
        return Request(link.url, "_callback", errback="_errback",
                       meta={"rule": rule_index, "link_text": link.text})

    def _requests_to_follow(self, response: Response) -> Iterable[Request]:
        if not is_html(response):
            return
        seen: set[Link] = set()
        for index, rule in enumerate(self._rules):
            links = [link for link in rule.link_extractor.extract_links(response)
                     if link not in seen]
            for link in rule.process_links(links):
                seen.add(link)
                request = rule.process_request(self._build_request(index, link), response)
                if request is not None:
                    yield request

    def _callback(self, response: Response, **cb_kwargs: Any) -> AsyncIterator[Any]:
        rule = self._rules[response.meta["rule"]]
        return self._parse_response(
            response, rule.callback, {**rule.cb_kwargs, **cb_kwargs}, rule.follow)

    def _errback(self, failure: Failure) -> Any:
        rule = self._rules[failure.request.meta["rule"]]
        if rule.errback is not None:
            return rule.errback(failure)
        return None

    async def _parse_response(
        self,
        response: Response,
        callback: Callable[..., Any] | None,
        cb_kwargs: dict[str, Any],
        follow: bool = True,
    ) -> AsyncIterator[Any]:
        if callback is not None:
            result = callback(response, **cb_kwargs)
            if inspect.isawaitable(result):
                result = await result
            result = self.process_results(response, result)
            async for output in aiter_outputs(result):
                yield output
        if follow and self._follow_links:
            for request in self._requests_to_follow(response):
                yield request
