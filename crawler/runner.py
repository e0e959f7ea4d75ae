"""The composition root: one function builds every component of a crawl and runs it.

It is a little over 600 lines because it is the one place that knows every component: the
frontier kit, outputs and feeds, pipelines, middlewares, robots, the downloaders, stats and the
report are each built here from settings, entered into one exit stack, and closed in order;
each is a line or two, and splitting the wiring would hide the order that closing relies on."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .browser import BrowserPool, check_browser
from .compat import Crawler, build_component
from .dedup import ItemKeyDedup
from .downloader import Downloader
from .engine import Engine
from .errors import ConfigError
from .exporters import Exporter, InvalidItemWriter, reset_type_warnings
from .fdlimit import fit_concurrency, raise_open_files_limit
from .feeds import FeedSet, file_feeds, open_feeds, resolve_outputs
from .frontier.base import BuildFrontier, Frontier, FrontierKit
from .frontier.memory import memory_frontier
from .http import Request, Response
from .items import ItemProcessor
from .loader import import_object
from .middleware import MiddlewareChain, spider_middleware
from .progress import Progress
from .robots import RobotsCache
from .settings import Settings
from .spider import Spider
from .stats import Stats, Timeline, reason_sentence
from .tasks import stop_task
from .throttle import AutoThrottle

if TYPE_CHECKING:
    from .frontier.redis import RedisFrontier
    from .frontier.sqlite import SqliteFrontier
    from .jobdir import JobDir

logger = logging.getLogger(__name__)

__all__ = ["CrawlResult", "ParseResult", "parse_once", "run_spider"]


@dataclass(slots=True)
class CrawlResult:
    """How a crawl ended: the finish reason and the final stats."""

    reason: str
    stats: dict[str, Any] = field(default_factory=dict)
    #: Why the crawl failed (an output could not be written), None when it did not.
    error: str | None = None

    @property
    def failed(self) -> bool:
        """The crawl failed (the CLI exits 1), as opposed to finishing or being stopped."""
        return self.reason in FAILURES


#: Finish reasons that make the run a failure.
FAILURES = frozenset({"start_failed", "frontier_lost", "output_failed"})


def _frontier_kind(settings: Settings) -> BuildFrontier:
    """The builder of the frontier kind the settings ask for: a durable job for ``jobdir``,
    Redis for a ``frontier_url`` of ``redis://``/``rediss://``/``unix://``, else memory.
    Each kind's module is imported only here, so a crawl loads neither sqlite3 nor redis-py
    unless it uses them."""
    if settings.jobdir:
        from .jobdir import durable_frontier

        return durable_frontier
    if settings.redis_frontier_url:
        from .frontier.redis import shared_frontier

        return shared_frontier
    return memory_frontier


@asynccontextmanager
async def _every(seconds: float, fn: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``fn`` every ``seconds`` in a task owned by this block (cancelled at its end)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
            except Exception as exc:
                logger.warning("Periodic %s failed: %s", getattr(fn, "__name__", fn), exc)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        await stop_task(task)


async def run_spider(
    spider_cls: type[Spider],
    settings: Settings,
    *,
    spider_args: dict[str, Any] | None = None,
    output: str | None = None,
    overwrite: bool = False,
    outputs: Sequence[tuple[str, bool]] = (),
    stats_path: str | None = None,
    handle_signals: bool = False,
    frontier: Frontier | None = None,
    on_engine: Callable[[Engine], None] | None = None,
    report_path: str | None = None,
    warn_no_output: bool = True,
    scrapy_settings: Mapping[str, Any] | None = None,
    summary: bool = True,
) -> CrawlResult:
    """Build the crawl from ``settings`` and the spider class, run it, and close every part
    (each in its own ``finally``), whatever happens.

    ``handle_signals``: the first SIGINT/SIGTERM stops gracefully (exit 0), the second cancels
    at once; either way the output ends in whole lines. ``report_path``: where the HTML crawl
    report is written at the end (with a shared frontier: of the whole cluster).
    ``warn_no_output``: warn when the items go nowhere (no output, no pipeline).
    ``summary``: log the stats summary at the end (a worker of ``crawl --processes`` leaves
    that to the command that started it).

    ``scrapy_settings``: a Scrapy project's settings (``settings.py``, Scrapy's names), which
    components read through ``crawler.settings`` (the native ones are already in
    ``settings``).

    ``outputs`` are the ``-o``/``-O`` feeds as (URI, overwrite); they replace the ``feeds``
    setting. ``output``/``overwrite`` give one such feed.
    """
    reset_type_warnings()  # before any task exists: the crawl's tasks share this crawl's set
    cli_outputs = list(outputs) or ([(output, overwrite)] if output else [])
    feed_options = resolve_outputs(cli_outputs, settings.feeds)
    stats = Stats()
    concurrency = fit_concurrency(settings.concurrency, raise_open_files_limit())
    if concurrency != settings.concurrency:
        settings = settings.with_values(concurrency=concurrency)
    # Scrapy's wiring: the spider and every component class get the crawler (settings, stats,
    # signals) through from_crawler when they define it.
    crawler = Crawler(spider_cls, settings, stats, scrapy_settings)
    try:
        spider = crawler.create_spider(**(spider_args or {}))
    except TypeError as exc:
        if not spider_args:
            raise
        given = " ".join(f"-a {name}=..." for name in spider_args)
        raise ConfigError(f"spider {spider_cls.name!r} does not take {given}: {exc}") from exc
    pipelines = [_component(p, "pipelines", spider_cls, crawler) for p in spider.pipelines]
    pipelines += [_component(p, "pipelines", None, crawler) for p in settings.pipelines]
    middlewares = [spider_middleware(_component(m, "middlewares", spider_cls, crawler))
                   for m in spider.middlewares]
    middlewares += [spider_middleware(_component(m, "middlewares", None, crawler))
                    for m in settings.middlewares]
    cache = None
    if settings.http_cache:
        from .httpcache import HttpCache  # only a crawl that asks for it pays for sqlite3

        # The innermost middleware: the others run before it, cached responses or not.
        cache = HttpCache.from_settings(settings, spider.name, stats)
        middlewares.append(cache)
    # spider_opened/spider_closed receivers (connected by from_crawler above) are sent from a
    # pipeline-shaped hook, opened first and closed last.
    hooks = [crawler.open_hook()] if crawler.signals.connected else []
    items = ItemProcessor(spider, spider.item_model, [*hooks, *pipelines])
    reason = "error"
    report = _Report(stats, stats_path, summary=summary)
    async with AsyncExitStack() as stack:
        # Registered first, so it runs last: after everything else closed (their descriptors
        # given back), and even when closing one of them raised.
        stack.callback(report.write)
        if cache is not None:
            stack.callback(cache.close)
        if settings.jobdir:
            files = file_feeds(feed_options)
            if len(files) > 1 or any(feed_options[t.uri].batch_item_count for t in files):
                raise ConfigError("--jobdir keeps one output file exactly-once (besides any "
                                  "number of database outputs); got "
                                  + ", ".join(t.uri for t in files)
                                  + (" with batch_item_count" if len(files) == 1 else ""))
            output = files[0].path if files else None
        kit = stack.enter_context(
            FrontierKit(frontier) if frontier is not None
            else _frontier_kind(settings)(settings, spider.name,
                                          output if settings.jobdir else None)
        )
        frontier, durable, job, shared = kit.frontier, kit.durable, kit.job, kit.shared
        if job is not None and job.finished:
            logger.info("Job %s already finished (%s): nothing to do", settings.jobdir,
                        job.finish_reason)
            return CrawlResult("finished", job.last_stats)
        await frontier.open()
        stack.push_async_callback(frontier.close)
        if shared is not None:
            # Each worker writes its own output; "{worker}" in the path names this one.
            feed_options = {uri.replace("{worker}", shared.worker_id): opts
                            for uri, opts in feed_options.items()}
            for pipeline in pipelines:
                if isinstance(pipeline, ItemKeyDedup):
                    pipeline.attach(shared.connection, shared.prefix,
                                    worker_id=shared.worker_id,
                                    lease_timeout=shared.lease_timeout)
            logger.info("Worker %s on shared frontier %r", shared.worker_id, shared)
        _log_banner(spider, settings, frontier, job, shared, feed_options, pipelines)
        if warn_no_output and not feed_options and not pipelines:
            logger.warning("No output and no pipeline: the items of this crawl are not kept "
                           "(give -o FILE to write them)")
        feeds: FeedSet | None = None
        # CSV columns: the item model's fields when there is one, else the first item's keys.
        model = spider.item_model
        fields = list(model.model_fields) if model is not None else None
        feed_kwargs: dict[str, Any] = {
            "model": model, "error_timeout": settings.feed_error_timeout,
            "buffer_items": settings.feed_buffer_items,
            # Gathered in memory and written a batch at a time: a memory crawl's whenever a
            # batch is full, a shared crawl's also right before its acks leave (settle below).
            "gather": durable is None,
            "raise_errors": durable is not None, "write_through": shared is not None,
            "prefix": _token_prefix(settings, job, shared),
            "resumed": job is not None and job.resumed,
        }
        if durable is not None:
            # A durable job: cut the output back to what is committed, write what the outbox
            # holds, carry the stats and the spider's state over.
            if job is not None and job.resumed:
                logger.info("Resuming job %s", settings.jobdir)
            stats.resumable = True
            saved_stats, spider.state = durable.load_state()
            stats.load(saved_stats)
            durable.track_state(lambda: (stats.to_dict(), spider.state))
            if feed_options:
                feeds = await _open_durable_feeds(durable, feed_options, output, overwrite,
                                                  fields, feed_kwargs)
        elif feed_options:
            feeds = open_feeds(feed_options, **feed_kwargs)
            if shared is not None:
                # A request's items are stored before Redis hears it is done.
                shared.before_ack = feeds.settle
        exporter: Exporter | None = feeds
        if feeds is not None:
            stack.callback(feeds.close)
        if feed_options:
            overwrite = next(iter(feed_options.values())).overwrite
        invalid = (
            InvalidItemWriter(feeds.invalid_path, overwrite=overwrite) if feeds else None
        )
        if invalid is not None:
            stack.callback(invalid.close)
        render_all = settings.browser or bool(getattr(spider, "browser", False))
        if render_all:
            check_browser(settings)  # every page renders: a missing browser stops us here
        downloader = await stack.enter_async_context(Downloader(
            settings, stats, render_default=render_all, on_sent=frontier.slots.started,
            browser=BrowserPool(settings, stats, files_dir=_files_dir(output)),
        ))
        await items.open()
        stack.push_async_callback(items.close)
        robots = (
            RobotsCache.from_settings(settings, downloader.fetch, stats)
            if settings.obey_robots else None
        )
        if durable is not None:
            # A Retry-After pause holds across a resume (a Crawl-delay comes back with the
            # saved robots.txt rules).
            frontier.slots.restore_pauses(durable.load_extra("pauses") or {})
            durable.track_extra("pauses", frontier.slots.pauses)
        if robots is not None and durable is not None:
            saved_robots = durable.load_extra("robots")
            if saved_robots:
                robots.load(saved_robots)
            durable.track_extra("robots", robots.dump)
        engine = Engine(
            spider=spider,
            settings=settings,
            frontier=frontier,
            downloader=downloader,
            items=items,
            middlewares=MiddlewareChain(middlewares, spider),
            exporter=exporter,
            invalid_exporter=invalid,
            stats=stats,
            robots=robots,
            throttle=AutoThrottle.from_settings(settings, stats) if settings.autothrottle else None,
        )
        if feeds is not None:
            loop = asyncio.get_running_loop()
            def output_failed() -> None:  # called from a database feed's thread too
                try:
                    loop.call_soon_threadsafe(engine.stop, "output_failed")
                except RuntimeError:  # the loop is closed: the crawl is over anyway
                    pass

            feeds.on_failure = output_failed
            for table in feeds.tables:
                table.on_failure = feeds.on_failure
        if on_engine is not None:
            on_engine(engine)
        if handle_signals:
            _install_signals(engine, stack, resumable=stats.resumable)
        if model is not None:
            stats.expect_fields(model.model_fields)
        timeline = await stack.enter_async_context(Timeline(stats))
        await stack.enter_async_context(
            Progress(stats, interval=settings.log_interval, stream=sys.stderr,
                     gauges=engine.gauges, counts=frontier.counts)
        )
        if shared is not None:
            # One stats record for the whole cluster: this worker's counts are added to it.
            merge = functools.partial(_merge_stats, shared, stats)
            stack.push_async_callback(merge)
            await stack.enter_async_context(_every(max(5.0, settings.log_interval), merge))
        report.started = True
        error: str | None = None
        try:
            try:
                reason = await engine.run()
            except Exception:
                # A durable job's output write failed: its frontier refused to record it and
                # then any other work, which ends the run here; the resume continues exactly.
                if feeds is None or durable is None or not feeds.failures():
                    raise
                reason = "output_failed"
            timeline.sample()  # the last second, into the job's final stats too
            if feeds is not None and durable is None:
                # The last gathered items are written now: a failure here fails the crawl too.
                await asyncio.to_thread(feeds.close)
            error = _feed_errors(feeds, stats, durable is not None)
            if error is not None:
                reason = "output_failed"
            elif durable is not None:
                await durable.finish(reason)
        except asyncio.CancelledError:
            reason = "killed"
            raise
        finally:
            timeline.sample()
            stats.finish(reason)
            if report_path:
                await _write_report(report_path, stats, shared, spider.name)
    if error is not None:
        logger.error("%s", error)
    return CrawlResult(reason, stats.to_dict(), error)

async def _open_durable_feeds(
    durable: SqliteFrontier, feed_options: dict[str, Any], path: str | None, overwrite: bool,
    fields: list[str] | None, feed_kwargs: dict[str, Any],
) -> FeedSet:
    """A durable job's feeds: its one file through the frontier (cut back to the committed
    offset), the databases beside it; then what the outbox holds is written to all of them."""
    holder: list[FeedSet] = []

    def wrap(exporter: Exporter | None) -> FeedSet:
        holder.append(open_feeds(feed_options, file_exporter=exporter, **feed_kwargs))
        return holder[0]

    if path is not None:
        file_overwrite = next(o.overwrite for u, o in feed_options.items()
                              if u.removeprefix("file://") == path)
        fields = feed_options[next(u for u in feed_options if u.removeprefix("file://") == path)
                              ].fields or fields
        await durable.open_output(path, overwrite=file_overwrite, fields=fields, wrap=wrap)
    else:
        await durable.attach_output(wrap(None))
    return holder[0]


def _token_prefix(settings: Settings, job: JobDir | None, shared: RedisFrontier | None) -> str:
    """What starts every database row's crawl_token: stable across the resumes of a job and
    across the workers of a shared crawl, new for every other run."""
    if job is not None:
        return f"job:{job.created:.6f}"
    if shared is not None:
        return f"shared:{settings.crawl_id or shared.worker_id}"
    return f"run:{uuid.uuid4().hex}"


def _feed_errors(feeds: FeedSet | None, stats: Stats, durable: bool) -> str | None:
    """The one message for the feeds that failed (None when none did); the items they did
    not write are taken off ``items_scraped``."""
    if feeds is None:
        return None
    invalid = feeds.invalid()
    if invalid:
        stats.inc("items_invalid", invalid)
        stats.inc("items_scraped", -invalid)
    failures = feeds.failures()
    if not failures:
        return None
    lost = max(f.not_written for f in failures)
    stats.inc("items_scraped", -lost)
    parts = [f"output {f.name} failed ({f.reason}): {f.not_written} "
             f"item{'' if f.not_written == 1 else 's'} not written" for f in failures]
    after = (" The items are kept in the job: run the same command to resume them."
             if durable else "")
    return "; ".join(parts) + "." + after


@dataclass(slots=True)
class _Report:
    """The end of a crawl that started: ``--stats`` written and the summary logged, whatever
    happened while closing (an error there must not take the figures with it)."""

    stats: Stats
    path: str | None
    summary: bool = True  #: log the summary (not in a worker of ``crawl --processes``)
    started: bool = False

    def write(self) -> None:
        if not self.started:
            return
        stats = self.stats
        if self.path:
            try:
                stats.dump_json(self.path)
            except OSError as exc:
                logger.error("Could not write the stats to %s: %s", self.path, exc)
        reason = stats.get("finish_reason", None)
        if not self.summary:
            return
        log = logger.error if reason in FAILURES else logger.info
        log("%s.\n%s", reason_sentence(reason, resumable=stats.resumable), stats.summary())


@dataclass(slots=True)
class ParseResult:
    """What ``crawler parse`` saw: the callback's items and requests (after the spider's own
    middlewares), and the stats of the one-page crawl."""

    items: list[Any]
    requests: list[Request]
    stats: dict[str, Any]
    called: bool  #: whether the callback ran (not when robots.txt, a status or an error stopped)


class _Recorder:
    """The outermost spider middleware of :func:`parse_once`: keeps every output and passes
    none on, so nothing is followed, validated or sent to pipelines."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.requests: list[Request] = []
        self.called = False

    def process_spider_output(
        self, response: Response, result: AsyncIterable[Any], spider: Spider
    ) -> AsyncIterator[Any]:
        return self._record(result)

    async def _record(self, result: AsyncIterable[Any]) -> AsyncIterator[Any]:
        self.called = True
        async for output in result:
            if isinstance(output, Request):
                self.requests.append(output)
            elif output is not None:
                self.items.append(output)
        return
        yield  # an async generator that passes nothing on


