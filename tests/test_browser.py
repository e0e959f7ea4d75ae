"""Rendered requests: a real Chromium (Debian's) driven by Playwright against local pages
that build their content in JavaScript."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from crawler import Request, Response, Spider
from crawler.browser import check_browser, renders
from crawler.errors import BrowserUnavailable
from tests.browser_site import PRODUCTS, SCROLL_PAGES, SCROLL_PER_PAGE, BrowserSite, kill_browser
from tests.conftest import crawl, make_settings

try:
    EXECUTABLE = check_browser(make_settings())
except BrowserUnavailable as exc:
    pytest.skip(f"browser tests skipped: {exc}", allow_module_level=True)


@pytest.fixture
async def js() -> AsyncIterator[BrowserSite]:
    async with BrowserSite() as s:
        yield s


class Pages(Spider):
    """Renders each ``urls`` entry (with ``meta``) and yields what ``extract`` finds."""

    name = "pages"
    urls: ClassVar[list[str]] = []
    meta: ClassVar[dict[str, Any]] = {}
    css = "p"

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url, meta=dict(self.meta), browser=True)

    def parse(self, response: Response) -> Any:
        yield {
            "url": response.url,
            "status": response.status,
            "found": response.css(self.css + "::text").getall(),
            "screenshot": response.meta.get("screenshot"),
            "pdf": response.meta.get("pdf"),
            "results": response.meta.get("browser_results"),
        }


def pages(urls: list[str], css: str, **meta: Any) -> type[Pages]:
    return type("P", (Pages,), {"urls": urls, "css": css, "meta": meta})


async def test_content_inserted_after_a_timer(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/timer"], "p.late")
    result, items = await crawl(spider, tmp_path)
    assert [item["found"] for item in items] == [[f"late {i}" for i in range(5)]]
    assert items[0]["status"] == 200
    assert result.stats["browser/pages"] == 1
    assert result.stats["browser/launches"] == 1


async def test_plain_request_sees_the_empty_shell(js: BrowserSite, tmp_path: Path) -> None:
    class Plain(Pages):
        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/timer")

    result, items = await crawl(type("Q", (Plain,), {"css": "p.late"}), tmp_path)
    assert items[0]["found"] == []
    assert "browser/launches" not in result.stats  # a crawl that renders nothing pays nothing


class Shop(Spider):
    """A JS-built listing whose links lead to JS-built product pages."""

    name = "jsshop"
    base = ""

    async def start(self) -> AsyncIterator[Request]:
        yield Request(f"{self.base}/list", browser=True)

    def parse(self, response: Response) -> Any:
        for link in response.css("li.product a"):
            yield response.follow(link, self.parse_product, browser=True)

    def parse_product(self, response: Response) -> Any:
        yield {
            "url": response.url,
            "name": response.css("h1::text").get(),
            "price": response.css(".price::text").get(),
        }


async def _playwright_script(base: str) -> list[dict[str, Any]]:
    """The same scrape written by hand with Playwright, as a user would without the
    framework."""
    from playwright.async_api import async_playwright

    out: list[dict[str, Any]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=EXECUTABLE, args=["--no-sandbox"] if os.geteuid() == 0 else []
        )
        page = await browser.new_page()
        await page.goto(f"{base}/list", wait_until="networkidle")
        links = await page.eval_on_selector_all(
            "li.product a", "els => els.map(e => e.href)"
        )
        for link in links:
            await page.goto(link, wait_until="networkidle")
            out.append({
                "url": page.url,
                "name": await page.text_content("h1"),
                "price": await page.text_content(".price"),
            })
        await browser.close()
    return out


async def test_same_items_as_a_hand_written_playwright_script(
    js: BrowserSite, tmp_path: Path
) -> None:
    result, items = await crawl(Shop, tmp_path, spider_args={"base": js.url})
    expected = await _playwright_script(js.url)
    assert len(expected) == PRODUCTS
    assert all(item["name"] and item["price"] for item in expected)
    key = lambda item: item["url"]  # noqa: E731
    assert sorted(items, key=key) == sorted(expected, key=key)
    assert result.stats["browser/pages"] == PRODUCTS + 1


async def test_list_from_a_json_endpoint_and_response_follow_is_plain(
    js: BrowserSite, tmp_path: Path
) -> None:
    followed: list[bool] = []

    class Follow(Spider):
        name = "follow"

        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/list", meta={"playwright": True})  # scrapy-playwright's key

        def parse(self, response: Response) -> Any:
            requests = list(response.follow_all(css="li.product a", callback=self.product))
            followed.extend(renders(r, False) for r in requests)
            yield from requests[:3]

        def product(self, response: Response) -> Any:
            yield {"h1": response.css("h1::text").get(), "url": response.url}

    result, items = await crawl(Follow, tmp_path)
    assert len(followed) == PRODUCTS and not any(followed)
    assert [item["h1"] for item in items] == [None, None, None]  # plain: the empty shell
    assert result.stats["browser/pages"] == 1


async def test_infinite_scroll_loads_five_more_pages(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/scroll"], "div.row", browser_actions=[{"scroll": 8}])
    _, items = await crawl(spider, tmp_path)
    assert len(items[0]["found"]) == SCROLL_PAGES * SCROLL_PER_PAGE
    assert js.hits["/api/scroll"] == SCROLL_PAGES  # the first page and 5 more, not one over

    # Without the scroll action only the first page is there.
    _, items = await crawl(pages([f"{js.url}/scroll"], "div.row"), tmp_path)
    assert len(items[0]["found"]) == SCROLL_PER_PAGE


async def test_fill_click_to_expand_and_evaluate(js: BrowserSite, tmp_path: Path) -> None:
    actions = [
        {"fill": "#q", "value": "please"},
        {"click": "#more"},
        {"wait_for": "p.detail"},
        {"evaluate": "document.querySelectorAll('p.detail').length"},
        {"wait": 0.01},
    ]
    spider = pages([f"{js.url}/expand"], "p.detail", browser_actions=actions)
    _, items = await crawl(spider, tmp_path)
    assert items[0]["found"] == ["expanded please"]
    assert items[0]["results"] == [1]


async def test_wait_for_selector(js: BrowserSite, tmp_path: Path) -> None:
    # "commit" alone returns before any script ran; the selector makes it wait for content.
    spider = pages([f"{js.url}/timer"], "p.late", browser_wait="commit",
                   browser_wait_for="p.late")
    _, items = await crawl(spider, tmp_path)
    assert items[0]["found"][:1] == ["late 0"]


async def test_unknown_action_fails_without_retry(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/timer"], "p", browser_actions=[{"dance": "#x"}])
    result, items = await crawl(spider, tmp_path)
    assert items == []
    assert result.stats["errors/BrowserError"] == 1
    assert "retries" not in result.stats


async def test_never_settling_page_hits_the_deadline(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/never", f"{js.url}/timer"], "p")
    # 4 s: room for /timer to render on a loaded machine (1.5 s was not, twice in a row).
    result, items = await crawl(spider, tmp_path, timeout=4, retries=1, retry_backoff=0)
    assert [item["url"] for item in items] == [f"{js.url}/timer"]  # the crawl went on
    assert result.stats["errors/DownloadTimeout"] == 1
    # /never was tried twice (retries=1), counted by the server; the retry stat may also count
    # one of /timer's on a loaded machine, where 4 s can pass before it renders.
    assert js.hits["/never"] == 2
    assert result.stats["retries/DownloadTimeout"] >= 1
    assert result.reason == "finished"


async def test_polling_page_is_read_once_the_idle_wait_is_capped(
    js: BrowserSite, tmp_path: Path
) -> None:
    spider = pages([f"{js.url}/poll"], "#n")
    result, items = await crawl(spider, tmp_path, browser_idle_timeout=0.6)
    assert items and int(items[0]["found"][0]) >= 1
    assert result.stats["browser/idle_capped"] == 1


async def test_renderer_crash_is_retried(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/crash", f"{js.url}/timer"], "p.survived, p.late")
    result, items = await crawl(spider, tmp_path, retry_backoff=0, browser_concurrency=1)
    assert js.crash_kills >= 1  # a renderer really died
    assert sorted(item["url"] for item in items) == [f"{js.url}/crash", f"{js.url}/timer"]
    assert result.stats["browser/crashes"] >= 1
    assert result.stats["retries/BrowserError"] >= 1


async def test_hung_renderer_and_window_close_do_not_stall(
    js: BrowserSite, tmp_path: Path
) -> None:
    spider = pages([f"{js.url}/spin", f"{js.url}/close", f"{js.url}/timer"], "p")
    result, items = await crawl(spider, tmp_path, timeout=2, retries=1, retry_backoff=0)
    assert f"{js.url}/timer" in {item["url"] for item in items}
    assert result.stats["errors/DownloadTimeout"] == 1  # /spin, after its retry
    assert js.hits["/spin"] == 2
    assert result.reason == "finished"


async def test_killed_browser_is_restarted(js: BrowserSite, tmp_path: Path) -> None:
    killed: list[int] = []

    class Killer(Spider):
        name = "killer"

        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/timer", self.first, browser=True)

        def first(self, response: Response) -> Any:
            killed.append(kill_browser())
            yield {"n": 1}
            for n in range(4):
                yield Request(f"{js.url}/slow/{n}", browser=True)

        def parse(self, response: Response) -> Any:
            yield {"n": response.css("p.rendered::text").get()}

    result, items = await crawl(Killer, tmp_path, retry_backoff=0)
    assert killed == [1]
    assert len(items) == 5 and items[1:] == [{"n": "yes"}] * 4
    assert result.stats["browser/launches"] == 2
    assert result.stats["browser/restarts"] == 1


async def test_plain_and_rendered_share_the_host_limit(js: BrowserSite, tmp_path: Path) -> None:
    class Mixed(Spider):
        name = "mixed"

        async def start(self) -> AsyncIterator[Request]:
            for n in range(12):
                yield Request(f"{js.url}/slow/{n}", browser=True)
                yield Request(f"{js.url}/plain/{n}")

        def parse(self, response: Response) -> Any:
            yield {"url": response.url, "rendered": response.css("p.rendered::text").get()}

    result, items = await crawl(Mixed, tmp_path, concurrency=16, concurrency_per_host=3,
                                browser_concurrency=4)
    assert len(items) == 24
    assert sum(item["rendered"] == "yes" for item in items) == 12
    assert js.inflight_max == 3  # counted at the server, both kinds together
    assert result.stats["browser/pages"] == 12


async def test_browser_concurrency_bounds_pages(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/slow/{n}" for n in range(8)], "p.rendered")
    _result, items = await crawl(spider, tmp_path, browser_concurrency=2, concurrency_per_host=8)
    assert len(items) == 8
    assert js.inflight_max == 2


async def test_spider_attribute_and_setting_render_everything(
    js: BrowserSite, tmp_path: Path
) -> None:
    class All(Spider):
        name = "all"
        browser = True
        start_urls = [f"{js.url}/timer", f"{js.url}/list"]

        def parse(self, response: Response) -> Any:
            yield {"late": len(response.css("p.late")), "products": len(response.css("li"))}

    _, items = await crawl(All, tmp_path, obey_robots=True)
    assert sorted((i["late"], i["products"]) for i in items) == [(0, PRODUCTS), (5, 0)]
    assert js.hits["/robots.txt"] == 1  # robots.txt itself is fetched plainly, and obeyed

    class Opt(Spider):
        name = "opt"

        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/timer")
            yield Request(f"{js.url}/list", browser=False)

        def parse(self, response: Response) -> Any:
            yield {"late": len(response.css("p.late")), "products": len(response.css("li"))}

    _result, items = await crawl(Opt, tmp_path, browser=True)
    assert sorted((i["late"], i["products"]) for i in items) == [(0, 0), (5, 0)]


async def test_redirect_status_headers_and_final_url(js: BrowserSite, tmp_path: Path) -> None:
    seen: list[Response] = []

    class R(Spider):
        name = "r"

        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/redirect", browser=True)
            yield Request(f"{js.url}/missing", browser=True, handle_status=[404])

        def parse(self, response: Response) -> Any:
            seen.append(response)
            yield {"url": response.url}

    result, _ = await crawl(R, tmp_path)
    by_status = {r.status: r for r in sorted(seen, key=lambda r: r.status)}
    assert set(by_status) == {200, 404}
    ok = by_status[200]
    assert ok.url == f"{js.url}/timer"
    assert ok.redirect_chain == [f"{js.url}/redirect"]
    assert ok.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Content-Length" not in ok.headers
    assert len(ok.css("p.late")) == 5
    assert result.stats["redirects"] == 1
    assert by_status[404].css("p::text").get() == "gone"


async def test_headers_user_agent_post_and_cookies(js: BrowserSite, tmp_path: Path) -> None:
    class H(Spider):
        name = "h"

        async def start(self) -> AsyncIterator[Request]:
            yield Request(f"{js.url}/headers", self.headers_page, browser=True,
                          headers={"X-Test": "yes"}, method="POST", body=b"a=1")
            yield Request(f"{js.url}/set-cookie", self.cookie_set, browser=True)

        def headers_page(self, response: Response) -> Any:
            sent = orjson.loads(response.css("#h::text").get() or "{}")
            seen = {k.lower(): v for k, v in sent.items()}
            yield {"ua": seen.get("user-agent"), "x": seen.get("x-test"),
                   "method": response.css("#m::text").get()}

        def cookie_set(self, response: Response) -> Any:
            yield Request(f"{js.url}/cookie", self.cookie_read, browser=True)

        def cookie_read(self, response: Response) -> Any:
            yield {"cookie": response.css("#cookie::text").get()}

    _, items = await crawl(H, tmp_path, user_agent="jsbot/1", browser_recycle_pages=1)
    assert {"ua": "jsbot/1", "x": "yes", "method": "POST"} in items
    # The context was renewed after every page; the cookie was carried over.
    assert {"cookie": "session=abc123"} in items


async def test_blocked_resources_and_console_errors(js: BrowserSite, tmp_path: Path) -> None:
    result, _ = await crawl(pages([f"{js.url}/console"], "p"), tmp_path)
    assert js.hits["/img/a.png"] == 0 and js.hits["/img/b.png"] == 0
    assert result.stats["browser/blocked_resources"] == 2
    assert result.stats["browser/console_errors"] == 3  # two console.error, one uncaught

    result, _ = await crawl(pages([f"{js.url}/console"], "p"), tmp_path,
                            browser_block_resources=[])
    assert js.hits["/img/a.png"] == 1


async def test_screenshot_and_pdf_next_to_the_output(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/timer"], "p.late", browser_screenshot=True, browser_pdf=True)
    _, items = await crawl(spider, tmp_path)
    shot, pdf = Path(items[0]["screenshot"]), Path(items[0]["pdf"])
    assert shot.parent == tmp_path / "items_files"
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert pdf.read_bytes().startswith(b"%PDF")


async def test_browser_page_handed_to_the_callback_then_closed(
    js: BrowserSite, tmp_path: Path
) -> None:
    pages_seen: list[Any] = []

    class Live(Spider):
        name = "live"

        async def start(self) -> AsyncIterator[Request]:
            for n in range(3):
                yield Request(f"{js.url}/expand?n={n}", browser=True,
                              meta={"browser_page": True})

        async def parse(self, response: Response) -> Any:
            page = response.page
            pages_seen.append(page)
            await page.click("#more")
            await page.wait_for_selector("p.detail")
            yield {"detail": await page.text_content("p.detail")}

    _result, items = await crawl(Live, tmp_path, browser_concurrency=1)
    assert [item["detail"] for item in items] == ["expanded "] * 3
    assert len(pages_seen) == 3 and all(page.is_closed() for page in pages_seen)


async def test_downloads_are_refused(js: BrowserSite, tmp_path: Path) -> None:
    result, items = await crawl(pages([f"{js.url}/file.zip"], "p"), tmp_path)
    assert items == []
    assert result.stats["errors/BrowserError"] == 1
    assert "retries" not in result.stats
    assert not list(tmp_path.rglob("file.zip"))


async def test_block_private_addresses(js: BrowserSite, tmp_path: Path) -> None:
    result, items = await crawl(pages([f"{js.url}/timer"], "p"), tmp_path,
                                block_private_addresses=True)
    assert items == []
    assert result.stats["errors/BlockedAddress"] == 1
    assert js.hits["/timer"] == 0  # refused before any connection


async def test_block_private_addresses_checks_every_redirect_hop(
    js: BrowserSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.browser import BrowserPool

    # Every host here is loopback: "localhost" stands for a public host (as a proxy host is
    # exempt), and its redirect to the 127.0.0.1 literal must still be refused.
    check = BrowserPool._private

    async def private(self: BrowserPool, url: str) -> bool:
        return False if "//localhost:" in url else await check(self, url)

    monkeypatch.setattr(BrowserPool, "_private", private)
    port = js.url.rsplit(":", 1)[1]
    spider = pages([f"http://localhost:{port}/to-literal", f"http://localhost:{port}/list"],
                   "li a")
    result, items = await crawl(spider, tmp_path, block_private_addresses=True)
    assert js.hits["/to-literal"] == 1 and js.hits["/timer"] == 0
    assert result.stats["errors/BlockedAddress"] == 1
    assert result.stats["browser/blocked_addresses"] == 1
    assert [len(item["found"]) for item in items] == [PRODUCTS]  # fetched through the route


async def test_proxy_carries_every_browser_request(tmp_path: Path) -> None:
    from aiohttp import web

    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:  # a forward proxy's answer
        seen.append(str(request.url))
        return web.Response(
            text="<p id='via'>proxied</p><script>document.body.append('js ran')</script>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        spider = pages(["http://shop.example.test/page"], "#via")
        _, items = await crawl(spider, tmp_path, proxy=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    assert items[0]["found"] == ["proxied"]
    assert "http://shop.example.test/page" in seen


async def test_missing_browser_is_one_clear_error_before_any_request(
    js: BrowserSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class All(Spider):
        name = "all"
        browser = True
        start_urls = [f"{js.url}/timer"]

    with pytest.raises(BrowserUnavailable, match="apt-get install chromium"):
        await crawl(All, tmp_path, browser_executable="/nonexistent/chromium")
    assert sum(js.hits.values()) == 0

    # Rendering asked per request: the first one stops the crawl with the same message, once.
    spider = pages([f"{js.url}/timer", f"{js.url}/list"], "p")
    caplog.set_level(logging.ERROR)
    result, items = await crawl(spider, tmp_path, browser_executable="/nonexistent/chromium")
    assert result.reason == "browser_unavailable"
    assert items == [] and sum(js.hits.values()) == 0
    errors = [r for r in caplog.records if "crawler[browser]" in r.getMessage()]
    assert len(errors) == 1 and "/nonexistent/chromium" in errors[0].getMessage()


def test_import_crawler_does_not_import_playwright() -> None:
    import subprocess
    import sys

    code = ("import sys, crawler, crawler.runner, crawler.browser; "
            "print('playwright' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


async def test_concurrency_one_still_renders(js: BrowserSite, tmp_path: Path) -> None:
    spider = pages([f"{js.url}/timer", f"{js.url}/list"], "p.late, li")
    _, items = await crawl(spider, tmp_path, concurrency=1)
    assert len(items) == 2


@pytest.mark.parametrize("n", [1])
async def test_event_loop_not_blocked(js: BrowserSite, tmp_path: Path, n: int) -> None:
    """A page that spins its renderer does not stop plain requests on the same loop."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await crawl(pages([f"{js.url}/spin"], "p"), tmp_path, timeout=1, retries=0)
    finally:
        task.cancel()
    assert ticks >= 10


