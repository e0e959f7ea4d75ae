"""crawler.scrapyproject: a Scrapy project folder found from scrapy.cfg, its settings module
loaded and its spider packages named."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from crawler.errors import ConfigError
from crawler.scrapyproject import find_project, load_project

_names = itertools.count()


@pytest.fixture(autouse=True)
def restore_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


def scrapy_project(root: Path, settings: str) -> str:
    """A Scrapy project in ``root`` whose package (of a unique name) has ``settings``."""
    package = f"scrapyproject_{next(_names)}"
    (root / package / "spiders").mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "spiders" / "__init__.py").write_text("")
    (root / package / "settings.py").write_text(textwrap.dedent(settings))
    (root / "scrapy.cfg").write_text(f"[settings]\ndefault = {package}.settings\n")
    return package


def test_the_project_is_found_from_a_folder_below(tmp_path: Path) -> None:
    package = scrapy_project(tmp_path, """
        import scrapy  # served by the compatibility layer
        BOT_NAME = "proj"
        DOWNLOAD_DELAY = 0.25
        lower_case = "not a setting"
    """)
    below = tmp_path / package / "spiders"
    project = find_project(below)
    assert project is not None
    assert project.root == tmp_path and project.settings_module == f"{package}.settings"
    assert project.settings == {"BOT_NAME": "proj", "DOWNLOAD_DELAY": 0.25}
    assert project.spider_modules == [f"{package}.spiders"]


def test_spider_modules_come_from_the_settings(tmp_path: Path) -> None:
    scrapy_project(tmp_path, 'SPIDER_MODULES = ["a.spiders", "b.spiders"]\n')
    assert load_project(tmp_path).spider_modules == ["a.spiders", "b.spiders"]
    other = tmp_path / "other"
    other.mkdir()
    scrapy_project(other, 'SPIDER_MODULES = "c.spiders"\n')
    assert load_project(other).spider_modules == ["c.spiders"]


def test_no_scrapy_cfg_is_no_project(tmp_path: Path) -> None:
    assert find_project(tmp_path) is None


@pytest.mark.parametrize(("cfg", "error"), [
    ("[settings]\n", r"has no \[settings\] default = <module>"),
    ("[settings]\ndefault = scrapyproject_absent.settings\n",
     "cannot import the Scrapy settings module 'scrapyproject_absent.settings'"),
    ("not an ini file\n", "cannot read"),
])  # fmt: skip
def test_a_project_that_cannot_be_loaded_says_why(tmp_path: Path, cfg: str, error: str) -> None:
    (tmp_path / "scrapy.cfg").write_text(cfg)
    with pytest.raises(ConfigError, match=error):
        find_project(tmp_path)
