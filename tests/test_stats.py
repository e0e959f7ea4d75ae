"""Stats counters, summary, JSON dump, resume merge, host pauses and field coverage."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

import crawler
from crawler.stats import Stats


def crawl_like(stats: Stats) -> None:
    for _ in range(10):
        stats.inc("requests")
    for code, n in (("200", 7), ("404", 1), ("503", 1)):
        stats.inc(f"status/{code}", n)
        stats.inc("responses", n)
    stats.inc("bytes", 3 * 1024 * 1024)
    stats.inc("items_scraped", 6)
    stats.inc("items_invalid")
    stats.inc("errors/DownloadTimeout", 2)
    stats.inc("errors/HttpError")
    stats.inc("retries", 2)
    stats.inc("redirects")
    stats.inc("duplicates_filtered", 4)
    stats.inc("offsite_dropped")
    stats.max("max_depth", 2)
    stats.max("max_depth", 5)
    stats.max("max_depth", 3)
    stats.set("pending", 0)
    stats.set("in_flight", 0)


def test_counters() -> None:
    stats = Stats()
    crawl_like(stats)
    assert stats.get("requests") == 10
    assert stats.get("responses") == 9
    assert stats.get("max_depth") == 5
    assert stats.get("never") == 0
    assert stats.get("never", None) is None
    assert stats.total("errors") == 3
    assert stats.total("status") == 9


def test_to_dict_timing() -> None:
    stats = Stats()
    assert stats.to_dict()["elapsed"] == 0.0 and stats.to_dict()["pages_per_second"] == 0.0
    stats.start()
    crawl_like(stats)
    stats.finish("finished")
    data = stats.to_dict()
    assert list(data) == sorted(data)
    assert data["requests"] == 10 and data["status/200"] == 7
    assert data["finish_reason"] == "finished"
    start = datetime.fromisoformat(data["start_time"])
    finish = datetime.fromisoformat(data["finish_time"])
    assert start.tzinfo is not None and start <= finish
    elapsed = stats.elapsed
    assert elapsed > 0 and stats.elapsed == elapsed  # frozen once finished
    assert data["pages_per_second"] == pytest.approx(9 / elapsed, rel=0.01)
    assert data["items_per_second"] == pytest.approx(6 / elapsed, rel=0.01)


def test_summary_groups_and_order() -> None:
    stats = Stats()
    stats.start()
    crawl_like(stats)
    stats.inc("robots/forbidden", 2)
    stats.finish("closespider_itemcount")
    text = stats.summary()
    lines = text.splitlines()
    assert lines[0].startswith("Crawl stopped: closespider_itemcount after ")
    assert "pages/s" in lines[0]
    titles = [line for line in lines if not line.startswith(" ")][1:]
    assert titles == ["Requests", "Responses by status", "Items", "Errors by type (3)",
                      "Filtered", "Frontier", "Robots"]

    def section(title: str) -> list[list[str]]:
        start = lines.index(title) + 1
        rows = []
        for line in lines[start:]:
            if not line.startswith("  "):
                break
            rows.append(line.split(None, 1))
        return rows

    assert section("Responses by status") == [["200", "7"], ["404", "1"], ["503", "1"]]
    assert section("Errors by type (3)") == [["DownloadTimeout", "2"], ["HttpError", "1"]]
    assert ["bytes", "3,145,728 (3.0 MiB)"] in section("Requests")
    assert ["max_depth", "5"] in section("Requests")
    assert section("Filtered") == [["duplicates_filtered", "4"], ["offsite_dropped", "1"]]
    assert section("Robots") == [["forbidden", "2"]]
    assert text.count("duplicates_filtered") == 1


def test_summary_status_codes_sorted_numerically() -> None:
    stats = Stats()
    for code in ("503", "200", "30", "1000"):
        stats.inc(f"status/{code}")
    text = stats.summary()
    codes = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert codes == ["30", "200", "503", "1000"]


def test_dump_json(tmp_path: Path) -> None:
    stats = Stats()
    stats.start()
    crawl_like(stats)
    stats.finish("finished")
    path = tmp_path / "out" / "stats.json"
    stats.dump_json(str(path))
    assert json.loads(path.read_text()) == stats.to_dict()
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temp file left behind


def test_load_merges_across_resumes() -> None:
    first = Stats()
    first.start()
    crawl_like(first)
    first.set("pending", 40)
    first.set("note", "kept")
    first.finish("shutdown")
    saved = json.loads(json.dumps(first.to_dict()))

    second = Stats()
    second.load(saved)
    second.start()
    second.inc("requests", 5)
    second.inc("responses", 5)
    second.inc("status/200", 5)
    second.inc("errors/ConnectError")
    second.max("max_depth", 4)
    second.set("pending", 0)
    second.finish("finished")
    data = second.to_dict()

    assert data["requests"] == 15
    assert data["responses"] == 14
    assert data["status/200"] == 12
    assert data["errors/DownloadTimeout"] == 2 and data["errors/ConnectError"] == 1
    assert data["max_depth"] == 5  # max, not sum
    assert data["pending"] == 0  # a gauge: the new run's value
    assert data["finish_reason"] == "finished"
    assert data["note"] == "kept"
    assert data["start_time"] == saved["start_time"]  # the job's first start
    assert data["elapsed"] >= saved["elapsed"]
    assert second.elapsed == pytest.approx(saved["elapsed"] + (second.elapsed - saved["elapsed"]))
    assert data["pages_per_second"] == pytest.approx(14 / second.elapsed, rel=0.01)


def test_import_does_not_load_rich() -> None:
    code = "import sys, crawler.stats; print('rich' in sys.modules)"
    # The same crawler package as this process, wherever it is imported from.
    env = {**os.environ, "PYTHONPATH": str(Path(crawler.__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


def test_host_pause_logs_once_and_resume_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crawler.stats")
    stats = Stats()
    stats.host_paused("h:80", 0.05, "Retry-After, HTTP 429")
    stats.host_paused("h:80", 0.05, "Retry-After, HTTP 429")  # the same pause, not a new one
    stats.host_response("h:80", 200, 0.1)  # a response still inside the pause
    time.sleep(0.06)
    stats.host_response("h:80", 200, 0.1)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "paused for" in m]) == 1
    assert messages[-1] == "Host h:80 resumed after its pause"
    assert stats.get("hosts/h:80/pauses") == 1


def test_field_coverage_counters() -> None:
    stats = Stats()
    stats.expect_fields(["price", "title"])
    for i in range(10):
        stats.item_fields({"title": f"t{i}", "price": "" if i % 5 == 0 else "1",
                           "tags": [] if i else ["x"]}, f"http://h/{i}")
    d = stats.to_dict()
    assert d["fields_checked"] == 10
    assert (d["fields/price/present"], d["fields/title/present"], d["fields/tags/present"]) == (
        8, 10, 1)
    assert {k for k in d if k.startswith("fields/price/missing/")} == {
        "fields/price/missing/http://h/0", "fields/price/missing/http://h/5"}
    assert "fields" not in stats.summary() and "timeline" not in stats.summary()
