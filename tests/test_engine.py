"""The engine against a real local server: scheduling, limits, retries, redirects, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import orjson

from crawler import CloseSpider, DropItem, Failure, Item, Request, Response, Spider
from crawler.errors import DownloadTimeout, HttpError, RedirectError
from crawler.runner import run_spider

from .conftest import assert_spaced, crawl, make_settings
from .servers import Canned, TestSite


class LinksSpider(Spider):
    """Follows /links?n=K, then yields one item per /page/<i>."""

    name = "links"
    base: str
    n: int

    async def start(self) -> Any:
        yield Request(f"{self.base}/links?n={self.n}")

    def parse(self, response: Response) -> Any:
        yield from response.follow_all(css="a", callback=self.parse_page)

    def parse_page(self, response: Response) -> Any:
        yield {"url": response.url}


async def test_every_page_once_and_duplicates_filtered(site: TestSite, tmp_path: Path) -> None:
    class Dupes(LinksSpider):
        def parse(self, response: Response) -> Any:
            reqs = response.follow_all(css="a", callback=self.parse_page)
            # The same links again, spelled differently: fragment, default port, host case.
            for r in reqs:
                yield r
                yield Request(r.url + "#frag", self.parse_page)
                yield Request(r.url.replace("127.0.0.1", "127.0.0.1:80".replace(":80", "")),
                              self.parse_page)

    result, items = await crawl(Dupes, tmp_path, spider_args={"base": site.url, "n": 50})
    assert sorted(i["url"] for i in items) == sorted(f"{site.url}/page/{i}" for i in range(50))
    assert result.stats["duplicates_filtered"] == 100
    assert all(site.stats.hits[f"/page/{i}"] == 1 for i in range(50))


async def test_scrapy_style_start_requests(site: TestSite, tmp_path: Path) -> None:
    """A spider written for Scrapy before 2.13 overrides start_requests(), sync or async."""

    class Classic(Spider):
        name = "classic"
        base: str

        def start_requests(self) -> Any:
            for i in range(3):
                yield Request(f"{self.base}/page/{i}", callback=self.parse_page, meta={"i": i})

        def parse_page(self, response: Response) -> Any:
            yield {"url": response.url, "i": response.meta["i"]}

    class AsyncClassic(Classic):
        name = "async_classic"
        base: str

        async def start_requests(self) -> Any:
            for i in range(3, 5):
                yield Request(f"{self.base}/page/{i}", callback=self.parse_page, meta={"i": i})

    _, items = await crawl(Classic, tmp_path, spider_args={"base": site.url})
    assert sorted(item["i"] for item in items) == [0, 1, 2]
    _, items = await crawl(AsyncClassic, tmp_path, spider_args={"base": site.url})
    assert sorted(item["i"] for item in items) == [3, 4]


async def test_priority_order_with_one_slot(site: TestSite, tmp_path: Path) -> None:
    class Prio(Spider):
        name = "prio"
        base: str

        async def start(self) -> Any:
            for i, prio in enumerate([0, 5, 1, 5, 3]):
                yield Request(f"{self.base}/page/{i}", priority=prio)

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    await crawl(Prio, tmp_path, spider_args={"base": site.url}, concurrency=1)
    # Seeding finishes before the first lease only if the start batch is added at once, which
    # it is (one batch): highest priority first, FIFO within a priority.
    order = [path for _, path, _ in site.stats.log if path.startswith("/page/")]
    assert order == ["/page/1", "/page/3", "/page/4", "/page/2", "/page/0"]


async def test_breadth_first_by_default_and_depth_first_with_depth_priority(
    site: TestSite, tmp_path: Path
) -> None:
    class Tree(Spider):
        """A binary tree of /page/<path> URLs three levels deep."""

        name = "tree"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/page/r")

        def parse(self, response: Response) -> Any:
            node = response.url.rsplit("/", 1)[1]
            if len(node) < 4:
                yield Request(f"{self.base}/page/{node}a")
                yield Request(f"{self.base}/page/{node}b")

    await crawl(Tree, tmp_path, spider_args={"base": site.url}, concurrency=1)
    bfs = [p.rsplit("/", 1)[1] for _, p, _ in site.stats.log]
    assert [len(n) for n in bfs] == sorted(len(n) for n in bfs)  # level by level
    site.reset_stats()
    await crawl(Tree, tmp_path, spider_args={"base": site.url}, concurrency=1, depth_priority=1)
    dfs = [p.rsplit("/", 1)[1] for _, p, _ in site.stats.log]
    assert dfs[:4] == ["r", "ra", "raa", "raaa"]


async def test_depth_limit(site: TestSite, tmp_path: Path) -> None:
    class Chain(Spider):
        name = "chain"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/page/0")

        def parse(self, response: Response) -> Any:
            i = int(response.url.rsplit("/", 1)[1])
            yield {"i": i, "depth": response.request.depth}
            yield response.follow(f"/page/{i + 1}")

    result, items = await crawl(Chain, tmp_path, spider_args={"base": site.url}, depth_limit=3)
    assert [i["i"] for i in items] == [0, 1, 2, 3]
    assert result.stats["dropped/depth_limit"] == 1
    assert result.stats["max_depth"] == 3


async def test_per_host_limit_measured_at_the_server(site: TestSite, tmp_path: Path) -> None:
    class TwoHosts(Spider):
        name = "two_hosts"

        async def start(self) -> Any:
            for i in range(24):
                for host in ("127.0.0.1", "localhost"):
                    yield Request(f"http://{host}:{site.port}/delay/0.2?i={i}")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

    _, items = await crawl(TwoHosts, tmp_path, concurrency=64, concurrency_per_host=3)
    assert len(items) == 48
    by_host = {h.split(":")[0]: n for h, n in site.stats.max_inflight_by_host.items()}
    assert by_host["127.0.0.1"] == 3 and by_host["localhost"] == 3
    assert site.stats.max_inflight == 6  # both hosts ran at once


async def test_global_limit(site: TestSite, tmp_path: Path) -> None:
    class Many(Spider):
        name = "many"

        async def start(self) -> Any:
            for i in range(30):
                yield Request(f"{site.url}/delay/0.1?i={i}")

        def parse(self, response: Response) -> Any:
            yield {"ok": 1}

    _, items = await crawl(Many, tmp_path, concurrency=4, concurrency_per_host=100)
    assert len(items) == 30
    assert site.stats.max_inflight == 4


async def test_download_delay_spaces_requests(site: TestSite, tmp_path: Path) -> None:
    starts: list[float] = []

    class Clock:
        """Records when each download starts (the server's arrival times would also
        measure connection set-up, which varies with the machine's load)."""

        def process_request(self, request: Request, spider: Spider) -> None:
            starts.append(time.monotonic())

    class Few(Spider):
        name = "few"
        middlewares = [Clock()]

        async def start(self) -> Any:
            for i in range(4):
                yield Request(f"{site.url}/page/{i}")

        def parse(self, response: Response) -> None:
            return None

    await crawl(Few, tmp_path, download_delay=0.3)
    assert len(starts) == 4
    assert_spaced(starts, 0.3)


async def test_hanging_endpoint_fails_at_deadline_and_errback_gets_it(
    site: TestSite, tmp_path: Path
) -> None:
    failures: list[Failure] = []

    class Hang(Spider):
        name = "hang"

        async def start(self) -> Any:
            yield Request(f"{site.url}/hang", errback=self.failed)
            yield Request(f"{site.url}/headers-then-hang", errback=self.failed)
            yield Request(f"{site.url}/page/1")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url}

        def failed(self, failure: Failure) -> Any:
            failures.append(failure)
            yield {"failed": failure.request.url}

    result, items = await crawl(Hang, tmp_path, timeout=0.5, retries=1, retry_backoff=0.01)
    assert len(failures) == 2 and all(f.check(DownloadTimeout) for f in failures)
    assert {i.get("failed") for i in items} >= {f"{site.url}/hang", f"{site.url}/headers-then-hang"}
    assert result.stats["errors/DownloadTimeout"] == 2
    assert result.stats["retries"] == 2
    # Counted at the server: each tried once and retried once, then given up.
    assert site.stats.hits["/hang"] == 2 and site.stats.hits["/headers-then-hang"] == 2


