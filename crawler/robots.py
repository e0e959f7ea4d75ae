"""robots.txt (RFC 9309): one fetch per origin, cached for the crawl, checked per request.

The engine asks :meth:`RobotsCache.known` for every request: a dict lookup by origin
(scheme, host and port), then ``can_fetch`` for a robots.txt that has ``Disallow`` rules.
Only the first request to an origin takes the slow path, :meth:`RobotsCache.resolve`: it
fetches ``/robots.txt`` itself while every other request to that origin awaits the same
future, so an origin's robots.txt is fetched once however many requests arrive together.

What a fetch ends in (RFC 9309 section 2.3.1):

* **2xx**: the first :data:`MAX_ROBOTS_BYTES` (500 KiB) are parsed with ``protego``, cut at
  the last complete line; rules are matched against the ``user_agent`` product token (the
  part before ``/``: ``crawler`` for ``crawler/0.1 (+https://...)``).
* **3xx**: the redirect is followed, up to :data:`MAX_ROBOTS_REDIRECTS` (5) hops, to any
  http(s) URL; beyond that, or for an unusable ``Location``, robots.txt counts as
  unavailable (4xx).
* **4xx other than 429**: unavailable, everything is allowed.
* **5xx, 429, a timeout or a connection failure**: unreachable. Everything on the origin is
  disallowed *for now*; this is never cached as allowed. The engine holds the origin's
  requests back (they go back to the frontier with a delay, they are not dropped) and the
  fetch is tried again after ``retry_delay`` seconds (60 by default, doubled after each
  failure, or the server's ``Retry-After`` if longer). After ``max_attempts`` failed fetches
  (``retries + 1``) the origin stays disallowed for the rest of the crawl and its requests
  are dropped as ``dropped/robots_unavailable``.
* A host refused by ``block_private_addresses``, or an invalid URL: allowed, so that the
  page request itself fails with its own error (``errors/BlockedAddress``).

``Crawl-delay`` for our token becomes the host's minimum delay (capped at
``max_crawl_delay``, 60 s or the ``download_delay`` if larger, with a warning).
``Request-rate`` and ``Visit-time`` are ignored. The robots.txt fetch goes straight to the
downloader (no middlewares, no frontier) and is not counted in ``responses``; it is counted
in ``robots/*`` stats.

State is exportable as a plain dict (:meth:`RobotsCache.dump` / :meth:`RobotsCache.load`)
so a durable job can keep it across resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from yarl import URL

from .errors import BlockedAddress, DownloadError, InvalidURL, OutOfFiles
from .http import Request, Response
from .stats import plural
from .throttle import retry_after
from .urls import parse_url

if TYPE_CHECKING:
    from protego import Protego

    from .settings import Settings
    from .stats import Stats

__all__ = [
    "MAX_ROBOTS_BYTES",
    "MAX_ROBOTS_REDIRECTS",
    "RobotsCache",
    "RobotsRules",
    "RobotsUnavailable",
    "origin_of",
    "product_token",
]

logger = logging.getLogger(__name__)

#: Bytes of a robots.txt that are parsed (RFC 9309 asks for at least 500 KiB).
MAX_ROBOTS_BYTES = 500 * 1024
#: Redirect hops followed for a robots.txt (RFC 9309: at least five).
MAX_ROBOTS_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DUMP_VERSION = 1


class RobotsFetch(Protocol):
    """The downloader's ``fetch``: one HTTP exchange, body cut at ``truncate`` bytes."""

    def __call__(self, request: Request, *, truncate: int | None = None) -> Awaitable[Response]:
        ...


def origin_of(url: str) -> str:
    """The origin key of an absolute URL string as :func:`~crawler.urls.parse_url` writes it
    (``scheme://host[:port]``, lower-case, default port omitted). A slice, no parsing."""
    end = url.find("/", 8)  # past "https://" and at least one host character
    return url if end == -1 else url[:end]


def product_token(user_agent: str) -> str:
    """The robots.txt product token of a User-Agent: the part before the first ``/``
    (``"crawler/0.1 (+https://...)"`` → ``"crawler"``), lower-case."""
    token = user_agent.split("/", 1)[0].strip().split(" ", 1)[0]
    return token.lower() or "*"


@dataclass(slots=True)
class RobotsRules:
    """A robots.txt that was obtained (2xx) or is unavailable (4xx): what it allows us."""

    #: The parsed file, or None when everything is allowed (4xx, or no Disallow at all).
    parser: Protego | None
    token: str
    #: Seconds between requests asked by ``Crawl-delay`` for our token (after the cap).
    crawl_delay: float | None
    #: HTTP status of the robots.txt (after redirects); 0 when not fetched.
    status: int
    #: The text parsed ("" when everything is allowed); kept for :meth:`RobotsCache.dump`.
    text: str

    def allows(self, url: str) -> bool:
        """Whether our product token may fetch ``url``."""
        parser = self.parser
        return parser is None or parser.can_fetch(url, self.token)


