"""The HTTP cache for developing spiders (Scrapy's ``HTTPCACHE_ENABLED``).

With ``http_cache = true`` every response the network gives is kept in
``<http_cache_dir>/<spider>.sqlite3``, keyed by the request fingerprint, and a later request
with the same fingerprint is answered from there without a download: rerunning a spider
while its selectors are written costs the site nothing. Responses are kept decoded (their
``Content-Encoding`` undone), redirects included, so a rerun follows the same chains.

It is a downloader middleware, the innermost one: the spider's and the settings'
middlewares run before it, and a cached response still waits for its host's slot like a
download would (a rerun paces itself as the first run did). Not cached: statuses in
``retry_http_codes`` (transient by definition; a cached 503 would turn every retry into the
same failure) and in ``http_cache_ignore_status``. ``http_cache_expiration`` (seconds; 0 =
never) makes older entries misses, which are fetched and stored again. robots.txt is not
cached: it goes to the network, as politeness asks. The cache is a disposable convenience:
written without fsync, and a database that cannot be opened is an error naming it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from .errors import ConfigError
from .http import Request, Response
from .settings import Settings
from .stats import Stats

__all__ = ["HttpCache"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint BLOB PRIMARY KEY,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    stored REAL NOT NULL
)
"""
# The body is kept decoded, so these no longer describe it.
_DROPPED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class HttpCache:
    """Answers requests from ``path`` (an SQLite file) and stores what the network answers.
    Counts ``httpcache/hit``, ``httpcache/miss`` and ``httpcache/store``."""

    def __init__(
        self, path: Path, stats: Stats, *, expiration: float = 0.0,
        ignore_status: frozenset[int] = frozenset(),
    ) -> None:
        self.path = path
        self.stats = stats
        self.expiration = expiration
        self.ignore_status = ignore_status
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=OFF")  # a cache: losing it costs a refetch
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the HTTP cache {path}: {exc}") from exc
        logger.info("HTTP cache: %s", path)

    @classmethod
    def from_settings(cls, settings: Settings, spider_name: str, stats: Stats) -> HttpCache:
        return cls(
            Path(settings.http_cache_dir) / f"{spider_name}.sqlite3",
            stats,
            expiration=settings.http_cache_expiration,
            ignore_status=frozenset(settings.retry_http_codes)
            | frozenset(settings.http_cache_ignore_status),
        )

    def close(self) -> None:
        self._conn.close()

    def process_request(self, request: Request, spider: Any) -> Response | None:
        try:
            row = self._conn.execute(
                "SELECT url, status, headers, body, stored FROM responses WHERE fingerprint = ?",
                (request.fingerprint,),
            ).fetchone()
        except sqlite3.Error as exc:  # the cache is a convenience: the network still works
            self._failed("read", exc)
            row = None
        if row is None or (self.expiration and time.time() - row[4] > self.expiration):
            self.stats.inc("httpcache/miss")
            return None
        self.stats.inc("httpcache/hit")
        url, status, headers, body, _ = row
        pairs = [(str(k), str(v)) for k, v in orjson.loads(headers)]
        return Response(url, status, CIMultiDictProxy(CIMultiDict(pairs)), body, request,
                        stats=self.stats)

    def process_response(self, request: Request, response: Response, spider: Any) -> Response:
        if response.status in self.ignore_status:
            return response
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS]
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (request.fingerprint, response.url, response.status, orjson.dumps(headers),
                 response.body, time.time()),
            )
        except sqlite3.Error as exc:  # a full disk loses the cache entry, never the page
            self._failed("write", exc)
            return response
        self.stats.inc("httpcache/store")
        return response

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        if not self.stats.get(f"httpcache/{what}_errors"):
            logger.warning("HTTP cache %s failed (%s): %s", what, self.path, exc)
        self.stats.inc(f"httpcache/{what}_errors")