# ------------------------------------------------------------------ durable and distributed

JS_SPIDER = '''
from crawler import Request, Spider


class JsShop(Spider):
    name = "jsshop"
    base = ""

    async def start(self):
        yield Request(f"{self.base}/list", browser=True, meta={"browser_wait_for": "li a"})

    def parse(self, response):
        for link in response.css("li.product a"):
            yield response.follow(link, "parse_product", browser=True, meta={
                "browser_wait_for": "h1", "browser_actions": [{"wait": 0.3}]})

    def parse_product(self, response):
        yield {"url": response.url, "name": response.css("h1::text").get()}
'''


def test_rendered_request_is_stored_with_its_options() -> None:
    from crawler.frontier.codec import decode_request, encode_request

    request = Request("http://a.test/p", "parse_product", browser=True, meta={
        "browser_wait_for": "h1", "browser_actions": [{"scroll": 3}, {"click": "#more"}],
        "browser_screenshot": {"full_page": False},
    })
    back = decode_request(encode_request(request))
    assert renders(back, False)
    assert back.meta == request.meta
    assert not renders(decode_request(encode_request(Request("http://a.test/", browser=False))),
                       True)


async def test_rendered_requests_survive_kill_9_and_resume(js: BrowserSite, tmp_path: Path) -> None:
    import signal

    from tests.test_cli import BIN, make_project, run

    project = make_project(tmp_path / "p", {"jsshop": JS_SPIDER})
    out, jobdir = tmp_path / "items.jsonl", tmp_path / "job"
    args = [str(BIN / "crawl"), "jsshop", "-o", str(out), "--jobdir", str(jobdir),
            "-a", f"base={js.url}", "-s", "concurrency=1", "-s", "log_level=WARNING",
            "-s", "obey_robots=false"]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=project, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    for _ in range(600):  # until a few products are written, mid-crawl
        await asyncio.sleep(0.05)
        if out.exists() and out.read_bytes().count(b"\n") >= 3:
            break
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    first = out.read_bytes().count(b"\n")
    assert 3 <= first < PRODUCTS, "the kill did not land mid-crawl"
    code, _, err = await run(*args, cwd=project)
    assert code == 0, err[-2000:]
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(i["url"] for i in items) == sorted(
        f"{js.url}/product/{n}" for n in range(1, PRODUCTS + 1)
    )  # every product once, across the kill
    # Rendered after the resume too: the stored requests kept browser=True and their options.
    assert all(i["name"] == i["url"].replace(f"{js.url}/product/", "Product ") for i in items)


