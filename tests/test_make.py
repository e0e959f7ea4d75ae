"""The Makefile: a target reruns pip only when pyproject.toml changed since the last install,
and `make demo` installs only what a crawl needs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import PROJECT

STAMPS = (PROJECT / ".venv" / ".installed-base", PROJECT / ".venv" / ".installed-dev")


def dry_run(target: str) -> str:
    done = subprocess.run(["make", "-n", target], cwd=PROJECT, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


@pytest.fixture
def installed() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    pyproject = (PROJECT / "pyproject.toml").stat().st_mtime
    if not all(s.exists() and s.stat().st_mtime >= pyproject for s in STAMPS):
        pytest.skip("the virtualenv was not installed by `make install` since pyproject.toml "
                    "changed")


def test_up_to_date_targets_do_not_run_pip(installed: None) -> None:
    for target in ("demo", "test", "lint", "install"):
        assert "pip" not in dry_run(target), target
    assert "crawler demo" in dry_run("demo")


def test_make_demo_installs_no_test_tools() -> None:
    makefile = (PROJECT / "Makefile").read_text()
    base = makefile.split("$(BASE): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "install -q -e ." in base and "[test" not in base
    assert "demo: $(BASE)" in makefile


def test_pyproject_license_is_an_spdx_string() -> None:
    import tomllib

    data = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str)  # a TOML table makes setuptools warn
    assert any(r.startswith("setuptools>=77") for r in data["build-system"]["requires"])