@dataclass(slots=True)
class RobotsUnavailable:
    """robots.txt could not be fetched (5xx, 429, timeout, unreachable): all disallowed."""

    #: ``time.monotonic()`` after which the fetch is tried again.
    retry_at: float
    #: Failed fetches so far.
    attempts: int
    reason: str
    #: No attempt left: the origin is disallowed for the rest of the crawl.
    final: bool
    #: The host refused the connection or does not resolve: tried again on the normal retry
    #: schedule, and when that ends the host is failed (its requests fail, not wait).
    host_down: bool = False

    def retry_in(self) -> float:
        return max(0.0, self.retry_at - time.monotonic())


RobotsState = RobotsRules | RobotsUnavailable


class RobotsCache:
    """Per-origin robots.txt state for one crawl. See the module docstring."""

    def __init__(
        self,
        user_agent: str,
        fetch: RobotsFetch | Callable[..., Awaitable[Response]],
        *,
        stats: Stats | None = None,
        retry_delay: float = 60.0,
        max_attempts: int = 4,
        max_crawl_delay: float = 60.0,
        down_delay: float = 0.5,
        down_delay_max: float = 60.0,
    ) -> None:
        self.token = product_token(user_agent)
        self.retry_delay = retry_delay
        self.down_delay = down_delay
        self.down_delay_max = down_delay_max
        self.max_attempts = max(1, max_attempts)
        self.max_crawl_delay = max_crawl_delay
        self._fetch = fetch
        self._stats = stats
        self._rules: dict[str, RobotsRules] = {}
        self._unavailable: dict[str, RobotsUnavailable] = {}
        self._pending: dict[str, asyncio.Future[RobotsState]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, fetch: Callable[..., Awaitable[Response]], stats: Stats
    ) -> RobotsCache:
        return cls(
            settings.user_agent,
            fetch,
            stats=stats,
            max_attempts=settings.retries + 1,
            max_crawl_delay=max(60.0, settings.download_delay),
            down_delay=settings.retry_backoff,
            down_delay_max=settings.retry_backoff_max,
        )

    # ---------------------------------------------------------------- the per-request check

    def known(self, url: str) -> RobotsRules | None:
        """The rules of ``url``'s origin if its robots.txt is known; None when it was never
        fetched, is being fetched, or was unreachable (then call :meth:`resolve`)."""
        end = url.find("/", 8)
        return self._rules.get(url if end == -1 else url[:end])

    async def resolve(self, request: Request) -> RobotsState:
        """The robots.txt state of ``request``'s origin, fetching it if needed.

        Concurrent callers for one origin share one fetch. Returns :class:`RobotsUnavailable`
        while the origin's robots.txt is unreachable and its retry is not due.
        """
        origin = origin_of(request.url)
        rules = self._rules.get(origin)
        if rules is not None:
            return rules
        pending = self._pending.get(origin)
        if pending is not None:
            # shield: a waiter being cancelled must not cancel the fetch the others await.
            return await asyncio.shield(pending)
        failed = self._unavailable.get(origin)
        if failed is not None and (failed.final or time.monotonic() < failed.retry_at):
            return failed
        future: asyncio.Future[RobotsState] = asyncio.get_running_loop().create_future()
        self._pending[origin] = future
        try:
            state = await self._fetch_state(origin, request.yurl, failed)
        except BaseException as exc:
            del self._pending[origin]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        del self._pending[origin]
        if isinstance(state, RobotsRules):
            self._rules[origin] = state
            self._unavailable.pop(origin, None)
        else:
            self._unavailable[origin] = state
        future.set_result(state)
        return state

    # --------------------------------------------------------------------------- fetching

    async def _fetch_state(
        self, origin: str, url: URL, failed: RobotsUnavailable | None
    ) -> RobotsState:
        attempts = failed.attempts + 1 if failed is not None else 1
        target = url.origin().with_path("/robots.txt")
        for _hop in range(MAX_ROBOTS_REDIRECTS + 1):
            self._inc("robots/requests")
            try:
                response = await self._fetch(Request(target), truncate=MAX_ROBOTS_BYTES)
            except (BlockedAddress, InvalidURL) as exc:
                self._inc(f"robots/errors/{type(exc).__name__}")
                logger.debug("robots.txt of %s not fetched (%s): allowing", origin, exc)
                return self._allow_all(0)
            except OutOfFiles as exc:  # back-pressure: not the origin's failure, try soon
                self._inc("robots/backpressure")
                return RobotsUnavailable(time.monotonic() + 0.25, attempts - 1, exc.detail,
                                         final=False)
            except DownloadError as exc:
                self._inc(f"robots/errors/{type(exc).__name__}")
                down = getattr(exc, "unreachable", "")
                if down:  # refused, or no such name: a failed host, not a slow one
                    return self._failed(origin, attempts, down, None, host_down=True)
                return self._failed(origin, attempts, f"{type(exc).__name__}: {exc.detail}", None)
            status = response.status
            self._inc(f"robots/status/{status}")
            if status in _REDIRECTS and "Location" in response.headers:
                try:
                    target = parse_url(response.headers["Location"].strip(), response.yurl)
                except InvalidURL as exc:
                    logger.debug("robots.txt of %s redirects to a bad URL (%s): allowing",
                                 origin, exc.reason)
                    return self._allow_all(status)
                continue
            if 200 <= status < 300:
                return self._parse(origin, status, response.body)
            if 400 <= status < 500 and status != 429:
                return self._allow_all(status)
            # 5xx, 429 (rate limited: "come back later", as Google reads it), or a status
            # that is neither success nor redirect nor client error.
            return self._failed(origin, attempts, f"HTTP {status}", retry_after(response))
        logger.debug("robots.txt of %s: more than %d redirects, allowing",
                     origin, MAX_ROBOTS_REDIRECTS)
        return self._allow_all(0)

    def _allow_all(self, status: int) -> RobotsRules:
        return RobotsRules(None, self.token, None, status, "")

    def _parse(self, origin: str, status: int, body: bytes) -> RobotsRules:
        if len(body) >= MAX_ROBOTS_BYTES:
            # Only the first 500 KiB count; a rule cut in half would be a wrong rule.
            cut = body.rfind(b"\n", 0, MAX_ROBOTS_BYTES)
            body = body[: cut + 1] if cut != -1 else b""
        text = body.decode("utf-8", "replace").lstrip("\ufeff")
        # Imported with the first robots.txt, not before the first request (~5 ms of start-up).
        from protego import Protego

        try:
            parser = Protego.parse(text)
        except Exception as exc:  # protego is lenient; a crash in it must not stop a crawl
            logger.warning("robots.txt of %s could not be parsed (%s): allowing", origin, exc)
            return self._allow_all(status)
        delay = parser.crawl_delay(self.token)
        if delay is not None and delay > self.max_crawl_delay:
            logger.warning("robots.txt of %s asks Crawl-delay %gs: using %gs",
                           origin, delay, self.max_crawl_delay)
            delay = self.max_crawl_delay
        # Without any Disallow line everything is allowed: skip can_fetch on every request.
        has_rules = "disallow" in text.lower()
        return RobotsRules(parser if has_rules else None, self.token, delay or None, status,
                           text)

    def _failed(
        self, origin: str, attempts: int, reason: str, asked: float | None,
        *, host_down: bool = False,
    ) -> RobotsUnavailable:
        final = attempts >= self.max_attempts
        if host_down:  # the pages' own retry schedule
            wait = min(self.down_delay_max, self.down_delay * 2 ** (attempts - 1))
        else:
            wait = self.retry_delay * 2 ** (attempts - 1)
        if asked is not None:  # the server's Retry-After
            wait = max(wait, asked)
        self._inc("robots/unavailable")
        if final:
            if not host_down:  # a failed host is reported by the engine, once
                logger.warning("robots.txt of %s unreachable (%s) after %s: not crawling "
                               "this origin", origin, reason, plural(attempts, "attempt"))
        else:
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
            logger.info("robots.txt of %s unreachable (%s): its requests wait until %s "
                        "(next try in %s)", origin, reason, until, _seconds(wait))
        return RobotsUnavailable(time.monotonic() + wait, attempts, reason, final, host_down)

    def _inc(self, key: str) -> None:
        if self._stats is not None:
            self._stats.inc(key)

    # ---------------------------------------------------------------------- persistence

    def dump(self) -> dict[str, Any]:
        """The cache as plain JSON-ready data, for :meth:`load` in a later process."""
        origins: dict[str, Any] = {}
        for origin, rules in self._rules.items():
            entry: dict[str, Any] = {"status": rules.status, "text": rules.text}
            if rules.crawl_delay is not None:
                entry["crawl_delay"] = rules.crawl_delay
            origins[origin] = entry
        now_wall, now = time.time(), time.monotonic()
        for origin, failed in self._unavailable.items():
            origins[origin] = {
                "unavailable": {
                    "attempts": failed.attempts,
                    "reason": failed.reason,
                    "final": failed.final,
                    "host_down": failed.host_down,
                    "retry_at": now_wall + (failed.retry_at - now),  # wall clock: portable
                }
            }
        return {"version": _DUMP_VERSION, "token": self.token, "origins": origins}

    def load(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`dump` produced (entries for other tokens or versions are
        ignored: the rules would be for another user agent)."""
        if data.get("version") != _DUMP_VERSION or data.get("token") != self.token:
            logger.info("robots.txt cache from another version or user agent: not loaded")
            return
        now_wall, now = time.time(), time.monotonic()
        for origin, entry in data.get("origins", {}).items():
            failed = entry.get("unavailable")
            if failed is not None:
                self._unavailable[origin] = RobotsUnavailable(
                    now + max(0.0, float(failed["retry_at"]) - now_wall),
                    int(failed["attempts"]),
                    str(failed.get("reason", "")),
                    bool(failed.get("final", False)),
                    bool(failed.get("host_down", False)),
                )
                continue
            text = str(entry.get("text", ""))
            status = int(entry.get("status", 0))
            if text:
                self._rules[origin] = self._parse(origin, status, text.encode("utf-8"))
            else:
                self._rules[origin] = self._allow_all(status)


def _seconds(wait: float) -> str:
    return f"{wait:.1f}s" if wait < 10 else f"{wait:.0f}s"
