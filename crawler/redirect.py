"""Redirects as a policy: pure functions that take a request and its response and decide.

- :func:`follow` turns a redirect (an HTTP 3xx ``Location``, or a meta refresh) into the
  next request of the chain, or a :class:`~crawler.errors.RedirectError` (a bad target, a loop,
  more than ``max_redirects`` hops). Browsers' method rules: 303 (and 301/302 after a POST)
  and a meta refresh become a GET without a body; 307/308 keep the method and body.
- :func:`redirect_headers`: which headers a hop keeps (credentials never follow a change of
  origin).
- :func:`meta_refresh_target`: where a page's ``<meta http-equiv="refresh">`` sends, when it
  is to be followed.

The engine counts, logs and routes what these return; they keep no state.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import InvalidURL, RedirectError
from .http import Request, Response
from .urls import parse_url

__all__ = [
    "META_REFRESH_SCAN",
    "REDIRECT_CODES",
    "follow",
    "has_meta_refresh",
    "meta_refresh_target",
    "redirect_headers",
]

logger = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: Where a ``<meta http-equiv="refresh">`` is looked for: the start of the page, as in Scrapy.
META_REFRESH_SCAN = 4096


def follow(
    request: Request, response: Response, location: str, *, kind: str, max_redirects: int
) -> Request | RedirectError:
    """The request that follows ``request``'s redirect to ``location`` (``kind``: ``http``
    for a 3xx Location, ``meta_refresh``), in the same chain (``meta["redirect_urls"]``), or
    the error that ends the chain."""
    try:
        target = parse_url(location.strip(), response.yurl)
    except InvalidURL as exc:
        return RedirectError(request.url, f"bad redirect target: {exc.reason}")
    chain: list[str] = [*request.meta.get("redirect_urls", ()), request.url]
    target_s = str(target)
    if target_s in chain:
        return RedirectError(request.url, f"redirect loop via {target_s}")
    if len(chain) > max_redirects:
        return RedirectError(request.url, f"more than max_redirects={max_redirects}")
    method, body = request.method, request.body
    if kind != "http" or (response.status == 303 and method != "HEAD") or (
        response.status in (301, 302) and method == "POST"
    ):
        method, body = "GET", b""  # what browsers do; 307/308 keep method and body
    meta = dict(request.meta)
    meta["redirect_urls"] = chain
    return Request(
        target,
        request.callback,
        method=method,
        headers=redirect_headers(request, target, body_dropped=not body and bool(request.body)),
        body=body,
        errback=request.errback,
        cb_kwargs=request.cb_kwargs,
        meta=meta,
        priority=request.priority,
        dont_filter=request.dont_filter,
        depth=request.depth,
        handle_status=request.handle_status,
    )


def redirect_headers(request: Request, target: Any, body_dropped: bool) -> dict[str, str]:
    """The headers a redirect hop keeps. Credentials never follow a change of origin:

    - another host: drop ``Authorization``, ``Cookie`` and ``Proxy-Authorization``;
    - another scheme or port: drop ``Authorization``;
    - https → http: drop ``Authorization`` and ``Cookie``.
    The cookie jar still adds the cookies that belong to the new host.
    """
    old = request.yurl
    drop: set[str] = set()
    if (old.host or "").lower() != (target.host or "").lower():
        drop |= {"authorization", "cookie", "proxy-authorization"}
    if old.scheme != target.scheme or old.port != target.port:
        drop.add("authorization")
    if old.scheme == "https" and target.scheme == "http":
        drop |= {"authorization", "cookie"}
    if body_dropped:
        drop |= {"content-type", "content-length", "content-encoding"}
    return {k: v for k, v in request.headers.items() if k.lower() not in drop}


def has_meta_refresh(response: Response) -> bool:
    """The cheap test before :func:`meta_refresh_target`: "refresh" near the start of the
    body ("http-equiv" alone is on most pages, for Content-Type)."""
    return b"refresh" in response.body[:META_REFRESH_SCAN].lower()


def meta_refresh_target(response: Response, max_delay: float) -> str | None:
    """The URL an HTML page's ``<meta http-equiv="refresh">`` sends to, when it is to be
    followed: within ``max_delay`` seconds, not inside ``<script>``/``<noscript>``, and not
    the page itself."""
    content_type = response.headers.get("Content-Type", "text/html").lower()
    if "html" not in content_type:
        return None
    from w3lib.html import get_meta_refresh  # parsel's dependency; only pages that have one

    try:
        delay, url = get_meta_refresh(response.text[:META_REFRESH_SCAN], response.url)
    except ValueError:  # a hostile refresh value: the page is parsed as it is
        return None
    if url is None or delay is None or delay > max_delay:
        return None
    try:
        target = str(parse_url(url))
    except InvalidURL as exc:  # javascript:, a broken host...: the page is what there is
        logger.debug("Not following the meta refresh of %s: %s", response.url, exc.reason)
        return None
    return None if target == response.url else target
