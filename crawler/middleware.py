"""Middlewares: what users plug in around the download and around the callbacks.

A middleware is any object with some of these methods (each sync or async):

Downloader hooks
    ``process_request(request, spider)`` → ``None`` to go on, a :class:`Response` to answer
    without downloading, or a new :class:`Request`: for the same origin it is downloaded in
    place of this one (not filtered as a duplicate; the next hooks see it), for another
    origin it is scheduled instead (through the frontier, robots.txt and that host's slot).
    ``process_response(request, response, spider)`` → the response (or another one), or a
    new Request to schedule instead.
    ``process_exception(request, exc, spider)`` → ``None`` to let the error go on, a Response
    to use instead, or a new Request to schedule instead.

Spider hook
    ``process_spider_output(response, result, spider)`` → takes the async iterable of what the
    callback produced and returns an async iterable (filter, change, add).

Order: the list's order, first = outermost. ``process_request`` runs first-to-last;
``process_response``, ``process_exception`` and ``process_spider_output`` last-to-first, so
the first middleware sees the final word, as in Scrapy and Starlette.

Where the built-in behaviours sit: requests reach ``process_request`` after the frontier
(dedup, priorities), the offsite/depth filters, robots.txt and the per-host slot, right before
the download. ``process_response`` sees every raw response, redirects and retryable statuses
included, before the engine's built-in redirect, retry and status handling (so a middleware
can implement its own retry rule by returning a Request). ``process_exception`` sees download
errors before the built-in retry. ``process_spider_output`` sees the callback's output before
the built-in handling of it (offsite and depth filters, item validation, pipelines).

Every hook is optional, as in Scrapy. A middleware's type is therefore the union of one
``Protocol`` per hook (:data:`DownloaderMiddleware`, :data:`SpiderMiddleware`): a type
checker accepts an object that has at least one of them. At run time the hooks are found by
name once, when :class:`MiddlewareChain` is built (``getattr(mw, "process_request", None)``
and so on): a missing one is skipped, never looked up per request. Each hook may be a plain
function or a coroutine function; an awaitable result is awaited.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .http import Request, Response
from .items import is_model

if TYPE_CHECKING:
    from .spider import Spider

__all__ = [
    "DownloaderMiddleware",
    "Middleware",
    "MiddlewareChain",
    "ProcessException",
    "ProcessRequest",
    "ProcessResponse",
    "ProcessSpiderOutput",
    "SpiderMiddleware",
    "instantiate",
    "spider_middleware",
]

_RequestResult: TypeAlias = "Response | Request | None"
_ResponseResult: TypeAlias = "Response | Request"


class ProcessRequest(Protocol):
    """A downloader middleware's ``process_request`` hook."""

    def process_request(
        self, request: Request, spider: Spider
    ) -> _RequestResult | Awaitable[_RequestResult]:
        """``None`` to go on, a :class:`Response` to answer without downloading, or a new
        :class:`Request` (same origin: downloaded in place of this one; another origin:
        scheduled instead)."""


class ProcessResponse(Protocol):
    """A downloader middleware's ``process_response`` hook."""

    def process_response(
        self, request: Request, response: Response, spider: Spider
    ) -> _ResponseResult | Awaitable[_ResponseResult]:
        """The response (this one or another), or a new Request to schedule instead."""


class ProcessException(Protocol):
    """A downloader middleware's ``process_exception`` hook."""

    def process_exception(
        self, request: Request, exception: BaseException, spider: Spider
    ) -> _RequestResult | Awaitable[_RequestResult]:
        """``None`` to let the error go on, a Response to use instead, or a new Request to
        schedule instead."""


class ProcessSpiderOutput(Protocol):
    """A spider middleware's ``process_spider_output`` hook."""

    def process_spider_output(
        self, response: Response, result: AsyncIterable[Any], spider: Spider
    ) -> AsyncIterable[Any]:
        """Takes the async iterable of what the callback produced and returns an async
        iterable of what goes on (filtered, changed, added to). A synchronous generator, as
        in Scrapy, is adapted by :func:`spider_middleware`."""


#: A downloader middleware: an object with at least one of the three downloader hooks.
DownloaderMiddleware: TypeAlias = ProcessRequest | ProcessResponse | ProcessException
#: A spider middleware: an object with the spider output hook.
SpiderMiddleware: TypeAlias = ProcessSpiderOutput
#: What :class:`MiddlewareChain` takes: either kind, or one object with hooks of both.
Middleware: TypeAlias = DownloaderMiddleware | SpiderMiddleware

Hook = tuple[Callable[..., Any], bool]


def _hooks(middlewares: Sequence[Middleware], name: str) -> list[Hook]:
    out: list[Hook] = []
    for mw in middlewares:
        method = getattr(mw, name, None)
        if method is not None:
            out.append((method, inspect.iscoroutinefunction(method)))
    return out


async def _call(hook: Hook, *args: Any) -> Any:
    method, is_async = hook
    result = method(*args)
    if is_async or inspect.isawaitable(result):
        return await result
    return result


