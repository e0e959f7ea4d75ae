"""AutoThrottle: each host's delay follows its latency; backoff on 429, 503 and Retry-After.

Scrapy's algorithm, adapted. With ``autothrottle = true`` a host's slot starts at
``autothrottle_start_delay`` and, after each response taking ``latency`` seconds::

    target = latency / autothrottle_target_concurrency
    delay  = max(target, (delay + target) / 2)

so the delay rises at once to what keeps about ``target_concurrency`` requests in flight on
that host and comes down gently. A non-200 response may raise the delay but never lowers it
(error pages are small and fast, and would pull the delay down). A 429 or 503 response, or
any response with ``Retry-After``, doubles the delay (at least :data:`MIN_BACKOFF` seconds,
at least the Retry-After). The delay never goes below the slot's minimum (``download_delay``,
or the host's robots.txt ``Crawl-delay`` if larger) and never above
``autothrottle_max_delay`` (unless the minimum itself is larger). The latency measured is
the whole download of the response, body included.

The current delay of each host is the gauge ``throttle/delay/<host>`` in the stats (for the
first :data:`MAX_GAUGES` hosts; a crawl over a million hosts must not grow the stats by as
many keys).
"""

from __future__ import annotations

import datetime
import email.utils
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .http import Response
    from .settings import Settings
    from .stats import Stats

__all__ = ["MAX_GAUGES", "MIN_BACKOFF", "AutoThrottle", "ThrottledSlot", "retry_after"]

#: Smallest delay after a backoff, in seconds (doubling 0 would stay 0).
MIN_BACKOFF = 0.25
#: Hosts whose delay is shown in the stats.
MAX_GAUGES = 1000
_BACKOFF_STATUSES = frozenset({429, 503})


class ThrottledSlot(Protocol):
    """What the throttle reads and writes on the engine's per-host slot."""

    key: str
    delay: float
    min_delay: float


class AutoThrottle:
    """Adjusts ``slot.delay`` from each response. Cheap: a few float operations and, when
    the delay changes, one stats gauge update."""

    def __init__(
        self,
        *,
        target_concurrency: float,
        start_delay: float,
        max_delay: float,
        stats: Stats | None = None,
    ) -> None:
        self.target_concurrency = target_concurrency
        self.start_delay = start_delay
        self.max_delay = max_delay
        self._stats = stats
        self._gauged: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, stats: Stats) -> AutoThrottle:
        return cls(
            target_concurrency=settings.autothrottle_target_concurrency,
            start_delay=settings.autothrottle_start_delay,
            max_delay=settings.autothrottle_max_delay,
            stats=stats,
        )

    def initial_delay(self, min_delay: float) -> float:
        """The delay a new host's slot starts with."""
        return max(min(self.start_delay, self.max_delay), min_delay)

    def start(self, slot: ThrottledSlot) -> None:
        """Set a new slot's delay to :meth:`initial_delay` and show it in the stats."""
        slot.delay = self.initial_delay(slot.min_delay)
        self._publish(slot)

    def on_response(self, slot: ThrottledSlot, latency: float, response: Response) -> None:
        """Adapt ``slot``'s delay to one response that took ``latency`` seconds."""
        status = response.status
        wait = retry_after(response) if "Retry-After" in response.headers else None
        if status in _BACKOFF_STATUSES or wait is not None:
            self.backoff(slot, wait)
            return
        target = latency / self.target_concurrency
        new = max(target, (slot.delay + target) / 2.0)
        new = min(max(new, slot.min_delay), max(self.max_delay, slot.min_delay))
        if status != 200 and new <= slot.delay:
            return
        self._set(slot, new)

    def backoff(self, slot: ThrottledSlot, wait: float | None = None) -> None:
        """The host asks us to slow down: double its delay (bounded)."""
        new = max(slot.delay * 2.0, MIN_BACKOFF, wait or 0.0, slot.min_delay)
        self._set(slot, min(new, max(self.max_delay, slot.min_delay)))

    def _set(self, slot: ThrottledSlot, delay: float) -> None:
        if delay == slot.delay:
            return
        slot.delay = delay
        self._publish(slot)

    def _publish(self, slot: ThrottledSlot) -> None:
        stats = self._stats
        if stats is None:
            return
        key = slot.key
        if key in self._gauged or len(self._gauged) < MAX_GAUGES:
            self._gauged.add(key)
            stats.set(f"throttle/delay/{key}", round(slot.delay, 3))


def retry_after(response: Response) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or an HTTP date), between 0
    and one hour; None without a usable header."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), 3600.0)
