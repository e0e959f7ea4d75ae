"""The bundled demo site's server (crawler/demosite.py): loopback only, the counters count,
run from sync code and from the command line. Its pages: test_demobooks, test_demoquotes,
test_demoshop."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from crawler.demosite import (
    DemoSite,
    Hit,
    run_in_thread,
)

from . import demo_util
from .demo_util import PROJECT, get

site = demo_util.site  # the fixtures, under the names the tests take
client = demo_util.client


def test_only_loopback_is_bound() -> None:
    for host in ("0.0.0.0", "192.0.2.2", "::", "example.com"):
        with pytest.raises(ValueError):
            DemoSite(host=host)
    with pytest.raises(ValueError):
        DemoSite(hosts=("127.0.0.1", "10.0.0.1"))


async def test_log_records_every_request(site: DemoSite, client: aiohttp.ClientSession) -> None:
    before = time.monotonic()
    for path in ("/page/a", "/page/b", "/nowhere", "/page/a?x=1"):
        await get(client, site.url + path)
    assert [(h.path, h.host) for h in site.stats.log] == [
        ("/page/a", "127.0.0.1"), ("/page/b", "127.0.0.1"), ("/nowhere", "127.0.0.1"),
        ("/page/a", "127.0.0.1"),
    ]  # fmt: skip
    times = [h.time for h in site.stats.log]
    assert before <= times[0] <= times[-1] <= time.monotonic() and times == sorted(times)
    assert site.stats.hits == {"/page/a": 2, "/page/b": 1, "/nowhere": 1}
    _, path, host = site.stats.log[0]  # a plain 3-tuple too
    assert isinstance(site.stats.log[0], Hit) and (path, host) == ("/page/a", "127.0.0.1")


# --- running it from sync code ---------------------------------------------------------------


def test_run_in_thread() -> None:
    with run_in_thread(books=40, shop_products=20) as site:
        with urllib.request.urlopen(site.url + "/catalogue/page-2.html") as r:
            assert r.status == 200 and b"Page 2 of 2" in r.read()
        assert site.stats.hits["/catalogue/page-2.html"] == 1
        site.reset_stats()
        assert site.stats.total == 0
        url = site.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/", timeout=5)


def test_run_in_thread_reports_startup_errors() -> None:
    with (
        run_in_thread(shop_products=1) as first,
        pytest.raises(OSError),
        run_in_thread(shop_products=1, port=first.port),
    ):
        pass


def test_command_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crawler.demosite", "--write-shop", str(tmp_path), "--shop", "40"],
        cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "wrote 43 files" in out.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.demosite", "--port", "0", "--books", "30"],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "/") as r:
            assert b"<strong>30</strong> results - showing" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
