"""Job directories: where a durable crawl (``--jobdir DIR``) keeps its state between runs.

A job directory holds::

    job.json            what the job is: format version, spider, output file, creation time
    frontier.sqlite3    the requests and the seen-set (the queue of
                        :class:`~crawler.frontier.sqlite.SqliteFrontier`), the outbox, stats
                        and spider state (:class:`~crawler.jobstate.JobDatabase`, which both
                        share), plus its WAL files
    lock                held (``flock``) by the process running the job; holds its pid

:class:`JobDir` is the gate in front of it: it refuses, with a
:class:`~crawler.errors.JobDirError` that says why, anything that could make a resume misread
or corrupt the job: a directory in use by another process, one of another spider, of another
format version, holding files that are not a job's, a database that fails its integrity
check, a different output file than the job's, and outputs that cannot be cut back and
appended (a ``.json`` array, standard output).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson
from pydantic import BaseModel, ValidationError

from .errors import JobDirError
from .exporters import format_for
from .frontier.base import FrontierKit
from .frontier.sqlite import QUEUE_SCHEMA, SqliteFrontier
from .jobstate import JobDatabase, check_job_database
from .slots import Slots

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["JOB_FORMAT_VERSION", "JobDir", "JobFile", "durable_frontier"]

logger = logging.getLogger(__name__)

#: Version of the job directory layout and ``job.json``; bumped with
#: :data:`crawler.jobstate.SCHEMA_VERSION` or any change a resume could misread.
JOB_FORMAT_VERSION = 1

JOB_FILE = "job.json"
DB_FILE = "frontier.sqlite3"
LOCK_FILE = "lock"
# What a job directory may hold before its job.json exists (a kill while creating it).
_OWN_FILES = {LOCK_FILE, JOB_FILE + ".tmp"}


class JobFile(BaseModel):
    """The contents of ``job.json``."""

    format: int
    """Job directory format version (:data:`JOB_FORMAT_VERSION`)."""
    spider: str
    """Name of the spider the job crawls."""
    output: str | None
    """Absolute path of the output file, or None for a crawl without one."""
    created: float
    """When the job was created (Unix time)."""


class JobDir:
    """A locked, checked job directory. Use as a context manager (or :meth:`open` /
    :meth:`close`); the lock is held until it exits.

    ``output_path`` is the output file as given on the command line (None: no output);
    ``output_format`` its format (``"jsonl"``, ``"csv"``, ``"json"``), derived from the path
    when None. The directory is created if missing.
    """

    def __init__(
        self,
        path: str | Path,
        spider_name: str,
        output_path: str | None,
        output_format: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.spider_name = spider_name
        self.output_path = output_path
        self.output_format = output_format
        self._lock_fd: int | None = None
        #: True when the directory already held this job (a resume), False when created now.
        self.resumed = False
        #: True when an earlier run finished the crawl: running it again has nothing to do.
        self.finished = False
        #: How the last run ended (``"finished"``, ``"signal_SIGINT"``, ...), None if unknown.
        self.finish_reason: str | None = None
        #: The stats committed by the last run (empty for a new job).
        self.last_stats: dict[str, Any] = {}
        #: When the job was created (Unix time, from job.json): names the job in feeds.
        self.created = 0.0

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    def kit(self, slots: Slots) -> FrontierKit:
        """The job's frontier with this job, as a durable :class:`FrontierKit`."""
        frontier = self.frontier(slots=slots)
        return FrontierKit(frontier, durable=frontier, job=self)

    def database(self, *, commit_interval: float = 0.1, commit_ops: int = 1000) -> JobDatabase:
        """The job's database (not opened yet): its connection, group commit, output log and
        job state, holding the frontier's queue tables too; the options tune the group
        commit (:class:`~crawler.jobstate.JobDatabase`)."""
        if self._lock_fd is None:
            raise RuntimeError("JobDir.database() before open()")
        return JobDatabase(
            self.db_path, spider_name=self.spider_name, schema=QUEUE_SCHEMA,
            commit_interval=commit_interval, commit_ops=commit_ops,
        )

    def frontier(
        self, *, slots: Slots | None = None, commit_interval: float = 0.1, commit_ops: int = 1000
    ) -> SqliteFrontier:
        """The job's frontier (not opened yet), its queue in the job's :meth:`database`; it
        opens and closes that database."""
        if self._lock_fd is None:
            raise RuntimeError("JobDir.frontier() before open()")
        db = self.database(commit_interval=commit_interval, commit_ops=commit_ops)
        return SqliteFrontier(self.db_path, spider_name=self.spider_name, slots=slots, db=db)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Self:
        """Create or check the directory and take its lock; raises :class:`JobDirError`."""
        self._check_output_kind()
        if self.path.exists() and not self.path.is_dir():
            raise JobDirError(f"job directory {self.path} exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobDirError(f"cannot create job directory {self.path}: {exc}") from exc
        self._lock()
        try:
            self._check_job_file()
            self._check_database()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release the lock. Idempotent."""
        fd = self._lock_fd
        self._lock_fd = None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r}, spider={self.spider_name!r})"

    # ------------------------------------------------------------------ the checks

    def _check_output_kind(self) -> None:
        path = self.output_path
        if path is None:
            return
        if path == "-":
            raise JobDirError(
                "--jobdir needs an output file, not standard output: after a crash the output "
                "is cut back to the last committed item, which a pipe cannot do; use -o "
                "FILE.jsonl or -o FILE.csv"
            )
        fmt = self.output_format or format_for(path)
        if fmt == "json":
            raise JobDirError(
                "--jobdir cannot append safely to a .json array; use .jsonl or .csv"
            )

    def _lock(self) -> None:
        lock_path = self.path / LOCK_FILE
        # O_APPEND-free, no truncation before the lock is ours: the holder's pid stays readable.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise JobDirError(
                f"job directory {self.path} is in use by another crawl (pid {holder})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise JobDirError(f"cannot lock job directory {self.path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _output_abspath(self) -> str | None:
        return os.path.abspath(self.output_path) if self.output_path is not None else None

    def _check_job_file(self) -> None:
        job_path = self.path / JOB_FILE
        if not job_path.exists():
            tmp = job_path.with_suffix(".json.tmp")  # left by a kill while creating the job
            others = sorted(p.name for p in self.path.iterdir() if p.name not in _OWN_FILES)
            if others:
                shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                raise JobDirError(
                    f"{self.path} is not a job directory (no {JOB_FILE}) and is not empty "
                    f"({shown}); give a new or empty directory to start a job"
                )
            job = JobFile(
                format=JOB_FORMAT_VERSION,
                spider=self.spider_name,
                output=self._output_abspath(),
                created=time.time(),
            )
            # Written whole or not at all: a kill here must not leave half a job.json.
            tmp.write_bytes(orjson.dumps(job.model_dump(), option=orjson.OPT_INDENT_2))
            os.replace(tmp, job_path)
            self.created = job.created
            self.resumed = False
            logger.info("Started job %s for spider %r", self.path, self.spider_name)
            return
        self.resumed = True
        try:
            raw = orjson.loads(job_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise JobDirError(f"cannot read {job_path}: {exc}") from exc
        # The version first: a later version's job.json may not fit this model at all.
        version = raw.get("format") if isinstance(raw, dict) else None
        if version != JOB_FORMAT_VERSION:
            raise JobDirError(
                f"job directory {self.path} was written by an incompatible version of the "
                f"crawler (job format {version!r}; this version reads {JOB_FORMAT_VERSION})"
            )
        try:
            job = JobFile.model_validate(raw)
        except ValidationError as exc:
            raise JobDirError(f"{job_path} is not a valid job file: {exc}") from exc
        self.created = job.created
        if job.spider != self.spider_name:
            raise JobDirError(
                f"job directory {self.path} belongs to spider {job.spider!r}, "
                f"not {self.spider_name!r}"
            )
        output = self._output_abspath()
        if job.output != output:
            was = job.output or "no output file"
            now = output or "no output file"
            raise JobDirError(
                f"job directory {self.path} writes its items to {was}, not {now}; resume with "
                "the same output, or use a new job directory"
            )

    def _check_database(self) -> None:
        """Integrity and identity of an existing database; reads the finished flag."""
        if not self.db_path.exists():
            return
        try:
            conn = sqlite3.connect(self.db_path, isolation_level=None)
        except sqlite3.Error as exc:
            raise JobDirError(f"cannot open {self.db_path}: {exc}") from exc
        try:
            # A database without tables (0 bytes, or its creation never committed: a run
            # killed while creating it) holds nothing: the job starts afresh. A 0-byte file
            # whose tables are in its write-ahead log is a real job, read through the log.
            tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if tables == 0:
                logger.info("The job database %s is empty (a run stopped while creating it): "
                            "starting the job", self.db_path)
                return
            # Every page and index checked: about 1.5 s for a job of 1,000,000 requests.
            result = conn.execute("PRAGMA integrity_check").fetchall()
            if result != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in result[:3])
                raise JobDirError(
                    f"{self.db_path} is corrupt (integrity check: {problems}); the job cannot "
                    "be resumed"
                )
            meta = check_job_database(conn, f"job directory {self.path}", self.spider_name)
        except sqlite3.OperationalError as exc:  # locked, unreadable, I/O error, ...
            raise JobDirError(f"cannot read the job database {self.db_path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise JobDirError(
                f"{self.db_path} is not a crawl job database, or is corrupt: {exc}"
            ) from exc
        finally:
            conn.close()
        self.finished = bool(meta.get("finished"))
        reason = meta.get("finish_reason")
        self.finish_reason = str(reason) if reason is not None else None
        stats = meta.get("stats")
        if stats:
            try:
                self.last_stats = orjson.loads(stats)
            except orjson.JSONDecodeError:
                self.last_stats = {}


def durable_frontier(settings: Settings, spider_name: str, output: str | None) -> FrontierKit:
    """The frontier of the job in ``settings.jobdir``, its directory locked (a
    :data:`~crawler.frontier.base.BuildFrontier`); ``output`` is the one file it keeps
    exactly-once. Raises :class:`JobDirError` for a directory that is not this job's."""
    job = JobDir(settings.jobdir or "", spider_name, output).open()
    return job.kit(Slots.from_settings(settings))