async def parse_once(
    spider_cls: type[Spider],
    settings: Settings,
    url: str,
    callback: str | None = None,
    *,
    spider_args: dict[str, Any] | None = None,
) -> ParseResult:
    """Fetch ``url`` as the spider would (its settings, middlewares, robots.txt, redirects,
    retries) and run ``callback`` (default ``parse``) on the response, in memory: a project's
    jobdir, shared frontier and pipelines are left alone. Raises InvalidURL for a bad
    ``url``."""
    if callback is not None and not callable(getattr(spider_cls, callback, None)):
        methods = sorted(n for n in dir(spider_cls) if n.startswith("parse")
                         and callable(getattr(spider_cls, n)))
        raise ConfigError(f"spider {spider_cls.name!r} has no method {callback!r}"
                          f" (its parse methods: {', '.join(methods) or 'none'})")
    request = Request(url, callback, dont_filter=True)
    recorder = _Recorder()

    async def start(self: Spider) -> AsyncIterator[Request]:
        yield request

    # No pipelines at all (a pipeline's open() may connect to a database), no jobdir, no
    # shared frontier: a look at one page must not touch what real crawls use.
    probe = type(spider_cls.__name__, (spider_cls,), {
        "start": start,
        "middlewares": [recorder, *spider_cls.middlewares],
        "pipelines": [],
        "__module__": spider_cls.__module__,
    })
    alone = settings.with_values(jobdir=None, frontier_url=None, pipelines=[])
    result = await run_spider(probe, alone, spider_args=spider_args, warn_no_output=False)
    return ParseResult(recorder.items, recorder.requests, result.stats, recorder.called)


