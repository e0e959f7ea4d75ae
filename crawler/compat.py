"""What spiders, pipelines and middlewares written for Scrapy need around them.

* :func:`translate_settings`: Scrapy's setting names (``DOWNLOAD_DELAY``, ``ITEM_PIPELINES``
  ...) to the native ones, each translation logged once at INFO; a Scrapy name without a
  counterpart here is reported once as ignored and never stops a crawl. A name that is not
  Scrapy's (``MONGO_URI``) is kept for ``crawler.settings.get()``: pipelines read their own.
* :class:`Crawler`: the object ``from_crawler(cls, crawler)`` receives, with ``settings``
  (Scrapy-style getters over both the native values and the Scrapy-named ones), ``stats``
  (Scrapy's StatsCollector methods over the native stats), ``spider`` and ``signals``.
* :func:`build_component`: a component class instantiated as Scrapy does
  (``from_crawler``, else ``from_settings``, else no arguments).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings
    from .spider import Spider
    from .stats import Stats

logger = logging.getLogger(__name__)

__all__ = [
    "Crawler", "ScrapySettings", "SignalManager", "StatsCollector", "build_component",
    "is_scrapy_name", "translate_settings",
]

# Scrapy name -> (native dotted name, conversion of the value).
_Conv = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _ordered(value: Any) -> list[str]:
    """``{"pkg.mod.Class": 300, ...}`` → the paths by order number, ``None`` ones left out."""
    if isinstance(value, Mapping):
        pairs = [(order, path) for path, order in value.items() if order is not None]
        return [path if isinstance(path, str) else f"{path.__module__}.{path.__qualname__}"
                for _, path in sorted(pairs, key=lambda p: p[0])]
    return list(value)


def _negated(value: Any) -> Any:
    return -int(value)


_RENAMES: dict[str, tuple[str, _Conv]] = {
    "DOWNLOAD_DELAY": ("download_delay", float),
    "CONCURRENT_REQUESTS": ("concurrency", int),
    "CONCURRENT_REQUESTS_PER_DOMAIN": ("concurrency_per_host", int),
    "CONCURRENT_REQUESTS_PER_IP": ("concurrency_per_host", int),
    "DEPTH_LIMIT": ("depth_limit", int),
    # Scrapy lowers a request's priority by depth * DEPTH_PRIORITY; here it is added.
    "DEPTH_PRIORITY": ("depth_priority", _negated),
    "USER_AGENT": ("user_agent", str),
    "ROBOTSTXT_OBEY": ("obey_robots", bool),
    "CLOSESPIDER_ITEMCOUNT": ("close_on.items", int),
    "CLOSESPIDER_PAGECOUNT": ("close_on.pages", int),
    "CLOSESPIDER_TIMEOUT": ("close_on.seconds", float),
    "CLOSESPIDER_ERRORCOUNT": ("close_on.errors", int),
    "AUTOTHROTTLE_ENABLED": ("autothrottle", bool),
    "AUTOTHROTTLE_START_DELAY": ("autothrottle_start_delay", float),
    "AUTOTHROTTLE_MAX_DELAY": ("autothrottle_max_delay", float),
    "AUTOTHROTTLE_TARGET_CONCURRENCY": ("autothrottle_target_concurrency", float),
    "RETRY_TIMES": ("retries", int),
    "RETRY_HTTP_CODES": ("retry_http_codes", list),
    "DOWNLOAD_TIMEOUT": ("timeout", float),
    "HTTPCACHE_ENABLED": ("http_cache", bool),
    "HTTPCACHE_DIR": ("http_cache_dir", str),
    "HTTPCACHE_EXPIRATION_SECS": ("http_cache_expiration", float),
    "HTTPCACHE_IGNORE_HTTP_CODES": ("http_cache_ignore_status", list),
    "COOKIES_ENABLED": ("cookies", bool),
    "DEFAULT_REQUEST_HEADERS": ("default_headers", dict),
    "ITEM_PIPELINES": ("pipelines", _ordered),
    "DOWNLOADER_MIDDLEWARES": ("middlewares", _ordered),
    "SPIDER_MIDDLEWARES": ("middlewares", _ordered),
    "JOBDIR": ("jobdir", str),
    "LOG_LEVEL": ("log_level", str),
    "REDIRECT_MAX_TIMES": ("max_redirects", int),
    "METAREFRESH_ENABLED": ("meta_refresh", bool),
    "METAREFRESH_MAXDELAY": ("meta_refresh_max_delay", float),
    "HTTPERROR_ALLOWED_CODES": ("handle_status", list),
    "URLLENGTH_LIMIT": ("url_length_limit", int),
}

#: Scrapy settings whose behaviour is already this framework's: accepted silently.
_ALREADY: frozenset[str] = frozenset({
    "BOT_NAME", "SPIDER_MODULES", "NEWSPIDER_MODULE", "TWISTED_REACTOR",
    "REQUEST_FINGERPRINTER_IMPLEMENTATION", "FEED_EXPORT_ENCODING", "LOG_ENABLED",
    "AUTOTHROTTLE_DEBUG", "RANDOMIZE_DOWNLOAD_DELAY", "DOWNLOAD_HANDLERS", "ADDONS",
})

#: Scrapy's own setting names that have no counterpart here (reported as ignored); any other
#: UPPER_CASE name is the project's own (``MONGO_URI``) and kept for crawler.settings.
_SCRAPY_OTHER: frozenset[str] = frozenset({
    "COOKIES_DEBUG", "DNSCACHE_ENABLED", "DNSCACHE_SIZE", "DNS_TIMEOUT", "DOWNLOADER_STATS",
    "DOWNLOAD_WARNSIZE", "DOWNLOAD_FAIL_ON_DATALOSS", "DUPEFILTER_CLASS", "DUPEFILTER_DEBUG",
    "EXTENSIONS", "FEED_EXPORTERS", "FEED_STORAGES", "FEED_URI", "FEED_FORMAT",
    "FEED_EXPORT_FIELDS", "FEED_EXPORT_INDENT", "HTTPCACHE_POLICY", "HTTPCACHE_STORAGE",
    "HTTPCACHE_GZIP", "HTTPERROR_ALLOW_ALL", "ITEM_PROCESSOR", "LOG_FILE", "LOG_FORMAT",
    "LOG_DATEFORMAT", "LOG_STDOUT", "LOG_SHORT_NAMES", "LOGSTATS_INTERVAL", "MEMUSAGE_ENABLED",
    "MEMUSAGE_LIMIT_MB", "MEMDEBUG_ENABLED", "REACTOR_THREADPOOL_MAXSIZE", "REFERER_ENABLED",
    "REFERRER_POLICY", "SCHEDULER", "SCHEDULER_DISK_QUEUE", "SCHEDULER_MEMORY_QUEUE",
    "SCHEDULER_PRIORITY_QUEUE", "SPIDER_LOADER_CLASS", "STATS_CLASS", "STATS_DUMP",
    "TELNETCONSOLE_ENABLED", "TELNETCONSOLE_PORT", "DEPTH_STATS_VERBOSE", "DOWNLOADER",
    "DOWNLOADER_CLIENTCONTEXTFACTORY", "DOWNLOADER_MIDDLEWARES_BASE", "SPIDER_MIDDLEWARES_BASE",
    "ITEM_PIPELINES_BASE", "EXTENSIONS_BASE", "CONCURRENT_ITEMS", "AJAXCRAWL_ENABLED",
    "COMPRESSION_ENABLED", "CLOSESPIDER_TIMEOUT_NO_ITEM", "FEED_STORE_EMPTY",
    "RETRY_PRIORITY_ADJUST", "RETRY_EXCEPTIONS", "REDIRECT_PRIORITY_ADJUST",
    "ROBOTSTXT_PARSER", "ROBOTSTXT_USER_AGENT", "SPIDER_CONTRACTS", "URLLENGTH_LIMIT",
    "DOWNLOAD_SLOTS", "PERIODIC_LOG_STATS", "SCRAPER_SLOT_MAX_ACTIVE_SIZE",
    "DEFAULT_ITEM_CLASS", "EDITOR", "COMMANDS_MODULE", "HTTPPROXY_ENABLED",
    "HTTPPROXY_AUTH_ENCODING",
    "IMAGES_STORE", "FILES_STORE", "MEDIA_ALLOW_REDIRECTS", "WARN_ON_GENERATOR_RETURN_VALUE",
})

#: Scrapy's built-in components: named in *_MIDDLEWARES/ITEM_PIPELINES (usually to disable
#: or reorder them), they have native counterparts and are not loaded.
_BUILTIN_PREFIX = "scrapy."

_logged: set[tuple[str, str]] = set()
#: A Scrapy setting name, which no feed URI is (a feed has an extension or a scheme).
_SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def is_scrapy_name(name: str) -> bool:
    """Whether a settings key is written the Scrapy way (UPPER_CASE) rather than natively."""
    return name.isupper()


def translate_settings(
    scrapy: Mapping[str, Any], source: str = "custom_settings"
) -> dict[str, Any]:
    """The native settings layer for ``scrapy`` (Scrapy-named settings), as a dict of dotted
    native names. Translations are logged once at INFO, Scrapy names without a counterpart
    once at WARNING as ignored; project-specific names are left to :class:`ScrapySettings`."""
    native: dict[str, Any] = {}
    done: list[str] = []
    ignored: list[str] = []
    for name, value in scrapy.items():
        if name == "RETRY_ENABLED":
            if not value:
                native["retries"] = 0
                done.append("RETRY_ENABLED=False -> retries=0")
            continue
        if name == "REDIRECT_ENABLED":
            if not value:
                native["max_redirects"] = 0
                done.append("REDIRECT_ENABLED=False -> max_redirects=0")
            continue
        if name == "FEEDS":
            if feeds_output(value) is not None:
                done.append("FEEDS -> the output file (when no -o/-O is given)")
            continue
        if name == "DOWNLOAD_MAXSIZE":
            if value:  # 0 is "no limit" in Scrapy: keep the native guard
                native["max_response_size"] = int(value)
                done.append("DOWNLOAD_MAXSIZE -> max_response_size")
            continue
        rename = _RENAMES.get(name)
        if rename is None:
            if name in _SCRAPY_OTHER:
                ignored.append(name)
            continue
        target, convert = rename
        converted = convert(value)
        if target in ("pipelines", "middlewares"):
            builtin = [p for p in converted if p.startswith(_BUILTIN_PREFIX)]
            converted = [p for p in converted if not p.startswith(_BUILTIN_PREFIX)]
            ignored.extend(f"{name}[{p}]" for p in builtin)
            converted = [*native.get(target, []), *converted]
        native[target] = converted
        done.append(f"{name} -> {target}")
    _log_once(logging.INFO, f"Scrapy settings in {source} translated: %s", done)
    _log_once(logging.WARNING, f"Scrapy settings in {source} ignored (no counterpart here): %s",
              ignored)
    return native


def feeds_output(feeds: Any, spider_name: str = "") -> tuple[str, bool] | None:
    """The first feed of Scrapy's ``FEEDS`` (or a settings mapping holding it) as
    ``(path, overwrite)``, or None. ``%(name)s`` in the path is the spider's name and
    ``%(time)s`` the UTC time, as Scrapy writes them."""
    if isinstance(feeds, Mapping) and "FEEDS" in feeds:
        feeds = feeds["FEEDS"]
    if not isinstance(feeds, Mapping) or not feeds:
        return None
    if all(isinstance(k, str) and _SETTING_NAME.fullmatch(k) for k in feeds):
        return None  # a settings mapping without FEEDS: its first name is no output file
    uri, options = next(iter(feeds.items()))
    path = str(uri)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path:
        return None
    overwrite = bool(options.get("overwrite", False)) if isinstance(options, Mapping) else False
    if "%(" in path:
        from datetime import UTC, datetime

        now = datetime.now(tz=UTC).replace(microsecond=0).isoformat().replace(":", "-")
        path = path.replace("%(name)s", spider_name).replace("%(time)s", now)
    return path, overwrite


def _log_once(level: int, message: str, names: list[str]) -> None:
    fresh = [n for n in names if (message, n) not in _logged]
    if not fresh:
        return
    _logged.update((message, n) for n in fresh)
    logger.log(level, message, ", ".join(fresh))


# --------------------------------------------------------------------------------------------
# What from_crawler receives


class ScrapySettings:
    """Scrapy's ``Settings`` getters over one crawl's settings: a Scrapy name answers its
    native value when it has a counterpart, else what ``custom_settings`` / ``settings.py``
    gave (``MONGO_URI``); a native name answers the native value."""

    _REVERSE_SKIP = ("pipelines", "middlewares")

    def __init__(self, settings: Settings | None = None,
                 raw: Mapping[str, Any] | None = None) -> None:
        self.native = settings
        self._raw = dict(raw or {})

    def _lookup(self, name: str) -> tuple[bool, Any]:
        if name in self._raw:
            return True, self._raw[name]
        native = self.native
        if native is None:
            return False, None
        rename = _RENAMES.get(name)
        path = rename[0] if rename is not None else name
        value: Any = native
        for part in path.split("."):
            if not hasattr(value, part):
                return False, None
            value = getattr(value, part)
        if rename is not None and rename[1] is _negated:
            value = -value
        return True, value

    def get(self, name: str, default: Any = None) -> Any:
        found, value = self._lookup(name)
        return value if found else default

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return self._lookup(name)[0]

    def getbool(self, name: str, default: bool = False) -> bool:
        value = self.get(name, default)
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    def getint(self, name: str, default: int = 0) -> int:
        return int(self.get(name, default))

    def getfloat(self, name: str, default: float = 0.0) -> float:
        return float(self.get(name, default))

    def getlist(self, name: str, default: list[Any] | None = None) -> list[Any]:
        value = self.get(name, default or [])
        if isinstance(value, str):
            return value.split(",")
        return list(value)

    def getdict(self, name: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
        value = self.get(name, default or {})
        if isinstance(value, str):
            import json

            value = json.loads(value)
        return dict(value)

    def copy(self) -> ScrapySettings:
        return ScrapySettings(self.native, self._raw)

    def set(self, name: str, value: Any, priority: str = "project") -> None:
        self._raw[name] = value


class StatsCollector:
    """Scrapy's StatsCollector methods over the crawl's native stats."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def get_value(self, key: str, default: Any = None, spider: Any = None) -> Any:
        return self._stats.to_dict().get(key, default)

    def get_stats(self, spider: Any = None) -> dict[str, Any]:
        return self._stats.to_dict()

    def set_value(self, key: str, value: Any, spider: Any = None) -> None:
        self._stats.set(key, value)

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider: Any = None) -> None:
        if start and key not in self._stats.to_dict():
            self._stats.set(key, start)
        self._stats.inc(key, count)

    def max_value(self, key: str, value: Any, spider: Any = None) -> None:
        self._stats.max(key, value)

    def min_value(self, key: str, value: Any, spider: Any = None) -> None:
        current = self._stats.to_dict().get(key)
        if current is None or value < current:
            self._stats.set(key, value)


