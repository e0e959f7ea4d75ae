"""Security: credentials across redirects, cookie scoping, private addresses, TLS, and no
response value ever evaluated or imported."""

from __future__ import annotations

import ast
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from crawler import Failure, Request, Response, Spider
from crawler.redirect import redirect_headers

from .conftest import PROJECT, crawl
from .servers import Canned, TestSite

CREDENTIALS = {"Authorization": "Bearer secret", "Cookie": "sid=1", "Proxy-Authorization": "p"}


# ------------------------------------------------------------ redirect header matrix


@pytest.mark.parametrize(
    ("source", "target", "kept"),
    [
        ("http://a.com/", "http://a.com/x", {"Authorization", "Cookie", "Proxy-Authorization"}),
        ("http://a.com/", "http://A.COM/x", {"Authorization", "Cookie", "Proxy-Authorization"}),
        ("http://a.com/", "http://b.com/x", set()),
        ("http://a.com/", "http://sub.a.com/x", set()),
        ("http://a.com/", "http://a.com:8080/x", {"Cookie", "Proxy-Authorization"}),
        ("http://a.com/", "https://a.com/x", {"Cookie", "Proxy-Authorization"}),
        ("https://a.com/", "http://a.com/x", {"Proxy-Authorization"}),
        ("https://a.com/", "https://a.com/x", {"Authorization", "Cookie", "Proxy-Authorization"}),
        ("https://a.com/", "http://b.com/x", set()),
    ],
)
def test_redirect_header_rules(source: str, target: str, kept: set[str]) -> None:
    request = Request(source, headers={**CREDENTIALS, "X-Other": "1"})
    headers = redirect_headers(request, URL(target), body_dropped=False)
    assert set(headers) - {"X-Other"} == kept
    assert headers["X-Other"] == "1"  # other headers always follow


async def test_url_passwords_never_reach_the_log(site: TestSite, tmp_path: Path) -> None:
    """A start URL with credentials is crawled with them (Basic auth on its own host), and
    the log shows ``***`` where the user and password were, at every level."""
    import asyncio
    import os
    import sys

    start = site.url.replace("http://", "http://crawler:s3cret-pw@") + "/status/404"
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "crawl"), "books", "-a", f"start_url={start}",
        "-L", "DEBUG", "-s", "obey_robots=false", cwd=PROJECT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "Ignoring response http://***@127.0.0.1:" in log  # the line is there, redacted
    assert "s3cret-pw" not in log and "crawler:" not in log.replace("crawler: ", "")
    assert site.stats.hits["/status/404"] == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_site(tls_files: tuple[Path, Path]) -> AsyncIterator[TestSite]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    async with TestSite(books=1, shop_products=1, ssl_context=context) as s:
        yield s


@pytest.fixture
async def other_site() -> AsyncIterator[TestSite]:
    async with TestSite(books=1, shop_products=1) as s:
        yield s


class Hop(Spider):
    """One request per (name, start, target) carrying credentials, redirected by the start
    server to ``target`` (an /echo URL); the item is what the target received."""

    name = "hop"
    cases: list[tuple[str, str, str]] = []

    async def start(self) -> Any:
        for n, (name, start, target) in enumerate(self.cases):
            # ?n= keeps the targets apart: the frontier drops a duplicate redirect target.
            url = f"{start}/redirect-to?url={target}%3Fn%3D{n}&status=307"
            yield Request(url, headers=CREDENTIALS, cb_kwargs={"case": name})

    def parse(self, response: Response, **cb_kwargs: Any) -> Any:
        received = response.json()["headers"]
        yield {"case": cb_kwargs["case"], "kept": sorted(k for k in ("authorization", "cookie",
                                                        "proxy-authorization") if k in received)}


async def test_redirect_matrix_against_real_servers(
    site: TestSite, other_site: TestSite, tls_site: TestSite, tmp_path: Path
) -> None:
    a = site.url
    a_as_localhost = site.url_for("", "localhost")
    b = other_site.url  # same host, another port
    s = tls_site.url  # https, same host, another port
    cases = [
        ("same origin", a, f"{a}/echo"),
        ("host change", a, f"{a_as_localhost}/echo"),
        ("port change", a, f"{b}/echo"),
        ("http to https", a, f"{s}/echo"),
        ("https to http", s, f"{a}/echo"),
        ("https same origin", s, f"{s}/echo"),
    ]
    _, items = await crawl(Hop, tmp_path, spider_args={"cases": cases}, verify_tls=False)
    got = {item["case"]: set(item["kept"]) for item in items}
    every = {"authorization", "cookie", "proxy-authorization"}
    assert got == {
        "same origin": every,
        "host change": set(),
        "port change": {"cookie", "proxy-authorization"},
        "http to https": {"cookie", "proxy-authorization"},
        "https to http": {"proxy-authorization"},
        "https same origin": every,
    }


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)", "data:text/html,x",
     "gopher://127.0.0.1:70/x"],
)
async def test_only_http_redirect_targets_are_followed(
    site: TestSite, tmp_path: Path, location: str
) -> None:
    site.canned["/away"] = Canned(302, "", {"Location": location})

    class Away(Spider):
        name = "away"
        base: str

        async def start(self) -> Any:
            yield Request(f"{self.base}/away", errback=self.failed)

        def failed(self, failure: Failure) -> Any:
            yield {"error": type(failure.value).__name__, "message": str(failure.value)}

    result, items = await crawl(Away, tmp_path, spider_args={"base": site.url})
    assert items[0]["error"] == "RedirectError" and "not http or https" in items[0]["message"]
    assert result.stats["errors/RedirectError"] == 1 and "redirects" not in result.stats