_HOOKS = {
    "pipelines": ("open", "process_item", "close"),
    "middlewares": ("process_request", "process_response", "process_exception",
                    "process_spider_output", "process_spider_input", "process_spider_exception",
                    "process_start_requests", "process_start"),
}


def _component(
    obj: Any, kind: str, spider_cls: type[Spider] | None, crawler: Crawler | None
) -> Any:
    """A pipeline or middleware as given by the spider (``spider_cls``) or the settings: an
    import path (``"pkg.mod:Name"``) is imported as the settings' are, a class built as
    Scrapy builds one (``from_crawler``, see :func:`crawler.compat.build_component`).
    Something with none of the hooks of its kind is refused, never silently ignored."""
    where = f"{spider_cls.__name__}.{kind}" if spider_cls is not None else f"setting {kind!r}"
    if isinstance(obj, str):
        try:
            obj = import_object(obj)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    obj = build_component(obj, crawler)
    hooks = _HOOKS[kind]
    if not any(callable(getattr(obj, hook, None)) for hook in hooks):
        raise ConfigError(
            f"{where}: {obj!r} is not a {kind[:-1]} (it has none of {', '.join(hooks)})"
        )
    return obj


def _files_dir(output: str | None) -> Path:
    """Where screenshots and PDFs of rendered pages go: next to the output file
    (``items.jsonl`` → ``items_files/``), else ``browser_files/`` here."""
    if not output or output == "-" or "://" in output:
        return Path("browser_files")
    path = Path(output)
    return path.with_name(f"{path.stem}_files")


