"""The engine: the run loop and the per-request path.

Run loop. A feeder leases ready requests from the frontier and files each under its host's
:class:`Slot`; a slot releases a request to the shared ready queue when it has a free place and
its delay has passed. A fixed pool of ``concurrency`` workers takes requests from the ready queue
(no task per request) and runs the per-request path. The crawl ends when the start requests are
all seeded and the frontier reports nothing pending and nothing in flight.

Per-request path (:meth:`Engine._process`), top to bottom:
robots.txt → page budget → fetch (middlewares → downloader) → throttle → redirect? → retry? →
status check → callback → route each output (requests → filters → children; items →
validation → pipelines) → write items → ack the request with its children.

Politeness (see docs/politeness.md): robots.txt (:mod:`crawler.robots`) is checked right
before the download, a dict lookup once an origin's file is known; ``Crawl-delay`` and
``download_delay`` are each slot's minimum delay, which AutoThrottle (:mod:`crawler.throttle`)
moves above. Spider-trap budgets: ``depth_limit``, ``url_length_limit`` and
``max_repeated_segments`` when a request is produced (:meth:`Engine._allowed`),
``max_pages_per_host`` when it is about to be fetched. Every drop is counted by reason.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from .downloader import Downloader
from .errors import (
    CloseSpider,
    DownloadError,
    HttpError,
    IgnoreRequest,
    InvalidURL,
    RedirectError,
    ResponseTooLarge,
    UnstorableRequest,
)
from .exporters import Exporter
from .feeds import FeedSet, stamp_items, tag_item
from .frontier.base import Frontier, Lease
from .frontier.codec import encode_request
from .http import Failure, Request, Response
from .items import InvalidItem, ItemProcessor, is_item, to_dict
from .middleware import MiddlewareChain, aiter_outputs
from .robots import RobotsCache, RobotsUnavailable
from .settings import Settings
from .spider import Spider
from .stats import Stats
from .throttle import AutoThrottle, retry_after
from .urls import DomainFilter, host_key, parse_url

logger = logging.getLogger(__name__)

__all__ = ["Engine", "Slot"]

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Where a <meta http-equiv="refresh"> is looked for: the start of the page, as in Scrapy.
_META_REFRESH_SCAN = 4096
# Small batches: the first requests go out while start() is still producing the rest.
_SEED_BATCH = 100


class HostGate(Protocol):
    """Cluster-wide per-host limits (a shared frontier's): ``slot(host, concurrency, delay)``
    is an async context manager held around each download to ``host``."""

    def slot(
        self, host: str, concurrency: int, delay: float
    ) -> AbstractAsyncContextManager[Any]: ...


@dataclass(slots=True)
class Slot:
    """Per-host politeness state, created on first use and dropped when idle (a slot with a
    delay is kept: its delay and last start still matter)."""

    key: str
    concurrency: int
    delay: float
    #: The delay never goes below this: ``download_delay``, or robots.txt ``Crawl-delay``.
    min_delay: float = 0.0
    active: int = 0
    queue: deque[Lease] = field(default_factory=deque)
    next_start: float = 0.0
    timer: asyncio.TimerHandle | None = None


class Engine:
    """Runs one spider over one frontier, downloader, item processor and exporter.

    Built by :func:`crawler.runner.run_spider` (the composition root); run with
    :meth:`run`, which returns the finish reason. ``robots`` (None: robots.txt not obeyed)
    and ``throttle`` (None: fixed delays) are the politeness components.
    """

    def __init__(
        self,
        *,
        spider: Spider,
        settings: Settings,
        frontier: Frontier,
        downloader: Downloader,
        items: ItemProcessor,
        middlewares: MiddlewareChain,
        exporter: Exporter | None,
        invalid_exporter: Exporter | None,
        stats: Stats,
        robots: RobotsCache | None = None,
        throttle: AutoThrottle | None = None,
        host_gate: HostGate | None = None,
    ) -> None:
        self.spider = spider
        self.host_gate = host_gate
        self.settings = settings
        self.frontier = frontier
        self.downloader = downloader
        self.items = items
        self.middlewares = middlewares
        self.exporter = exporter
        self.invalid_exporter = invalid_exporter
        self.stats = stats
        self.robots = robots
        self.throttle = throttle

        self._slots: dict[str, Slot] = {}
        self._ready: deque[tuple[Lease, Slot]] = deque()
        self._ready_waiters: deque[asyncio.Future[None]] = deque()
        self._wake = asyncio.Event()
        self._buffered = 0  # leased, waiting in a slot queue or the ready queue
        self._active = 0  # in the per-request path right now
        self._seeding = True
        self._stopping: str | None = None
        self._retry_codes = frozenset(settings.retry_http_codes)
        # Scrapy's names (handle_httpstatus_list / _all) are honoured too, on the spider here
        # and in request.meta per response: a spider written for Scrapy sees the same pages.
        self._handle_status = (
            frozenset(settings.handle_status) | frozenset(spider.handle_status)
            | frozenset(getattr(spider, "handle_httpstatus_list", ()))
        )
        self._handle_all = bool(getattr(spider, "handle_httpstatus_all", False))
        allowed = spider.allowed_domains
        self._domains = DomainFilter(allowed) if allowed else None
        self._depth_limit = settings.depth_limit
        self._depth_priority = settings.depth_priority
        self._url_length_limit = settings.url_length_limit
        self._max_repeated = settings.max_repeated_segments
        self._max_pages = settings.max_pages_per_host
        self._meta_refresh = settings.meta_refresh
        self._host_pages: dict[str, int] = {}
        # Leased but not finished stays within concurrency plus a small prefetch, so priorities
        # decide what runs next instead of whatever was leased long ago.
        self._lease_target = settings.concurrency + settings.concurrency // 4
        self._close_items = settings.close_on.items
        self._close_pages = settings.close_on.pages
        self._close_errors = settings.close_on.errors
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._done_feeding = False
        self._errors = 0
        self._outbox = frontier.outbox
        self._stores_requests = frontier.stores_requests
        # Items for feeds carry a tag (class, token) that the feeds strip off again.
        self._tag_items = isinstance(exporter, FeedSet) and exporter.wants_tags

    # ------------------------------------------------------------------ run loop

    @property
    def stopping(self) -> str | None:
        """The reason the crawl is stopping, or None while it runs."""
        return self._stopping

    def stop(self, reason: str) -> None:
        """Stop gracefully: lease nothing more, finish what is in flight, then return."""
        if self._stopping is None:
            logger.info("Stopping (%s): finishing %d requests in flight", reason, self._active)
            self._stopping = reason
        self._wake.set()

    def gauges(self) -> tuple[int, int]:
        """(pending as known here, in flight) for the progress display."""
        return self._buffered, self._active

    async def run(self) -> str:
        """Crawl until the frontier is finished or a stop is asked; returns the reason."""
        self.stats.start()
        reason = "finished"
        try:
            await self._call_spider("opened")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._seed())
                for _ in range(self.settings.concurrency):
                    tg.create_task(self._worker())
                if self.settings.close_on.seconds:
                    tg.create_task(self._close_after(self.settings.close_on.seconds))
                await self._feed()
                self._done_feeding = True
                self._stop_workers()
                reason = self._stopping or "finished"
                self._stopping = reason  # ends the seeder and the timer too
                self._wake.set()
        finally:
            await self._give_back()
            self.stats.set("finish_reason", reason)
            try:
                await self._call_spider("closed", reason)
            except Exception:
                logger.exception("%r.closed() failed", self.spider)
        return reason

    async def _feed(self) -> None:
        frontier = self.frontier
        while True:
            if self._stopping is not None:
                # Graceful stop: hand back what is leased but not started, wait for the rest.
                await self._give_back()
                while self._active:
                    self._wake.clear()
                    await self._wake.wait()
                return
            room = self._lease_target - self._buffered - self._active
            leased = await frontier.lease(room) if room > 0 else []
            for lease in leased:
                self._file(lease)
            if leased:
                continue
            if (
                not self._seeding
                and self._buffered == 0
                and self._active == 0
                and await frontier.is_finished()
            ):
                return
            self._wake.clear()
            wait = frontier.next_ready_in()
            if room <= 0 or wait is None:
                await self._wake.wait()
            else:
                try:
                    # A wait of 0 with room free means another process holds the work (a
                    # shared frontier): poll gently.
                    async with asyncio.timeout(wait if wait > 0 else 0.05):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _seed(self) -> None:
        """Add the spider's start requests in batches, without blocking the crawl. A frontier
        that was already seeded (a resumed job, a worker joining a shared crawl) is not
        seeded again."""
        batch: list[Request] = []
        if self.frontier.seeded:
            logger.info("Frontier already seeded: start requests skipped")
            self._seeding = False
            self._wake.set()
            return
        try:
            async for request in _aiter(self.spider.start()):
                if self._stopping is not None:
                    break
                if not isinstance(request, Request):
                    logger.error("start() yielded %r, not a Request: ignored", request)
                    self.stats.inc("errors/TypeError")
                    continue
                batch.append(request)
                if len(batch) >= _SEED_BATCH:
                    await self._add(batch)
                    batch = []
                    await asyncio.sleep(0)
            if batch:
                await self._add(batch)
            if self._stopping is None:
                await self.frontier.mark_seeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("start() of %r failed: %s", self.spider, exc)
            self.stats.inc(f"errors/{type(exc).__name__}")
        finally:
            self._seeding = False
            self._wake.set()

    async def _add(self, requests: list[Request]) -> None:
        added = await self.frontier.add(requests)
        self.stats.inc("requests_enqueued", added)
        if added < len(requests):
            self.stats.inc("duplicates_filtered", len(requests) - added)
        self._wake.set()

    async def _close_after(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._stopping is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop("close_on_seconds")
                return
            await asyncio.sleep(min(left, 0.5))

    # --------------------------------------------------------------- slots

    def _file(self, lease: Lease) -> None:
        """Put a leased request in its host's slot queue and start it if the slot allows."""
        key = host_key(lease.request.yurl)
        slot = self._slots.get(key) or self._new_slot(key)
        slot.queue.append(lease)
        self._buffered += 1
        self._dispatch(slot)

    def _new_slot(self, key: str) -> Slot:
        s = self.settings
        slot = self._slots[key] = Slot(
            key, s.concurrency_per_host, s.download_delay, min_delay=s.download_delay
        )
        if self.throttle is not None:
            self.throttle.start(slot)
        return slot

    def _requeue(self, lease: Lease, slot: Slot) -> None:
        """Put a started request back at the head of its slot's queue (its place in the slot
        is given back by the worker, which then dispatches under the slot's delay)."""
        slot.queue.appendleft(lease)
        self._buffered += 1

    def _dispatch(self, slot: Slot) -> None:
        """Move requests from the slot's queue to the ready queue while it has room."""
        while slot.queue and slot.active < slot.concurrency:
            if slot.delay:
                now = time.monotonic()
                if now < slot.next_start:
                    if slot.timer is None:
                        slot.timer = asyncio.get_running_loop().call_at(
                            slot.next_start, self._on_timer, slot
                        )
                    return
                slot.next_start = now + slot.delay
            slot.active += 1
            self._ready.append((slot.queue.popleft(), slot))
            if self._ready_waiters:
                waiter = self._ready_waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _on_timer(self, slot: Slot) -> None:
        slot.timer = None
        self._dispatch(slot)

    def _slot_done(self, slot: Slot) -> None:
        slot.active -= 1
        if slot.queue:
            self._dispatch(slot)
        elif (
            not slot.active
            and slot.timer is None
            and not slot.delay
            and self._slots.get(slot.key) is slot
        ):
            del self._slots[slot.key]  # idle: a crawl over a million hosts must not keep them all

    def _stop_workers(self) -> None:
        for waiter in self._ready_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._ready_waiters.clear()

    async def _give_back(self) -> None:
        """Release leased requests that never started, so a resume or another worker has them."""
        leases: list[Lease] = []
        for lease, slot in self._ready:  # requests in the ready queue hold a place in a slot
            slot.active -= 1
            leases.append(lease)
        self._ready.clear()
        for slot in self._slots.values():
            leases.extend(slot.queue)
            slot.queue.clear()
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
        if leases:
            self._buffered -= len(leases)
            await self.frontier.release(leases)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        ready = self._ready
        while True:
            while not ready:
                if self._done_feeding:
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                self._ready_waiters.append(waiter)
                await waiter
            lease, slot = ready.popleft()
            self._buffered -= 1
            self._active += 1
            try:
                await self._process(lease, slot)
            finally:
                self._active -= 1
                self._slot_done(slot)
                self._wake.set()

    # ---------------------------------------------------------- per request

    async def _process(self, lease: Lease, slot: Slot) -> None:
        """The whole life of one leased request. The one place that catches ``Exception`` for
        a request: whatever a server, middleware, callback or pipeline does, it is logged with
        the URL, counted, and the crawl goes on."""
        request = lease.request
        stats = self.stats
        try:
            robots = self.robots
            if robots is not None and not await self._robots_allow(robots, lease, slot):
                return
            if self._max_pages and not self._page_budget(request, slot):
                stats.inc("dropped/max_pages_per_host")
                logger.debug("Dropped %s: max_pages_per_host=%d reached", request.url,
                             self._max_pages)
                await self.frontier.ack(lease)
                return
            stats.inc("requests")
            stats.max("max_depth", request.depth)
            throttle = self.throttle
            started = time.monotonic() if throttle is not None else 0.0
            try:
                if self.host_gate is None:
                    result = await self._fetch(request)
                else:
                    # A shared frontier: per-host concurrency and delay hold for the whole
                    # cluster, so every worker takes a cluster-wide token for the host first.
                    delay = max(slot.delay, slot.min_delay)
                    async with self.host_gate.slot(slot.key, slot.concurrency, delay):
                        result = await self._fetch(request)
            except (DownloadError, InvalidURL) as exc:
                await self._download_failed(lease, exc)
                return
            except IgnoreRequest as exc:
                stats.inc(f"dropped/{exc.reason}")
                logger.debug("Dropped %s: %s", request.url, exc)
                await self.frontier.ack(lease)
                return
            if isinstance(result, Request):  # a middleware asked for another request instead
                await self._ack(lease, [result], [])
                return
            if throttle is not None:
                throttle.on_response(slot, time.monotonic() - started, result)
            await self._handle_response(lease, result)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
            await self._ack_quietly(lease)
        except Exception as exc:
            self._count_error(exc, request)
            await self._ack_quietly(lease)

    async def _robots_allow(self, robots: RobotsCache, lease: Lease, slot: Slot) -> bool:
        """robots.txt. True to go on; False when the request was dealt with here: dropped
        (disallowed), held back (robots.txt unreachable for now), or queued again (a
        Crawl-delay just learnt must apply from the first page on)."""
        request = lease.request
        rules = robots.known(request.url)  # the common case: one dict lookup
        if rules is None:
            # The first request to this origin, or one waiting for a retry of its robots.txt:
            # fetch it, or wait for the fetch another request started.
            state = await robots.resolve(request)
            if isinstance(state, RobotsUnavailable):
                await self._robots_unavailable(lease, state)
                return False
            rules = state
            if rules.crawl_delay:
                # This request was dispatched before the delay was known: back in the queue.
                self._raise_min_delay(slot, rules.crawl_delay)
                if self._stopping is not None:
                    await self.frontier.release([lease])  # the slots were emptied already
                else:
                    self._requeue(lease, slot)
                return False
        if rules.allows(request.url):
            return True
        self.stats.inc("robots_denied")
        logger.debug("Forbidden by robots.txt: %s", request.url)
        await self.frontier.ack(lease)
        return False

    async def _robots_unavailable(self, lease: Lease, state: RobotsUnavailable) -> None:
        request = lease.request
        if state.final:
            self.stats.inc("dropped/robots_unavailable")
            logger.debug("Dropped %s: robots.txt unreachable (%s)", request.url, state.reason)
            await self.frontier.ack(lease)
            return
        # Disallowed for now, not for good: back to the frontier until the next try.
        self.stats.inc("robots/deferred")
        await self.frontier.reschedule(lease, request, state.retry_in())

    def _raise_min_delay(self, slot: Slot, delay: float) -> None:
        if delay <= slot.min_delay:
            return
        slot.min_delay = delay
        slot.delay = max(slot.delay, delay)
        # The robots.txt fetch was a request to this host too.
        slot.next_start = max(slot.next_start, time.monotonic() + delay)

    def _page_budget(self, request: Request, slot: Slot) -> bool:
        """max_pages_per_host: count this fetch against its host; False when spent. A retry
        was counted the first time."""
        meta = request._meta
        if meta and meta.get("retry_times"):
            return True
        key = slot.key
        done = self._host_pages.get(key, 0)
        if done >= self._max_pages:
            return False
        self._host_pages[key] = done + 1
        return True

    async def _fetch(self, request: Request) -> Response | Request:
        """Middlewares' process_request → download → process_response (or process_exception)."""
        mw = self.middlewares
        early = await mw.process_request(request)
        if early is not None:
            return early
        try:
            response = await self.downloader.fetch(request)
        except (DownloadError, InvalidURL) as exc:
            replacement = await mw.process_exception(request, exc)
            if replacement is None:
                raise
            return replacement
        return await mw.process_response(request, response)

    async def _handle_response(self, lease: Lease, response: Response) -> None:
        request = lease.request
        status = response.status
        stats = self.stats
        stats.inc("responses")
        stats.inc(f"status/{status}")
        handled = (
            status in request.handle_status or status in self._handle_status or self._handle_all
        )
        meta = request._meta
        if meta and not handled:
            handled = bool(meta.get("handle_httpstatus_all")) or status in meta.get(
                "handle_httpstatus_list", ()
            )
        follow = not (meta and meta.get("dont_redirect"))
        if status in _REDIRECT_CODES and not handled and follow and "Location" in response.headers:
            await self._redirect(lease, response, response.headers["Location"], "http")
            return
        if (
            status in self._retry_codes
            and not handled
            and await self._retry(lease, f"status/{status}", retry_after(response))
        ):
            return
        if self._close_pages and stats.get("responses") >= self._close_pages:
            self.stop("close_on_pages")
        if not (200 <= status < 300) and not handled:
            stats.inc("http_errors")
            await self._fail(lease, HttpError(request.url, status, response), response)
            return
        if (
            self._meta_refresh
            and follow
            # Cheap first: "http-equiv" alone is on most pages (Content-Type), "refresh" not.
            and b"refresh" in response.body[:_META_REFRESH_SCAN].lower()
        ):
            target = self._meta_refresh_target(response)
            if target is not None:
                await self._redirect(lease, response, target, "meta_refresh")
                return
        children, items = await self._run_callback(
            self._resolve(request.callback) or self.spider.parse, request, response,
            (response,), request.cb_kwargs,
        )
        await self._ack(lease, children, items)

    def _meta_refresh_target(self, response: Response) -> str | None:
        """The URL an HTML page's ``<meta http-equiv="refresh">`` sends to, when it is to be
        followed: within ``meta_refresh_max_delay``, not inside ``<script>``/``<noscript>``,
        and not the page itself."""
        content_type = response.headers.get("Content-Type", "text/html").lower()
        if "html" not in content_type:
            return None
        from w3lib.html import get_meta_refresh  # parsel's dependency; only pages that have one

        try:
            delay, url = get_meta_refresh(response.text[:_META_REFRESH_SCAN], response.url)
        except ValueError:  # a hostile refresh value: the page is parsed as it is
            return None
        if url is None or delay is None or delay > self.settings.meta_refresh_max_delay:
            return None
        try:
            target = str(parse_url(url))
        except InvalidURL as exc:  # javascript:, a broken host...: the page is what there is
            logger.debug("Not following the meta refresh of %s: %s", response.url, exc.reason)
            return None
        return None if target == response.url else target

    async def _redirect(
        self, lease: Lease, response: Response, location: str, kind: str
    ) -> None:
        """Follow a redirect (``kind``: ``http`` for a 3xx Location, ``meta_refresh``) as a
        new request in the same chain: loops and ``max_redirects`` end it with a
        RedirectError."""
        request = lease.request
        try:
            target = parse_url(location.strip(), response.yurl)
        except InvalidURL as exc:
            await self._fail(
                lease, RedirectError(request.url, f"bad redirect target: {exc.reason}"), response
            )
            return
        chain: list[str] = [*request.meta.get("redirect_urls", ()), request.url]
        target_s = str(target)
        if target_s in chain:
            await self._fail(lease, RedirectError(request.url, f"redirect loop via {target_s}"),
                             response)
            return
        if len(chain) > self.settings.max_redirects:
            await self._fail(
                lease,
                RedirectError(
                    request.url, f"more than max_redirects={self.settings.max_redirects}"
                ),
                response,
            )
            return
        self.stats.inc("redirects")
        if kind != "http":
            self.stats.inc(f"redirects/{kind}")
        method, body = request.method, request.body
        if kind != "http" or (response.status == 303 and method != "HEAD") or (
            response.status in (301, 302) and method == "POST"
        ):
            method, body = "GET", b""  # what browsers do; 307/308 keep method and body
        meta = dict(request.meta)
        meta["redirect_urls"] = chain
        new = Request(
            target,
            request.callback,
            method=method,
            headers=redirect_headers(request, target, body_dropped=not body and bool(request.body)),
            body=body,
            errback=request.errback,
            cb_kwargs=request._cb_kwargs,
            meta=meta,
            priority=request.priority,
            dont_filter=request.dont_filter,
            depth=request.depth,
            handle_status=request.handle_status,
        )
        await self._ack(lease, [new] if self._allowed(new) else [], [])

    async def _retry(self, lease: Lease, reason: str, retry_after: float | None) -> bool:
        """Reschedule with backoff if retries are left; False when they have run out."""
        request = lease.request
        s = self.settings
        if request.meta.get("dont_retry"):  # Scrapy's key: this request fails at once
            return False
        times = int(request.meta.get("retry_times", 0))
        max_times = int(request.meta.get("max_retry_times", s.retries))
        if times >= max_times:
            self.stats.inc("retries_exhausted")
            return False
        backoff = min(s.retry_backoff_max, s.retry_backoff * (2**times))
        delay = backoff * random.uniform(0.5, 1.5)  # jitter: retries of a burst spread out
        if retry_after is not None:
            delay = max(delay, retry_after)
            self._pause_host(request, retry_after)
        meta = dict(request.meta)
        meta["retry_times"] = times + 1
        self.stats.inc("retries")
        self.stats.inc(f"retries/{reason}")
        logger.debug("Retrying %s in %.2fs (%s, retry %d of %d)",
                     request.url, delay, reason, times + 1, max_times)
        await self.frontier.reschedule(lease, request.replace(meta=meta), delay)
        return True

    def _pause_host(self, request: Request, seconds: float) -> None:
        """Retry-After: hold every request to this host, not only the one that got it."""
        key = host_key(request.yurl)
        slot = self._slots.get(key) or self._new_slot(key)
        slot.next_start = max(slot.next_start, time.monotonic() + seconds)
        # A slot with a pause is kept while paused even with delay 0.
        if not slot.delay:
            slot.delay = 1e-9

    async def _download_failed(self, lease: Lease, exc: DownloadError | InvalidURL) -> None:
        if isinstance(exc, ResponseTooLarge):
            self.stats.inc("response_too_large")  # besides errors/ResponseTooLarge
        elif (
            isinstance(exc, DownloadError)
            and exc.retryable
            and await self._retry(lease, type(exc).__name__, None)
        ):
            return
        await self._fail(lease, exc, None)

    async def _fail(
        self, lease: Lease, exc: Exception, response: Response | None
    ) -> None:
        """The request failed for good: count it, call the errback, ack it."""
        request = lease.request
        name = type(exc).__name__
        self.stats.inc(f"errors/{name}")
        errback = self._resolve(request.errback)
        children: list[Request] = []
        items: list[Any] = []
        if errback is not None:
            children, items = await self._run_callback(
                errback, request, response, (Failure(exc, request, response),), {}
            )
        elif isinstance(exc, HttpError):
            logger.info("Ignoring response %s: HTTP %d not handled", request.url, exc.status)
        else:
            logger.warning("Failed %s: %s", request.url, exc)
        self._check_error_limit()
        await self._ack(lease, children, items)

    async def _run_callback(
        self,
        callback: Callable[..., Any],
        request: Request,
        response: Response | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[list[Request], list[Any]]:
        """Run a callback or errback and route what it produces: requests through the filters
        to children, items through validation and pipelines. Outputs produced before an
        exception are kept; the exception is logged and counted."""
        children: list[Request] = []
        items: list[Any] = []
        try:
            result = callback(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            outputs: AsyncIterable[Any] | None = None
            if self.middlewares.has_output_hooks and response is not None:
                outputs = self.middlewares.process_output(response, aiter_outputs(result))
            if outputs is None and _is_sync_iterable(result):
                for output in result:
                    await self._route(output, request, children, items)
            else:
                async for output in outputs or aiter_outputs(result):
                    await self._route(output, request, children, items)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except Exception as exc:
            self._count_error(exc, request, where=getattr(callback, "__name__", "callback"))
        return children, items

    async def _route(
        self, output: Any, parent: Request, children: list[Request], items: list[Any]
    ) -> None:
        if output is None:
            return
        if type(output) is Request:
            depth = parent.depth + 1
            if output.depth < depth:
                output._adopt(depth, output.priority + self._depth_priority * depth)
            if self._allowed(output) and self._storable(output):
                children.append(output)
            return
        if is_item(output):
            item = self.items.validate(output)
            if type(item) is InvalidItem:
                self._invalid(item, parent)
                return
            item = await self.items.run_pipelines(item)
            if item is None:
                self.stats.inc("items_dropped")
                return
            record = to_dict(item)
            items.append(tag_item(record, item) if self._tag_items else record)
            return
        self.stats.inc("errors/TypeError")
        logger.error("Callback for %s yielded %s, not an item or a Request: ignored",
                     parent.url, type(output).__name__)

    def _allowed(self, request: Request) -> bool:
        """The built-in filters on a new request: depth limit, URL length, repeated path
        segments (spider traps) and allowed_domains."""
        depth = request.depth
        if self._depth_limit and depth > self._depth_limit:
            self.stats.inc("dropped/depth_limit")
            return False
        url = request.url
        if self._url_length_limit and len(url) > self._url_length_limit:
            self.stats.inc("dropped/url_length_limit")
            logger.debug("Dropped %s...: longer than url_length_limit=%d", url[:200],
                         self._url_length_limit)
            return False
        if self._max_repeated and _repeats_segment(url, self._max_repeated):
            self.stats.inc("dropped/max_repeated_segments")
            logger.debug("Dropped %s: a path segment repeats more than %d times", url,
                         self._max_repeated)
            return False
        if self._domains is not None and not self._domains.allows(request.yurl.host or ""):
            self.stats.inc("offsite_dropped")
            logger.debug("Dropped offsite request %s", request.url)
            return False
        return True

    def _storable(self, request: Request) -> bool:
        """Frontiers that keep requests outside the process need them in plain JSON: a
        request that cannot be stored fails here, where the spider yielded it, naming the
        field, instead of failing the whole page's ack later."""
        if not self._stores_requests:
            return True
        try:
            encode_request(request)
        except UnstorableRequest as exc:
            self.stats.inc("errors/UnstorableRequest")
            logger.error("Dropped %s", exc)
            return False
        return True

    def _invalid(self, invalid: InvalidItem, request: Request) -> None:
        self.stats.inc("items_invalid")
        if self.invalid_exporter is not None:
            try:
                item: Any = to_dict(invalid.item)
            except TypeError:
                item = repr(invalid.item)
            record = {"url": request.url, "errors": invalid.errors, "item": item}
            self.invalid_exporter.write([record])

    async def _ack(self, lease: Lease, children: list[Request], items: list[Any]) -> None:
        frontier = self.frontier
        if items and self._tag_items:
            stamp_items(items, lease.request)
        if items and not self._outbox and self.exporter is not None:
            # Written before the ack: a crash in between repeats this request's items rather
            # than losing them. Outbox frontiers commit them with the ack instead.
            self.exporter.write(items)
        added = await frontier.ack(lease, children, items if self._outbox else ())
        if added < len(children):
            self.stats.inc("duplicates_filtered", len(children) - added)
        if items:
            # Counted after the ack, so a durable job's saved stats never count an item whose
            # ack was not committed with them.
            stats = self.stats
            stats.inc("items_scraped", len(items))
            if self._close_items and stats.get("items_scraped") >= self._close_items:
                self.stop("close_on_items")
            if self._outbox and self.exporter is not None:
                await frontier.drain(self.exporter)

    async def _ack_quietly(self, lease: Lease) -> None:
        try:
            await self.frontier.ack(lease)
        except KeyError:
            pass  # already acked before the failure

    # -------------------------------------------------------------- helpers

    def _resolve(self, callback: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
        """A request's callback/errback: a callable as is, a name as the spider's method."""
        if not isinstance(callback, str):
            return callback
        fn = self._callbacks.get(callback)
        if fn is None:
            fn = getattr(self.spider, callback, None)
            if not callable(fn):
                raise AttributeError(f"{type(self.spider).__name__} has no method {callback!r}")
            self._callbacks[callback] = fn
        return fn

    def _count_error(self, exc: BaseException, request: Request, where: str = "") -> None:
        name = type(exc).__name__
        self.stats.inc(f"errors/{name}")
        place = f" in {where}" if where else ""
        logger.error("Error%s processing %s: %s: %s", place, request.url, name, exc,
                     exc_info=exc)
        self._check_error_limit()

    def _check_error_limit(self) -> None:
        self._errors += 1
        if self._close_errors and self._errors >= self._close_errors:
            self.stop("close_on_errors")

    async def _call_spider(self, name: str, *args: Any) -> None:
        method = getattr(self.spider, name, None)
        if method is None:
            return
        result = method(*args)
        if inspect.isawaitable(result):
            await result


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


def _repeats_segment(url: str, limit: int) -> bool:
    """Whether one segment of the URL's path occurs more than ``limit`` times
    (``/a/b/a/b/a/b/a/b``: a relative link that keeps growing the path)."""
    if url.count("/") - 2 <= limit:  # too few segments to repeat one: the common case
        return False
    start = url.find("/", 8)
    if start == -1:
        return False
    end = len(url)
    for sep in "?#":
        cut = url.find(sep, start)
        if cut != -1 and cut < end:
            end = cut
    counts: dict[str, int] = {}
    for segment in url[start:end].split("/"):
        if segment:
            n = counts.get(segment, 0) + 1
            if n > limit:
                return True
            counts[segment] = n
    return False


def _is_sync_iterable(result: Any) -> bool:
    return isinstance(result, (list, tuple)) or inspect.isgenerator(result)


async def _aiter(source: Any) -> Any:
    """Iterate a start() that is an async generator, or (leniently) a plain iterable."""
    if hasattr(source, "__aiter__"):
        async for x in source:
            yield x
    else:
        for x in source:
            yield x
