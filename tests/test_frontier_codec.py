"""The stored form of a request (crawler/frontier/codec.py): round trips of every field,
and what it refuses to store or to read."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from crawler.errors import UnstorableRequest
from crawler.frontier.codec import (
    FORMAT_VERSION,
    check_storable,
    decode_request,
    encode_request,
)
from crawler.http import Request, Response
from crawler.spider import Spider


class _Spider(Spider):
    name = "c"

    def parse_page(self, response: Response) -> Any:
        return None

    def on_error(self, failure: Any) -> None:
        return None


def _fields(r: Request) -> tuple[Any, ...]:
    return (r.url, r.method, dict(r.headers), r.body, r.callback, r.errback, r.cb_kwargs, r.meta,
            r.priority, r.dont_filter, r.depth, sorted(r.handle_status))


def test_every_field_round_trips() -> None:
    spider = _Spider()
    request = Request(
        "http://a.test/p?q=1", spider.parse_page, method="POST",
        headers={"X-Token": "t", "Accept": "text/html"}, body=b"\x00\xffbinary",
        errback=spider.on_error, cb_kwargs={"page": 2}, meta={"nested": {"list": [1, "x"]}},
        priority=-3, dont_filter=True, depth=4, handle_status=(404, 500),
    )
    back = decode_request(encode_request(request))
    assert back.callback == "parse_page" and back.errback == "on_error"
    assert _fields(back)[:4] == _fields(request)[:4]
    assert _fields(back)[6:] == _fields(request)[6:]


def test_a_plain_get_is_small_and_round_trips() -> None:
    request = Request("http://a.test/")
    raw = encode_request(request)
    assert orjson.loads(raw) == {"v": FORMAT_VERSION, "url": "http://a.test/"}
    assert _fields(decode_request(raw)) == _fields(request)
    assert _fields(decode_request(raw.decode())) == _fields(request)  # str accepted too


def test_a_plain_get_with_its_schedule_comes_back_whole() -> None:
    # The common stored request: rebuilt without parsing its URL again, the same request.
    request = Request("http://a.test/p?q=1#frag", "parse_page", priority=-2, dont_filter=True,
                      depth=3)
    back = decode_request(encode_request(request))
    assert _fields(back) == _fields(request)
    assert back.yurl == request.yurl and back.fingerprint == request.fingerprint
    assert back.simple


@pytest.mark.parametrize("raw, field", [
    (b'{"v": 1, "url": "http://a.test/", "depth": "3"}', "depth"),
    (b'{"v": 1, "url": "http://a.test/", "priority": 1.5}', "priority"),
    (b'{"v": 1, "url": "http://a.test/", "callback": 7}', "callback"),
])
def test_a_corrupt_plain_get_is_refused(raw: bytes, field: str) -> None:
    # ValueError is what the Redis frontier dead-letters with its reason.
    with pytest.raises(ValueError, match=field):
        decode_request(raw)


def test_a_callback_by_name_stays_a_name() -> None:
    back = decode_request(encode_request(Request("http://a.test/", "parse_page")))
    assert back.callback == "parse_page"


@pytest.mark.parametrize("field, kwargs", [
    ("callback", {"callback": lambda response: None}),
    ("errback", {"errback": lambda failure: None}),
    ("meta", {"meta": {"obj": object()}}),
    ("cb_kwargs", {"cb_kwargs": {"when": {1, 2}}}),
])
def test_what_cannot_be_stored_names_its_field(field: str, kwargs: dict[str, Any]) -> None:
    request = Request("http://a.test/", **kwargs)
    with pytest.raises(UnstorableRequest, match=f"'{field}'"):
        encode_request(request)
    with pytest.raises(UnstorableRequest, match=f"'{field}'"):
        check_storable(request)  # the engine's check, where the spider yields the request


def test_a_storable_request_passes_the_check() -> None:
    spider = _Spider()
    check_storable(Request("http://a.test/", spider.parse_page))
    check_storable(Request("http://a.test/", "parse_page", method="POST", body=b"x",
                           meta={"k": [1]}, errback=spider.on_error))


def test_another_format_version_is_refused() -> None:
    raw = orjson.dumps({"v": FORMAT_VERSION + 1, "url": "http://a.test/"})
    with pytest.raises(ValueError, match=f"v{FORMAT_VERSION + 1}"):
        decode_request(raw)
    with pytest.raises(ValueError, match="vNone"):
        decode_request(b'{"url": "http://a.test/"}')


def test_bytes_that_are_not_json_are_refused() -> None:
    with pytest.raises(ValueError):
        decode_request(b"\x80not json")