@pytest.mark.redis
async def test_worker_without_a_browser_leaves_the_request_to_one_that_has(
    js: BrowserSite, redis_url: str, tmp_path: Path
) -> None:
    import uuid

    from crawler.frontier.redis import frontier_purge
    from tests.test_cli import BIN, make_project, run

    project = make_project(tmp_path / "p", {"jsshop": JS_SPIDER})
    crawl_id = uuid.uuid4().hex
    args = [str(BIN / "crawl"), "jsshop", "-o", str(tmp_path / "o-{worker}.jsonl"),
            "--frontier", redis_url, "-a", f"base={js.url}", "-s", f"crawl_id={crawl_id}",
            "-s", "obey_robots=false", "-s", "log_level=WARNING"]
    try:
        code, _, err = await run(*args, "-s", "browser_executable=/nonexistent/chromium",
                                 cwd=project)
        assert code == 2, err
        assert "no Chromium" in err or "/nonexistent/chromium" in err
        assert "apt-get install chromium" in err and "crawler[browser]" in err
        assert "left in the frontier" in err
        assert sum(js.hits.values()) == 0
        code, _, err = await run(*args, cwd=project)
        assert code == 0, err[-2000:]
    finally:
        await frontier_purge(redis_url, "jsshop", crawl_id)
    items = [orjson.loads(line) for path in tmp_path.glob("o-*.jsonl")
             for line in path.read_bytes().splitlines()]
    assert len(items) == PRODUCTS and all(i["name"] for i in items)


