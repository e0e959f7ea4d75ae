"""Job directories: the lock, and every refusal a resume depends on (another spider, another
version, foreign or corrupt files, unappendable outputs), and finished-job detection."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from crawler.errors import ConfigError, JobDirError
from crawler.http import Request
from crawler.jobdir import JOB_FORMAT_VERSION, JobDir


def test_creates_the_directory_and_job_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "books"
    out = tmp_path / "books.jsonl"
    with JobDir(path, "books", str(out)) as job:
        assert not job.resumed and not job.finished
        assert job.db_path == path / "frontier.sqlite3"
    meta = orjson.loads((path / "job.json").read_bytes())
    assert meta["format"] == JOB_FORMAT_VERSION
    assert (meta["spider"], meta["output"]) == ("books", str(out))
    with JobDir(path, "books", str(out)) as job:
        assert job.resumed


def test_job_dir_errors_are_config_errors() -> None:
    assert issubclass(JobDirError, ConfigError)  # the CLI exits 2 on them


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "job"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from crawler.jobdir import JobDir
            with JobDir({str(path)!r}, "books", None):
                print("locked", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(JobDirError) as info:
            JobDir(path, "books", None).open()
        assert str(info.value) == (
            f"job directory {path} is in use by another crawl (pid {holder.pid})"
        )
    finally:
        holder.communicate(b"")
    # Released when the process ends (it would be on a kill -9 too).
    with JobDir(path, "books", None) as job:
        assert job.resumed


def test_lock_within_one_process(tmp_path: Path) -> None:
    with (
        JobDir(tmp_path / "job", "books", None),
        pytest.raises(JobDirError, match="in use by another crawl"),
    ):
        JobDir(tmp_path / "job", "books", None).open()
    JobDir(tmp_path / "job", "books", None).open().close()


def test_refuses_another_spiders_job(tmp_path: Path) -> None:
    path = tmp_path / "job"
    JobDir(path, "quotes", None).open().close()
    with pytest.raises(JobDirError) as info:
        JobDir(path, "books", None).open()
    assert str(info.value) == f"job directory {path} belongs to spider 'quotes', not 'books'"
    JobDir(path, "quotes", None).open().close()  # the refusal released the lock


def test_refuses_another_format_version(tmp_path: Path) -> None:
    path = tmp_path / "job"
    JobDir(path, "books", None).open().close()
    job_file = path / "job.json"
    data = orjson.loads(job_file.read_bytes())
    data["format"] = JOB_FORMAT_VERSION + 1
    data["something_new"] = {"a": 1}
    job_file.write_bytes(orjson.dumps(data))
    with pytest.raises(JobDirError, match=r"incompatible version .*job format 2; this version "
                       r"reads 1"):
        JobDir(path, "books", None).open()


async def test_refuses_a_database_of_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "job"
    with JobDir(path, "books", None) as job:
        frontier = job.frontier()
        await frontier.open()
        await frontier.close()
    with sqlite3.connect(path / "frontier.sqlite3") as conn:
        conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")
    with pytest.raises(JobDirError, match=r"incompatible version .*database schema 7"):
        JobDir(path, "books", None).open()


def test_refuses_a_corrupt_or_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "job"
    JobDir(path, "books", None).open().close()
    (path / "frontier.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(JobDirError, match="not a crawl job database, or is corrupt"):
        JobDir(path, "books", None).open()
    (path / "frontier.sqlite3").unlink()
    with sqlite3.connect(path / "frontier.sqlite3") as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(JobDirError, match="not a crawl job's"):
        JobDir(path, "books", None).open()


def test_refuses_a_folder_that_is_not_a_job(tmp_path: Path) -> None:
    path = tmp_path / "photos"
    path.mkdir()
    (path / "cat.jpg").write_bytes(b"...")
    with pytest.raises(JobDirError, match=r"not a job directory \(no job.json\) and is not "
                       r"empty \(cat.jpg\)"):
        JobDir(path, "books", None).open()
    (tmp_path / "file").write_text("x")
    with pytest.raises(JobDirError, match="is not a directory"):
        JobDir(tmp_path / "file", "books", None).open()


def test_refuses_a_json_array_and_stdout(tmp_path: Path) -> None:
    with pytest.raises(JobDirError) as info:
        JobDir(tmp_path / "job", "books", str(tmp_path / "items.json")).open()
    assert str(info.value) == "--jobdir cannot append safely to a .json array; use .jsonl or .csv"
    with pytest.raises(JobDirError, match=r"--jobdir cannot append safely to a \.json array"):
        JobDir(tmp_path / "job", "books", "items.txt", "json").open()
    with pytest.raises(JobDirError, match="not standard output"):
        JobDir(tmp_path / "job", "books", "-").open()
    assert not (tmp_path / "job").exists()  # refused before anything was created
    for name in ("items.jsonl", "items.csv"):
        JobDir(tmp_path / name, "books", str(tmp_path / name)).open().close()


def test_refuses_another_output_file(tmp_path: Path) -> None:
    path = tmp_path / "job"
    JobDir(path, "books", str(tmp_path / "a.jsonl")).open().close()
    with pytest.raises(JobDirError, match=r"writes its items to .*a\.jsonl, not .*b\.jsonl"):
        JobDir(path, "books", str(tmp_path / "b.jsonl")).open()
    with pytest.raises(JobDirError, match="not no output file"):
        JobDir(path, "books", None).open()


async def test_finished_job_is_detected(tmp_path: Path) -> None:
    path, out = tmp_path / "job", str(tmp_path / "items.jsonl")
    with JobDir(path, "books", out) as job:
        frontier = job.frontier()
        await frontier.open()
        exporter = await frontier.open_output(out, overwrite=True)
        frontier.track_state(lambda: ({"items_scraped": 1}, {}))
        await frontier.add([Request("http://example.com/")])
        [lease] = await frontier.lease(1)
        await frontier.finish("signal_SIGINT")  # paused, not finished
        await frontier.close()
        exporter.close()
    with JobDir(path, "books", out) as job:
        assert job.resumed and not job.finished
        assert job.finish_reason == "signal_SIGINT"
        frontier = job.frontier()
        await frontier.open()
        exporter = await frontier.open_output(out)
        [lease] = await frontier.lease(1)
        await frontier.ack(lease, [], [{"n": 1}])
        await frontier.drain(exporter)
        await frontier.finish("finished")
        await frontier.close()
        exporter.close()
    with JobDir(path, "books", out) as job:
        assert job.finished and job.finish_reason == "finished"
        assert job.last_stats == {"items_scraped": 1}
