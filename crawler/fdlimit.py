"""File descriptors: a crawl holds one per connection, so their limit bounds its concurrency.

At the start of a crawl the soft limit (``ulimit -n``, often 1024) is raised to the hard limit,
as servers and browsers do; when even that is below what ``concurrency`` needs, concurrency is
lowered to fit, with a warning, instead of letting requests fail with EMFILE. The engine treats
an EMFILE that happens anyway (other files, other libraries) as back-pressure.
"""

from __future__ import annotations

import logging

__all__ = ["RESERVED", "fit_concurrency", "raise_open_files_limit"]

logger = logging.getLogger(__name__)

#: Descriptors kept for everything but connections: the standard streams, the event loop,
#: output files, a job's SQLite files, Redis, DNS, logs.
RESERVED = 64


def raise_open_files_limit() -> int | None:
    """Raise the soft limit of open files to the hard limit; returns the soft limit now in
    force (None where the platform has no such limit)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        logger.debug("Could not raise the open files limit from %d to %d: %s", soft, target, exc)
        return None if soft == resource.RLIM_INFINITY else soft
    logger.debug("Open files limit raised from %d to %d", soft, target)
    return target


def fit_concurrency(concurrency: int, open_files: int | None) -> int:
    """``concurrency`` lowered, with a warning, to what ``open_files`` descriptors allow
    (one per connection, :data:`RESERVED` kept for the rest)."""
    if open_files is None:
        return concurrency
    room = max(1, open_files - RESERVED)
    if concurrency <= room:
        return concurrency
    logger.warning(
        "concurrency %d needs more file descriptors than the limit of %d allows (ulimit -n): "
        "using concurrency %d; raise the hard limit to crawl with more", concurrency,
        open_files, room,
    )
    return room
