"""``scrapy.link``: the Link class."""

from ..linkextractor import Link

__all__ = ["Link"]
