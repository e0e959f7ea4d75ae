"""The engine: the run loop and the per-request path.

Run loop (:meth:`Engine._feed`). The frontier schedules by host (:mod:`crawler.slots`): a
lease returns only requests whose host may start one now, so the engine leases as many as it
has free places under ``concurrency`` and starts each at once, one task per request in
flight. Each finished request frees its place and wakes the feeder. The crawl ends when the
start requests are all seeded and the frontier reports nothing pending and nothing in flight.

Per-request path (:meth:`Engine._process`), top to bottom:
robots.txt → page budget → fetch (middlewares → downloader) → throttle → redirect? → retry? →
status check → callback → route each output (requests → filters → children; items →
validation → pipelines) → write items → ack the request with its children.

Politeness: robots.txt (:mod:`crawler.robots`) is checked right before the download, a dict
lookup once an origin's file is known; while it is fetched the host is held, and while it is
unreachable the host is paused. ``Crawl-delay`` and ``download_delay`` are each slot's
minimum delay, which AutoThrottle (:mod:`crawler.throttle`) moves above; ``Retry-After``
pauses the host alone. Spider-trap budgets: ``depth_limit``, ``url_length_limit`` and
``max_repeated_segments`` when a request is produced (:meth:`Engine._allowed`),
``max_pages_per_host`` when it is about to be fetched. Every drop is counted by reason.

Size: this module is longer than the others (about 900 lines) because it is the run loop
and the per-request path with every branch that path takes (robots, failed hosts, retries,
redirects, errbacks, callback output, the ack); the decisions themselves live elsewhere as
functions of a request and a response (:mod:`crawler.redirect`, :mod:`crawler.filters`,
:mod:`crawler.throttle`, :mod:`crawler.robots`). What is left here is the order of those steps
and what each outcome does to the frontier, which reads best in one place, top to bottom.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import inspect
import logging
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from types import GeneratorType
from typing import Any

from . import redirect
from .downloader import Downloader
from .errors import (
    BrowserUnavailable,
    CloseSpider,
    ConnectError,
    DownloadError,
    FrontierLost,
    HttpError,
    IgnoreRequest,
    InvalidURL,
    OutOfFiles,
    OutputClosed,
    OutputFailed,
    RedirectError,
    ResponseTooLarge,
    UnstorableRequest,
)
from .exporters import Exporter
from .feeds import FeedSet, stamp_items, tag_item
from .filters import RequestFilters
from .frontier.base import Frontier, Lease
from .frontier.codec import check_storable
from .http import Failure, Request, Response
from .items import InvalidItem, ItemProcessor, LossyValues, PipelineFailed, is_item, to_dict
from .middleware import MiddlewareChain, aiter_outputs, same_origin
from .robots import RobotsCache, RobotsUnavailable, origin_of
from .settings import Settings
from .spider import Spider
from .stats import Stats, plural
from .throttle import AutoThrottle, retry_after
from .urls import host_key

logger = logging.getLogger(__name__)

__all__ = ["Engine"]

# Small batches: the first requests go out while start() is still producing the rest.
_SEED_BATCH = 100
# A callback's output goes on in batches of this many requests (or items) while it runs, so
# memory does not grow with what one callback yields.
_OUTPUT_BATCH = 1000
# The young generation's collection threshold while a crawl runs (Python's default: 700).
# Each request in flight holds about a hundred container objects (coroutines, futures, the
# HTTP parser's state) for a few milliseconds, so at 700 the collector runs every few pages
# and walks objects that are all alive; the crawl makes almost no cyclic garbage.
_GC_YOUNG_THRESHOLD = 20_000


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
    ) -> None:
        self.spider = spider
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

        self.slots = frontier.slots
        # At most an eighth of the places wait for a batch: small crawls lease at once.
        self._lease_batch = max(1, min(frontier.lease_batch, settings.concurrency // 8))
        if throttle is not None:
            self.slots.on_new = throttle.start
            for slot in self.slots:  # the slots a resumed frontier made already
                throttle.start(slot)
        self._wake = asyncio.Event()
        self._active = 0  # leased and in the per-request path right now
        #: The request batches being filled (a running callback's, the seeder's), by id: for
        #: gauges(), never read on the per-request path.
        self._held: dict[int, list[Request]] = {}
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
        self._filters = RequestFilters(settings, spider.allowed_domains or (), stats)
        self._allowed = self._filters.allows
        self._depth_priority = settings.depth_priority
        self._max_pages = settings.max_pages_per_host
        self._meta_refresh = settings.meta_refresh
        self._host_pages: dict[str, int] = {}
        self._close_items = settings.close_on.items
        self._close_pages = settings.close_on.pages
        self._close_errors = settings.close_on.errors
        self._callbacks: dict[str, Callable[..., Any]] = {}
        #: A request without a callback goes to parse(), or a CrawlSpider's _parse (its rules).
        self._default_callback = "_parse" if hasattr(spider, "_parse") else "parse"
        self._errors = 0
        self._pipelines = bool(items.pipelines)
        #: "status/<code>" and "depth/<n>" stat keys, made once each.
        self._status_keys: dict[int, str] = {}
        self._depth_keys: dict[int, str] = {}
        self._outbox = frontier.outbox
        self._stores_requests = frontier.stores_requests
        #: The crawl's feeds, told which request each batch of items came from (its token).
        self._feeds = exporter if isinstance(exporter, FeedSet) else None
        # Items carry a tag (class, token, time) that the feeds strip off again: through an
        # outbox (the token is stored with the item) and for a feed filtering by class.
        self._tag_items = self._feeds is not None and (
            self._feeds.filters_classes or (frontier.outbox and self._feeds.wants_tags))
        self._lossy = LossyValues()
        #: Origins that refused connections or did not resolve, after retries: the reason.
        self._failed_hosts: dict[str, str] = {}
        # An in-process frontier's "fingerprint added already" check, handed to each response
        # so follow_all() builds no Request for a link it would drop as a duplicate. Not with
        # output middlewares: they may change or drop what a callback yields.
        # Output middlewares may change what a page yields: they see every link.
        self._known = None if middlewares.has_output_hooks else frontier.known
        #: The links it said yes to (see Response.known_links), bounded by follow_all; a
        #: shared frontier's own set, which also holds the links other workers sent.
        self._known_links: set[str] | None = None
        if self._known is not None:
            links = frontier.known_links
            self._known_links = links if links is not None else set()

    # ------------------------------------------------------------------ run loop

    @property
    def stopping(self) -> str | None:
        """The reason the crawl is stopping, or None while it runs."""
        return self._stopping

    def stop(self, reason: str) -> None:
        """Stop gracefully: lease nothing more, finish what is in flight, then return."""
        if self._stopping is None:
            logger.info("Stopping (%s): finishing %s in flight", reason,
                        plural(self._active, "request"))
            self._stopping = reason
        self._wake.set()

    def gauges(self) -> tuple[int, int]:
        """(requests made and not yet in the frontier, in flight) for the progress display:
        what running callbacks and the seeder hold in their current batch (the display adds
        the frontier's own pending count), and the requests in the per-request path."""
        return sum(len(batch) for batch in self._held.values()), self._active

    async def run(self) -> str:
        """Crawl until the frontier is finished or a stop is asked; returns the reason."""
        with _collector_tuned():
            return await self._run_crawl()

    async def _run_crawl(self) -> str:
        self.stats.start()
        reason = "finished"
        try:
            await self._call_spider("opened")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._seed())
                if self.settings.close_on.seconds:
                    tg.create_task(self._close_after(self.settings.close_on.seconds))
                await self._feed(tg)
                reason = self._stopping or "finished"
                self._stopping = reason  # ends the seeder and the timer too
                self._wake.set()
        finally:
            self.stats.set("finish_reason", reason)
            try:
                await self._call_spider("closed", reason)
            except Exception:
                logger.exception("%r.closed() failed", self.spider)
        return reason

    async def _feed(self, tg: asyncio.TaskGroup) -> None:
        """Lease what may start now and start it, until the frontier is finished or a stop
        is asked (then wait for the requests in flight)."""
        frontier = self.frontier
        limit = self.settings.concurrency
        while True:
            if self._stopping is not None:
                while self._active:
                    self._wake.clear()
                    await self._wake.wait()
                return
            # Cleared before leasing: a request that ends meanwhile must wake the wait below.
            self._wake.clear()
            room = limit - self._active
            # A frontier with a round trip per call is asked once a few places are free.
            worth = room >= self._lease_batch or (room > 0 and self._active == 0)
            try:
                leased = await frontier.lease(room) if worth else []
                for lease in leased:
                    self._active += 1
                    tg.create_task(self._run(lease))
                if leased:
                    await asyncio.sleep(0)  # let them start before leasing more
                    continue
                if not self._seeding and self._active == 0 and await frontier.is_finished():
                    return
            except FrontierLost as exc:  # a shared frontier's state vanished: the run fails
                logger.error("Stopping: %s", exc)
                self.stop("frontier_lost")
                continue
            wait = frontier.next_ready_in()
            if not worth or wait is None:  # a request that ends wakes this up
                await self._wake.wait()
            else:
                try:
                    # A wait of 0 with room free means another process holds the work (a
                    # shared frontier): poll gently.
                    async with asyncio.timeout(wait if wait > 0 else 0.05):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _run(self, lease: Lease) -> None:
        try:
            await self._process(lease)
        finally:
            self._active -= 1
            self._wake.set()

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
        self._held[id(batch)] = batch
        try:
            async for request in self._start_requests():
                if self._stopping is not None:
                    break
                if not isinstance(request, Request):
                    logger.error("start() yielded %r, not a Request: ignored", request)
                    self.stats.inc("errors/TypeError")
                    continue
                batch.append(request)
                if len(batch) >= _SEED_BATCH:
                    await self._add(batch[:])
                    batch.clear()
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
            del self._held[id(batch)]
            self._seeding = False
            self._wake.set()

    async def _start_requests(self) -> AsyncIterator[Any]:
        """What the spider's start() yields. If it raises before yielding anything the crawl
        fails (reason ``start_failed``): there is nothing to crawl and that is a bug, not a
        finished crawl. Raising later is logged and counted, and the crawl goes on with what
        it yielded."""
        yielded = 0
        try:
            async for output in _aiter(self.spider.start()):
                yielded += 1
                yield output
        except Exception as exc:
            self.stats.inc(f"errors/{type(exc).__name__}")
            if yielded:
                logger.error("start() of %r raised after %d requests; the crawl goes on with "
                             "them: %s: %s", self.spider, yielded, type(exc).__name__, exc,
                             exc_info=exc)
                return
            logger.error("start() of %r raised before yielding any request: %s: %s",
                         self.spider, type(exc).__name__, exc, exc_info=exc)
            self.stats.set("start_error", f"{type(exc).__name__}: {exc}")
            self.stop("start_failed")

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

    # ---------------------------------------------------------- per request

    async def _process(self, lease: Lease) -> None:
        """The whole life of one leased request. The one place that catches ``Exception`` for
        a request: whatever a server, middleware, callback or pipeline does, it is logged with
        the URL, counted, and the crawl goes on."""
        request = lease.request
        stats = self.stats
        if self._stopping is not None:
            # A graceful stop finishes what is in flight and starts nothing new (close_on.items
            # then writes at most the items of the requests in flight): this one goes back.
            await self.frontier.release([lease])
            return
        try:
            if self.downloader.browser_busy(request):
                # A worker waiting for a browser page would be one less for plain requests.
                stats.inc("browser/deferred")
                await self.frontier.reschedule(lease, request, random.uniform(0.1, 0.3))
                return
            if self._failed_hosts and await self._host_is_failed(lease):
                return
            robots = self.robots
            if robots is not None and not await self._robots_allow(robots, lease):
                return
            if self._max_pages and not self._page_budget(request, lease.host):
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
                sent, result = await self._fetch(request)
            except (DownloadError, InvalidURL) as exc:
                await self._download_failed(lease, exc)
                return
            except IgnoreRequest as exc:
                stats.inc(f"dropped/{exc.reason}")
                logger.debug("Dropped %s: %s", request.url, exc)
                await self.frontier.ack(lease)
                return
            if isinstance(result, Request):  # a middleware asked for another request instead
                await self._instead(lease, result)
                return
            if sent is not request:
                # Downloaded in place of the original: its callback, meta and errback apply.
                lease = dataclasses.replace(lease, request=sent)
            if throttle is not None:
                slot = self.slots.slot(lease.host)
                throttle.on_response(slot, time.monotonic() - started, result)
                self.slots.changed(slot)
            try:
                await self._handle_response(lease, result)
            finally:
                if self.downloader.holds_pages:  # a live page for the callback (browser_page)
                    await self.downloader.release_page(request)
        except asyncio.CancelledError:
            raise
        except BrowserUnavailable:
            # This process cannot render: the request stays in the frontier for one that can
            # (a resume with a browser, another worker); the error was logged once.
            if self._stopping is None:
                logger.error("This process cannot render pages: stopping; %s and the other "
                             "rendered requests are left in the frontier", request.url)
            self.stop("browser_unavailable")
            await self.frontier.release([lease])
        except CloseSpider as exc:
            self.stop(exc.reason)
            await self.frontier.ack(lease)  # a no-op when it was acked before the failure
        except OutputFailed:
            # A durable job's output failed: the frontier refuses any more work, so the run
            # ends here; the runner says once which output failed (the job resumes them).
            raise
        except Exception as exc:
            self._count_error(exc, request)
            await self.frontier.ack(lease)

    async def _host_is_failed(self, lease: Lease) -> bool:
        """A request to a failed host (refused or not resolving, after retries) fails at once,
        through its errback, without a download."""
        request = lease.request
        reason = self._failed_hosts.get(origin_of(request.url))
        if reason is None:
            return False
        await self._fail(lease, ConnectError(request.url, f"host failed: {reason}"), None,
                         quiet=True)
        return True

    def _fail_host(self, request: Request, reason: str) -> None:
        """Record a failed host, logged once with the reason."""
        origin = origin_of(request.url)
        if origin in self._failed_hosts:
            return
        self._failed_hosts[origin] = reason
        self.stats.inc("hosts_failed")
        logger.warning("Host %s failed (%s) after its retries: its requests fail through "
                       "their errbacks without being fetched", origin, reason)

    async def _instead(self, lease: Lease, new: Request) -> None:
        """A middleware's Request to schedule instead of this one. The same request again (a
        middleware's own retry, a changed header) goes back to pending as it is, since it is no
        duplicate of itself; another one is a child, through the filters and the dedup."""
        if new.fingerprint == lease.request.fingerprint:
            await self.frontier.reschedule(lease, new, 0.0)
            return
        await self._ack(lease, [new] if self._allowed(new) else [], [])

    async def _robots_allow(self, robots: RobotsCache, lease: Lease) -> bool:
        """robots.txt. True to go on; False when the request was dealt with here: dropped
        (disallowed), held back (robots.txt unreachable for now: the host is paused), or put
        back (a Crawl-delay just learnt must apply from the first page on)."""
        request = lease.request
        rules = robots.known(request.url)  # the common case: one dict lookup
        waited = False
        if rules is None:
            waited = True
            # The first request to this origin, or one waiting for a retry of its robots.txt:
            # fetch it (the host is held meanwhile), or wait for the fetch another started.
            slot = self.slots.hold(lease.host)
            try:
                state = await robots.resolve(request)
            finally:
                self.slots.unhold(slot)
            if isinstance(state, RobotsUnavailable):
                await self._robots_unavailable(lease, state)
                return False
            rules = state
        if rules.crawl_delay:
            slot = self.slots.slot(lease.host)
            if waited or slot.min_delay < rules.crawl_delay:
                # Leased before the delay was known (or in an earlier run of a resumed job):
                # back to the frontier, which starts it when the delay has passed.
                self.slots.raise_min_delay(lease.host, rules.crawl_delay)
                await self.frontier.reschedule(lease, request, 0)
                return False
        if rules.allows(request.url):
            return True
        self.stats.inc("robots_denied")
        logger.debug("Forbidden by robots.txt: %s", request.url)
        await self.frontier.ack(lease)
        return False

    async def _robots_unavailable(self, lease: Lease, state: RobotsUnavailable) -> None:
        request = lease.request
        if state.final and state.host_down:
            self._fail_host(request, state.reason)
            await self._fail(lease, ConnectError(request.url, f"host failed: {state.reason}"),
                             None, quiet=True)
            return
        if state.final:
            self.stats.inc("dropped/robots_unavailable")
            logger.debug("Dropped %s: robots.txt unreachable (%s)", request.url, state.reason)
            await self.frontier.ack(lease)
            return
        # Disallowed for now, not for good: the host waits until the next try, others go on.
        self.stats.inc("robots/deferred")
        retry_in = state.retry_in()
        self.slots.pause(lease.host, retry_in)
        await self.frontier.reschedule(lease, request, retry_in)

    def _page_budget(self, request: Request, key: str) -> bool:
        """max_pages_per_host: count this fetch against its host; False when spent. A retry
        was counted the first time."""
        if request.has_meta and request.meta.get("retry_times"):
            return True
        done = self._host_pages.get(key, 0)
        if done >= self._max_pages:
            return False
        self._host_pages[key] = done + 1
        return True

    async def _fetch(self, request: Request) -> tuple[Request, Response | Request]:
        """Middlewares' process_request → download → process_response (or process_exception).
        Returns the request sent (a same-origin replacement from process_request is
        downloaded in place of the original) with its Response, or a Request to schedule
        instead."""
        mw = self.middlewares
        sent = await mw.process_request(request)
        if isinstance(sent, Response):
            return request, sent
        if sent is not request and not same_origin(sent, request):
            return request, sent
        return sent, await self._download(sent)

    async def _download(self, request: Request) -> Response | Request:
        mw = self.middlewares
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
        key = self._status_keys.get(status)
        if key is None:
            key = self._status_keys[status] = f"status/{status}"
        stats.inc(key)
        depth = request.depth
        key = self._depth_keys.get(depth)
        if key is None:
            key = self._depth_keys[depth] = f"depth/{depth}"
        stats.inc(key)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Crawled (%d) <%s %s> (referer: %s)", status, request.method,
                         response.url, request.headers.get("Referer"))
        handled = (
            status in request.handle_status or status in self._handle_status or self._handle_all
        )
        meta = request.meta if request.has_meta else None
        if meta and not handled:
            handled = bool(meta.get("handle_httpstatus_all")) or status in meta.get(
                "handle_httpstatus_list", ()
            )
        follow = not (meta and meta.get("dont_redirect"))
        if (
            status in redirect.REDIRECT_CODES and not handled and follow
            and "Location" in response.headers
        ):
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
            and redirect.has_meta_refresh(response)
        ):
            target = redirect.meta_refresh_target(response, self.settings.meta_refresh_max_delay)
            if target is not None:
                await self._redirect(lease, response, target, "meta_refresh")
                return
        callback = self._resolve(request.callback or self._default_callback)
        response.known = self._known
        response.known_links = self._known_links
        children, items, first = await self._run_callback(
            callback or self.spider.parse, request, response, (response,), request.cb_kwargs,
        )
        if items and logger.isEnabledFor(logging.DEBUG):
            for item in items:
                logger.debug("Scraped from <%d %s>\n%s", status, response.url, item)
        await self._ack(lease, children, items, first)

    async def _redirect(
        self, lease: Lease, response: Response, location: str, kind: str
    ) -> None:
        """Follow a redirect (``kind``: ``http`` for a 3xx Location, ``meta_refresh``) as a
        new request in the same chain (:func:`crawler.redirect.follow`); a loop, a bad target
        or more than ``max_redirects`` fail the request."""
        new = redirect.follow(lease.request, response, location, kind=kind,
                              max_redirects=self.settings.max_redirects)
        if isinstance(new, RedirectError):
            await self._fail(lease, new, response)
            return
        self.stats.inc("redirects")
        if kind != "http":
            self.stats.inc(f"redirects/{kind}")
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
            self.stats.host_paused(host_key(request.yurl), retry_after,
                                   f"Retry-After, HTTP {reason.removeprefix('status/')}")
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
        self.slots.pause(key, seconds)
        logger.info("Host %s paused for %.0f s (Retry-After)", key, seconds)
        self.stats.inc("hosts_paused")

    async def _download_failed(self, lease: Lease, exc: DownloadError | InvalidURL) -> None:
        if isinstance(exc, OutOfFiles):
            await self._out_of_files(lease, exc)
            return
        down = exc.unreachable if isinstance(exc, ConnectError) else ""
        if down and origin_of(lease.request.url) in self._failed_hosts:
            await self._fail(lease, exc, None, quiet=True)  # failed meanwhile: no more tries
            return
        if isinstance(exc, ResponseTooLarge):
            self.stats.inc("response_too_large")  # besides errors/ResponseTooLarge
        elif (
            isinstance(exc, DownloadError)
            and exc.retryable
            and await self._retry(lease, type(exc).__name__, None)
        ):
            return
        if down:
            self._fail_host(lease.request, down)
        await self._fail(lease, exc, None, quiet=bool(down))

    async def _out_of_files(self, lease: Lease, exc: OutOfFiles) -> None:
        """No file descriptor for a connection: back-pressure, not the request's failure. It
        goes back to the frontier for a short while (no retry counted), as the requests in
        flight finish and give their descriptors back."""
        stats = self.stats
        if not stats.get("backpressure/open_files"):
            logger.warning("Out of file descriptors (%s): requests wait for connections to "
                           "close (raise `ulimit -n` or lower concurrency)", exc.detail)
        stats.inc("backpressure/open_files")
        await self.frontier.reschedule(lease, lease.request, random.uniform(0.1, 0.5))

    async def _fail(
        self, lease: Lease, exc: Exception, response: Response | None, *, quiet: bool = False
    ) -> None:
        """The request failed for good: count it, call the errback, ack it. ``quiet``: the
        reason was logged already (a failed host), so no line per request."""
        request = lease.request
        name = type(exc).__name__
        self.stats.inc(f"errors/{name}")
        errback = self._resolve(request.errback)
        children: list[Request] = []
        items: list[Any] = []
        first = 0
        if errback is not None:
            children, items, first = await self._run_callback(
                errback, request, response, (Failure(exc, request, response),), {}
            )
        elif isinstance(exc, HttpError):
            logger.info("Ignoring response %s: HTTP %d not handled", request.url, exc.status)
        elif quiet:
            logger.debug("Failed %s: %s", request.url, exc)
        else:
            logger.warning("Failed %s: %s", request.url, exc)
        self._check_error_limit()
        await self._ack(lease, children, items, first)

    async def _run_callback(
        self,
        callback: Callable[..., Any],
        request: Request,
        response: Response | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[list[Request], list[Any], int]:
        """Run a callback or errback and route what it produces: requests through the filters
        to children, items through validation and pipelines. Outputs produced before an
        exception are kept; the exception is logged and counted. Returns the requests and
        items left for the ack, and how many items were written already.

        The output is a stream, consumed in batches of :data:`_OUTPUT_BATCH`: while the
        callback runs, each full batch of requests goes to the frontier (:meth:`_add`) and,
        unless the frontier commits items with the ack (``outbox``: exactly-once), each full
        batch of items to the output; between batches the other workers get to run. What is
        left is returned, for the ack. A crash before the ack loses nothing: the request is
        fetched again and the requests it yields again are duplicates of those added."""
        children: list[Request] = []
        items: list[Any] = []
        streamed = 0  # items written already (unless the frontier commits them with the ack)
        batch = _OUTPUT_BATCH
        stream_items = not self._outbox
        held = self._held
        held[id(children)] = children
        try:
            result = callback(*args, **kwargs)
            # A plain generator (most callbacks) is not awaitable: no need to ask.
            if (
                type(result) is not GeneratorType
                or result.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE
            ) and inspect.isawaitable(result):
                result = await result
            outputs: AsyncIterable[Any] | None = None
            if self.middlewares.has_output_hooks and response is not None:
                outputs = self.middlewares.process_output(response, aiter_outputs(result))
            if outputs is None and _is_sync_iterable(result):
                for output in result:
                    if type(output) is Request:  # the common output, routed without a coroutine
                        self._route_request(output, request, children)
                    else:
                        await self._route(output, request, children, items)
                    if len(children) >= batch or (stream_items and len(items) >= batch):
                        streamed += await self._flush_outputs(children, items, request, streamed)
            else:
                async for output in outputs or aiter_outputs(result):
                    await self._route(output, request, children, items)
                    if len(children) >= batch or (stream_items and len(items) >= batch):
                        streamed += await self._flush_outputs(children, items, request, streamed)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except Exception as exc:
            self._count_error(exc, request, where=getattr(callback, "__name__", "callback"))
        finally:
            del held[id(children)]
        return children, items, streamed

    async def _route(
        self, output: Any, parent: Request, children: list[Request], items: list[Any]
    ) -> None:
        if output is None:
            return
        if type(output) is Request:
            self._route_request(output, parent, children)
            return
        if is_item(output):
            item = self.items.validate(output)
            if type(item) is InvalidItem:
                self._invalid(item, parent)
                return
            if self._pipelines:
                try:
                    item = await self.items.run_pipelines(item)
                except PipelineFailed as exc:
                    # Only this item is lost: the page's other items and its links go on.
                    self._count_error(exc.error, parent, where=f"pipeline {exc.pipeline}")
                    return
                if item is None:
                    self.stats.inc("items_dropped")
                    return
            record = to_dict(item)
            self._lossy.check(record)
            items.append(tag_item(record, item) if self._tag_items else record)
            return
        self.stats.inc("errors/TypeError")
        logger.error("Callback for %s yielded %s, not an item or a Request: ignored",
                     parent.url, type(output).__name__)

    def _route_request(self, output: Request, parent: Request, children: list[Request]) -> None:
        depth = parent.depth + 1
        if output.depth < depth:
            output = output.replace(
                depth=depth, priority=output.priority + self._depth_priority * depth
            )
        if self._allowed(output) and self._storable(output):
            children.append(output)

    def _storable(self, request: Request) -> bool:
        """Frontiers that keep requests outside the process need them in plain JSON: a
        request that cannot be stored fails here, where the spider yielded it, naming the
        field, instead of failing the whole page's ack later."""
        if not self._stores_requests:
            return True
        try:
            check_storable(request)
        except UnstorableRequest as exc:
            self.stats.inc("errors/UnstorableRequest")
            logger.error("Dropped %s", exc)
            return False
        return True

    def _invalid(self, invalid: InvalidItem, request: Request) -> None:
        self.stats.inc("items_invalid")
        try:
            item: Any = to_dict(invalid.item)
        except TypeError:
            item = repr(invalid.item)
        # Field coverage counts refused items too: a selector that broke on part of a site
        # shows as a field missing there, whether or not an item model refused the item.
        self.stats.item_fields(item, request.url)
        if self.invalid_exporter is not None:
            record = {"url": request.url, "errors": invalid.errors, "item": item}
            self.invalid_exporter.write([record])

    async def _flush_outputs(self, children: list[Request], items: list[Any], request: Request,
                             first: int) -> int:
        """Send on part of a running callback's output (the lists are emptied): its requests
        to the frontier, its items (unless the frontier commits them with the ack) to the
        output, ``first`` being the index of the first among the request's items. Then let
        the other workers run: fetching goes on while a callback that yields a million
        requests is still at work. Returns how many items it sent."""
        sent = 0
        if children:
            await self._add(children[:])
            children.clear()
        if items and not self._outbox:
            sent = len(items)
            if self._write_items(items, request, first):
                self._scraped(items, request.url)
            items.clear()
        await asyncio.sleep(0)
        return sent

    def _write_items(self, items: list[Any], request: Request, first: int) -> int:
        """Write ``request``'s items (``first``: the index of the first among them) to the
        output (not for an outbox frontier); returns how many."""
        if self.exporter is not None:
            try:
                if self._feeds is not None:
                    self._feeds.write(items, request, first)
                else:
                    self.exporter.write(items)
            except OutputClosed:
                # `-o - | head -1`: the reader has what it wanted. Stop quietly.
                self.stop("output_closed")
                return 0
        return len(items)

    def _scraped(self, items: list[Any], url: str) -> None:
        """Count items written (or committed) from the page at ``url``: the total, which
        ``close_on.items`` watches, and the report's field coverage."""
        stats = self.stats
        stats.inc("items_scraped", len(items))
        for item in items:
            stats.item_fields(item, url)
        if self._close_items and stats.get("items_scraped") >= self._close_items:
            self.stop("close_on_items")

    async def _ack(self, lease: Lease, children: list[Request], items: list[Any],
                   first: int = 0) -> None:
        """Acknowledge ``lease`` with the requests and items its callback returned
        (``first``: how many items of the request were written already)."""
        frontier = self.frontier
        written = 0
        if items and self._outbox:
            if self._tag_items:
                stamp_items(items, lease.request)
        elif items:
            # Written before the ack: a crash in between repeats this request's items rather
            # than losing them. Outbox frontiers commit them with the ack instead.
            written = self._write_items(items, lease.request, first)
        added = await frontier.ack(lease, children, items if self._outbox else ())
        if added:
            self.stats.inc("requests_enqueued", added)
        if added < len(children):
            self.stats.inc("duplicates_filtered", len(children) - added)
        if items and self._outbox:
            # Counted after the ack, so a durable job's saved stats never count an item whose
            # ack was not committed with them.
            self._scraped(items, lease.request.url)
            if self.exporter is not None:
                await frontier.drain(self.exporter)
        elif written:
            self._scraped(items, lease.request.url)

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


#: Crawls running in this process with the collector tuned (see _collector_tuned), and the
#: thresholds to restore when the last one ends.
_tuned: list[tuple[int, int, int]] = []


@contextlib.contextmanager
def _collector_tuned() -> Iterator[None]:
    """The garbage collector set for a crawl while one runs: the young generation collected
    every :data:`_GC_YOUNG_THRESHOLD` allocations rather than 700, and what exists when the
    crawl starts (modules, settings, the spider) frozen out of the collections, which would
    otherwise walk all of it again on each full one. Both are undone when the last crawl of
    the process ends; cyclic garbage is still collected, a little later."""
    if not _tuned:
        threshold = gc.get_threshold()
        _tuned.append(threshold)
        gc.freeze()
        if threshold[0]:  # 0: automatic collection turned off, which stays so
            gc.set_threshold(max(threshold[0], _GC_YOUNG_THRESHOLD), *threshold[1:])
    else:
        _tuned.append(_tuned[0])
    try:
        yield
    finally:
        threshold = _tuned.pop()
        if not _tuned:
            gc.set_threshold(*threshold)
            gc.unfreeze()


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
