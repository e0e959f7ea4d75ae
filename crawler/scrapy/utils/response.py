"""``scrapy.utils.response``: ``open_in_browser`` and ``get_base_url``."""

from ...http import Response
from ...shell import open_in_browser


def get_base_url(response: Response) -> str:
    """The page's ``<base href>`` joined with its URL, else its URL."""
    from w3lib.html import get_base_url as base_url

    return str(base_url(response.text[:4096], response.url, response.encoding))


__all__ = ["get_base_url", "open_in_browser"]
