"""The job database of a durable crawl (crawler/jobstate.py), through the frontier that shares
it: the identity checks, the output log (outbox drain exactly once, torn tails cut on resume,
offsets checked) and the job state (spider state, finished, done count, group commit)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crawler.errors import JobDirError
from crawler.frontier.sqlite import SqliteFrontier

from . import test_frontier_sqlite
from .test_frontier_sqlite import crash, opened, paths, read_jsonl, req

frontier = test_frontier_sqlite.frontier  # the fixture, under the name the tests take


async def test_refuses_another_spider_and_foreign_files(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db, spider="quotes")
    await f.close()
    with pytest.raises(JobDirError, match="belongs to spider 'quotes', not 'books'"):
        await opened(db, spider="books")

    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JobDirError, match="not a crawl job database"):
        await opened(junk)

    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(JobDirError, match="not a crawl job's"):
        await opened(other)

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'request_format'")
    with pytest.raises(JobDirError, match=r"incompatible version .*request format 99;"):
        await opened(db, spider="quotes")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(JobDirError, match=r"incompatible version .*database schema 99,"):
        await opened(db, spider="quotes")


# ---------------------------------------------------------------------------- output


async def test_items_are_drained_exactly_once_with_the_exporters_encoding(
    tmp_path: Path,
) -> None:
    f = await opened(tmp_path / "job.sqlite3")
    out = tmp_path / "items.jsonl"
    exporter = await f.open_output(str(out), overwrite=True)
    await f.add([req("a"), req("b")])
    a, b = await f.lease(2)
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    await f.ack(a, [], [{"n": 1, "price": Decimal("1.50"), "at": when}])
    await f.ack(b, [], [{"n": 2, "big": 2**70}, {"n": 3}])
    assert await f.drain(exporter) == 3
    assert await f.drain(exporter) == 0
    await f.close()
    exporter.close()
    # json, not orjson: orjson would read the 70-bit integer as a float.
    assert [json.loads(line) for line in out.read_bytes().splitlines()] == [
        {"n": 1, "price": "1.50", "at": "2024-05-01T12:00:00Z"},
        {"n": 2, "big": 2**70},
        {"n": 3},
    ]


async def test_items_committed_before_their_drain_are_written_after_a_crash(
    tmp_path: Path,
) -> None:
    db, out = tmp_path / "job.sqlite3", tmp_path / "items.jsonl"
    f = await opened(db, commit_interval=60)
    exporter = await f.open_output(str(out), overwrite=True)
    await f.add([req("a"), req("b")])
    a, b = await f.lease(2)
    await f.ack(a, [], [{"n": 1}])
    await f.drain(exporter)
    await f.ack(b, [], [{"n": 2}])
    await f.commit()  # the ack of b commits with its item in the outbox...
    crash(f)  # ...and the process dies before writing it
    exporter.close()
    assert read_jsonl(out) == [{"n": 1}]

    f = await opened(db)
    exporter = await f.open_output(str(out))
    assert read_jsonl(out) == [{"n": 1}, {"n": 2}]
    assert await f.is_finished()
    await f.close()
    exporter.close()


async def test_lines_written_for_uncommitted_acks_are_cut_on_resume(tmp_path: Path) -> None:
    db, out = tmp_path / "job.sqlite3", tmp_path / "items.jsonl"
    f = await opened(db, commit_interval=60)
    exporter = await f.open_output(str(out), overwrite=True)
    await f.add([req("a"), req("b")])
    a, b = await f.lease(2)
    await f.ack(a, [], [{"n": 1}])
    await f.drain(exporter)
    await f.commit()
    await f.ack(b, [], [{"n": 2}])
    await f.drain(exporter)  # {"n": 2} is in the file, but its ack never commits
    exporter.write([{"n": 2, "torn": "x" * 50}])
    exporter.close()
    with open(out, "r+b") as fh:  # a kill in the middle of a write: a torn last line
        fh.truncate(out.stat().st_size - 20)
    crash(f)

    f = await opened(db)
    exporter = await f.open_output(str(out))
    assert read_jsonl(out) == [{"n": 1}]
    [again] = await f.lease(1)
    assert paths([again]) == ["b"]
    await f.ack(again, [], [{"n": 2}])
    await f.drain(exporter)
    await f.close()
    exporter.close()
    assert read_jsonl(out) == [{"n": 1}, {"n": 2}]


async def test_csv_resume_keeps_one_header(tmp_path: Path) -> None:
    db, out = tmp_path / "job.sqlite3", tmp_path / "items.csv"
    f = await opened(db, commit_interval=60)
    exporter = await f.open_output(str(out), overwrite=True)
    await f.add([req("a"), req("b")])
    a, b = await f.lease(2)
    await f.ack(a, [], [{"n": 1, "title": "one, with a comma"}])
    await f.drain(exporter)
    await f.commit()
    await f.ack(b, [], [{"n": 2, "title": 'two "quoted"\nlines'}])
    await f.drain(exporter)
    exporter.close()
    crash(f)

    f = await opened(db)
    exporter = await f.open_output(str(out))
    [again] = await f.lease(1)
    await f.ack(again, [], [{"n": 2, "title": 'two "quoted"\nlines'}])
    await f.drain(exporter)
    await f.close()
    exporter.close()
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["n", "title"], ["1", "one, with a comma"], ["2", 'two "quoted"\nlines']]


async def test_fresh_job_appends_after_existing_content(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    out.write_bytes(b'{"old":1}\n')
    f = await opened(tmp_path / "job.sqlite3")
    exporter = await f.open_output(str(out), overwrite=False)
    await f.add([req("a")])
    [a] = await f.lease(1)
    await f.ack(a, [], [{"n": 1}])
    await f.drain(exporter)
    await f.close()
    exporter.close()
    # Reopened, the job cuts back to its own offset, never into the earlier content.
    f = await opened(tmp_path / "job.sqlite3")
    exporter = await f.open_output(str(out), overwrite=True)  # ignored on a resume
    await f.close()
    exporter.close()
    assert read_jsonl(out) == [{"old": 1}, {"n": 1}]


async def test_output_shorter_than_recorded_is_refused(tmp_path: Path) -> None:
    db, out = tmp_path / "job.sqlite3", tmp_path / "items.jsonl"
    f = await opened(db)
    exporter = await f.open_output(str(out), overwrite=True)
    await f.add([req("a")])
    [a] = await f.lease(1)
    await f.ack(a, [], [{"n": 1}])
    await f.drain(exporter)
    await f.close()
    exporter.close()
    out.write_bytes(b"")
    f = await opened(db)
    with pytest.raises(JobDirError, match="truncated or replaced"):
        await f.open_output(str(out))
    out.unlink()
    with pytest.raises(JobDirError, match="missing"):
        await f.open_output(str(out))
    await f.close()


async def test_unappendable_outputs_are_refused(frontier: SqliteFrontier, tmp_path: Path) -> None:
    for path in ("-", str(tmp_path / "items.json")):
        with pytest.raises(JobDirError, match=r"\.jsonl or \.csv"):
            await frontier.open_output(path, overwrite=True)


async def test_items_without_an_output_are_dropped(frontier: SqliteFrontier) -> None:
    await frontier.add([req("a")])
    [a] = await frontier.lease(1)
    await frontier.ack(a, [], [{"n": 1}])
    await frontier.commit()
    assert frontier.db._stored_items == 0


# ---------------------------------------------------------------------- job state


async def test_state_and_finish_persist(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db)
    assert f.load_state() == ({}, {})
    await f.save_state({"items_scraped": 3}, {"page": 7})
    assert f.load_state() == ({"items_scraped": 3}, {"page": 7})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        await f.save_state({}, {"bad": {1, 2}})
    state: dict[str, Any] = {"seen_pages": 0}
    f.track_state(lambda: ({"requests": 5}, state))
    await f.add([req("a")])
    state["seen_pages"] = 1
    await f.commit()  # every commit carries the snapshot
    await f.mark_seeded()
    [a] = await f.lease(1)
    await f.finish("signal_SIGINT")  # a pause is not the end
    assert not f.finished
    await f.close()

    f = await opened(db)
    assert f.load_state() == ({"requests": 5}, {"seen_pages": 1})
    assert f.seeded and not f.finished
    [a] = await f.lease(1)
    await f.ack(a)
    await f.finish("finished")
    assert f.finished
    await f.close()
    f = await opened(db)
    assert f.finished
    await f.close()


async def test_done_count_persists(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db)
    await f.add([req(x) for x in "abc"])
    for lease in await f.lease(2):
        await f.ack(lease)
    await f.close()
    f = await opened(db)
    counts = await f.counts()
    assert (counts.pending, counts.done) == (1, 2)
    await f.close()


async def test_group_commit_happens_without_an_explicit_commit(tmp_path: Path) -> None:
    db = tmp_path / "job.sqlite3"
    f = await opened(db, commit_interval=0.01)
    await f.add([req("a")])
    await asyncio.sleep(0.2)
    with sqlite3.connect(db) as conn:  # another connection sees only committed data
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
    crash(f)


# ------------------------------------------------------------------------- kill soak
