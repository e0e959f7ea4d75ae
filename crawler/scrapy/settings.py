"""``scrapy.settings``: Scrapy-style settings objects."""

from ..compat import ScrapySettings as Settings

__all__ = ["Settings"]
