"""``scrapy.utils``: the helpers spiders use."""
