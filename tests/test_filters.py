"""The built-in filters on new requests: each drop counted by its reason."""

from __future__ import annotations

from crawler.filters import RequestFilters, repeats_segment
from crawler.http import Request
from crawler.stats import Stats
from tests.conftest import make_settings


def filters(allowed: list[str] | None = None, **settings: object) -> RequestFilters:
    return RequestFilters(make_settings(**settings), allowed or [], Stats())


def test_depth_limit() -> None:
    f = filters(depth_limit=2)
    assert f.allows(Request("http://a.test/", depth=2))
    assert not f.allows(Request("http://a.test/", depth=3))
    assert f.stats.get("dropped/depth_limit") == 1


def test_url_length_limit() -> None:
    f = filters(url_length_limit=40)
    assert f.allows(Request("http://a.test/short"))
    assert not f.allows(Request("http://a.test/" + "x" * 40))
    assert f.stats.get("dropped/url_length_limit") == 1


def test_repeated_segments_are_a_trap() -> None:
    assert repeats_segment("http://a.test/a/b/a/b/a/b/a/b", 3)
    assert not repeats_segment("http://a.test/a/b/a/b/a/b", 3)
    assert not repeats_segment("http://a.test/x?q=/a/a/a/a/a", 3)  # the query is not the path
    f = filters(max_repeated_segments=2)
    assert not f.allows(Request("http://a.test/loop/loop/loop/"))
    assert f.stats.get("dropped/max_repeated_segments") == 1


def test_allowed_domains_keep_subdomains_and_drop_the_rest() -> None:
    f = filters(["example.com"])
    assert f.allows(Request("http://example.com/"))
    assert f.allows(Request("http://www.example.com/"))
    assert not f.allows(Request("http://example.org/"))
    assert not f.allows(Request("http://notexample.com/"))
    assert f.stats.get("offsite_dropped") == 2
