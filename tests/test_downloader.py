"""The downloader on its own, against a real local server: one exchange per fetch, the sent
hook, the size limit, and aiohttp's errors translated at the boundary."""

from __future__ import annotations

import socket

import pytest

from crawler import Request
from crawler.downloader import Downloader
from crawler.errors import ConnectError, ResponseTooLarge
from crawler.stats import Stats

from .conftest import make_settings
from .servers import TestSite


async def test_one_exchange_per_fetch_and_the_sent_hook_once_per_request(site: TestSite) -> None:
    sent: list[str] = []
    async with Downloader(make_settings(), Stats(), on_sent=sent.append) as downloader:
        for i in range(3):
            response = await downloader.fetch(Request(f"{site.url}/page/{i}"))
            assert response.status == 200 and b"Page " in response.body
        posted = await downloader.fetch(Request(f"{site.url}/echo", method="POST", body=b"q"))
    assert posted.json()["body"] == "q"
    assert sent == ["127.0.0.1"] * 4  # the slot key, once per request, body or not
    assert [site.stats.hits[f"/page/{i}"] for i in range(3)] == [1, 1, 1]


async def test_a_redirect_is_returned_not_followed(site: TestSite) -> None:
    async with Downloader(make_settings(), Stats()) as downloader:
        response = await downloader.fetch(Request(f"{site.url}/redirect/1"))
    assert response.status in (301, 302, 303, 307, 308) and "Location" in response.headers


async def test_a_body_over_max_response_size_is_refused(site: TestSite) -> None:
    settings = make_settings(max_response_size=1000)
    async with Downloader(settings, Stats()) as downloader:
        with pytest.raises(ResponseTooLarge):
            await downloader.fetch(Request(f"{site.url}/bytes/5000"))
        with pytest.raises(ResponseTooLarge):  # no Content-Length: counted while streaming
            await downloader.fetch(Request(f"{site.url}/bytes/5000?chunked=1"))
        small = await downloader.fetch(Request(f"{site.url}/bytes/500?chunked=1"))
    assert small.body == b"x" * 500


async def test_a_refused_connection_is_a_connect_error_naming_why() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Downloader(make_settings(retries=0), Stats()) as downloader:
        with pytest.raises(ConnectError) as caught:
            await downloader.fetch(Request(f"http://127.0.0.1:{port}/"))
    assert caught.value.unreachable == "connection refused"
