"""``scrapy.http``: requests and responses.

``Request`` and ``Response`` are the native classes. ``FormRequest`` and ``JsonRequest``
build native Requests. ``TextResponse``, ``HtmlResponse`` and ``XmlResponse`` build native
Responses with Scrapy's constructor (``HtmlResponse(url, body=..., encoding=...,
request=...)``, what downloader middlewares that render pages return), and every native
response is an instance of them.
"""

from __future__ import annotations

from typing import Any

from ...forms import FormRequest, JsonRequest
from ...http import Request, Response

__all__ = [
    "FormRequest", "HtmlResponse", "JsonRequest", "Request", "Response", "TextResponse",
    "XmlResponse",
]


class _ResponseType(type):
    _content_type = "text/html"

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, Response)

    def __call__(
        cls, url: str, status: int = 200, headers: Any = None, body: bytes | str = b"",
        request: Request | None = None, encoding: str | None = None, **_ignored: Any,
    ) -> Response:
        if isinstance(body, str):
            body = body.encode(encoding or "utf-8")
        hdrs = dict(headers or {})
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = cls._content_type + (f"; charset={encoding}" if encoding else "")
        return Response(url, status, hdrs, body, request)


class TextResponse(metaclass=_ResponseType):
    """A text response (a native :class:`~crawler.http.Response`)."""

    _content_type = "text/plain"


class HtmlResponse(metaclass=_ResponseType):
    """An HTML response (a native :class:`~crawler.http.Response`)."""

    _content_type = "text/html"


class XmlResponse(metaclass=_ResponseType):
    """An XML response (a native :class:`~crawler.http.Response`)."""

    _content_type = "text/xml"