class SignalManager:
    """``crawler.signals.connect(receiver, signal=...)``: receivers of ``spider_opened`` /
    ``spider_closed`` (and ``item_scraped``-style signals, kept but never sent) are called
    with Scrapy's keyword arguments; a receiver that fails is logged, never fatal."""

    def __init__(self) -> None:
        self._receivers: dict[object, list[Callable[..., Any]]] = {}

    @property
    def connected(self) -> bool:
        """Whether any receiver is connected."""
        return any(self._receivers.values())

    def connect(self, receiver: Callable[..., Any], signal: object, **kwargs: Any) -> None:
        self._receivers.setdefault(signal, []).append(receiver)

    def disconnect(self, receiver: Callable[..., Any], signal: object, **kwargs: Any) -> None:
        if receiver in self._receivers.get(signal, []):
            self._receivers[signal].remove(receiver)

    async def send(self, signal: object, /, **kwargs: Any) -> None:
        import inspect

        for receiver in list(self._receivers.get(signal, [])):
            try:
                params = inspect.signature(receiver).parameters
                takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
                result = receiver(**(kwargs if takes_all else
                                     {k: v for k, v in kwargs.items() if k in params}))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("Signal receiver %r failed", receiver)


class _Signals:
    """The signal objects (compared by identity, as Scrapy's are)."""

    spider_opened = object()
    spider_closed = object()
    spider_idle = object()
    spider_error = object()
    engine_started = object()
    engine_stopped = object()
    item_scraped = object()
    item_dropped = object()
    item_error = object()
    request_scheduled = object()
    request_dropped = object()
    response_received = object()
    response_downloaded = object()
    headers_received = object()
    bytes_received = object()