def test_browser_bench_smoke(tmp_path: Path) -> None:
    """bench/browser.py end to end on tiny inputs (no goals here: `make bench` has them)."""
    from bench import run as bench

    argv = ["--pages", "4", "--memory-pages", "30", "--plain", "150", "--rounds", "1"]
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(bench.BENCH / "browser.py"), *argv],
                          capture_output=True, text=True, check=True, cwd=bench.ROOT)
    figures = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures["rates"]) == {"networkidle/2", "networkidle/4", "load/2", "load/4"}
    assert all(rate > 0 for rate in figures["rates"].values())
    assert figures["memory"]["browser_pages"] == 30
    assert figures["memory"]["peak_pss_mb"] > 0
    assert len(figures["mixed"]["none"]) == len(figures["mixed"]["one_in_100"]) == 1
    text = bench.browser_markdown(figures)
    assert "## Pages that need JavaScript" in text and "peak RSS" in text


async def test_readme_js_spider(js: BrowserSite, tmp_path: Path) -> None:
    from tests.test_cli import BIN, make_project, run
    from tests.test_readme import readme_block

    project = make_project(tmp_path / "p", {"jsshop": readme_block("# spiders/jsshop.py")})
    out = tmp_path / "items.jsonl"
    code, _, err = await run(str(BIN / "crawl"), "jsshop", "-o", str(out),
                             "-a", f"start_url={js.url}/list", "-s", "obey_robots=false",
                             cwd=project)
    assert code == 0, err[-2000:]
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(i["name"] for i in items) == sorted(f"Product {n}"
                                                      for n in range(1, PRODUCTS + 1))
    assert all(i["price"] for i in items)


async def test_verify_tls_in_the_browser(tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    from aiohttp import web

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    hits: list[str] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="<p id='x'>secure</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        spider = pages([f"https://127.0.0.1:{port}/"], "#x")
        result, items = await crawl(spider, tmp_path)
        assert items == [] and hits == []
        assert result.stats["errors/ConnectError"] == 1 and "retries" not in result.stats
        _, items = await crawl(spider, tmp_path, verify_tls=False)
        assert items[0]["found"] == ["secure"]
    finally:
        await runner.cleanup()