# ------------------------------------------------------------------------------ cookies


class CookieSpider(Spider):
    """Gets a cookie from 127.0.0.1, then asks /echo on 127.0.0.1, on localhost, and on
    localhost through a redirect from 127.0.0.1: which of them received it."""

    name = "cookies"
    port: int

    async def start(self) -> Any:
        yield Request(f"http://127.0.0.1:{self.port}/set-cookie?sid=s3cret", self.got_cookie)

    def got_cookie(self, response: Response) -> Any:
        local = f"http://localhost:{self.port}/echo"
        yield Request(f"http://127.0.0.1:{self.port}/echo", cb_kwargs={"case": "same host"})
        yield Request(local, cb_kwargs={"case": "other host"})
        yield Request(f"http://127.0.0.1:{self.port}/redirect-to?url={local}?r=1",
                      cb_kwargs={"case": "redirected"})

    def parse(self, response: Response, **cb_kwargs: Any) -> Any:
        yield {"case": cb_kwargs["case"], "cookies": response.json()["cookies"]}


async def test_one_hosts_cookies_never_go_to_another(site: TestSite, tmp_path: Path) -> None:
    _, items = await crawl(CookieSpider, tmp_path, spider_args={"port": site.port})
    got = {item["case"]: item["cookies"] for item in items}
    assert got == {"same host": {"sid": "s3cret"}, "other host": {}, "redirected": {}}


# ----------------------------------------------------------- block_private_addresses


class Blocked(Spider):
    name = "blocked"
    urls: list[str] = []

    async def start(self) -> Any:
        for url in self.urls:
            yield Request(url, errback=self.failed)

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "fetched": True}

    def failed(self, failure: Failure) -> Any:
        yield {"url": failure.request.url, "error": type(failure.value).__name__}


class RedirectToMetadata:
    """A middleware answering /start without any network with a redirect to ``location``."""

    def __init__(self, location: str) -> None:
        self.location = location

    def process_request(self, request: Request, spider: Spider) -> Response | None:
        if request.url.endswith("/start"):
            return Response(request.url, 302, {"Location": self.location}, b"", request)
        return None


@pytest.mark.parametrize("obey_robots", [False, True])
async def test_private_addresses_refused_before_connecting(
    site: TestSite, tmp_path: Path, obey_robots: bool
) -> None:
    urls = [site.url_for("/page/1"), site.url_for("/page/2", "localhost"),
            f"http://[::1]:{site.port}/page/3"]
    result, items = await crawl(Blocked, tmp_path, spider_args={"urls": urls},
                                block_private_addresses=True, obey_robots=obey_robots)
    assert {item["url"]: item.get("error") for item in items} == {u: "BlockedAddress" for u in urls}
    assert result.stats["errors/BlockedAddress"] == 3 and "retries" not in result.stats
    assert site.stats.total == 0  # not even robots.txt: nothing reached the server


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/", "http://localhost:{port}/page/x"]
)
async def test_private_address_refused_after_a_redirect(
    site: TestSite, tmp_path: Path, location: str
) -> None:
    class Redirected(Blocked):
        middlewares = [RedirectToMetadata(location.format(port=site.port))]

    result, items = await crawl(
        Redirected, tmp_path, spider_args={"urls": ["http://public.example/start"]},
        block_private_addresses=True, timeout=2, retries=0,
    )
    assert items == [{"url": location.format(port=site.port), "error": "BlockedAddress"}]
    assert result.stats["redirects"] == 1
    assert site.stats.total == 0


# ---------------------------------------------------------------------------------- TLS


async def test_tls_verified_by_default(tls_site: TestSite, tmp_path: Path) -> None:
    url = tls_site.url_for("/page/1")
    result, items = await crawl(Blocked, tmp_path, spider_args={"urls": [url]})
    assert items == [{"url": url, "error": "ConnectError"}]
    assert "retries" not in result.stats  # a bad certificate stays bad
    assert tls_site.stats.total == 0


async def test_verify_tls_false_warns_and_fetches(
    tls_site: TestSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = tls_site.url_for("/page/1")
    with caplog.at_level(logging.WARNING):
        _, items = await crawl(Blocked, tmp_path, spider_args={"urls": [url]}, verify_tls=False)
    assert items == [{"url": url, "fetched": True}]
    assert any("NOT verified" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


# ------------------------------------------------- nothing from a response is executed


def test_no_eval_exec_pickle_or_dynamic_import_of_response_data() -> None:
    """No response value can be imported or evaluated: the package never calls eval, exec,
    compile, pickle or marshal, and imports dynamically only in loader.py (spider and
    pipeline names from the command line and settings, never from a response) and in the
    ``scrapy`` alias (crawler/scrapy/__init__.py: ``scrapy.x`` in a spider's own import
    statement loads ``crawler.scrapy.x``, nothing outside that package)."""
    dynamic_import_allowed = {PROJECT / "crawler" / "loader.py",
                              PROJECT / "crawler" / "scrapy" / "__init__.py"}
    banned_calls = {"eval", "exec", "compile", "__import__"}
    banned_modules = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
    problems: list[str] = []
    for path in sorted((PROJECT / "crawler").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(PROJECT)}:{getattr(node, 'lineno', 0)}"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in banned_calls):
                problems.append(f"{where} calls {node.func.id}")
            if (isinstance(node, ast.Attribute) and node.attr == "import_module"
                    and path not in dynamic_import_allowed):
                problems.append(f"{where} imports dynamically")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""]
                if any(n.split(".")[0] in banned_modules for n in names):
                    problems.append(f"{where} imports {names}")
    assert problems == []
