"""``scrapy.spidermiddlewares.httperror``: ``HttpError``, for ``failure.check(HttpError)``."""

from ...errors import HttpError

__all__ = ["HttpError"]