async def test_retries_honour_retry_after(site: TestSite, tmp_path: Path) -> None:
    class Flaky(Spider):
        name = "flaky"

        async def start(self) -> Any:
            yield Request(f"{site.url}/flaky/k1?fail=2&status=503&retry_after=1")

        def parse(self, response: Response) -> Any:
            yield {"status": response.status, "retries": response.meta.get("retry_times")}

    result, items = await crawl(Flaky, tmp_path, retry_backoff=0.01)
    assert items == [{"status": 200, "retries": 2}]
    times = [t for t, p, _ in site.stats.log if p.startswith("/flaky/k1")]
    assert len(times) == 3
    assert_spaced(times, 1.0)
    assert result.stats["retries"] == 2 and result.stats["status/503"] == 2


async def test_retries_run_out_then_errback(site: TestSite, tmp_path: Path) -> None:
    failures: list[Failure] = []

    class Down(Spider):
        name = "down"

        async def start(self) -> Any:
            yield Request(f"{site.url}/status/500", errback=failures.append)

    result, _ = await crawl(Down, tmp_path, retries=2, retry_backoff=0.01)
    assert site.stats.hits["/status/500"] == 3
    assert len(failures) == 1 and failures[0].check(HttpError)
    assert failures[0].response is not None and failures[0].response.status == 500
    assert result.stats["errors/HttpError"] == 1


