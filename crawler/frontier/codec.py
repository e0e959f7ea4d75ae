"""Requests as plain, versioned JSON, for the frontiers that keep them outside the process.

Never pickle: a stored request must be readable by a later version, by another machine, and
must not execute anything when loaded. Callbacks are stored by spider method name; ``meta`` and
``cb_kwargs`` must be JSON-serialisable. A request that cannot be stored raises
:class:`~crawler.errors.UnstorableRequest` naming the field, at the point it is stored (when
the spider yields it), not later at resume.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from ..errors import UnstorableRequest
from ..http import Request

__all__ = ["FORMAT_VERSION", "check_storable", "decode_request", "encode_request"]

#: Bumped on any incompatible change of the stored form; readers refuse other versions.
FORMAT_VERSION = 1


def _callback_name(request: Request, value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "__name__", None)
    owner = getattr(value, "__self__", None)
    if owner is None or name is None or getattr(owner, name, None) != value:
        raise UnstorableRequest(
            request.url, field,
            f"{value!r} is not a method of the spider; durable and shared frontiers store "
            "callbacks by spider method name",
        )
    return str(name)


def check_storable(request: Request) -> None:
    """Raise :class:`~crawler.errors.UnstorableRequest` when :func:`encode_request` would:
    for a plain GET (:attr:`Request.simple`) only its callback can be unstorable, so only
    that is looked at; any other request is encoded once."""
    if request.simple:
        _callback_name(request, request.callback, "callback")
    else:
        encode_request(request)


def encode_request(request: Request) -> bytes:
    """The request as compact JSON bytes (``v`` is :data:`FORMAT_VERSION`)."""
    data: dict[str, Any] = {"v": FORMAT_VERSION, "url": request.url}
    if request.method != "GET":
        data["method"] = request.method
    if request.headers:
        data["headers"] = [[k, v] for k, v in request.headers.items()]
    if request.body:
        data["body"] = base64.b64encode(request.body).decode()
    callback = _callback_name(request, request.callback, "callback")
    if callback is not None:
        data["callback"] = callback
    errback = _callback_name(request, request.errback, "errback")
    if errback is not None:
        data["errback"] = errback
    for field in ("cb_kwargs", "meta"):
        value = getattr(request, f"_{field}")
        if value:
            try:
                data[field] = orjson.loads(orjson.dumps(value))
            except TypeError as exc:
                raise UnstorableRequest(
                    request.url, field, f"not JSON-serialisable: {exc}"
                ) from exc
    if request.priority:
        data["priority"] = request.priority
    if request.dont_filter:
        data["dont_filter"] = True
    if request.depth:
        data["depth"] = request.depth
    if request.handle_status:
        data["handle_status"] = sorted(request.handle_status)
    return orjson.dumps(data)


#: The fields of a stored plain GET: what :meth:`Request.from_trusted` rebuilds.
_SIMPLE = frozenset({"v", "url", "callback", "priority", "dont_filter", "depth"})


def _whole(value: Any, field: str) -> int:
    if type(value) is not int:
        raise ValueError(f"stored request field {field} is not an integer: {value!r}")
    return value


def decode_request(raw: bytes | str) -> Request:
    """A Request from :func:`encode_request`'s output; ``ValueError`` for another version."""
    data = orjson.loads(raw)
    version = data.get("v")
    if version != FORMAT_VERSION:
        raise ValueError(f"stored request format v{version}, this version reads v{FORMAT_VERSION}")
    url = data["url"]
    if _SIMPLE.issuperset(data) and type(url) is str:
        # A plain GET (most stored requests): its URL was a Request's when it was stored, so
        # it is not parsed again here (see Request.from_trusted).
        callback = data.get("callback")
        if callback is not None and type(callback) is not str:
            raise ValueError(f"stored request callback is not a method name: {callback!r}")
        return Request.from_trusted(
            url, callback,
            depth=_whole(data.get("depth", 0), "depth"),
            priority=_whole(data.get("priority", 0), "priority"),
            dont_filter=data.get("dont_filter") is True,
        )
    headers = data.get("headers")
    body = data.get("body")
    return Request(
        url,
        data.get("callback"),
        method=data.get("method", "GET"),
        headers=dict(headers) if headers else None,
        body=base64.b64decode(body) if body else None,
        errback=data.get("errback"),
        cb_kwargs=data.get("cb_kwargs"),
        meta=data.get("meta"),
        priority=data.get("priority", 0),
        dont_filter=data.get("dont_filter", False),
        depth=data.get("depth", 0),
        handle_status=data.get("handle_status", ()),
    )
