"""The `crawler` project tools, called in process: what each prints and its exit code."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler import tools
from crawler.cli import EXIT_OK, EXIT_USAGE


def _project(root: Path, package: str, spiders: dict[str, str], settings: str = "") -> Path:
    """A project whose spiders package has a name of its own, so importing it in this process
    cannot meet another test's ``spiders``."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / "settings.toml").write_text(f'spiders = "{package}"\n{settings}')
    for name, code in spiders.items():
        (root / package / f"{name}.py").write_text(textwrap.dedent(code))
    return root


@pytest.fixture
def package() -> Iterator[str]:
    name = f"tool_spiders_{uuid.uuid4().hex[:8]}"
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def test_list_spiders_prints_each_name_and_module(
    tmp_path: Path, package: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spider = """
        from crawler import Spider

        class {cls}(Spider):
            name = "{name}"
    """
    project = _project(tmp_path, package, {
        "alpha": spider.format(cls="Alpha", name="alpha"),
        "beta_one": spider.format(cls="Beta", name="beta"),
    })
    assert tools.list_spiders(project) == EXIT_OK
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert sorted(rows) == [["alpha", f"{package}.alpha"], ["beta", f"{package}.beta_one"]]


def test_list_spiders_refuses_bad_settings(
    tmp_path: Path, package: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, package, {}, settings="concurrency = 0\n")
    assert tools.list_spiders(project) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "concurrency" in err and "settings.toml" in err


def test_merge_writes_each_item_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "out.jsonl"
    a.write_text('{"url": "u1", "n": 1}\n{"url": "u2", "n": 2}\n')
    b.write_text('{"url": "u2", "n": 2}\n{"url": "u3", "n": 3}\nnot json\n')
    args = argparse.Namespace(inputs=[str(a), str(b)], out=str(out), key="url", overwrite=False)
    assert tools.merge(args) == EXIT_OK
    urls = [json.loads(line)["url"] for line in out.read_text().splitlines()]
    assert sorted(urls) == ["u1", "u2", "u3"]
    assert "dropped 1 repeats" in capsys.readouterr().err


def test_scaffold_startproject_then_refuses_a_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(command="startproject", path=tmp_path / "p")
    assert tools.scaffold(args) == EXIT_OK
    assert (tmp_path / "p" / "settings.toml").is_file()
    assert tools.scaffold(args) == EXIT_USAGE
    assert "already holds a project" in capsys.readouterr().err


def test_report_of_missing_stats_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = tools.report([str(tmp_path / "missing.json")], str(tmp_path / "r.html"))
    assert code == EXIT_USAGE
    assert "crawler: error:" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