async def test_scrapy_meta_dont_retry_and_download_timeout(
    site: TestSite, tmp_path: Path
) -> None:
    failures: list[Failure] = []

    class Keys(Spider):
        name = "keys"

        async def start(self) -> Any:
            yield Request(f"{site.url}/status/503", meta={"dont_retry": True},
                          errback=failures.append)
            yield Request(f"{site.url}/delay/5", meta={"download_timeout": 0.3, "dont_retry": True},
                          errback=failures.append)

    result, _ = await crawl(Keys, tmp_path, retries=3, retry_backoff=0.01, timeout=30)
    # The request's 0.3 s, not the crawl's 30 s: /delay/5 would have answered 200 otherwise.
    assert site.stats.hits["/delay/5"] == 1
    assert site.stats.hits["/status/503"] == 1  # not retried
    assert sorted(type(f.value).__name__ for f in failures) == ["DownloadTimeout", "HttpError"]
    assert "retries" not in result.stats


async def test_non_2xx_goes_to_errback_unless_handled(site: TestSite, tmp_path: Path) -> None:
    seen: list[int] = []

    class Statuses(Spider):
        name = "statuses"
        handle_status = [404]

        async def start(self) -> Any:
            yield Request(f"{site.url}/status/404")
            yield Request(f"{site.url}/status/410")
            yield Request(f"{site.url}/status/403", handle_status=[403])

        def parse(self, response: Response) -> None:
            seen.append(response.status)

    result, _ = await crawl(Statuses, tmp_path)
    assert sorted(seen) == [403, 404]
    assert result.stats["errors/HttpError"] == 1

    # Scrapy's names: on the spider, and in a request's meta.
    seen.clear()

    class ScrapyNames(Statuses):
        name = "scrapy_names"
        handle_status: ClassVar[list[int]] = []
        handle_httpstatus_list: ClassVar[list[int]] = [404]

        async def start(self) -> Any:
            yield Request(f"{site.url}/status/404")
            yield Request(f"{site.url}/status/410")
            yield Request(f"{site.url}/status/403", meta={"handle_httpstatus_list": [403]})
            yield Request(f"{site.url}/status/500", meta={"handle_httpstatus_all": True})
            yield Request(f"{site.url}/redirect/1", meta={"handle_httpstatus_list": [302]})

    result, _ = await crawl(ScrapyNames, tmp_path, retries=0)
    assert sorted(seen) == [302, 403, 404, 500]  # the 302 is not followed: it was asked for
    assert result.stats["errors/HttpError"] == 1  # the 410

    class All(Statuses):
        name = "all"
        handle_status: ClassVar[list[int]] = []
        handle_httpstatus_all = True

    seen.clear()
    result, _ = await crawl(All, tmp_path)
    assert sorted(seen) == [403, 404, 410]


async def test_redirect_chain_is_followed_and_recorded(site: TestSite, tmp_path: Path) -> None:
    class Redir(Spider):
        name = "redir"

        async def start(self) -> Any:
            yield Request(f"{site.url}/redirect/3")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url, "chain": response.redirect_chain}

    result, items = await crawl(Redir, tmp_path)
    assert len(items) == 1
    assert len(items[0]["chain"]) == 3 and items[0]["chain"][0] == f"{site.url}/redirect/3"
    assert result.stats["redirects"] == 3


