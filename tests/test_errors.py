"""crawler.errors: the hierarchy drawn in the module's docstring is the real one, and each
error's message and retry rule."""

from __future__ import annotations

import inspect
import re

import pytest

from crawler import errors
from crawler.errors import (
    CloseSpider,
    ConfigError,
    CrawlerError,
    DownloadError,
    DownloadTimeout,
    HttpError,
    IgnoreRequest,
    InvalidURL,
    OutputFailed,
    SettingsError,
    SpiderLoadError,
    SpiderNotFound,
    UnstorableRequest,
)


def drawn_parents() -> dict[str, str]:
    """Each class of the docstring's tree and the class it is drawn under."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)([A-Z]\w+)", line)
        if not match or not line.startswith("    "):
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_drawn_hierarchy_is_every_error_under_its_real_base() -> None:
    classes = {name: cls for name, cls in vars(errors).items()
               if inspect.isclass(cls) and issubclass(cls, Exception)
               and cls.__module__ == errors.__name__}
    drawn = drawn_parents()
    assert set(drawn) == set(classes) - {"CrawlerError"}  # every class drawn, none invented
    for name, parent in drawn.items():
        assert classes[name].__bases__[0] is classes[parent], name


def test_config_errors_and_download_errors_are_told_apart() -> None:
    for cls in (SettingsError, SpiderNotFound, SpiderLoadError):
        assert issubclass(cls, ConfigError)
    assert issubclass(InvalidURL, ValueError) and issubclass(UnstorableRequest, ValueError)
    assert not issubclass(IgnoreRequest, DownloadError)
    retryable = {cls.__name__ for cls in vars(errors).values()
                 if inspect.isclass(cls) and issubclass(cls, DownloadError) and cls.retryable}
    assert retryable == {"DownloadError", "DownloadTimeout", "ConnectError", "OutOfFiles",
                         "ProtocolError", "BrowserError"}


@pytest.mark.parametrize(("error", "message"), [
    (SettingsError("depth_limt", "CLI -s", "unknown setting", "depth_limit"),
     "setting 'depth_limt' from CLI -s: unknown setting (did you mean 'depth_limit'?)"),
    (SettingsError("x", "settings.toml", "not a number"),
     "setting 'x' from settings.toml: not a number"),
    (SpiderNotFound("nope", ["a", "b"]), "spider not found: 'nope'. Available spiders: a, b"),
    (SpiderNotFound("nope", []), "spider not found: 'nope'. Available spiders: (none found)"),
    (SpiderLoadError("spiders.x", ImportError("no y")),
     "cannot import spider module 'spiders.x': ImportError: no y"),
    (InvalidURL("/a", "relative"), "invalid URL '/a': relative"),
    (UnstorableRequest("http://e.com/", "meta", "not JSON"),
     "request http://e.com/ cannot be stored: field 'meta': not JSON"),
    (DownloadTimeout("http://e.com/", "read timeout"), "http://e.com/: read timeout"),
    (DownloadTimeout("http://e.com/"), "http://e.com/"),
    (HttpError("http://e.com/", 503), "http://e.com/: HTTP 503"),
    (IgnoreRequest("offsite", "e.org"), "offsite: e.org"),
    (CloseSpider(), "cancelled"),
    (OutputFailed("items.jsonl", OSError(28, "No space left on device")),
     "output items.jsonl failed: OSError: [Errno 28] No space left on device"),
])  # fmt: skip
def test_messages(error: CrawlerError, message: str) -> None:
    assert str(error) == message


def test_errors_keep_what_they_were_raised_with() -> None:
    error = HttpError("http://e.com/", 404, response="the response")
    assert (error.url, error.status, error.response, error.retryable) == (
        "http://e.com/", 404, "the response", False)
    assert IgnoreRequest("robots").reason == "robots"
    assert CloseSpider("budget").reason == "budget"
    assert OutputFailed("out.csv", OSError()).output == "out.csv"
