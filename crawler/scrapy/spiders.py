"""``scrapy.spiders``: the spider classes."""

from ..crawlspider import CrawlSpider, Rule
from ..sitemap import SitemapSpider
from ..spider import Spider

__all__ = ["CrawlSpider", "Rule", "SitemapSpider", "Spider"]
