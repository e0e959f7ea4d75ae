"""crawler.middleware: downloader middlewares that change, retry or redirect a request,
and components named by import strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.testsite import TestSite

from .conftest import crawl


class EchoPages(Spider):
    name = "echo_pages"

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
    def process_request(self, request: Request, spider: Spider) -> Request | None:
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

