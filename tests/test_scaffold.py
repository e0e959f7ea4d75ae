"""crawler.scaffold: the files of a new project and of a new spider, and what they refuse."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from crawler.errors import ConfigError
from crawler.loader import load_spider_file
from crawler.scaffold import new_project, new_spider
from crawler.settings import build_settings


@pytest.fixture(autouse=True)
def restore_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_a_new_project_is_settings_a_spiders_package_and_a_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "my bot!"
    written = new_project(root)
    assert [p.relative_to(root).as_posix() for p in written] == [
        "settings.toml", "spiders/__init__.py", ".gitignore"]
    text = (root / "settings.toml").read_text()
    assert tomllib.loads(text) == {"log_level": "INFO", "concurrency": 64,
                                   "concurrency_per_host": 8, "obey_robots": True}
    assert '# user_agent = "mybot/1.0' in text  # the folder's name, cleaned
    settings = build_settings(project_dir=root, environ={})
    assert settings.concurrency_per_host == 8 and settings.obey_robots is True


def test_an_existing_repository_keeps_its_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("mine\n")
    written = new_project(tmp_path)
    assert [p.name for p in written] == ["settings.toml", "__init__.py"]
    assert (tmp_path / ".gitignore").read_text() == "mine\n"


def test_a_project_is_never_written_over(tmp_path: Path) -> None:
    new_project(tmp_path / "p")
    before = (tmp_path / "p" / "settings.toml").read_text()
    with pytest.raises(ConfigError, match=r"already holds a project \(settings.toml exists\)"):
        new_project(tmp_path / "p")
    assert (tmp_path / "p" / "settings.toml").read_text() == before
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        new_project(tmp_path / "file")


@pytest.mark.parametrize(("target", "url", "host"), [
    ("example.com", "https://example.com/", "example.com"),
    ("example.com/books", "https://example.com/books", "example.com"),
    ("http://127.0.0.1:8080/a#top", "http://127.0.0.1:8080/a", "127.0.0.1"),
])  # fmt: skip
def test_a_new_spider_starts_at_its_target_and_stays_on_its_host(
    tmp_path: Path, target: str, url: str, host: str
) -> None:
    new_project(tmp_path)
    module = new_spider(tmp_path, "books_fr", target)
    assert module == tmp_path / "spiders" / "books_fr.py"
    cls = load_spider_file(module)
    assert cls.__name__ == "BooksFrSpider" and cls.name == "books_fr"
    assert cls.start_urls == [url] and cls.allowed_domains == [host]


@pytest.mark.parametrize(("name", "target", "error"), [
    ("My-Spider", "example.com", "e.g. 'my_spider'"),
    ("class", "example.com", "e.g. 'class_spider'"),
    ("9lives", "example.com", "e.g. 'lives'"),
    ("ok", "mailto:someone@example.com", r"give an http\(s\) URL or a domain"),
    ("ok", "ftp://example.com/", "scheme 'ftp' is not http or https"),
])  # fmt: skip
def test_a_spider_that_cannot_be_written_says_why(
    tmp_path: Path, name: str, target: str, error: str
) -> None:
    new_project(tmp_path)
    with pytest.raises(ConfigError, match=error):
        new_spider(tmp_path, name, target)
    assert [p.name for p in (tmp_path / "spiders").iterdir()] == ["__init__.py"]


def test_a_spider_needs_a_project_and_a_free_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no spiders/ folder"):
        new_spider(tmp_path, "ok", "example.com")
    new_project(tmp_path)
    new_spider(tmp_path, "ok", "example.com")
    with pytest.raises(ConfigError, match="exists already"):
        new_spider(tmp_path, "ok", "example.org")
    assert "example.com" in (tmp_path / "spiders" / "ok.py").read_text()
