"""``scrapy.item``: Scrapy-style items."""

from ..dictitem import DictItem, Field

Item = DictItem

__all__ = ["Field", "Item"]
