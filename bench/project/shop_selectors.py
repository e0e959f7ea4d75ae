"""The shop's selectors, one copy for both crawls of the throughput bench: the framework's
spider (``spiders/shop.py``, which finds this module on the project folder the loader puts
first on ``sys.path``) and the hand-written loop (``bench/raw_loop.py``)."""

LISTING_LINKS = "a.listing"
PRODUCT_LINKS = "a.product"
PAGER_LINKS = "nav.pager a"
RELATED_LINKS = "a.related"
TITLE = "h1.title::text"
PRICE = "span.price::text"
SKU = "span.sku::text"
