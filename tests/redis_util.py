"""Redis for the tests: find a server, or start one; give each test its own crawl and clean up.

How a test gets Redis (fixture :func:`redis_url`, once per session):

1. ``REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) if something answers there;
2. else a ``redis-server`` of our own on a free port, if the binary exists (killed at the end);
3. else the test is skipped saying why, except under ``CRAWLER_REQUIRE_REDIS=1`` (CI), where
   it fails.

Each test that uses :func:`redis_crawl` gets a fresh crawl (``crawl_id`` = a uuid) whose keys are
purged at the end, and frontiers it made through it are closed.

Fixtures: ``redis_url``, ``redis_crawl``, ``redis_server``. Use them from a test module with
``pytest_plugins = ["tests.redis_util"]`` (or from ``conftest.py``), importing names from this
module only under ``TYPE_CHECKING`` so that pytest can rewrite its asserts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from crawler.frontier.redis import RedisFrontier, frontier_purge

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPIDER = "redistest"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ping(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    """A ``redis-server`` process of the test's own on 127.0.0.1 (never the shared one).

    ``appendonly``: persist every write (``appendfsync always``) in ``dir`` so that the data
    survives :meth:`kill` + :meth:`start`.
    """

    port: int = field(default_factory=free_port)
    appendonly: bool = False
    dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart on the same port) and wait until it answers."""
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--daemonize", "no", "--protected-mode", "no"]
        if self.appendonly:
            assert self.dir is not None, "appendonly needs a dir"
            args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not ping(self.url(), timeout=0.2):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (what a crash looks like)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _unavailable(reason: str) -> None:
    """Skip, or fail under CRAWLER_REQUIRE_REDIS=1 (CI must not skip the Redis tests)."""
    if os.environ.get("CRAWLER_REQUIRE_REDIS") == "1":
        pytest.fail(reason + "; CRAWLER_REQUIRE_REDIS=1 requires Redis")
    pytest.skip(reason)


def require_redis_server() -> None:
    """For tests that run (and kill) a redis-server of their own."""
    if not RedisServer.available():
        _unavailable("redis-server is not installed: this test runs and restarts its own server")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL that answers (see the module doc), for the whole session."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if ping(url):
        yield url
        return
    if RedisServer.available():
        server = RedisServer()
        server.start()
        try:
            yield server.url(15)
        finally:
            server.kill()
        return
    _unavailable(f"no Redis: nothing answers at REDIS_URL={url} and redis-server is not "
                 "installed (set REDIS_URL or install redis-server)")


@dataclass
class RedisCrawl:
    """One test's crawl: its own ``crawl_id``; frontiers made here are closed, and the
    crawl's keys purged, when the test ends."""

    url: str
    spider: str
    crawl_id: str
    _opened: list[Any] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None

    async def frontier(self, *, seeded: bool = True, **kwargs: Any) -> RedisFrontier:
        """A new worker's frontier on this crawl, opened. ``seeded``: mark the crawl seeded
        (as the engine does once start() is done), so that is_finished() does not wait for
        the first worker's start requests."""
        self._loop = asyncio.get_running_loop()
        f = RedisFrontier(self.url, spider_name=self.spider, crawl_id=self.crawl_id, **kwargs)
        self._opened.append(f)
        await f.open()
        if seeded:
            await f.mark_seeded()
        return f

    def client(self) -> redis.Redis:
        """A plain synchronous client, to look at the keys."""
        return redis.Redis.from_url(self.url)

    def key(self, name: str) -> str:
        return f"crawler:{self.spider}:{self.crawl_id}:{name}"

    async def _close_all(self) -> None:
        for f in self._opened:
            try:
                await f.close()
            except Exception:
                pass  # closed by the test already, or its server is gone


@pytest.fixture
def redis_server() -> Iterator[Callable[..., RedisServer]]:
    """A factory of redis-server processes of the test's own (``RedisServer(**kwargs)``, not
    started yet); every one is killed when the test ends. Skips (fails under
    CRAWLER_REQUIRE_REDIS=1) when the redis-server binary is missing."""
    require_redis_server()
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def redis_crawl(redis_url: str) -> Iterator[RedisCrawl]:
    """A fresh crawl for one test. A plain fixture, so that an async fixture can ask for it
    with ``request.getfixturevalue`` (as the conformance suite's does): its frontiers are
    closed on the event loop they were opened on, and its keys purged, at the end."""
    crawl = RedisCrawl(redis_url, SPIDER, uuid.uuid4().hex)
    try:
        yield crawl
    finally:
        loop = crawl._loop
        if loop is not None and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(crawl._close_all())
            loop.run_until_complete(frontier_purge(redis_url, crawl.spider, crawl.crawl_id))
        else:
            asyncio.run(frontier_purge(redis_url, crawl.spider, crawl.crawl_id))
