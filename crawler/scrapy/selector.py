"""``scrapy.selector``: parsel's Selector, also built from a response."""

from __future__ import annotations

from typing import Any

import parsel
from parsel import SelectorList

__all__ = ["Selector", "SelectorList"]


class Selector(parsel.Selector):
    """``Selector(response)`` or ``Selector(text=...)``, as in Scrapy."""

    __slots__ = ()

    def __init__(self, response: Any = None, text: str | None = None, type: str | None = None,
                 **kwargs: Any) -> None:
        if response is not None:
            text = response.text
            kwargs.setdefault("base_url", response.url)
            if type is None:
                ctype = response.headers.get("Content-Type", "")
                type = "xml" if ("xml" in ctype and "html" not in ctype) else "html"
        super().__init__(text=text, type=type, **kwargs)
