"""FormRequest and JsonRequest, with Scrapy's documented behaviour as the expected result,
and a login through the bundled quotes site's form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from crawler import FormRequest, JsonRequest, Request, Response, Spider
from crawler.demosite import QUOTES_CSRF_TOKEN

from .conftest import crawl
from .servers import TestSite

FORMS = """<html><body>
<form name="first" action="/search" method="get"><input name="q" value="x"></form>
<form id="second" action="post.php" method="POST">
  <input type="hidden" name="token" value="t0k">
  <input name="user" value="">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="spam" value="yes">
  <input type="radio" name="color" value="red">
  <input type="radio" name="color" value="blue" checked>
  <select name="lang"><option value="en">en</option><option value="fr">fr</option></select>
  <select name="multi" multiple><option value="a" selected>a</option>
    <option value="b" selected>b</option></select>
  <textarea name="note">hello</textarea>
  <input type="reset" name="reset" value="Reset">
  <input type="submit" name="go" value="Go">
  <input type="submit" name="other" value="Other">
  <div class="inner"><span>here</span></div>
</form>
<form action="/third" method="put"><button name="b" value="1">B</button></form>
</body></html>"""


def forms_page() -> Response:
    return Response("http://example.com/dir/page.html", 200,
                    {"Content-Type": "text/html; charset=utf-8"}, FORMS.encode())


def pairs(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def test_formdata_post_and_get() -> None:
    post = FormRequest("http://e.com/login", formdata={"user": "john", "tags": ["a", "b"]})
    assert isinstance(post, Request) and post.method == "POST"
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert pairs(post) == [("user", "john"), ("tags", "a"), ("tags", "b")]
    get = FormRequest("http://e.com/search?old=1", method="GET", formdata=[("q", "é")])
    assert get.method == "GET" and get.body == b""
    assert get.url == "http://e.com/search?q=%C3%A9"  # the form's query replaces the URL's
    plain = FormRequest("http://e.com/", callback="parse", dont_filter=True)
    assert plain.method == "GET" and plain.dont_filter and plain.callback == "parse"


def test_from_response_collects_the_form_as_a_browser_would() -> None:
    request = FormRequest.from_response(forms_page(), formid="second",
                                        formdata={"user": "ada"})
    assert request.method == "POST"
    assert request.url == "http://example.com/dir/post.php"
    assert pairs(request) == [
        ("token", "t0k"), ("remember", "on"), ("color", "blue"), ("lang", "en"),
        ("multi", "a"), ("multi", "b"), ("note", "hello"), ("go", "Go"), ("user", "ada"),
    ]


def test_from_response_choosing_the_form_and_the_click() -> None:
    page = forms_page()
    first = FormRequest.from_response(page)  # formnumber=0
    assert first.method == "GET" and first.url == "http://example.com/search?q=x"
    assert FormRequest.from_response(page, formname="first").url == first.url
    assert FormRequest.from_response(page, formnumber=1).url.endswith("/post.php")
    assert FormRequest.from_response(page, formxpath='//div[@class="inner"]').url.endswith(
        "/post.php")
    assert FormRequest.from_response(page, formcss="div.inner span").url.endswith("/post.php")
    other = FormRequest.from_response(page, formnumber=1, clickdata={"name": "other"})
    assert ("other", "Other") in pairs(other) and ("go", "Go") not in pairs(other)
    unclicked = FormRequest.from_response(page, formnumber=1, dont_click=True)
    assert not {"go", "other"} & {k for k, _ in pairs(unclicked)}
    # An unknown method becomes GET, as in Scrapy; a <button> is a submit control.
    third = FormRequest.from_response(page, formnumber=2)
    assert third.method == "GET" and third.url == "http://example.com/third?b=1"
    # formdata overrides the form's value, None removes the field.
    override = FormRequest.from_response(page, formnumber=1, formdata={"token": None})
    assert "token" not in {k for k, _ in pairs(override)}
    with pytest.raises(IndexError):
        FormRequest.from_response(page, formnumber=9)
    with pytest.raises(ValueError, match="No <form> element found with"):
        FormRequest.from_response(page, formxpath="//nothing")
    with pytest.raises(ValueError, match="No <form> element found in"):
        FormRequest.from_response(Response("http://e.com/", 200, {}, b"<html></html>"))
    with pytest.raises(ValueError, match="Multiple elements"):
        FormRequest.from_response(page, formnumber=1, clickdata={"type": "submit"})


def test_json_request() -> None:
    request = JsonRequest("http://e.com/api", data={"b": 1, "a": [1, 2]})
    assert request.method == "POST"
    assert request.body == b'{"a": [1, 2], "b": 1}'  # keys sorted, as Scrapy's dumps
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"].startswith("application/json")
    assert JsonRequest("http://e.com/api").method == "GET"
    assert json.loads(JsonRequest("http://e.com/", data=[1], method="PUT").body) == [1]


class LoginSpider(Spider):
    """Scrapy's documented login pattern, on the quotes site's login form."""

    name = "login"
    base: str

    async def start(self) -> Any:
        yield Request(f"{self.base}/quotes/login", callback=self.parse)

    def parse(self, response: Response) -> Any:
        assert response.css("input[name=csrf_token]::attr(value)").get() == QUOTES_CSRF_TOKEN
        return FormRequest.from_response(
            response, formdata={"username": "john", "password": "secret"},
            callback=self.after_login)

    def after_login(self, response: Response) -> Any:
        yield {
            "logged_in": "Logout" in response.text,
            "url": response.url,
            "goodreads": len(response.css('a[href*="goodreads.com/author"]')),
        }


async def test_login_through_the_form(site: TestSite, tmp_path: Path) -> None:
    _, items = await crawl(LoginSpider, tmp_path, spider_args={"base": site.url})
    assert items == [{"logged_in": True, "url": f"{site.url}/quotes/", "goodreads": 10}]

    class NoToken(LoginSpider):
        def parse(self, response: Response) -> Any:
            return FormRequest(f"{self.base}/quotes/login", callback=self.after_login,
                               formdata={"username": "john"})

    _, items = await crawl(NoToken, tmp_path, spider_args={"base": site.url})
    assert items[0]["logged_in"] is False
