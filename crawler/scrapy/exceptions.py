"""``scrapy.exceptions``: the exceptions spiders, pipelines and middlewares raise."""

from ..errors import CloseSpider, DropItem, IgnoreRequest


class NotConfigured(Exception):
    """A component raises this from its constructor or ``from_crawler`` to disable itself."""


class NotSupported(Exception):
    """A feature is not supported."""


class DontCloseSpider(Exception):
    """Raised in a spider_idle handler in Scrapy; accepted here, without effect."""


class StopDownload(Exception):
    """Stop downloading a response (accepted for imports; not raised by this framework)."""

    def __init__(self, *, fail: bool = True) -> None:
        super().__init__()
        self.fail = fail


class UsageError(Exception):
    """A command was used wrongly."""


__all__ = [
    "CloseSpider", "DontCloseSpider", "DropItem", "IgnoreRequest", "NotConfigured",
    "NotSupported", "StopDownload", "UsageError",
]
