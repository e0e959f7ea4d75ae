"""The built-in filters on every request a callback produces, before it reaches the frontier:
``depth_limit``, ``url_length_limit``, ``max_repeated_segments`` (spider traps) and the spider's
``allowed_domains`` (offsite requests). Each drop is counted by reason in the stats
(``dropped/depth_limit``, ``dropped/url_length_limit``, ``dropped/max_repeated_segments``,
``offsite_dropped``) and logged at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .http import Request
from .settings import Settings
from .stats import Stats
from .urls import DomainFilter

__all__ = ["RequestFilters", "repeats_segment"]

logger = logging.getLogger(__name__)


class RequestFilters:
    """The filters of one crawl: :meth:`allows` says whether a new request goes on."""

    def __init__(
        self, settings: Settings, allowed_domains: Sequence[str], stats: Stats
    ) -> None:
        self.stats = stats
        self._domains = DomainFilter(allowed_domains) if allowed_domains else None
        self._depth_limit = settings.depth_limit
        self._url_length_limit = settings.url_length_limit
        self._max_repeated = settings.max_repeated_segments

    def allows(self, request: Request) -> bool:
        """True when ``request`` passes every filter; else the drop is counted and False."""
        if self._depth_limit and request.depth > self._depth_limit:
            self.stats.inc("dropped/depth_limit")
            return False
        url = request.url
        if self._url_length_limit and len(url) > self._url_length_limit:
            self.stats.inc("dropped/url_length_limit")
            logger.debug("Dropped %s...: longer than url_length_limit=%d", url[:200],
                         self._url_length_limit)
            return False
        if self._max_repeated and repeats_segment(url, self._max_repeated):
            self.stats.inc("dropped/max_repeated_segments")
            logger.debug("Dropped %s: a path segment repeats more than %d times", url,
                         self._max_repeated)
            return False
        if self._domains is not None and not self._domains.allows(request.yurl.host or ""):
            self.stats.inc("offsite_dropped")
            logger.debug("Dropped offsite request %s", request.url)
            return False
        return True


def repeats_segment(url: str, limit: int) -> bool:
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