def _log_banner(spider: Spider, settings: Settings, frontier: Frontier, job: JobDir | None,
                shared: RedisFrontier | None, feed_options: Mapping[str, Any],
                pipelines: list[Any]) -> None:
    """What runs, said once at INFO: the spider, the frontier, the outputs, and every
    setting changed from its default with the layer that changed it."""
    from .feeds import parse_target
    from .settings import changed_settings

    try:
        source = inspect.getsourcefile(type(spider)) or type(spider).__module__
        source = os.path.relpath(source) if not source.startswith("..") else source
    except (TypeError, ValueError):
        source = type(spider).__module__
    if job is not None:
        where = f"SQLite in job directory {job.path} (durable)"
    elif shared is not None:
        where = f"Redis {shared.connection.display_url}, keys {shared.prefix}*"
    else:
        where = f"{type(frontier).__name__.removesuffix('Frontier').lower()}"
    shown = []
    for uri, options in feed_options.items():
        target = parse_target(uri, options)
        kind = {"jsonl": "JSON lines", "json": "JSON array", "csv": "CSV", "sqlite": "SQLite",
                "postgresql": "PostgreSQL"}.get(target.format, target.format)
        name = "stdout" if target.path == "-" else target.shown
        shown.append(f"{name} ({kind}, {'overwrite' if options.overwrite else 'append'})")
    outputs = ", ".join(shown) or "none"
    names = ", ".join(type(p).__name__ for p in pipelines) or "none"
    logger.info("Spider %r (%s), frontier: %s, output: %s, pipelines: %s", spider.name,
                source, where, outputs, names)
    changes = changed_settings(settings)
    if changes:
        logger.info("Settings changed from the defaults: %s", ", ".join(
            f"{name}={value!r} ({layer})" for name, value, layer in changes))


