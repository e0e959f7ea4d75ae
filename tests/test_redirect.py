"""The redirect policy as pure functions: a request and a response in, a decision out."""

from __future__ import annotations

from multidict import CIMultiDict

from crawler.errors import RedirectError
from crawler.http import Request, Response
from crawler.redirect import follow, has_meta_refresh, meta_refresh_target


def response(request: Request, status: int = 302, body: bytes = b"",
             content_type: str = "text/html") -> Response:
    return Response(request.url, status, CIMultiDict({"Content-Type": content_type}), body,
                    request)


def test_follow_keeps_the_chain_and_the_request_fields() -> None:
    request = Request("http://a.test/start", "parse_x", meta={"k": 1}, priority=3, depth=2)
    new = follow(request, response(request), "/next", kind="http", max_redirects=5)
    assert isinstance(new, Request)
    assert new.url == "http://a.test/next"
    assert new.meta["redirect_urls"] == ["http://a.test/start"] and new.meta["k"] == 1
    assert (new.callback, new.priority, new.depth) == ("parse_x", 3, 2)
    assert request.meta == {"k": 1}  # the original request is left alone


def test_303_and_post_after_301_302_become_get_307_keeps_the_method() -> None:
    post = Request("http://a.test/form", method="POST", body=b"x=1",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    for status, method in ((303, "GET"), (302, "GET"), (301, "GET"), (307, "POST"), (308, "POST")):
        new = follow(post, response(post, status), "/done", kind="http", max_redirects=5)
        assert isinstance(new, Request)
        assert new.method == method
        assert (new.body == b"x=1") == (method == "POST")
        assert ("Content-Type" in new.headers) == (method == "POST")


def test_loops_bad_targets_and_too_many_hops_are_errors() -> None:
    request = Request("http://a.test/a", meta={"redirect_urls": ["http://a.test/b"]})
    loop = follow(request, response(request), "http://a.test/b", kind="http", max_redirects=5)
    assert isinstance(loop, RedirectError) and "loop" in str(loop)
    bad = follow(request, response(request), "http://exa mple.com/", kind="http", max_redirects=5)
    assert isinstance(bad, RedirectError) and "bad redirect target" in str(bad)
    many = follow(request, response(request), "/c", kind="http", max_redirects=1)
    assert isinstance(many, RedirectError) and "max_redirects=1" in str(many)


def test_credentials_do_not_follow_a_change_of_host() -> None:
    request = Request("http://a.test/", headers={"Authorization": "x", "Cookie": "s=1",
                                                  "Accept": "text/html"})
    new = follow(request, response(request), "http://b.test/", kind="http", max_redirects=5)
    assert isinstance(new, Request)
    assert dict(new.headers) == {"Accept": "text/html"}


def test_meta_refresh_target() -> None:
    request = Request("http://a.test/page")
    page = b'<html><head><meta http-equiv="refresh" content="0; url=/there"></head></html>'
    r = response(request, 200, page)
    assert has_meta_refresh(r)
    assert meta_refresh_target(r, max_delay=100) == "http://a.test/there"
    slow = response(request, 200, page.replace(b'"0;', b'"500;'))
    assert meta_refresh_target(slow, max_delay=100) is None
    assert meta_refresh_target(response(request, 200, page, "application/json"), 100) is None
    itself = response(request, 200, page.replace(b"/there", b"/page"))
    assert meta_refresh_target(itself, max_delay=100) is None
    assert not has_meta_refresh(response(request, 200, b"<html><body>plain</body></html>"))
