"""``crawler shell``, ``crawler fetch``, ``crawler view`` and ``open_in_browser``.

Each fetches through the framework's own downloader (settings, proxy, retries, redirects),
one URL at a time, outside any crawl.
"""

from __future__ import annotations

import os
import re
import tempfile
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http import Request, Response
    from .settings import Settings

__all__ = ["fetch_one", "open_in_browser", "start_shell"]


def open_in_browser(
    response: Response, _openfunc: Callable[[str], Any] = webbrowser.open
) -> Any:
    """Write the page to a temporary file (with a ``<base href>`` so its links and styles
    resolve against the site) and open it with ``webbrowser`` (``_openfunc``), as Scrapy's
    ``open_in_browser`` does."""
    body = response.body
    ctype = response.headers.get("Content-Type", "").lower()
    ext = ".html"
    if "html" in ctype or not ctype or b"<html" in body[:4096].lower():
        if b"<base" not in body[:4096].lower():
            repl = rf'\1<base href="{response.url}">'.encode()
            body = re.sub(rb"(<head(?:>|\s.*?>))", repl, body, count=1, flags=re.I | re.S)
    elif "text" in ctype:
        ext = ".txt"
    else:
        raise TypeError(f"Unsupported response type: {ctype}")
    fd, path = tempfile.mkstemp(ext)
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    return _openfunc(f"file://{path}")


async def fetch_one(settings: Settings, request: Request) -> Response:
    """``request`` fetched with the crawl's downloader, redirects followed (raises the
    download error)."""
    from .downloader import Downloader
    from .stats import Stats

    stats = Stats()
    async with Downloader(settings, stats) as downloader:
        for _ in range(settings.max_redirects + 1):
            response = await downloader.fetch(request)
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                method = "GET" if response.status == 303 else request.method
                request = request.replace(url=response.urljoin(location), method=method)
                continue
            return response
    return response


def start_shell(settings: Settings, url: str | None) -> None:
    """An interactive console with ``response``, ``request``, ``fetch(url)``,
    ``view(response)``, ``settings`` (IPython when installed, else the standard console)."""
    from .cli import run_async
    from .http import Request

    namespace: dict[str, Any] = {"settings": settings, "request": None, "response": None}

    def fetch(target: Any) -> Any:
        request = target if isinstance(target, Request) else Request(str(target))
        response = run_async(fetch_one(settings, request))
        namespace["request"], namespace["response"] = request, response
        print(f"[crawler] fetched {response}")
        return response

    def view(response: Any = None) -> Any:
        return open_in_browser(response if response is not None else namespace["response"])

    namespace.update(fetch=fetch, view=view)
    if url:
        fetch(url)
    banner = ("[crawler] Available: response, request, settings, fetch(url|request), "
              "view(response)")
    try:
        from IPython import start_ipython  # type: ignore[import-not-found]
    except ImportError:
        import code

        code.interact(banner=banner, local=namespace)
        return
    print(banner)
    start_ipython(argv=[], user_ns=namespace)
