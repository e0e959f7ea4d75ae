"""AutoThrottle: the delay rule on its own, then against a real local server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler import Request, Response, Spider
from crawler.throttle import MIN_BACKOFF, AutoThrottle, retry_after

from .conftest import assert_spaced, crawl
from .servers import Canned, TestSite


@dataclass
class FakeSlot:
    key: str = "example.com"
    delay: float = 1.0
    min_delay: float = 0.0


def response(status: int = 200, **headers: str) -> Response:
    return Response("http://example.com/", status, headers)


def throttle(**kw: Any) -> AutoThrottle:
    args: dict[str, Any] = {"target_concurrency": 2.0, "start_delay": 1.0, "max_delay": 10.0}
    args.update(kw)
    return AutoThrottle(**args)


def test_delay_moves_towards_latency_over_target_concurrency() -> None:
    t = throttle()
    slot = FakeSlot(delay=t.initial_delay(0.0))
    assert slot.delay == 1.0
    for _ in range(30):
        t.on_response(slot, 0.4, response())
    assert abs(slot.delay - 0.2) < 0.01  # 0.4 s latency / 2 in flight
    t.on_response(slot, 6.0, response())
    assert slot.delay == 3.0  # a slower host: up at once, not halfway


def test_error_pages_never_lower_the_delay() -> None:
    t = throttle()
    slot = FakeSlot(delay=2.0)
    t.on_response(slot, 0.01, response(404))
    assert slot.delay == 2.0
    t.on_response(slot, 8.0, response(500))
    assert slot.delay == 4.0


def test_backoff_on_429_503_and_retry_after() -> None:
    t = throttle()
    slot = FakeSlot(delay=0.5)
    t.on_response(slot, 0.01, response(429))
    assert slot.delay == 1.0
    t.on_response(slot, 0.01, response(503))
    assert slot.delay == 2.0
    t.on_response(slot, 0.01, response(200, **{"Retry-After": "7"}))
    assert slot.delay == 7.0
    for _ in range(5):
        t.on_response(slot, 0.01, response(503))
    assert slot.delay == 10.0  # bounded by max_delay
    zero = FakeSlot(delay=0.0)
    t.backoff(zero)
    assert zero.delay == MIN_BACKOFF  # doubling nothing still backs off


def test_bounds_min_delay_and_max_delay() -> None:
    t = throttle(max_delay=5.0)
    slot = FakeSlot(delay=t.initial_delay(1.5), min_delay=1.5)  # download_delay / Crawl-delay
    assert slot.delay == 1.5
    for _ in range(20):
        t.on_response(slot, 0.001, response())
    assert slot.delay == 1.5
    t.on_response(slot, 60.0, response())
    assert slot.delay == 5.0
    # A Crawl-delay above max_delay wins: max_delay is a cap on throttling, not on politeness.
    strict = FakeSlot(delay=t.initial_delay(8.0), min_delay=8.0)
    t.on_response(strict, 60.0, response())
    assert strict.delay == 8.0
    t.backoff(strict)
    assert strict.delay == 8.0


def test_retry_after_forms() -> None:
    assert retry_after(response(200, **{"Retry-After": "12"})) == 12.0
    assert retry_after(response(200, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after(response(200, **{"Retry-After": "999999"})) == 3600.0
    assert retry_after(response(200, **{"Retry-After": "soon"})) is None
    assert retry_after(response()) is None


class Delayed(Spider):
    name = "delayed"
    base: str
    n: int
    path: str

    async def start(self) -> Any:
        for i in range(self.n):
            yield Request(f"{self.base}{self.path}?i={i}")

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}


async def test_slow_host_keeps_about_target_concurrency_in_flight(
    site: TestSite, tmp_path: Path
) -> None:
    result, items = await crawl(
        Delayed, tmp_path, spider_args={"base": site.url, "path": "/delay/0.15", "n": 16},
        autothrottle=True, autothrottle_start_delay=0.1, autothrottle_target_concurrency=1.0,
        concurrency_per_host=8,
    )
    assert len(items) == 16
    # Without the throttle all 8 places of the slot would fill at once.
    assert site.stats.max_inflight_by_host["127.0.0.1"] <= 3
    delay = result.stats["throttle/delay/127.0.0.1"]
    assert 0.1 <= delay <= 0.3  # about latency / target concurrency


async def test_backs_off_on_503_and_never_below_download_delay(
    site: TestSite, tmp_path: Path
) -> None:
    site.canned["/busy"] = [Canned(503), Canned(503), Canned(200, "ok")]
    result, items = await crawl(
        Delayed, tmp_path, spider_args={"base": site.url, "path": "/busy", "n": 1},
        autothrottle=True, autothrottle_start_delay=0.0, download_delay=0.05,
        retry_backoff=0.01, autothrottle_max_delay=1.0,
    )
    assert len(items) == 1
    # 0.05 → backoff 0.25 (MIN_BACKOFF) → 0.5; the 200 that follows lowers it gently.
    assert result.stats["throttle/delay/127.0.0.1"] >= 0.25
    site.reset_stats()
    result, _ = await crawl(
        Delayed, tmp_path, spider_args={"base": site.url, "path": "/page/x", "n": 5},
        autothrottle=True, autothrottle_start_delay=0.0, download_delay=0.08,
    )
    assert result.stats["throttle/delay/127.0.0.1"] == 0.08  # fast pages: the floor holds
    times = [t for t, _, _ in site.stats.log]
    assert len(times) == 5
    assert_spaced(times, 0.08)
