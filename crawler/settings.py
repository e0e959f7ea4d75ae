"""One ``Settings`` model, the layering that fills it, and readable error messages.

Layers, lowest first (a higher layer wins)::

    built-in defaults < settings.toml < spider custom_settings < CRAWLER_<NAME> env < CLI -s

:func:`build_settings` merges the layers into one dict, remembering which layer gave each
value, then validates once. Any problem raises :class:`~crawler.errors.SettingsError` naming
the setting, the layer it came from and, for a misspelt name, the closest valid one.

Merging: a table (``[close_on]``, ``default_headers``) given in several layers is merged key
by key, the higher layer winning per key; any other value replaces the lower layer's whole.
A value given in any layer replaces the built-in default.

Strings from the environment and the CLI are parsed by the type of the setting they name:
string settings keep the raw text (an empty string clears an optional one: ``-s proxy=``);
other settings try JSON first (``10``, ``true``, ``[500, 503]``, ``{"items": 5}``); list
settings then accept a comma-separated form (``500,503``; empty = ``[]``); anything else is
left to pydantic's lax coercion (``"yes"`` -> ``True``). Nested keys are written
``close_on.items`` on the CLI and ``CRAWLER_CLOSE_ON__ITEMS`` in the environment.

Validation is pydantic's own engine, pydantic-core, run on a schema built from the fields'
types and bounds (:func:`_schema_of`): the same lax coercions, bounds and error types as a
pydantic model, without importing pydantic itself. A pydantic model here would cost every
``crawl`` about 120 ms before its first request (pydantic's import and its model building:
over half the start-up of a crawl); the settings classes are frozen dataclasses instead,
validated once by :func:`build_settings`. Their constructors do not validate: build settings
from user input with :func:`build_settings`, which fills the ``Settings`` it returns.

Why one module of about 800 lines: it is one model. About half is the ``Settings`` fields,
each with the docstring that is its documentation (:func:`settings_table_markdown` builds the
README's table from them); the rest is the layering and the error messages, which know the
model's fields and nothing else, and change whenever a field does.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic_core import PydanticCustomError, SchemaValidator, ValidationError, core_schema
from yarl import URL

from .errors import SettingsError

__all__ = [
    "DEFAULT_HEADERS",
    "ENV_ALLOWED",
    "ENV_ALLOWED_PREFIXES",
    "changed_settings",
    "ENV_PREFIX",
    "SETTINGS_FILE",
    "USER_AGENT",
    "CloseOn",
    "FeedOptions",
    "Settings",
    "build_settings",
    "settings_table_markdown",
]

USER_AGENT = "crawler/0.1 (+https://github.com/crawler-project/crawler)"
DEFAULT_HEADERS: Mapping[str, str] = types.MappingProxyType(
    {
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language": "en",
    }
)
SETTINGS_FILE = "settings.toml"
ENV_PREFIX = "CRAWLER_"
#: Environment variables that start with ``CRAWLER_`` but are not settings (never an error).
ENV_ALLOWED: frozenset[str] = frozenset({"CRAWLER_REQUIRE_REDIS", "CRAWLER_NO_UVLOOP"})
#: Prefixes of such variables: ``CRAWLER_TEST_*`` is free for test suites.
ENV_ALLOWED_PREFIXES: tuple[str, ...] = ("CRAWLER_TEST_",)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Bounds of a number (pydantic's ``ge``/``gt``/``le``), for ``Annotated`` types."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
HttpStatus = Annotated[int, Bounds(ge=100, le=599)]

_Check = Callable[[Any], Any]


def setting(
    default: Any = MISSING, *, factory: Callable[[], Any] | None = None,
    ge: float | None = None, gt: float | None = None, le: float | None = None,
    before: _Check | None = None, check: _Check | None = None,
) -> Any:
    """A field of a settings class: its default (or ``factory``), the bounds of a number,
    and the functions run on a given value ``before`` and after its type is validated
    (``check``: returns the value, or raises ValueError with what is wrong)."""
    meta = {"bounds": Bounds(ge=ge, gt=gt, le=le), "before": before, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


_IMPORT_PATH = re.compile(
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"  # pkg.mod:Name
    r"|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"  # pkg.mod.Name
)
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _check_package(value: str) -> str:
    if not _MODULE_NAME.fullmatch(value):
        raise ValueError(f"not a package name: {value!r}")
    return value


def _check_import_paths(value: list[str]) -> list[str]:
    for index, path in enumerate(value):
        if not _IMPORT_PATH.fullmatch(path):
            raise ValueError(
                f"item {index}: {path!r} is not an import path"
                " ('pkg.mod:Name' or 'pkg.mod.Name')"
            )
    return value


def _check_proxy(value: str | None) -> str | None:
    return _check_url(value, ("http", "https"))


def _check_frontier_url(value: str | None) -> str | None:
    return _check_url(value, ("redis", "rediss", "unix", "memory"), need_host=False)



@dataclass(frozen=True, slots=True, kw_only=True)
class CloseOn:
    """Limits that end the crawl gracefully once reached; 0 means no limit."""

    items: int = setting(0, ge=0)
    """Stop after this many items were scraped."""
    pages: int = setting(0, ge=0)
    """Stop after this many responses were received."""
    seconds: float = setting(0.0, ge=0)
    """Stop after this many seconds of crawling."""
    errors: int = setting(0, ge=0)
    """Stop after this many errors (download, callback or pipeline)."""


#: The largest ``concurrency`` accepted.
MAX_CONCURRENCY = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOptions:
    """One output of the ``feeds`` table (Scrapy's ``FEEDS`` shape), keyed by its URI: a file
    path (``items.jsonl``, ``out/{batch_id}.csv``), ``-``, ``sqlite:///items.db?table=t`` or
    ``postgresql://user@host/db?table=t``."""

    format: Literal["jsonl", "jsonlines", "json", "csv", "sqlite", "postgresql"] | None = None
    """The format; None = from the URI (its extension or scheme)."""
    overwrite: bool = False
    """Replace the file (or empty the table) instead of appending."""
    fields: list[str] | None = None
    """Only these fields, in this order (the CSV columns); None = every field."""
    encoding: str = "utf-8"
    """Text encoding of a file output."""
    indent: int | None = setting(None, ge=0)
    """Indent a ``.json`` array's items by this many spaces; None = compact."""
    item_classes: list[str] = setting(factory=list)
    """Only items of these classes (names, or import paths' last part); empty = all items."""
    item_filter: str | None = None
    """Import path of a callable ``(item: dict) -> bool`` choosing the items of this feed."""
    batch_item_count: int = setting(0, ge=0)
    """Start a new file every this many items; the path needs ``{batch_id}`` or ``{time}``."""
    store_empty: bool = True
    """Keep a file output that received no item (False: remove it at the end)."""
    key: list[str] = setting(factory=list)
    """Database outputs: upsert on these fields (the URI's ``?key=``)."""
    batch_size: int = setting(500, ge=1)
    """Database outputs: rows per transaction, at most."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every setting of a crawl, validated once; immutable. Build it with :func:`build_settings`."""

    #: Which layer set each value, by dotted name (filled by :func:`build_settings`).
    _sources: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    concurrency: int = setting(64, ge=1, le=MAX_CONCURRENCY)
    """Global maximum of requests in flight (at most 100,000: each request in flight holds a
    connection, and so a file descriptor; memory grows with the requests in flight, not with
    this number)."""
    concurrency_per_host: int = setting(8, ge=1, le=MAX_CONCURRENCY)
    """Maximum of requests in flight to one host."""
    download_delay: float = setting(0.0, ge=0)
    """Seconds between two requests to the same host."""
    timeout: float = setting(30.0, gt=0)
    """Total wall-clock deadline per response in seconds: connect, headers and the whole body."""
    connect_timeout: float = setting(10.0, gt=0)
    """Seconds allowed to open a connection."""
    read_timeout: float = setting(20.0, gt=0)
    """Maximum silence in seconds between two reads of a response."""
    retries: int = setting(3, ge=0)
    """Times a failed request is retried (connection errors, timeouts, retry_http_codes)."""
    retry_http_codes: list[HttpStatus] = setting(
        factory=lambda: [408, 429, 500, 502, 503, 504, 522, 524]
    )
    """HTTP statuses that are retried."""
    retry_backoff: float = setting(0.5, ge=0)
    """Base of the exponential backoff between retries, in seconds (plus jitter)."""
    retry_backoff_max: float = setting(60.0, ge=0)
    """Upper bound of one backoff delay, in seconds."""
    max_redirects: int = setting(10, ge=0)
    """Maximum redirect hops followed for one request."""
    meta_refresh: bool = True
    """Follow an HTML page's `<meta http-equiv="refresh">` redirect, as an HTTP redirect."""
    meta_refresh_max_delay: float = setting(100.0, ge=0)
    """A meta refresh with a longer delay (seconds) is not followed: the page is parsed."""
    user_agent: str = USER_AGENT
    """The User-Agent header sent with every request."""
    default_headers: dict[str, str] = setting(factory=lambda: dict(DEFAULT_HEADERS))
    """Headers sent with every request unless the request sets them."""
    obey_robots: bool = True
    """Honour robots.txt."""
    depth_limit: int = setting(0, ge=0)
    """Maximum link depth from the start requests; 0 means no limit."""
    depth_priority: int = 0
    """Added to a request's priority per level of depth: positive = depth-first,
    negative = breadth-first (FIFO within a priority is breadth-first already)."""
    max_response_size: int = setting(32 * 1024 * 1024, gt=0)
    """Maximum body size in bytes (32 MiB), checked while streaming and after decompression."""
    close_on: CloseOn = setting(factory=CloseOn)
    """Limits that end the crawl gracefully: items, pages, seconds, errors (0 = no limit)."""
    log_level: LogLevel = setting("INFO", before=_upper)
    """Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)."""
    log_interval: float = setting(60.0, gt=0)
    """Seconds between two progress log lines when the output is not a terminal."""
    spiders: str = setting("spiders", check=_check_package)
    """Package where spiders are discovered."""
    proxy: str | None = setting(None, check=_check_proxy)
    """An http:// or https:// proxy URL for the whole crawl; a request's meta["proxy"]
    overrides it."""
    cookies: bool = True
    """Keep one cookie jar for the whole crawl."""
    handle_status: list[HttpStatus] = setting(factory=list)
    """Non-2xx statuses passed to the callback instead of the errback, for every spider."""
    pipelines: list[str] = setting(factory=list, check=_check_import_paths)
    """Item pipelines by import path ("pkg.mod:Name" or "pkg.mod.Name")."""
    middlewares: list[str] = setting(factory=list, check=_check_import_paths)
    """Middlewares by import path ("pkg.mod:Name" or "pkg.mod.Name")."""
    verify_tls: bool = True
    """Verify TLS certificates."""
    block_private_addresses: bool = False
    """Refuse hosts that resolve to loopback, private, link-local or reserved addresses."""
    autothrottle: bool = False
    """Adapt each host's delay to its latency."""
    autothrottle_target_concurrency: float = setting(2.0, gt=0)
    """Average number of requests in flight per host that autothrottle aims for."""
    autothrottle_start_delay: float = setting(1.0, ge=0)
    """Initial per-host delay in seconds under autothrottle."""
    autothrottle_max_delay: float = setting(60.0, ge=0)
    """Largest per-host delay in seconds under autothrottle; must be >= download_delay."""
    max_pages_per_host: int = setting(0, ge=0)
    """Maximum of pages fetched from one host; 0 means no limit."""
    url_length_limit: int = setting(2083, ge=0)
    """Longer URLs are dropped; 0 means no limit."""
    max_repeated_segments: int = setting(3, ge=0)
    """A URL whose path repeats any segment more than this many times is dropped; 0 = off."""
    frontier_url: str | None = setting(None, check=_check_frontier_url)
    """Shared frontier, e.g. "redis://127.0.0.1:6379/0" (schemes redis, rediss, unix, memory);
    unset = in-memory."""
    crawl_id: str = ""
    """Name of the crawl in a shared frontier; empty = derived from the spider name."""
    lease_timeout: float = setting(60.0, gt=0)
    """Seconds before a leased request that was not acknowledged is handed out again."""
    max_deliveries: int = setting(5, ge=1)
    """A request leased this many times without being acknowledged is given up."""
    jobdir: str | None = None
    """Directory where a crawl's state is kept so it can be resumed; unset = not persisted."""
    http_cache: bool = False
    """Keep every response and answer reruns from it (for developing spiders)."""
    http_cache_dir: str = ".httpcache"
    """Folder of the HTTP cache, one SQLite file per spider."""
    http_cache_expiration: float = setting(0.0, ge=0)
    """Seconds a cached response stays fresh; 0 = forever."""
    http_cache_ignore_status: list[HttpStatus] = setting(factory=list)
    """Statuses never cached, besides retry_http_codes."""
    browser: bool = False
    """Render every request in Chromium (a request's browser=False still opts out)."""
    browser_executable: str | None = None
    """Path of the Chromium to drive; unset = chromium, chromium-browser or google-chrome
    found on PATH."""
    browser_concurrency: int = setting(4, ge=1)
    """Pages rendered at once, counted inside concurrency."""
    browser_wait: Literal["commit", "domcontentloaded", "load", "networkidle"] = "networkidle"
    """What a rendered page waits for before its DOM is read: networkidle = the load event
    then no network activity for 0.5 s, capped at browser_idle_timeout."""
    browser_idle_timeout: float = setting(5.0, ge=0)
    """Seconds a rendered page waits for the network to go quiet after the load event (and
    after each scroll or click action) before its DOM is read anyway."""
    browser_block_resources: list[str] = setting(
        factory=lambda: ["image", "media", "font"]
    )
    """Resource types the browser does not load (Playwright's names: image, media, font,
    stylesheet, script, ...); [] loads everything."""
    browser_recycle_pages: int = setting(100, ge=1)
    """A browser context is renewed after this many pages, its cookies carried over (bounds
    the browser's memory)."""
    feeds: dict[str, FeedOptions] = setting(factory=dict)
    """Outputs, as tables keyed by URI (like Scrapy's FEEDS); -o/-O on the command line
    replace them."""
    feed_error_timeout: float = setting(60.0, gt=0)
    """Seconds a database output may stay unreachable before the crawl stops (exit 1)."""
    feed_buffer_items: int = setting(10_000, ge=1)
    """Items a database output holds in memory while it cannot write; the crawl waits beyond."""

    @property
    def redis_frontier_url(self) -> str | None:
        """``frontier_url`` when it names a Redis frontier (``redis://``, ``rediss://``,
        ``unix://``), else None (unset, or ``memory://``)."""
        url = self.frontier_url
        return url if url and not url.startswith("memory:") else None

    def with_values(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (not validated: values the program chose), remembering
        which layer set each of the other values."""
        copy = replace(self, **changes)
        object.__setattr__(copy, "_sources", self._sources)
        return copy

    def _cross_checks(self) -> None:
        """Raises about values that are valid alone but not together (run by the validator
        of :func:`build_settings`)."""
        # Raised with the names involved in ctx so build_settings can blame the one the user set.
        if self.retry_backoff_max < self.retry_backoff:
            raise PydanticCustomError(
                "cross_field",
                "retry_backoff_max ({high}) must be >= retry_backoff ({low})",
                {"fields": "retry_backoff_max,retry_backoff", "high": self.retry_backoff_max,
                 "low": self.retry_backoff},
            )
        # Without autothrottle its max delay is unused: no reason to refuse a long download_delay.
        if self.autothrottle and self.autothrottle_max_delay < self.download_delay:
            raise PydanticCustomError(
                "cross_field",
                "autothrottle_max_delay ({high}) must be >= download_delay ({low})",
                {"fields": "autothrottle_max_delay,download_delay",
                 "high": self.autothrottle_max_delay, "low": self.download_delay},
            )


def _check_url(
    value: str | None, schemes: tuple[str, ...], *, need_host: bool = True
) -> str | None:
    if value is None:
        return None
    try:
        url = URL(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a URL: {value!r} ({exc})") from None
    if url.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes[:-1]) + f" or {schemes[-1]}://"
        raise ValueError(f"{value!r} must start with {allowed}")
    if need_host and not url.host:
        raise ValueError(f"{value!r} has no host")
    return value


# ---------------------------------------------------------------------------------------------
# Validation: a pydantic-core schema of the settings classes

#: The settings classes: nested tables of ``Settings`` are instances of these.
_CLASSES: tuple[type, ...] = (Settings, CloseOn, FeedOptions)
_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a settings class (``Annotated`` kept), in
    declaration order."""
    hints = _hints_cache.get(cls)
    if hints is None:
        resolved = typing.get_type_hints(cls, include_extras=True)
        hints = _hints_cache[cls] = {f.name: resolved[f.name] for f in fields(cls) if f.init}
    return hints


def _nested_model(annotation: Any) -> type | None:
    """The settings class a field holds (a table of its own), else None."""
    return annotation if annotation in _CLASSES else None


def _schema_of(annotation: Any, bounds: Bounds | None = None) -> core_schema.CoreSchema:
    """The pydantic-core schema of a field's type: what a pydantic model would check."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    b = bounds or Bounds()
    if annotation is bool:
        return core_schema.bool_schema()
    if annotation is int:
        as_int = [None if v is None else int(v) for v in (b.ge, b.gt, b.le)]
        return core_schema.int_schema(ge=as_int[0], gt=as_int[1], le=as_int[2])
    if annotation is float:
        return core_schema.float_schema(allow_inf_nan=False, ge=b.ge, gt=b.gt, le=b.le)
    if annotation is str:
        return core_schema.str_schema()
    if origin is Annotated:
        return _schema_of(args[0], args[1])
    if origin is Literal:
        return core_schema.literal_schema(list(args))
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (rest,) = (a for a in args if a is not type(None))
        return core_schema.nullable_schema(_schema_of(rest, bounds))
    if origin is list:
        return core_schema.list_schema(_schema_of(args[0]))
    if origin is dict:
        return core_schema.dict_schema(_schema_of(args[0]), _schema_of(args[1]))
    if _nested_model(annotation) is not None:
        return _class_schema(annotation)
    raise TypeError(f"no validation for the type {annotation!r}")


def _class_schema(cls: type) -> core_schema.CoreSchema:
    """A table of ``cls``'s fields (unknown names refused) that becomes a ``cls``: given
    values validated, the others left to their defaults, then ``_cross_checks`` run."""
    table: dict[str, core_schema.TypedDictField] = {}
    hints = _hints(cls)
    for f in fields(cls):
        if not f.init:
            continue
        schema = _schema_of(hints[f.name], f.metadata.get("bounds"))
        if f.metadata.get("check") is not None:
            schema = core_schema.no_info_after_validator_function(f.metadata["check"], schema)
        if f.metadata.get("before") is not None:
            schema = core_schema.no_info_before_validator_function(f.metadata["before"], schema)
        table[f.name] = core_schema.typed_dict_field(schema, required=False)

    def build(values: dict[str, Any]) -> Any:
        made = cls(**values)
        checks = getattr(made, "_cross_checks", None)
        if checks is not None:
            checks()
        return made

    return core_schema.no_info_after_validator_function(
        build, core_schema.typed_dict_schema(table, extra_behavior="forbid")
    )


@functools.cache
def _validator() -> SchemaValidator:
    """The validator of a whole ``Settings`` table, built on first use (about 1 ms)."""
    return SchemaValidator(_class_schema(Settings))


# ---------------------------------------------------------------------------------------------
# Layering

_Path = tuple[str, ...]
_Kind = Literal["str", "optional_str", "list", "other"]


@dataclass(slots=True)
class _Layers:
    """The merged raw values and, for every key path set, the layer that set it last."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[tuple[str | int, ...], str] = field(default_factory=dict)

    def set(self, path: _Path, value: Any, source: str) -> None:
        node = self.values
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
                self._forget_below(path[: depth + 1])
            self.sources[path[: depth + 1]] = source
            node = child
        self._merge(node, path, value, source)

    def _merge(self, node: dict[str, Any], path: _Path, value: Any, source: str) -> None:
        key = path[-1]
        self.sources[path] = source
        if isinstance(value, Mapping):
            existing = node.get(key)
            if not isinstance(existing, dict):
                self._forget_below(path)
                existing = node[key] = {}
            for sub_key, sub_value in value.items():
                self._merge(existing, (*path, str(sub_key)), sub_value, source)
        else:
            self._forget_below(path)
            node[key] = value

    def _forget_below(self, path: _Path) -> None:
        n = len(path)
        for stale in [p for p in self.sources if len(p) > n and p[:n] == path]:
            del self.sources[stale]

    def source_of(self, loc: tuple[str | int, ...]) -> str:
        for end in range(len(loc), 0, -1):
            found = self.sources.get(loc[:end])
            if found is not None:
                return found
        return "defaults"


def build_settings(
    *,
    project_dir: Path | None,
    custom_settings: Mapping[str, Any] | None = None,
    cli: Sequence[str] | Mapping[str, Any] = (),
    environ: Mapping[str, str] | None = None,
    project_settings: Mapping[str, Any] | None = None,
    project_source: str = "Scrapy project settings",
) -> Settings:
    """Merge every layer and validate once.

    ``project_dir`` is the folder that may hold ``settings.toml`` (a missing file is fine;
    ``None`` skips it). ``custom_settings`` are the spider's, as Python values. ``cli`` is the
    list of ``-s`` arguments (``"name=value"``, dotted names for nested keys) or a mapping of
    name to value (string values are parsed like ``-s`` ones). ``environ`` defaults to
    ``os.environ``; every ``CRAWLER_*`` variable must name a setting unless listed in
    :data:`ENV_ALLOWED` / :data:`ENV_ALLOWED_PREFIXES`. ``project_settings`` (native dotted
    names, e.g. a Scrapy project's ``settings.py`` once translated) is a layer right above
    ``settings.toml``, named ``project_source`` in error messages.

    Raises :class:`SettingsError` for an unreadable or malformed ``settings.toml``, a ``-s``
    argument without ``=``, an unknown name or an invalid value; the first problem is
    described and the count of the others added.
    """
    layers = _Layers()
    if project_dir is not None:
        toml_path = (project_dir / SETTINGS_FILE).resolve()
        if toml_path.exists():
            source = f"{SETTINGS_FILE} ({toml_path})"
            for key, value in _read_toml(toml_path, source).items():
                layers.set((key,), value, source)
    for key, value in (project_settings or {}).items():
        layers.set(_split_dotted(key, project_source), value, project_source)
    for key, value in (custom_settings or {}).items():
        layers.set(_split_dotted(key, "spider custom_settings"), value, "spider custom_settings")
    env = os.environ if environ is None else environ
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or _env_allowed(var):
            continue
        path = tuple(part.lower() for part in var[len(ENV_PREFIX) :].split("__"))
        source = f"environment {var}"
        if not all(path):
            raise SettingsError(var, source, "not a setting name (use CRAWLER_<NAME>)")
        layers.set(path, _parse_string(path, env[var]), source)
    for path, value in _cli_pairs(cli):
        layers.set(path, _parse_string(path, value) if isinstance(value, str) else value, "CLI -s")
    try:
        settings: Settings = _validator().validate_python(layers.values)
    except ValidationError as exc:
        raise _translate(exc, layers) from None
    object.__setattr__(settings, "_sources", {
        ".".join(map(str, path)): source for path, source in layers.sources.items()
    })
    return settings


def changed_settings(settings: Settings) -> list[tuple[str, Any, str]]:
    """``(name, value, layer)`` for every setting whose value differs from its default, in the
    model's order; nested ones by dotted name (``close_on.items``). The layer is the one that
    set it last (``"the program"`` for a value given in code, not by a layer)."""
    changes: list[tuple[str, Any, str]] = []
    sources = settings._sources

    def walk(model: object, default: object, prefix: str) -> None:
        for name in _hints(type(model)):
            value, base = getattr(model, name), getattr(default, name)
            key = prefix + name
            if type(value) in _CLASSES and type(base) in _CLASSES:
                walk(value, base, key + ".")
            elif value != base:
                changes.append((key, value, sources.get(key) or sources.get(prefix.rstrip("."))
                                or "the program"))

    walk(settings, Settings(), "")
    return changes


def _env_allowed(var: str) -> bool:
    return var in ENV_ALLOWED or var.startswith(ENV_ALLOWED_PREFIXES)


def _split_dotted(key: object, source: str) -> _Path:
    if not isinstance(key, str):
        raise SettingsError(repr(key), source, "setting names must be strings")
    path = tuple(part.strip() for part in key.split("."))
    if not all(path):
        raise SettingsError(key, source, "empty name in a dotted setting name")
    return path


def _cli_pairs(cli: Sequence[str] | Mapping[str, Any]) -> list[tuple[_Path, Any]]:
    if isinstance(cli, Mapping):
        return [(_split_dotted(key, "CLI -s"), value) for key, value in cli.items()]
    pairs: list[tuple[_Path, Any]] = []
    for arg in cli:
        name, sep, value = arg.partition("=")
        if not sep:
            raise SettingsError(arg, "CLI -s", "expected name=value")
        pairs.append((_split_dotted(name.strip(), "CLI -s"), value))
    return pairs


def _read_toml(path: Path, source: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(SETTINGS_FILE, source, f"cannot read the file: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 only has the position inside the message: "... (at line 3, column 7)".
        detail = str(exc)
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", detail)
        if match is None:
            raise SettingsError(SETTINGS_FILE, source, f"invalid TOML: {detail}") from None
        line_no = int(match.group(1))
        lines = text.splitlines()
        line = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
        key = re.match(r"\s*\[*\s*([A-Za-z0-9_.-]+)", line)
        raise SettingsError(
            key.group(1) if key else SETTINGS_FILE,
            source,
            f"invalid TOML at line {line_no}, column {match.group(2)}: {detail[: match.start()]}",
        ) from None


def _field_kind(path: _Path) -> _Kind:
    """How a string for this key path is parsed; unknown paths parse like non-strings."""
    model: type | None = Settings
    annotation: Any = None
    for key in path:
        if model is None or key not in _hints(model):
            return "other"
        annotation = _hints(model)[key]
        model = _nested_model(annotation)
    return _kind_of(annotation)


def _kind_of(annotation: Any) -> _Kind:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is str:
        return "str"
    if origin is Literal and all(isinstance(a, str) for a in args):
        return "str"
    if origin is Annotated:
        return _kind_of(args[0])
    if origin is list:
        return "list"
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and _kind_of(rest[0]) == "str":
            return "optional_str"
    return "other"


def _parse_string(path: _Path, raw: str) -> Any:
    """Turn an env or CLI string into a value for the setting at ``path`` (see module docs)."""
    kind = _field_kind(path)
    if kind == "str":
        return raw
    if kind == "optional_str":
        return raw if raw.strip() else None
    try:
        value = json.loads(raw)
    except ValueError:
        pass
    else:
        if kind != "list" or isinstance(value, list):
            return value
    if kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


# ---------------------------------------------------------------------------------------------
# Error messages

_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _translate(exc: ValidationError, layers: _Layers) -> SettingsError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "cross_field":
        # Blame whichever of the fields involved came from the highest layer.
        names = str(first.get("ctx", {}).get("fields", "")).split(",")
        loc = (max(names, key=lambda n: _layer_rank(layers.source_of((n,)))),)
    name = ".".join(str(part) for part in loc if isinstance(part, str)) or "(settings)"
    source = layers.source_of(loc)
    message, suggestion = _describe(first, loc, source)
    if len(errors) > 1:
        others = sorted(
            {".".join(str(p) for p in e["loc"] if isinstance(p, str)) for e in errors[1:]}
        )
        count = len(errors) - 1
        listing = ", ".join(repr(n) for n in others if n)
        message += f" [and {count} other error{'s' if count > 1 else ''}: {listing}]"
    return SettingsError(name, source, message, suggestion)


_LAYER_ORDER = ("defaults", SETTINGS_FILE, "spider", "environment", "CLI")


def _layer_rank(source: str) -> int:
    return max((i for i, p in enumerate(_LAYER_ORDER) if source.startswith(p)), default=0)


def _describe(error: Any, loc: tuple[str | int, ...], source: str) -> tuple[str, str | None]:
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx", {})
    items = "".join(f"item {part}: " for part in loc if isinstance(part, int))
    if kind == "extra_forbidden":
        return "unknown setting", _suggest(loc, source)
    if kind in _EXPECTED:
        return f"{items}{_EXPECTED[kind]}, got {_show(value)}", None
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"{items}must be {sign} {ctx.get(key)}, got {_show(value)}", None
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {_show(value)}", None
    if kind in ("value_error", "assertion_error"):
        return items + str(ctx.get("error", error["msg"])), None
    if kind == "cross_field":
        return str(error["msg"]), None
    msg = str(error["msg"])
    return f"{items}{msg[:1].lower()}{msg[1:]}, got {_show(value)}", None


def _show(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


#: Scrapy's names of the settings that exist here under another name: a Scrapy user's
#: ``-s CONCURRENT_REQUESTS=8`` gets the exact name back, not the nearest spelling.
_SCRAPY_NAMES: dict[str, tuple[str, ...]] = {
    "CONCURRENT_REQUESTS": ("concurrency",),
    "CONCURRENT_REQUESTS_PER_DOMAIN": ("concurrency_per_host",),
    "CONCURRENT_REQUESTS_PER_IP": ("concurrency_per_host",),
    "DOWNLOAD_TIMEOUT": ("timeout",),
    "DOWNLOAD_MAXSIZE": ("max_response_size",),
    "RETRY_TIMES": ("retries",),
    "REDIRECT_MAX_TIMES": ("max_redirects",),
    "METAREFRESH_ENABLED": ("meta_refresh",),
    "HTTPCACHE_ENABLED": ("http_cache",),
    "HTTPCACHE_DIR": ("http_cache_dir",),
    "HTTPCACHE_EXPIRATION_SECS": ("http_cache_expiration",),
    "HTTPCACHE_IGNORE_HTTP_CODES": ("http_cache_ignore_status",),
    "METAREFRESH_MAXDELAY": ("meta_refresh_max_delay",),
    "ROBOTSTXT_OBEY": ("obey_robots",),
    "DEFAULT_REQUEST_HEADERS": ("default_headers",),
    "COOKIES_ENABLED": ("cookies",),
    "AUTOTHROTTLE_ENABLED": ("autothrottle",),
    "ITEM_PIPELINES": ("pipelines",),
    "DOWNLOADER_MIDDLEWARES": ("middlewares",),
    "SPIDER_MIDDLEWARES": ("middlewares",),
    "SPIDER_MODULES": ("spiders",),
    "URLLENGTH_LIMIT": ("url_length_limit",),
    "LOGSTATS_INTERVAL": ("log_interval",),
    "HTTPERROR_ALLOWED_CODES": ("handle_status",),
    "CLOSESPIDER_ITEMCOUNT": ("close_on", "items"),
    "CLOSESPIDER_PAGECOUNT": ("close_on", "pages"),
    "CLOSESPIDER_TIMEOUT": ("close_on", "seconds"),
    "CLOSESPIDER_ERRORCOUNT": ("close_on", "errors"),
}


def _suggest(loc: tuple[str | int, ...], source: str) -> str | None:
    """The valid name for an unknown one: Scrapy's name of it, else the closest spelling;
    spelt the way the source spells names."""
    scrapy = _SCRAPY_NAMES.get(str(loc[-1]).upper()) if len(loc) == 1 else None
    if scrapy is not None:
        return _spell(list(scrapy), source)
    model: type | None = Settings
    for key in loc[:-1]:
        annotation = _hints(model).get(str(key)) if model is not None else None
        model = _nested_model(annotation)
    if model is None:
        return None
    unknown = str(loc[-1]).lower().replace("-", "_")
    import difflib  # only for an error message

    matches = difflib.get_close_matches(unknown, list(_hints(model)), n=1, cutoff=0.6)
    if not matches:
        return None
    return _spell([str(part) for part in loc[:-1]] + [matches[0]], source)


def _spell(path: list[str], source: str) -> str:
    if source.startswith("environment"):
        return ENV_PREFIX + "__".join(path).upper()
    return ".".join(path)


# ---------------------------------------------------------------------------------------------
# Documentation


def settings_table_markdown() -> str:
    """The README's settings table: ``| name | default | description |``, one row per field
    (``close_on``'s sub-fields as ``close_on.items`` ...), in declaration order."""
    rows = ["| name | default | description |", "| --- | --- | --- |"]

    def add(model: type, prefix: str) -> None:
        docs = attribute_docs(model)
        for info in fields(model):
            if not info.init:
                continue
            name = info.name
            nested = _nested_model(_hints(model)[name])
            value = info.default if info.default_factory is MISSING else info.default_factory()
            default = "" if nested is not None else _toml_literal(value)
            description = " ".join(docs.get(name, "").split())
            rows.append(f"| `{prefix}{name}` | {default} | {_cell(description)} |")
            if nested is not None:
                add(nested, f"{prefix}{name}.")

    add(Settings, "")
    return "\n".join(rows) + "\n"


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring written under each annotated attribute of ``cls``'s own body."""
    import ast
    import inspect
    import itertools
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for stmt, following in itertools.pairwise(body.body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _toml_literal(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + "}"
    else:
        text = json.dumps(value)
    return "`" + _cell(text) + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":  # python -m crawler.settings: print the table for the README
    print(settings_table_markdown(), end="")