async def test_redirect_loop_stops_with_errback_called_once(site: TestSite, tmp_path: Path) -> None:
    failures: list[Failure] = []

    class Loop(Spider):
        name = "loop"

        async def start(self) -> Any:
            yield Request(f"{site.url}/redirect-loop/a", errback=failures.append)
            yield Request(f"{site.url}/redirect/30", errback=failures.append)

        def parse(self, response: Response) -> None:
            raise AssertionError("no callback for a loop")

    result, _ = await crawl(Loop, tmp_path, max_redirects=5)
    assert len(failures) == 2
    assert all(f.check(RedirectError) for f in failures)
    assert site.stats.hits["/redirect/30"] == 1
    assert result.stats["errors/RedirectError"] == 2


def _refresh_page(content: str, *, wrap: str = "", content_type: str = "text/html") -> Canned:
    meta = f'<meta http-equiv="Refresh" content="{content}">'
    if wrap:
        meta = f"<{wrap}>{meta}</{wrap}>"
    return Canned(200, f"<html><head><title>r</title>{meta}</head><body>old</body></html>",
                  {"Content-Type": f"{content_type}; charset=utf-8"})


async def test_meta_refresh_is_followed_like_a_redirect(site: TestSite, tmp_path: Path) -> None:
    """Scrapy's MetaRefreshMiddleware: a page that sends the browser on with
    <meta http-equiv="refresh"> is a redirect, unless its delay is long, it sits in
    <noscript>, the page is no HTML, or the request or the settings say not to."""
    site.canned["/mr/now"] = _refresh_page("0; url=/page/target")
    site.canned["/mr/later"] = _refresh_page("5;URL='/page/later'")
    site.canned["/mr/slow"] = _refresh_page("300; url=/page/never")
    site.canned["/mr/noscript"] = _refresh_page("0; url=/page/never", wrap="noscript")
    site.canned["/mr/text"] = _refresh_page("0; url=/page/never", content_type="text/plain")
    site.canned["/mr/self"] = _refresh_page("0")
    site.canned["/mr/js"] = _refresh_page("0; url=javascript:alert(1)")
    site.canned["/mr/opt-out"] = _refresh_page("0; url=/page/never")
    site.canned["/mr/ping"] = _refresh_page("0; url=/mr/pong")
    site.canned["/mr/pong"] = _refresh_page("0; url=/mr/ping")
    failures: list[Failure] = []

    class Refresh(Spider):
        name = "refresh"

        async def start(self) -> Any:
            for path in ("now", "later", "slow", "noscript", "text", "self", "js"):
                yield Request(f"{site.url}/mr/{path}")
            yield Request(f"{site.url}/mr/opt-out", meta={"dont_redirect": True})
            yield Request(f"{site.url}/mr/ping", errback=failures.append)
            # dont_redirect holds for HTTP redirects too: the 302 is an error.
            yield Request(f"{site.url}/redirect/1", meta={"dont_redirect": True},
                          errback=failures.append)

        def parse(self, response: Response) -> Any:
            yield {"url": response.url, "chain": response.redirect_chain}

    result, items = await crawl(Refresh, tmp_path)
    by_url = {item["url"].removeprefix(site.url): item["chain"] for item in items}
    assert by_url == {
        "/page/target": [f"{site.url}/mr/now"],
        "/page/later": [f"{site.url}/mr/later"],
        "/mr/slow": [], "/mr/noscript": [], "/mr/text": [], "/mr/self": [], "/mr/opt-out": [],
        "/mr/js": [],
    }  # fmt: skip
    assert site.stats.hits["/page/never"] == 0
    assert result.stats["redirects/meta_refresh"] == 3  # now, later, ping -> pong
    assert sorted(type(f.value).__name__ for f in failures) == ["HttpError", "RedirectError"]
    assert any("redirect loop" in str(f.value) for f in failures)

    site.reset_stats()
    _, items = await crawl(Refresh, tmp_path, meta_refresh=False)
    assert "/page/target" not in {item["url"].removeprefix(site.url) for item in items}
    assert site.stats.hits["/page/target"] == 0


async def test_callback_exception_does_not_stop_the_crawl(site: TestSite, tmp_path: Path) -> None:
    class Boom(LinksSpider):
        def parse_page(self, response: Response) -> Any:
            i = int(response.url.rsplit("/", 1)[1])
            yield {"i": i}  # yielded before the failure: kept
            if i % 2:
                raise ZeroDivisionError("boom")

    result, items = await crawl(Boom, tmp_path, spider_args={"base": site.url, "n": 20})
    assert sorted(i["i"] for i in items) == list(range(20))
    assert result.stats["errors/ZeroDivisionError"] == 10
    assert result.reason == "finished"


