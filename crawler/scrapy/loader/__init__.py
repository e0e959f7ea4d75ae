"""``scrapy.loader``: the ItemLoader (on the ``itemloaders`` library)."""

from ...itemloader import ItemLoader

__all__ = ["ItemLoader"]