def instantiate(obj: Any) -> Any:
    """A class becomes an instance (no arguments); an instance is used as is."""
    return obj() if isinstance(obj, type) else obj


def spider_middleware(mw: Any) -> Any:
    """A Scrapy spider middleware made to fit the async ``process_spider_output`` contract:
    when its ``process_spider_output`` is a (synchronous) generator function, as Scrapy's
    are, its ``process_spider_output_async`` is used when it has one, else the generator runs
    over the callback's outputs collected first. Any other middleware is returned as is."""
    method = getattr(mw, "process_spider_output", None)
    if method is None or not inspect.isgeneratorfunction(method):
        return mw
    if inspect.isasyncgenfunction(getattr(mw, "process_spider_output_async", None)):
        return _SpiderOutputAdapter(mw, mw.process_spider_output_async)
    return _SpiderOutputAdapter(mw, None)


class _SpiderOutputAdapter:
    """A middleware's other hooks as they are, its spider output hook made async."""

    def __init__(self, mw: Any, async_hook: Callable[..., AsyncIterator[Any]] | None) -> None:
        self._mw = mw
        self._async_hook = async_hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mw, name)

    def process_spider_output(
        self, response: Response, result: AsyncIterable[Any], spider: Spider
    ) -> AsyncIterator[Any]:
        if self._async_hook is not None:
            return self._async_hook(response, result, spider)
        return self._sync(response, result, spider)

    async def _sync(
        self, response: Response, result: AsyncIterable[Any], spider: Spider
    ) -> AsyncIterator[Any]:
        outputs = [x async for x in result]
        for x in self._mw.process_spider_output(response, outputs, spider) or ():
            yield x


class MiddlewareChain:
    """The hooks of a list of middlewares, resolved once (not looked up per request)."""

    def __init__(self, middlewares: Sequence[Middleware], spider: Spider) -> None:
        self.middlewares = middlewares
        self.spider = spider
        self._request = _hooks(middlewares, "process_request")
        self._response = _hooks(middlewares, "process_response")[::-1]
        self._exception = _hooks(middlewares, "process_exception")[::-1]
        self._output = _hooks(middlewares, "process_spider_output")[::-1]

    @property
    def has_output_hooks(self) -> bool:
        return bool(self._output)

    async def process_request(self, request: Request) -> Response | Request:
        """A Response answers without a download. Otherwise the Request to download: the
        given one, or the replacement a hook returned. A replacement for the same origin
        goes on through the next hooks and is downloaded in place of the original; one for
        another origin is returned at once, for the engine to schedule instead."""
        for hook in self._request:
            result = await _call(hook, request, self.spider)
            if result is None:
                continue
            result = _checked(result, hook)
            if isinstance(result, Response) or not same_origin(result, request):
                return result
            request = result
        return request

    async def process_response(self, request: Request, response: Response) -> Response | Request:
        for hook in self._response:
            result = _checked(await _call(hook, request, response, self.spider), hook)
            if isinstance(result, Request):
                return result
            response = result
        return response

    async def process_exception(
        self, request: Request, exc: BaseException
    ) -> Response | Request | None:
        for hook in self._exception:
            result = await _call(hook, request, exc, self.spider)
            if result is not None:
                return _checked(result, hook)
        return None

    def process_output(self, response: Response, result: AsyncIterable[Any]) -> AsyncIterable[Any]:
        for method, _ in self._output:
            result = method(response, result, self.spider)
            if not hasattr(result, "__aiter__"):
                raise TypeError(
                    f"{_name(method)} must return an async iterable,"
                    f" got {type(result).__name__}"
                )
        return result


def _checked(result: object, hook: Hook) -> Response | Request:
    """A hook's result, which must be a Response or a Request."""
    if isinstance(result, (Response, Request)):
        return result
    raise TypeError(
        f"{_name(hook[0])} returned {type(result).__name__}, expected Response or Request"
    )


def same_origin(a: Request, b: Request) -> bool:
    """Same scheme, host and port: robots.txt and the host's slot already hold for both."""
    if a.url == b.url:
        return True
    x, y = a.yurl, b.yurl
    return (x.scheme, (x.host or "").lower(), x.port) == (y.scheme, (y.host or "").lower(), y.port)


def _name(method: Callable[..., Any]) -> str:
    owner = getattr(method, "__self__", None)
    return f"{type(owner).__name__}.{method.__name__}" if owner is not None else method.__name__


async def aiter_outputs(result: Any) -> AsyncIterator[Any]:
    """Whatever a callback returned, as an async iterator of its outputs."""
    if result is None:
        return
    if hasattr(result, "__aiter__"):
        async for x in result:
            yield x
    elif isinstance(result, (Request, str, bytes, Mapping)) or is_model(result) or not hasattr(
        result, "__iter__"
    ):  # one output (a model or a dict is iterable, but is one item)
        yield result
    else:
        for x in result:
            yield x
