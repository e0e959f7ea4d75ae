"""crawler.shell: `crawler shell` and `crawler view`, and open_in_browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler import Request, Response
from crawler.shell import fetch_one, open_in_browser

from .conftest import make_settings
from .servers import TestSite
from .test_cli import BIN


def test_open_in_browser() -> None:
    opened: list[str] = []
    response = Response("http://e.com/dir/", 200, {"Content-Type": "text/html"},
                        b"<html><head><title>t</title></head><body>x</body></html>")
    open_in_browser(response, _openfunc=opened.append)
    assert len(opened) == 1 and opened[0].startswith("file://")
    body = Path(opened[0][len("file://"):]).read_bytes()
    assert b'<base href="http://e.com/dir/">' in body and b"<title>t</title>" in body



def test_shell_and_view(site_thread: str, tmp_path: Path) -> None:
    import subprocess

    script = "print('STATUS', response.status, len(response.css('div.quote')))\n" \
             "r = fetch(response.urljoin('/page/9'))\nprint('TITLE', r.css('h1::text').get())\n"
    result = subprocess.run(
        [str(BIN / "crawler"), "shell", f"{site_thread}/quotes/", "-s", "obey_robots=false"],
        input=script, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "STATUS 200 10" in result.stdout and "TITLE Page 9" in result.stdout
    # `view` opens the page with webbrowser: BROWSER=echo prints what it would open.
    result = subprocess.run([str(BIN / "crawler"), "view", f"{site_thread}/page/1"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**__import__("os").environ, "BROWSER": "echo"})
    assert result.returncode == 0, result.stderr
    opened = result.stdout.strip().splitlines()[-1]
    assert opened.startswith("file://")
    assert b"Page 1" in Path(opened[len("file://"):]).read_bytes()



async def test_fetch_one_follows_redirects_as_the_crawl_does(site: TestSite) -> None:
    settings = make_settings()
    response = await fetch_one(settings, Request(f"{site.url}/redirect/3"))
    assert (response.status, response.url) == (200, f"{site.url}/redirect/0")
    assert response.text == "redirect chain done\n"
    # 303 turns a POST into a GET; 307 keeps the method.
    target = f"{site.url}/echo"
    for status, method in ((303, "GET"), (307, "POST")):
        response = await fetch_one(settings, Request(
            f"{site.url}/redirect-to?status={status}&url={target}", method="POST", body=b"x"))
        assert response.json()["method"] == method, status
    assert site.stats.hits["/redirect/3"] == 1 and site.stats.hits["/redirect/0"] == 1


async def test_fetch_one_stops_at_max_redirects(site: TestSite) -> None:
    response = await fetch_one(make_settings(max_redirects=2),
                               Request(f"{site.url}/redirect/5"))
    assert (response.status, response.url) == (302, f"{site.url}/redirect/3")
    assert response.headers["Location"] == "/redirect/2"


def test_open_in_browser_of_text_and_of_binary() -> None:
    opened: list[str] = []
    text = Response("http://e.com/a.txt", 200, {"Content-Type": "text/plain"}, b"plain")
    open_in_browser(text, _openfunc=opened.append)
    assert opened[0].endswith(".txt")
    assert Path(opened[0][len("file://"):]).read_bytes() == b"plain"  # no <base> added
    image = Response("http://e.com/a.png", 200, {"Content-Type": "image/png"}, b"\x89PNG")
    with pytest.raises(TypeError, match="Unsupported response type: image/png"):
        open_in_browser(image, _openfunc=opened.append)
    assert len(opened) == 1