async def test_every_callback_kind(site: TestSite, tmp_path: Path) -> None:
    class Kinds(Spider):
        name = "kinds"

        async def start(self) -> Any:
            for cb in ("plain", "gen", "agen", "coro", "none"):
                yield Request(f"{site.url}/page/{cb}", callback=cb, cb_kwargs={"tag": cb})

        def plain(self, response: Response, tag: str) -> Any:
            return [{"kind": tag}]

        def gen(self, response: Response, tag: str) -> Any:
            assert response.cb_kwargs == {"tag": tag}  # Scrapy's shortcut to the request's
            yield {"kind": tag}

        async def agen(self, response: Response, tag: str) -> Any:
            await asyncio.sleep(0)
            yield {"kind": tag}

        async def coro(self, response: Response, tag: str) -> Any:
            return {"kind": tag}

        def none(self, response: Response, tag: str) -> None:
            return None

    _, items = await crawl(Kinds, tmp_path)
    assert sorted(i["kind"] for i in items) == ["agen", "coro", "gen", "plain"]


class Book(Item):
    title: str
    price: float


async def test_invalid_items_go_to_invalid_file(site: TestSite, tmp_path: Path) -> None:
    class Books(Spider):
        name = "val"
        item_model = Book

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/1")

        def parse(self, response: Response) -> Any:
            yield {"title": "ok", "price": 1.5}
            yield {"title": "bad", "price": "not a number"}
            yield Book(title="model", price=2)

    result, items = await crawl(Books, tmp_path)
    assert items == [{"title": "ok", "price": 1.5}, {"title": "model", "price": 2.0}]
    invalid = [orjson.loads(x) for x in (tmp_path / "items.jsonl.invalid.jsonl").read_bytes()
               .splitlines()]
    assert len(invalid) == 1 and invalid[0]["item"]["title"] == "bad"
    assert invalid[0]["errors"][0]["loc"] == ["price"]
    assert result.stats["items_invalid"] == 1


async def test_pipelines_sync_async_and_drop(site: TestSite, tmp_path: Path) -> None:
    events: list[str] = []

    class Upper:
        def open(self, spider: Spider) -> None:
            events.append("open")

        def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
            return {**item, "v": item["v"].upper()}

        def close(self, spider: Spider) -> None:
            events.append("close")

    class DropOdd:
        async def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
            if item["n"] % 2:
                raise DropItem("odd")
            return item

    class P(Spider):
        name = "pipes"
        pipelines = [Upper(), DropOdd]

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/1")

        def parse(self, response: Response) -> Any:
            for n in range(6):
                yield {"n": n, "v": "x"}

    result, items = await crawl(P, tmp_path)
    assert items == [{"n": n, "v": "X"} for n in (0, 2, 4)]
    assert result.stats["items_dropped"] == 3
    assert events == ["open", "close"]


async def test_allowed_domains_drop_offsite(site: TestSite, tmp_path: Path) -> None:
    class Off(Spider):
        name = "off"
        allowed_domains = ["127.0.0.1"]

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/1")

        def parse(self, response: Response) -> Any:
            if response.url.endswith("/1"):
                yield Request(f"http://localhost:{site.port}/page/2")
                yield Request(f"{site.url}/page/3")
            yield {"url": response.url}

    result, items = await crawl(Off, tmp_path)
    assert len(items) == 2
    assert result.stats["offsite_dropped"] == 1


async def test_close_spider_and_close_on_items(site: TestSite, tmp_path: Path) -> None:
    calls: list[str] = []

    class Stopper(LinksSpider):
        def opened(self) -> None:
            calls.append("opened")

        async def closed(self, reason: str) -> None:
            calls.append(f"closed:{reason}")

        def parse_page(self, response: Response) -> Any:
            yield {"url": response.url}
            raise CloseSpider("enough")

    result, items = await crawl(Stopper, tmp_path, spider_args={"base": site.url, "n": 200},
                                concurrency=2)
    assert result.reason == "enough"
    assert calls == ["opened", "closed:enough"]
    assert 1 <= len(items) < 200

    result, items = await crawl(LinksSpider, tmp_path, spider_args={"base": site.url, "n": 200},
                                concurrency=2, **cast(dict[str, Any], {"close_on.items": 10}))
    assert result.reason == "close_on_items"
    assert 10 <= len(items) < 200


