"""``scrapy.spidermiddlewares``: the names errbacks import."""
