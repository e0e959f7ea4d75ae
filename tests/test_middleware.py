"""crawler.middleware: downloader middlewares that change, retry or redirect a request,
and components named by import strings."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.middleware import (
    MiddlewareChain,
    aiter_outputs,
    instantiate,
    same_origin,
    spider_middleware,
)

from .conftest import crawl
from .servers import TestSite

#: The spider the chains are built for (the middlewares here do not read it).
SPIDER = Spider()


class EchoPages(Spider):
    name = "echo_pages"
    base: str  # a spider argument

    async def start(self) -> Any:
        for i in range(3):
            yield Request(f"{self.base}/echo?i={i}")

    def parse(self, response: Response) -> Any:
        doc = response.json()
        yield {"i": doc["query"]["i"], "token": doc["headers"].get("x-token")}



class ReplaceHeader:
    def process_request(self, request: Request, spider: Spider) -> Request | None:
        if "X-Token" in request.headers:
            return None
        return request.replace(headers={**request.headers, "X-Token": "replaced"})



class SetHeaderInPlace:
    def process_request(self, request: Request, spider: Spider) -> None:
        request.set_header("X-Token", "in-place")
        request.meta["seen_by"] = "SetHeaderInPlace"



@pytest.mark.parametrize(("middleware", "token"), [(ReplaceHeader, "replaced"),
                                                   (SetHeaderInPlace, "in-place")])
async def test_a_changed_request_is_downloaded_in_place(
    site: TestSite, tmp_path: Path, middleware: type, token: str
) -> None:
    class Spider_(EchoPages):
        middlewares = [middleware]

    result, items = await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert sorted(i["i"] for i in items) == ["0", "1", "2"]
    assert {i["token"] for i in items} == {token}
    assert site.stats.hits["/echo"] == 3  # each downloaded once, none filtered as duplicate
    assert "duplicates_filtered" not in result.stats



class RetryOnce:
    """Its own retry rule: the same request again from process_response, once."""

    def process_response(self, request: Request, response: Response, spider: Spider) -> Any:
        if not request.meta.get("again"):
            return request.replace(meta={**request.meta, "again": True})
        return response



async def test_a_middleware_retry_of_the_same_request_is_not_a_duplicate(
    site: TestSite, tmp_path: Path
) -> None:
    class Spider_(EchoPages):
        middlewares = [RetryOnce]

    _, items = await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert sorted(i["i"] for i in items) == ["0", "1", "2"]
    assert site.stats.hits["/echo"] == 6



class ToOtherOrigin:
    def process_request(self, request: Request, spider: EchoPages) -> Request | None:
        if request.url.startswith(spider.base):
            return request.replace(url=request.url.replace("127.0.0.1", "localhost"))
        return None



async def test_a_replacement_for_another_origin_goes_through_the_frontier(
    site: TestSite, tmp_path: Path
) -> None:
    class Spider_(EchoPages):
        middlewares = [ToOtherOrigin]

    _, items = await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert sorted(i["i"] for i in items) == ["0", "1", "2"]
    assert [h.host for h in site.stats.log] == ["localhost"] * 3



async def test_spider_pipelines_and_middlewares_as_import_strings(
    site: TestSite, tmp_path: Path
) -> None:
    class Spider_(EchoPages):
        middlewares = ["tests.test_middleware:SetHeaderInPlace"]
        pipelines = ["tests.test_middleware.Tag"]

    _, items = await crawl(Spider_, tmp_path, spider_args={"base": site.url})
    assert len(items) == 3
    assert {i["token"] for i in items} == {"in-place"}
    assert {i["tagged"] for i in items} == {True}



class Tag:
    def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
        return {**item, "tagged": True}



# ------------------------------------------------------- the chain, without an engine


class Log:
    """Records each hook it sees in ``calls``, under its ``label``."""

    def __init__(self, label: str, calls: list[str]) -> None:
        self.label, self.calls = label, calls

    def process_request(self, request: Request, spider: Any) -> None:
        self.calls.append(f"request {self.label}")

    async def process_response(self, request: Request, response: Response, spider: Any) -> Any:
        self.calls.append(f"response {self.label}")
        return response

    def process_exception(self, request: Request, exc: BaseException, spider: Any) -> None:
        self.calls.append(f"exception {self.label}")


def page(url: str = "http://e.com/a") -> Response:
    return Response(url, 200, {"Content-Type": "text/html"}, b"<p>x</p>")


async def test_requests_go_first_to_last_and_responses_last_to_first() -> None:
    calls: list[str] = []
    chain = MiddlewareChain([Log("outer", calls), Log("inner", calls)], spider=SPIDER)
    request = Request("http://e.com/a")
    assert await chain.process_request(request) is request
    assert await chain.process_response(request, response := page()) is response
    assert await chain.process_exception(request, ValueError()) is None
    assert calls == ["request outer", "request inner", "response inner", "response outer",
                     "exception inner", "exception outer"]


class Answer:
    def process_request(self, request: Request, spider: Any) -> Response:
        return page(request.url)


class ToOther:
    def process_request(self, request: Request, spider: Any) -> Request:
        return request.replace(url="http://other.example/")


class Recover:
    async def process_exception(self, request: Request, exc: BaseException, spider: Any) -> Any:
        return page(request.url)


async def test_a_hook_that_answers_or_leaves_the_origin_ends_the_chain() -> None:
    calls: list[str] = []
    answered = await MiddlewareChain([Answer(), Log("after", calls)], SPIDER).process_request(
        Request("http://e.com/a"))
    assert isinstance(answered, Response) and answered.url == "http://e.com/a"
    moved = await MiddlewareChain([ToOther(), Log("after", calls)], SPIDER).process_request(
        Request("http://e.com/a"))
    assert isinstance(moved, Request) and moved.url == "http://other.example/"
    assert calls == []  # neither reached the next hook
    recovered = await MiddlewareChain([Log("outer", calls), Recover()], SPIDER).process_exception(
        Request("http://e.com/a"), ValueError())
    assert isinstance(recovered, Response) and calls == []


class ReturnsJunk:
    def process_response(self, request: Request, response: Response, spider: Any) -> str:
        return "junk"


class SyncOutput:
    def process_spider_output(self, response: Response, result: AsyncIterable[Any],
                              spider: Any) -> list[Any]:
        return []


async def test_a_hook_returning_the_wrong_type_is_named() -> None:
    chain = MiddlewareChain([ReturnsJunk()], SPIDER)  # type: ignore[list-item]  # wrong on purpose
    with pytest.raises(TypeError, match=r"ReturnsJunk\.process_response returned str, expected"):
        await chain.process_response(Request("http://e.com/"), page())
    chain = MiddlewareChain([SyncOutput()], SPIDER)  # type: ignore[list-item]  # wrong on purpose
    with pytest.raises(TypeError, match=r"^SyncOutput\.process_spider_output must return an"
                                         r" async iterable, got list$"):
        chain.process_output(page(), aiter_outputs([1]))


class Doubles:
    async def process_spider_output(self, response: Response, result: AsyncIterable[Any],
                                    spider: Any) -> AsyncIterator[Any]:
        async for x in result:
            yield x * 2


class ScrapyStyle:
    """A Scrapy spider middleware: a synchronous generator over the outputs."""

    def process_spider_output(self, response: Response, result: Iterable[Any],
                              spider: Any) -> Iterable[Any]:
        for x in result:
            yield x + 1

    def process_request(self, request: Request, spider: Any) -> None:
        return None


async def test_spider_output_hooks_wrap_the_callback_and_scrapy_generators_fit() -> None:
    adapted = spider_middleware(ScrapyStyle())
    assert hasattr(adapted, "process_request")  # its other hooks are kept
    chain = MiddlewareChain([adapted, Doubles()], SPIDER)
    assert chain.has_output_hooks and not MiddlewareChain([Log("x", [])], SPIDER).has_output_hooks
    out = [x async for x in chain.process_output(page(), aiter_outputs([1, 2, 3]))]
    assert out == [3, 5, 7]  # Doubles (inner) first, then ScrapyStyle (outer)
    plain = Doubles()
    assert spider_middleware(plain) is plain


async def test_any_callback_result_is_a_stream_of_outputs() -> None:
    async def agen() -> AsyncIterator[int]:
        yield 1
        yield 2

    request = Request("http://e.com/")
    assert [x async for x in aiter_outputs(None)] == []
    assert [x async for x in aiter_outputs(agen())] == [1, 2]
    assert [x async for x in aiter_outputs({"a": 1})] == [{"a": 1}]  # one item, not its keys
    assert [x async for x in aiter_outputs(request)] == [request]
    assert [x async for x in aiter_outputs(iter([3, 4]))] == [3, 4]


def test_origins_and_instances() -> None:
    a = Request("http://E.com:80/a")
    assert same_origin(a, Request("http://e.com/b"))
    assert not same_origin(a, Request("https://e.com/a"))
    assert not same_origin(a, Request("http://e.com:8080/a"))
    assert isinstance(instantiate(Doubles), Doubles)
    one = Doubles()
    assert instantiate(one) is one
