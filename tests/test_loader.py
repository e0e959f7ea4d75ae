"""crawler.loader: spider discovery in a project's package, one spider file, import strings."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from crawler.errors import ConfigError, SpiderLoadError, SpiderNotFound
from crawler.loader import discover, import_object, load_spider, load_spider_file

_packages = itertools.count()

SPIDER = """
from crawler import Spider


class {cls}(Spider):
    name = "{name}"
"""


@pytest.fixture(autouse=True)
def restore_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery puts the project first on sys.path: each test gets the path back."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def project(tmp_path: Path, modules: dict[str, str]) -> str:
    """A project folder with a spiders package of a unique name holding ``modules``."""
    package = f"loader_spiders_{next(_packages)}"
    root = tmp_path / package
    for relative, text in {"__init__.py": "", **modules}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return package


def test_discover_finds_every_named_spider_in_every_module(tmp_path: Path) -> None:
    package = project(tmp_path, {
        "books.py": SPIDER.format(cls="Books", name="books"),
        "shop/__init__.py": "",
        "shop/fr.py": SPIDER.format(cls="ShopFr", name="shop_fr")
        + "\nclass Base(Spider):\n    name = ''\n",  # no name: a base class, not a spider
        "helpers.py": "from crawler import Spider\nfrom .books import Books\n",  # re-export
    })
    found = discover(package, tmp_path)
    assert list(found) == ["books", "shop_fr"]
    assert found["books"].module == f"{package}.books"
    assert found["shop_fr"].module == f"{package}.shop.fr"
    assert load_spider("shop_fr", package, tmp_path).__name__ == "ShopFr"


def test_a_missing_spider_lists_the_available_ones(tmp_path: Path) -> None:
    package = project(tmp_path, {"a.py": SPIDER.format(cls="A", name="alpha"),
                                 "b.py": SPIDER.format(cls="B", name="beta")})
    with pytest.raises(SpiderNotFound) as info:
        load_spider("gamma", package, tmp_path)
    assert "gamma" in str(info.value)
    assert "alpha" in str(info.value) and "beta" in str(info.value)


def test_two_spiders_with_one_name_name_both_modules(tmp_path: Path) -> None:
    package = project(tmp_path, {"a.py": SPIDER.format(cls="A", name="same"),
                                 "b.py": SPIDER.format(cls="B", name="same")})
    with pytest.raises(ConfigError, match=rf"{package}\.a\.A and {package}\.b\.B"):
        discover(package, tmp_path)


def test_a_module_that_fails_to_import_is_named(tmp_path: Path) -> None:
    package = project(tmp_path, {"broken.py": "raise RuntimeError('spider module bug')\n"})
    with pytest.raises(SpiderLoadError, match=rf"{package}\.broken") as info:
        discover(package, tmp_path)
    assert "spider module bug" in str(info.value)


def test_a_missing_package_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spiders package 'nowhere_here' not found") as info:
        discover("nowhere_here", tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_spider_file_gives_its_last_named_spider(tmp_path: Path) -> None:
    path = tmp_path / "loader_file_two.py"
    path.write_text(SPIDER.format(cls="First", name="first")
                    + SPIDER.format(cls="Second", name="second").split("\n\n", 1)[1])
    cls = load_spider_file(path)
    assert (cls.__name__, cls.name) == ("Second", "second")


@pytest.mark.parametrize(("name", "text", "error"), [
    ("loader_file_none.py", "x = 1\n", "no spider found in"),
    ("loader_file_bad.py", "import nowhere_at_all\n", "nowhere_at_all"),
    ("loader_file.txt", SPIDER.format(cls="A", name="a"), "not a Python file"),
])  # fmt: skip
def test_a_spider_file_that_cannot_be_used_says_why(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_spider_file(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_spider_file(tmp_path / "absent.py")


def test_import_object_takes_both_spellings() -> None:
    assert import_object("crawler.loader:discover") is discover
    assert import_object("crawler.loader.discover") is discover
    with pytest.raises(ConfigError, match=r"crawler\.loader has no 'nope'"):
        import_object("crawler.loader:nope")
    with pytest.raises(ConfigError, match=r"cannot import 'nowhere\.at\.all:Name'"):
        import_object("nowhere.at.all:Name")
    with pytest.raises(ConfigError, match=r"expected 'package\.module:Name'"):
        import_object("plain")