async def _write_report(path: str, stats: Stats, shared: RedisFrontier | None,
                        spider_name: str) -> None:
    """The HTML report; a failure to write it is logged, never raised (the crawl is done)."""
    from .report import write_report  # only a crawl that asks for a report pays for it

    data = stats.to_dict()
    if shared is not None:
        try:
            await shared.merge_stats(data)
            data = {**data, **await shared.shared_stats()}
        except Exception as exc:
            logger.warning("Report of this worker only: the shared stats are unavailable (%s)",
                           exc)
    try:
        write_report(data, path, title=f"Crawl report: {spider_name}")
    except OSError as exc:
        logger.error("Cannot write the report %s: %s", path, exc)
        return
    logger.info("Wrote the crawl report %s", path)


async def _merge_stats(frontier: RedisFrontier, stats: Stats) -> None:
    await frontier.merge_stats(stats.to_dict())


def _install_signals(engine: Engine, stack: AsyncExitStack, *, resumable: bool) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signame: str) -> None:
        if engine.stopping is None:
            what = "pausing" if resumable else "stopping"
            logger.warning("%s: %s after the requests in flight (again to stop now)", signame,
                           what)
            engine.stop(f"signal_{signame}")
        elif task is not None:
            logger.warning("%s again: stopping now", signame)
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            return
        stack.callback(loop.remove_signal_handler, sig)
