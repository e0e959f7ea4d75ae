"""crawler.fdlimit: the open files limit raised to the hard limit, and concurrency lowered to
what the descriptors allow."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from crawler.fdlimit import RESERVED, fit_concurrency

resource = pytest.importorskip("resource")


@pytest.mark.parametrize(("concurrency", "open_files", "fitted"), [
    (500, None, 500),  # no limit on this platform
    (500, 1024, 500),
    (500, 500 + RESERVED, 500),
    (2000, 1024, 1024 - RESERVED),
    (500, 160, 160 - RESERVED),
    (10, RESERVED, 1),  # never below one connection
])  # fmt: skip
def test_concurrency_fits_the_descriptors(
    concurrency: int, open_files: int | None, fitted: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler.fdlimit"):
        assert fit_concurrency(concurrency, open_files) == fitted
    warnings = [r.getMessage() for r in caplog.records]
    if fitted < concurrency:
        assert warnings == [
            f"concurrency {concurrency} needs more file descriptors than the limit of"
            f" {open_files} allows (ulimit -n): using concurrency {fitted}; raise the hard"
            " limit to crawl with more"]
    else:
        assert warnings == []


def _limits_after_raising(soft: int, hard: int) -> list[str]:
    """Soft and hard limits set in a child process, then raise_open_files_limit() there:
    what it returned and the soft limit then in force."""
    code = ("import resource; from crawler.fdlimit import raise_open_files_limit;"
            "got = raise_open_files_limit();"
            "print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            preexec_fn=limit, check=True)
    return result.stdout.split()


def test_a_low_soft_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 200:
        pytest.skip(f"needs a finite hard limit above 200, not {hard}")
    assert _limits_after_raising(128, hard) == [str(hard), str(hard)]


def test_a_soft_limit_at_the_hard_limit_is_left_as_it_is() -> None:
    assert _limits_after_raising(160, 160) == ["160", "160"]
