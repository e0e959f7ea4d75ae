"""Fixtures and helpers of the demo site's tests (test_demosite, test_demobooks,
test_demoquotes, test_demoshop): a small :class:`DemoSite` and a plain aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from parsel import Selector
from yarl import URL

from crawler.demosite import DemoSite

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def site() -> AsyncIterator[DemoSite]:
    async with DemoSite(books=100, quotes=35, shop_products=95) as s:
        yield s


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url, allow_redirects=False) as r:
        return r.status, await r.text()


async def page(client: aiohttp.ClientSession, url: str) -> Selector:
    async with client.get(url) as r:
        assert r.status == 200, url
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        return Selector(text=await r.text())


def join(base: str, href: str) -> str:
    return str(URL(base).join(URL(href)))


def hrefs(sel: Selector, base: str, css: str) -> list[str]:
    return [join(base, h) for h in sel.css(f"{css}::attr(href)").getall()]
