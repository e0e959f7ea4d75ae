"""``crawl NAME --processes N``: one crawl run by N worker processes on one shared frontier.

The workers are ordinary ``crawl NAME --frontier URL`` processes (see "Running on several
machines" in the README): one queue, one seen-set and one set of per-host limits in Redis.
The frontier is the ``--frontier`` URL given, or else a private ``redis-server`` started here
on a free local port (no persistence, its files in a temporary folder) and stopped at the end.

Outputs: worker ``i`` (1 to N) writes ``STEM-i.jsonl`` next to ``-o/-O STEM.jsonl`` (or the
path with ``{worker}`` replaced by ``i``, when it has one); when every worker has exited, their
files are merged into the output (``{worker}`` replaced by ``all``), each item once
(:func:`crawler.dedup.merge_outputs`). The worker files are kept.

Signals: the workers run in their own process group, so a Ctrl-C reaches this process only,
which passes it on once to every worker: the first stops them gracefully (each finishes what
it has in flight), a second stops them at once. The summary and ``--stats`` are the crawl's:
every worker's counters added up, over this command's wall time.

Start-up: on Linux, this process imports what a worker needs (the runner, aiohttp, redis-py,
uvloop) while the private redis-server starts, then forks the workers, which run ``crawl``'s
own entry point on their argument lists and start crawling at once: a fresh interpreter per
worker would import all of that again, N times over on cores the crawl is about to need (a
third of a second each on the bench machine). The project's own modules (its spiders and
what they import from the project's folder) are imported again in each worker, as a new
interpreter would: a module that opens a connection or a file as it is imported gets its
own in every worker, never one shared across the fork. Elsewhere (macOS, where a forked
child may crash in system libraries, and Windows), or when this process runs threads of its
own (a program calling :func:`crawl`), each worker is a new ``python -m crawler.cli crawl``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["WorkerPlan", "can_fork", "crawl", "private_redis", "run_workers", "worker_outputs"]

#: Exit code of a worker stopped at once by a second signal (``crawl``'s EXIT_INTERRUPTED).
_INTERRUPTED = 130


@dataclass(slots=True)
class WorkerPlan:
    """What every worker is given: the spider, its arguments, and where each writes."""

    spider: str
    project: Path
    frontier_url: str
    #: ``-a``/``-s`` and other options passed to every worker as they are.
    passthrough: list[str]
    #: One output per worker (None: no output), written with ``-O``.
    outputs: list[str | None]


def worker_outputs(output: str | None, processes: int) -> tuple[list[str | None], str | None]:
    """The workers' output paths and the merged output for ``-o/-O output``.

    Only JSON lines can be merged: another format, or stdout, is refused with the reason."""
    if output is None:
        return [None] * processes, None
    if output == "-":
        raise ConfigError("--processes cannot write to stdout (-o -): the workers' lines would "
                          "interleave; give a .jsonl file")
    path = output.replace("{worker}", "all")
    if not path.endswith(".jsonl"):
        raise ConfigError(f"--processes writes JSON lines and merges them: give a .jsonl output"
                          f" (got {output!r})")
    template = output if "{worker}" in output else path[:-len(".jsonl")] + "-{worker}.jsonl"
    return [template.replace("{worker}", str(i)) for i in range(1, processes + 1)], path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ask(port: int, command: bytes) -> bytes | None:
    """The first bytes the redis-server on ``port`` answers ``command`` with (b"" when it
    closes the connection instead); None when it cannot be reached."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(command)
            return conn.recv(64)
    except OSError:
        return None


def _redis_answers(port: int) -> bool:
    return (_ask(port, b"PING\r\n") or b"").startswith(b"+PONG")


def _shutdown(port: int) -> bool:
    """Ask the redis-server on ``port`` to exit now, saving nothing; False if it did not
    take the command."""
    return _ask(port, b"SHUTDOWN NOSAVE\r\n") == b""  # it closes the connection as it exits


