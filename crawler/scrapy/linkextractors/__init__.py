"""``scrapy.linkextractors``: the link extractor."""

from ...linkextractor import IGNORED_EXTENSIONS, LinkExtractor

LxmlLinkExtractor = LinkExtractor

__all__ = ["IGNORED_EXTENSIONS", "LinkExtractor", "LxmlLinkExtractor"]