async def test_downloader_middlewares(site: TestSite, tmp_path: Path) -> None:
    class Cache:
        def process_request(self, request: Request, spider: Spider) -> Response | None:
            if request.url.endswith("/cached"):
                return Response(request.url, 200, {"Content-Type": "text/html"},
                                b"<p>from cache</p>", request)
            return None

    class Tag:
        async def process_response(
            self, request: Request, response: Response, spider: Spider
        ) -> Response | Request:
            if response.status == 418:  # a custom retry rule: ask for another URL instead
                return request.replace(url=f"{site.url}/page/replaced", dont_filter=True)
            return response

    class Headers:
        def process_request(self, request: Request, spider: Spider) -> Request | None:
            if "X-Token" not in request.headers and request.url.endswith("/echo"):
                return request.replace(headers={"X-Token": "t"}, dont_filter=True)
            return None

    class M(Spider):
        name = "mw"
        middlewares = [Cache(), Tag(), Headers()]

        async def start(self) -> Any:
            yield Request(f"{site.url}/cached")
            yield Request(f"{site.url}/status/418")
            yield Request(f"{site.url}/echo")

        def parse(self, response: Response) -> Any:
            if response.url.endswith("/echo"):
                yield {"token": response.json()["headers"].get("x-token")}
            else:
                yield {"url": response.url, "text": response.css("p::text").get()}

    _, items = await crawl(M, tmp_path)
    by = {i.get("url", "echo"): i for i in items}
    assert by[f"{site.url}/cached"]["text"] == "from cache"
    assert f"{site.url}/page/replaced" in by
    assert by["echo"]["token"] == "t"
    assert site.stats.hits["/cached"] == 0


async def test_spider_middleware_filters_output(site: TestSite, tmp_path: Path) -> None:
    class OnlyEven:
        async def process_spider_output(self, response: Response, result: Any, spider: Spider):
            async for x in result:
                if isinstance(x, dict) and x["n"] % 2:
                    continue
                yield x

    class S(Spider):
        name = "smw"
        middlewares = [OnlyEven]

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/1")

        def parse(self, response: Response) -> Any:
            for n in range(4):
                yield {"n": n}

    _, items = await crawl(S, tmp_path)
    assert items == [{"n": 0}, {"n": 2}]


async def test_post_json_form_and_cookies(site: TestSite, tmp_path: Path) -> None:
    class Post(Spider):
        name = "post"

        async def start(self) -> Any:
            yield Request(f"{site.url}/set-cookie?session=abc", callback=self.after_cookie)

        def after_cookie(self, response: Response) -> Any:
            yield Request(f"{site.url}/echo", json={"a": 1}, callback=self.echo, dont_filter=True)
            yield Request(f"{site.url}/echo?f=1", form={"b": "2"}, method="POST",
                          callback=self.echo)

        def echo(self, response: Response) -> Any:
            data = response.json()
            yield {"method": data["method"], "body": data["body"],
                   "cookie": data["cookies"].get("session")}

    _, items = await crawl(Post, tmp_path)
    bodies = sorted(i["body"] for i in items)
    assert bodies == ['b=2', '{"a":1}']
    assert all(i["method"] == "POST" and i["cookie"] == "abc" for i in items)


async def test_proxy_for_the_crawl_and_per_request(site: TestSite, tmp_path: Path) -> None:
    """A real forward proxy on 127.0.0.1: the `proxy` setting sends every request through
    it; a request's meta["proxy"] chooses another one."""
    import aiohttp
    from aiohttp import web

    async def start_proxy(name: str, seen: list[str]) -> tuple[web.AppRunner, str]:
        async def forward(request: web.Request) -> web.Response:
            seen.append(str(request.url))
            async with (
                aiohttp.ClientSession() as session,
                session.request(request.method, str(request.url)) as upstream,
            ):
                return web.Response(status=upstream.status, body=await upstream.read(),
                                    headers={"X-Proxy": name})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    via_a: list[str] = []
    via_b: list[str] = []
    runner_a, proxy_a = await start_proxy("a", via_a)
    runner_b, proxy_b = await start_proxy("b", via_b)

    class Proxied(Spider):
        name = "proxied"

        async def start(self) -> Any:
            yield Request(f"{site.url}/page/1")
            yield Request(f"{site.url}/page/2", meta={"proxy": proxy_b})

        def parse(self, response: Response) -> Any:
            yield {"url": response.url, "proxy": response.headers.get("X-Proxy")}

    try:
        _, items = await crawl(Proxied, tmp_path, proxy=proxy_a)
    finally:
        await runner_a.cleanup()
        await runner_b.cleanup()
    assert {i["url"]: i["proxy"] for i in items} == {
        f"{site.url}/page/1": "a", f"{site.url}/page/2": "b"}
    assert via_a == [f"{site.url}/page/1"] and via_b == [f"{site.url}/page/2"]