@contextlib.contextmanager
def private_redis(timeout: float = 10.0) -> Iterator[str]:
    """A ``redis-server`` of this command's own on 127.0.0.1 (a free port, no persistence);
    yields its URL and stops it at the end. ConfigError when redis-server is not installed or
    does not start."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigError(
            "--processes needs a shared frontier: install redis-server (e.g. apt-get install "
            "redis-server) or give --frontier redis://HOST:PORT/DB")
    folder = tempfile.mkdtemp(prefix="crawler-redis-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(5):  # another program may take the free port first
            port = _free_port()
            proc = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                 "--appendonly", "no", "--dir", folder, "--loglevel", "warning",
                 "--logfile", os.path.join(folder, "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                process_group=0,  # a Ctrl-C must not stop it before the workers are done
            )
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if _redis_answers(port):
                    break
                time.sleep(0.01)
            if proc.poll() is None:
                if not _redis_answers(port):
                    raise ConfigError(f"redis-server did not answer within {timeout:g} s")
                break
            proc = None
        if proc is None:
            log = Path(folder, "redis.log")
            detail = log.read_text(errors="replace").strip()[-500:] if log.exists() else ""
            raise ConfigError(f"redis-server did not start: {detail or 'no reason given'}")
        logger.info("Started a private redis-server on 127.0.0.1:%d", port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if proc is not None:
            # SHUTDOWN NOSAVE ends it at once; a SIGTERM waits for its next timer tick
            # (100 ms at the default hz), on the command's critical path.
            if proc.poll() is None and not _shutdown(port):
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _arguments(plan: WorkerPlan, index: int, stats_path: str) -> list[str]:
    """The ``crawl`` arguments of worker ``index``."""
    args = [plan.spider, "--project", str(plan.project), "--frontier", plan.frontier_url,
            "--stats", stats_path, "--no-summary", *plan.passthrough]
    output = plan.outputs[index]
    if output is not None:
        args += ["-O", output]
    return args


def can_fork() -> bool:
    """Whether workers may be forked from this process (see "Start-up" above): on Linux, with
    no thread but the main one running (a thread holding a lock at the fork would leave it
    held forever in the worker)."""
    return sys.platform == "linux" and threading.active_count() == 1


def preload() -> None:
    """Import what every worker's crawl imports (before forking them). A failed import is
    left for each worker to raise, with its traceback, as a new interpreter would."""
    try:
        from . import runner  # noqa: F401  (the imports are the work)
        from .frontier import redis  # noqa: F401

        if not os.environ.get("CRAWLER_NO_UVLOOP"):
            import uvloop  # noqa: F401
    except Exception:
        pass


class _Forked:
    """A worker forked from this process: what :func:`run_workers` uses of a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            _, status = os.waitpid(self.pid, 0)  # retried after a signal handler (PEP 475)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _project_modules(project: Path) -> list[str]:
    """The modules imported from the files of ``project``: not this package, nor what is
    installed in an environment inside the project's folder (a ``.venv``)."""
    root = os.path.join(os.path.realpath(project), "")
    own = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")
    installed = {os.path.join(os.path.realpath(p), "")
                 for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        path = os.path.realpath(file)
        if path.startswith(root) and not path.startswith(own) and not any(
                path.startswith(prefix) for prefix in installed):
            names.append(name)
    return names


def _fork(args: list[str], project: Path) -> _Forked:
    """Start a worker running ``crawl`` with ``args`` in a child of this process, as a new
    interpreter would run it: its own process group, stdin from /dev/null, the default
    handlers of SIGINT and SIGTERM, the modules of ``project`` imported afresh. The child
    never returns into this process's code (its ``finally`` blocks and atexit handlers, which
    stop the private redis-server, are this process's): it exits with the crawl's code."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else what is buffered would be written twice
    pid = os.fork()
    if pid:
        with contextlib.suppress(OSError):  # the child does it too: whichever runs first
            os.setpgid(pid, pid)
        return _Forked(pid)
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for name in _project_modules(project):
            del sys.modules[name]
        from .cli import crawl_main

        code = crawl_main(args)
    except KeyboardInterrupt:
        code = _INTERRUPTED
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            os._exit(code)


def run_workers(plan: WorkerPlan, workdir: str,
                fork: bool | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Run one worker per entry of ``plan.outputs`` until all have exited, passing SIGINT
    and SIGTERM on to them: forked from this process (``fork``; by default when
    :func:`can_fork`), else each a new interpreter. Returns the exit code for the whole crawl
    (0, else the first worker's failure, 130 when a worker was stopped at once) and every
    worker's stats."""
    if fork is None:
        fork = can_fork()
    stats_paths = [os.path.join(workdir, f"stats-{i + 1}.json") for i in range(len(plan.outputs))]
    if fork:
        # What the workers inherit is never walked by their collector again, as a crawl's
        # start-up is frozen in one process (see cli._end_startup); nor copied by it.
        gc.freeze()
    procs: list[subprocess.Popen[bytes] | _Forked] = []
    signals = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals == 1:
            logger.warning("%s: stopping %d workers after their requests in flight (again to"
                           " stop now)", name, len(procs))
        else:
            logger.warning("%s again: stopping the workers now", name)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(len(plan.outputs)):
            # Its own process group: a terminal's Ctrl-C reaches only this process, which
            # forwards it once (a second one straight from the terminal would mean "now").
            args = _arguments(plan, i, stats_paths[i])
            procs.append(_fork(args, plan.project) if fork else subprocess.Popen(
                [sys.executable, "-m", "crawler.cli", "crawl", *args],
                stdin=subprocess.DEVNULL, process_group=0))
        codes = [proc.wait() for proc in procs]
    finally:
        for proc in procs:  # only when this process itself fails: no worker left behind
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = []
    for path in stats_paths:
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            stats.append(orjson.loads(Path(path).read_bytes()))
    failed = [c for c in codes if c != 0]
    code = _INTERRUPTED if _INTERRUPTED in failed else (failed[0] if failed else 0)
    return code, stats


def crawl(
    spider: str,
    project: Path,
    passthrough: list[str],
    *,
    processes: int,
    frontier_url: str | None,
    output: str | None,
    overwrite: bool,
    stats_path: str | None,
) -> int:
    """The whole ``crawl NAME --processes N``: the frontier, the workers, the merged output,
    the crawl's summary and stats. Returns the exit code."""
    from .stats import Stats

    outputs, merged = worker_outputs(output, processes)
    stats = Stats()
    stats.start()
    fork = can_fork()
    # The workers' imports run while redis-server starts (its start waits with the GIL free).
    preloading = threading.Thread(target=preload, name="preload workers") if fork else None
    with contextlib.ExitStack() as stack:
        if preloading is not None:
            preloading.start()
            stack.callback(preloading.join)  # joined before forking, or on an error
        url = frontier_url or stack.enter_context(private_redis())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="crawler-workers-"))
        logger.info("Crawling %s with %d worker processes on %s", spider, processes,
                    _redact(url))
        plan = WorkerPlan(spider, project, url, passthrough, outputs)
        if preloading is not None:
            preloading.join()
        code, worker_stats = run_workers(plan, workdir, fork=fork)
    for data in worker_stats:
        # Side by side, not one after the other: the crawl's time is this command's.
        stats.load({k: v for k, v in data.items() if k not in ("elapsed", "start_time")})
    if merged is not None:
        written = [p for p in outputs if p is not None and os.path.exists(p)]
        _merge(written, merged, overwrite)
    reasons = [str(d.get("finish_reason", "")) for d in worker_stats]
    odd = [r for r in reasons if r and r != "finished"]
    reason = odd[0] if odd else ("finished" if len(reasons) == processes else "error")
    stats.finish(reason)
    if stats_path:
        stats.dump_json(stats_path)
    logger.info("All %d worker processes exited.\n%s", processes, stats.summary())
    return code


def _merge(inputs: list[str], merged: str, overwrite: bool) -> None:
    """The workers' files into ``merged``, each item once: replacing it (``-O``) or appended
    to it (``-o``)."""
    from .dedup import merge_outputs

    if overwrite or not os.path.exists(merged):
        result = merge_outputs(inputs, merged, overwrite=True)
    else:
        part = f"{merged}.part{os.getpid()}"
        try:
            result = merge_outputs(inputs, part, overwrite=True)
            with open(part, "rb") as src, open(merged, "ab") as out:
                shutil.copyfileobj(src, out)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(part)
    logger.info("Merged %d worker outputs into %s: %d items (%d repeats dropped)",
                len(inputs), merged, result.written, result.duplicates)


def _redact(url: str) -> str:
    from .urls import redact_userinfo

    return redact_userinfo(url)
