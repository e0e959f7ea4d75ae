"""``scrapy.signals``: the signal objects for ``crawler.signals.connect``."""

from ..compat import signals as _signals

spider_opened = _signals.spider_opened
spider_closed = _signals.spider_closed
spider_idle = _signals.spider_idle
spider_error = _signals.spider_error
engine_started = _signals.engine_started
engine_stopped = _signals.engine_stopped
item_scraped = _signals.item_scraped
item_dropped = _signals.item_dropped
item_error = _signals.item_error
request_scheduled = _signals.request_scheduled
request_dropped = _signals.request_dropped
response_received = _signals.response_received
response_downloaded = _signals.response_downloaded
headers_received = _signals.headers_received
bytes_received = _signals.bytes_received