class BigPage(Spider):
    """One page of ``n`` links followed with follow_all: records how many links follow_all
    had turned into requests when the first of them had been fetched."""

    name = "bigpage"
    site: TestSite
    n = 200_000
    built_when_fetched: int | None = None

    async def start(self) -> Any:
        yield Request(f"{self.site.url}/links?n={self.n}", callback=self.parse_big)

    async def parse_big(self, response: Response) -> Any:
        read = 0  # links follow_all has taken (each one it takes becomes a request at once)

        def links() -> Iterator[str]:
            nonlocal read
            for href in response.css("a::attr(href)").getall():
                read += 1
                yield href

        for yielded, request in enumerate(response.follow_all(links(), self.parse_page), 1):
            yield request
            if yielded == 5000:  # several batches out: wait until the first is fetched
                for _ in range(2000):
                    if self.site.stats.hits["/page/0"]:
                        break
                    await asyncio.sleep(0.01)
            if BigPage.built_when_fetched is None and self.site.stats.hits["/page/0"]:
                BigPage.built_when_fetched = read
        raise CloseSpider("big page done")

    def parse_page(self, response: Response) -> Any:
        return []


async def test_a_huge_pages_links_are_fetched_while_follow_all_builds_them(
    site: TestSite, tmp_path: Path
) -> None:
    """follow_all is lazy and the engine takes a callback's output in batches: the first
    links of a 200,000-link page are fetched while most of its requests are not built yet."""
    BigPage.built_when_fetched = None
    result = await run_spider(BigPage, make_settings(concurrency=8), spider_args={"site": site},
                              warn_no_output=False, summary=False)
    assert result.reason == "big page done"
    built = BigPage.built_when_fetched
    assert built is not None and built <= 5000 < BigPage.n
    assert result.stats["requests_enqueued"] >= BigPage.n  # every link reached the frontier


class Holding(Spider):
    """A callback that yields 500 requests, then reads the engine's gauges while it runs."""

    name = "holding"
    site: TestSite
    seen: tuple[int, int] | None = None
    engine: Any = None

    async def start(self) -> Any:
        yield Request(f"{self.site.url}/links?n=0", callback=self.parse_many)

    async def parse_many(self, response: Response) -> Any:
        for i in range(500):
            yield Request(f"{self.site.url}/page/{i}", callback=self.parse_page)
        await asyncio.sleep(0)
        Holding.seen = Holding.engine.gauges()

    def parse_page(self, response: Response) -> Any:
        return []


async def test_gauges_count_the_requests_a_running_callback_holds(
    site: TestSite, tmp_path: Path
) -> None:
    def keep(engine: Any) -> None:
        Holding.engine = engine

    Holding.seen = None
    result = await run_spider(Holding, make_settings(), spider_args={"site": site},
                              on_engine=keep, warn_no_output=False, summary=False)
    assert Holding.seen == (500, 1)  # the batch not yet in the frontier; its own request
    assert result.stats["status/200"] == 501
    assert Holding.engine.gauges() == (0, 0)


async def test_collector_tuned_while_crawls_run_and_restored(
    site: TestSite, tmp_path: Path
) -> None:
    """While a crawl runs the young generation is collected less often and what existed
    before is frozen; two crawls at once restore the thresholds only when both are over."""
    import gc

    before = gc.get_threshold()
    seen: list[tuple[tuple[int, int, int], int]] = []

    class Watch(LinksSpider):
        def parse_page(self, response: Response) -> Any:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))
            yield {"url": response.url}

    async def one(n: int, sub: str) -> None:
        path = tmp_path / sub
        path.mkdir()
        _, items = await crawl(Watch, path, spider_args={"base": site.url, "n": n})
        assert len(items) == n

    await asyncio.gather(one(5, "a"), one(30, "b"))
    assert len(seen) == 35
    assert all(t[0] >= 20_000 and t[1:] == before[1:] and frozen > 0 for t, frozen in seen)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