signals = _Signals()


class Crawler:
    """What ``from_crawler(cls, crawler)`` receives: ``settings``, ``stats``, ``spider``
    (once built), ``signals`` and ``spidercls``."""

    def __init__(self, spidercls: type[Spider], settings: Settings, stats: Stats,
                 raw: Mapping[str, Any] | None = None) -> None:
        self.spidercls = spidercls
        scrapy_named = {k: v for k, v in spidercls.custom_settings.items() if is_scrapy_name(k)}
        self.settings = ScrapySettings(settings, {**(raw or {}), **scrapy_named})
        self.stats = StatsCollector(stats)
        self.signals = SignalManager()
        self.spider: Spider | None = None
        self.crawling = True

    def create_spider(self, **kwargs: Any) -> Spider:
        spider = self.spidercls.from_crawler(self, **kwargs)
        self.spider = spider
        return spider

    def open_hook(self) -> _SignalsHook:
        """A pipeline-shaped object that sends ``spider_opened`` / ``spider_closed``."""
        return _SignalsHook(self)


class _SignalsHook:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    async def open(self, spider: Spider) -> None:
        await self.crawler.signals.send(signals.spider_opened, spider=spider,
                                        signal=signals.spider_opened, sender=self.crawler)

    async def close(self, spider: Spider) -> None:
        # The pipelines close after the run: its finish reason is in the stats by now.
        reason = self.crawler.stats.get_value("finish_reason") or "finished"
        await self.crawler.signals.send(signals.spider_closed, spider=spider,
                                        reason=reason, signal=signals.spider_closed,
                                        sender=self.crawler)


def build_component(obj: Any, crawler: Crawler | None) -> Any:
    """A component class built as Scrapy builds one (``from_crawler(crawler)``, else
    ``from_settings(settings)``, else no arguments); an instance is used as is."""
    if not isinstance(obj, type):
        return obj
    if crawler is not None:
        factory = getattr(obj, "from_crawler", None)
        if callable(factory):
            return factory(crawler)
        factory = getattr(obj, "from_settings", None)
        if callable(factory):
            return factory(crawler.settings)
    return obj()


def scrapy_layer(names: Iterable[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """The Scrapy-named entries of ``values`` (UPPER_CASE keys among ``names``)."""
    return {n: values[n] for n in names if is_scrapy_name(n)}
