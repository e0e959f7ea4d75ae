"""``scrapy.crawler``: running spiders from a script."""

from ..scripting import CrawlerProcess, CrawlerRunner

__all__ = ["CrawlerProcess", "CrawlerRunner"]
