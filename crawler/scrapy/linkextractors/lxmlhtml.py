"""``scrapy.linkextractors.lxmlhtml``: Scrapy's module of the link extractor."""

from ...linkextractor import LinkExtractor

LxmlLinkExtractor = LinkExtractor

__all__ = ["LxmlLinkExtractor"]
