"""crawler.shell: `crawler shell` and `crawler view`, and open_in_browser."""

from __future__ import annotations

from pathlib import Path

from crawler import Response
from crawler.shell import open_in_browser

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

