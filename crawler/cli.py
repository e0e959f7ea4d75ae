"""The ``crawl`` and ``crawler`` commands.

Exit codes: 0 the crawl finished (or was stopped gracefully), 1 the crawl failed (a start()
that raised before yielding any request) or ``crawler parse`` could not run the callback
(robots.txt, an HTTP error status, a download error), 2 a usage, settings or
spider error (nothing was fetched), 130 stopped at once by a second Ctrl-C.

This module parses the command lines and runs crawls; the other ``crawler`` subcommands
live in :mod:`crawler.tools`, imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .errors import ConfigError

if TYPE_CHECKING:
    from .settings import Settings
    from .spider import Spider

logger = logging.getLogger("crawler")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


class _OutputAction(argparse.Action):
    """``-o``/``-O``, repeatable: collects (URI, overwrite) in the order given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        outputs = [*getattr(namespace, self.dest, []), (values, option_string in ("-O",
                   "--overwrite-output"))]
        setattr(namespace, self.dest, outputs)


def _crawl_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a spider of the project in the current folder.",
    )
    p.add_argument("spider", help="spider name (see `crawler list`)")
    p.add_argument("-o", "--output", metavar="URI", dest="outputs", action=_OutputAction,
                   default=[], help="append items to URI: a file (.jsonl, .json, .csv; '-' = "
                   "JSON lines on stdout), sqlite:///FILE?table=T, postgresql://.../DB?table=T; "
                   "repeat for several outputs")
    p.add_argument("-O", "--overwrite-output", metavar="URI", dest="outputs",
                   action=_OutputAction, default=[],
                   help="write items to URI, replacing the file (or the table)")
    p.add_argument("-a", dest="spider_args", metavar="NAME=VALUE", type=_kv, action="append",
                   default=[], help="spider argument (becomes a spider attribute)")
    p.add_argument("-s", dest="settings", metavar="NAME=VALUE", action="append", default=[],
                   help="setting (highest layer; dotted names for nested: close_on.items=100)")
    p.add_argument("--stats", metavar="FILE", help="write the final stats as JSON to FILE")
    p.add_argument("--report", metavar="FILE",
                   help="write the HTML crawl report to FILE at the end of the crawl")
    p.add_argument("--loglevel", "-L", metavar="LEVEL",
                   help="DEBUG, INFO, WARNING, ERROR (same as -s log_level=LEVEL)")
    p.add_argument("--jobdir", metavar="DIR", help="durable, resumable crawl state in DIR")
    p.add_argument("--frontier", metavar="URL",
                   help="shared frontier, e.g. redis://127.0.0.1:6379/0 (several workers)")
    p.add_argument("--project", metavar="DIR", type=Path, default=None,
                   help="project folder (default: the current folder)")
    p.add_argument("--processes", metavar="N", type=_positive, default=1,
                   help="worker processes sharing one frontier: --frontier, else a private "
                        "redis-server (default 1: this process alone)")
    # A worker of `--processes`: the command that started it prints the crawl's summary.
    p.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _RedactingFormatter(logging.Formatter):
    """Log lines without the passwords of URLs (``http://user:secret@host/`` is logged as
    ``http://***@host/``): a start URL or proxy with credentials must not leak into logs,
    whichever message, traceback or library writes it."""

    def format(self, record: logging.LogRecord) -> str:
        from .urls import redact_userinfo

        return redact_userinfo(super().format(record))


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access/client loggers are noisy at DEBUG; our own messages say what matters.
    logging.getLogger("aiohttp").setLevel(max(logging.INFO, logging.getLevelName(level)))


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is installed (the ``speed`` extra) and ``CRAWLER_NO_UVLOOP`` is
    not set, else on asyncio's own loop."""
    import asyncio  # not at the top: `crawler list` and `crawler version` need no event loop

    _end_startup()

    loop_factory = None
    if not os.environ.get("CRAWLER_NO_UVLOOP"):
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    # The loop runs outside the except block: a traceback logged during the crawl must not
    # begin with the ImportError ("During handling of the above exception...").
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def _crawl_processes(
    args: argparse.Namespace, prog: str, project: Path, settings: Settings,
    output: str | None, overwrite: bool,
) -> int:
    """``crawl NAME --processes N``: see :mod:`crawler.processes`."""
    from .processes import crawl

    if args.jobdir or settings.jobdir:
        print(f"{prog}: error: --processes shares a frontier between processes; a jobdir "
              "belongs to one process (use --frontier redis://... for a resumable crawl)",
              file=sys.stderr)
        return EXIT_USAGE
    passthrough: list[str] = []
    for kv in args.settings:
        passthrough += ["-s", kv]
    for key, value in args.spider_args:
        passthrough += ["-a", f"{key}={value}"]
    if args.loglevel:
        passthrough.append(f"--loglevel={args.loglevel}")
    try:
        return crawl(
            args.spider, project, passthrough, processes=args.processes,
            frontier_url=settings.redis_frontier_url,
            output=output, overwrite=overwrite, stats_path=args.stats,
        )
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def load_spider_and_settings(
    name: str, project: Path, cli_settings: list[str]
) -> tuple[type[Spider], Settings]:
    """The spider class called ``name`` and its settings (see :func:`_load`)."""
    loaded = _load(name, project, cli_settings)
    return loaded.spider_cls, loaded.settings


@dataclass(slots=True)
class _Loaded:
    spider_cls: type[Spider]
    settings: Settings
    #: The Scrapy-named settings of a Scrapy project's settings.py (for crawler.settings).
    scrapy_settings: dict[str, Any]


def _load(
    name: str | None, project: Path, cli_settings: list[str], spider_file: Path | None = None,
    importing: threading.Thread | None = None,
) -> _Loaded:
    """The spider class (called ``name``, or the one in ``spider_file``) and its settings:
    the project's layers (``settings.toml``, or a Scrapy project's ``settings.py``), then the
    spider's own (:meth:`Spider.spider_settings`). The spider is found with the project's
    ``spiders`` setting, so the settings are built twice. Logging is set up as soon as a
    level is known. ``import scrapy`` is served by the compatibility layer. ``importing``
    (a thread importing a module) is joined before the project's own modules are imported:
    their imports never run alongside it."""
    from .loader import load_spider
    from .scrapy import install
    from .settings import build_settings

    install(quiet=True)
    scrapy_project = None
    if (project / "scrapy.cfg").is_file():
        from .scrapyproject import load_project

        if importing is not None:  # the project's settings module is imported next
            importing.join()
        scrapy_project = load_project(project)
    base = build_settings(project_dir=project, cli=cli_settings)
    setup_logging(base.log_level)
    raw: dict[str, Any] = dict(scrapy_project.settings) if scrapy_project is not None else {}
    layer = None
    if raw:
        from .compat import translate_settings

        source = scrapy_project.settings_module if scrapy_project is not None else "settings.py"
        layer = translate_settings(raw, source)
    if importing is not None:
        _import_beside(importing, base)
        importing.join()
    if spider_file is not None:
        from .loader import load_spider_file

        spider_cls = load_spider_file(spider_file)
    elif scrapy_project is not None:
        from .loader import load_spider_from

        spider_cls = load_spider_from(str(name), scrapy_project.spider_modules, project)
    else:
        spider_cls = load_spider(str(name), base.spiders, project)
    settings = build_settings(
        project_dir=project, project_settings=layer,
        custom_settings=spider_cls.spider_settings(), cli=cli_settings,
    )
    setup_logging(settings.log_level)
    return _Loaded(spider_cls, settings, raw)


# The console scripts (``crawl``, ``crawler``) run their start-up without the cyclic garbage
# collector: importing a few hundred modules makes no cyclic garbage worth a collection, yet
# triggers full ones that walk every object imported so far. Before the event loop starts,
# what start-up made is frozen (never walked again: modules, classes, the settings; the
# ~1,800 cyclic leftovers of building them, ~0.4 MB, stay) and the collector runs again for
# the crawl. A program calling crawl_main() keeps its own collector.
_script_startup = False


def _end_startup() -> None:
    global _script_startup
    if _script_startup:
        _script_startup = False
        gc.freeze()
        gc.enable()


def _script(main: Callable[[], int]) -> NoReturn:
    """Run ``main`` as a console script and exit with its code. Before the interpreter's
    own shutdown (every module torn down, every object freed: outputs were closed by the
    crawl, buffered streams are flushed then, atexit handlers and threads are waited for as
    always), the objects still alive are frozen: the last collections of the shutdown then
    skip them instead of walking them all (~80 ms of CPU after a short crawl, measured on the
    bench machine under load)."""
    global _script_startup
    _script_startup = True
    gc.disable()
    try:
        code = main()
    finally:
        _script_startup = False
        gc.enable()
        gc.freeze()
    sys.exit(code)


def crawl_script() -> NoReturn:
    """The ``crawl`` console script: :func:`crawl_main` on ``sys.argv``."""
    _script(crawl_main)


def crawler_script() -> NoReturn:
    """The ``crawler`` console script: :func:`crawler_main` on ``sys.argv``."""
    _script(crawler_main)


def crawl_main(argv: Sequence[str] | None = None, prog: str = "crawl") -> int:
    """``crawl <spider> [-o FILE | -O FILE] [-a k=v]... [-s k=v]... [--stats FILE]``."""
    try:
        return _crawl(argv, prog)
    except KeyboardInterrupt:  # Ctrl-C before the crawl installed its own handlers
        print(f"{prog}: interrupted before the crawl started", file=sys.stderr)
        return EXIT_INTERRUPTED


def _crawl(argv: Sequence[str] | None, prog: str, runspider: bool = False) -> int:
    parser = _crawl_parser(prog)
    if runspider:  # `crawler runspider FILE.py`: the spider is the one in the file
        parser.description = "Run the spider of one Python file (as Scrapy's runspider)."
        for action in parser._actions:
            if action.dest == "spider":
                action.help = "a Python file holding the spider (Scrapy's runspider)"
                action.metavar = "FILE.py"
    args = parser.parse_args(argv)
    if runspider:
        args.spider_file = Path(args.spider)
        args.spider = None
    project = (args.project or Path.cwd()).resolve()
    cli_settings = list(args.settings)
    if args.loglevel:
        cli_settings.append(f"log_level={args.loglevel}")
    if args.jobdir:
        cli_settings.append(f"jobdir={args.jobdir}")
    if args.frontier:
        cli_settings.append(f"frontier_url={args.frontier}")
    outputs: list[tuple[str, bool]] = args.outputs
    spider_file: Path | None = getattr(args, "spider_file", None)
    # A crawl in this process needs aiohttp (~100 ms to import, more than half of it OpenSSL
    # reading the CA certificates for two TLS contexts, with the GIL released): its import
    # runs in a thread while the settings are built (joined before the project's modules are
    # imported, see _load).
    aiohttp_import = _import_aiohttp_in_thread() if args.processes == 1 else None
    try:
        return _crawl_loaded(args, prog, project, cli_settings, outputs, spider_file,
                             aiohttp_import)
    finally:
        if aiohttp_import is not None:
            aiohttp_import.join()


def _import_aiohttp_in_thread() -> threading.Thread:
    """Import aiohttp in a new thread; join it before aiohttp is used. A failed import is left
    for the main thread's own import of aiohttp to raise, with its traceback."""

    def target() -> None:
        try:
            import aiohttp  # noqa: F401  (the import is the work)
        except Exception:  # raised again, in the main thread, where it is imported for use
            pass

    thread = threading.Thread(target=target, name="import aiohttp", daemon=True)
    thread.start()
    return thread


def _import_beside(importing: threading.Thread, settings: Settings) -> None:
    """Import the crawl's own modules that do not need aiohttp while ``importing`` reads the
    CA certificates. That part of aiohttp's import (~40 ms on a quiet machine, about a third
    of it) runs with the GIL released; the rest of either import holds the GIL, so both run
    at once only there. Hence the wait for aiohttp's connector module, which makes its TLS
    contexts as it is imported. A wrong guess costs nothing: the wait ends with the thread,
    and these are the modules that ``crawler.runner`` imports anyway."""
    import time

    while importing.is_alive() and "aiohttp.connector" not in sys.modules:
        time.sleep(0.001)
    from . import (  # noqa: F401  (the imports are the work)
        compat,
        dedup,
        exporters,
        feeds,
        filters,
        frontier,
        items,
        middleware,
        progress,
        redirect,
        robots,
        stats,
        throttle,
    )
    from .frontier import memory  # noqa: F401

    if settings.redis_frontier_url and not settings.jobdir:  # as runner._frontier_kind
        from .frontier import redis  # noqa: F401  (redis-py: a shared frontier's client)


def _crawl_loaded(
    args: argparse.Namespace, prog: str, project: Path, cli_settings: list[str],
    outputs: list[tuple[str, bool]], spider_file: Path | None,
    aiohttp_import: threading.Thread | None,
) -> int:
    try:
        loaded = _load(args.spider, project, cli_settings, spider_file, aiohttp_import)
        spider_cls, settings = loaded.spider_cls, loaded.settings
        if not outputs and not settings.feeds:  # Scrapy's FEEDS, when nothing names an output
            from .compat import feeds_output

            feed = feeds_output({**loaded.scrapy_settings, **spider_cls.custom_settings},
                                spider_cls.name)
            if feed is not None:
                outputs = [feed]
        from .feeds import parse_target, resolve_outputs

        for uri, options in resolve_outputs(outputs, settings.feeds).items():
            parse_target(uri, options)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.processes > 1:
        if spider_file is not None:
            print(f"{prog}: error: --processes runs a spider of the project (crawl NAME), not a"
                  " spider file", file=sys.stderr)
            return EXIT_USAGE
        if len(outputs) > 1 or any("://" in uri for uri, _ in outputs):
            print(f"{prog}: error: --processes writes one file output (JSON lines), merged from "
                  "the workers' files; give a single -o/-O FILE.jsonl", file=sys.stderr)
            return EXIT_USAGE
        output, overwrite = outputs[0] if outputs else (None, False)
        _end_startup()  # this process supervises: no event loop of its own to wait for
        return _crawl_processes(args, prog, project, settings, output, overwrite)

    from asyncio import CancelledError  # loaded with the runner anyway

    from .runner import run_spider

    try:
        result = run_async(
            run_spider(
                spider_cls,
                settings,
                spider_args=dict(args.spider_args),
                outputs=outputs,
                stats_path=args.stats,
                handle_signals=True,
                report_path=args.report,
                scrapy_settings=loaded.scrapy_settings,
                summary=not args.no_summary,
            )
        )
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, CancelledError):
        print(f"{prog}: stopped at once; the output holds only whole items", file=sys.stderr)
        return EXIT_INTERRUPTED
    logger.debug("finish reason: %s", result.reason)
    if result.reason == "browser_unavailable":  # said once already, with what to install
        return EXIT_USAGE
    return EXIT_FAILED if result.failed else EXIT_OK


def crawler_main(argv: Sequence[str] | None = None) -> int:
    """``crawler list | parse | startproject | genspider | version | demo | frontier |
    merge | report | crawl | runspider | shell | fetch | view``: the project tools."""
    p = argparse.ArgumentParser(prog="crawler", description="Project tools.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the project's spiders and their modules")
    ls.add_argument("--project", type=Path, default=None)
    sub.add_parser("version", help="print the version")
    pa = sub.add_parser("parse", help="fetch one URL and show what a spider's callback yields")
    pa.add_argument("url")
    pa.add_argument("--spider", required=True, help="the spider whose settings and callbacks "
                    "are used")
    pa.add_argument("-c", "--callback", help="the spider method to call (default: parse)")
    pa.add_argument("-a", dest="spider_args", metavar="NAME=VALUE", type=_kv, action="append",
                    default=[], help="spider argument")
    pa.add_argument("-s", dest="settings", metavar="NAME=VALUE", action="append", default=[],
                    help="setting, as for crawl")
    pa.add_argument("--project", type=Path, default=None)
    sp = sub.add_parser("startproject", help="create a project: settings.toml and spiders/")
    sp.add_argument("path", type=Path, help="the project folder (created when missing)")
    gs = sub.add_parser("genspider", help="add a spider to the project: spiders/NAME.py")
    gs.add_argument("name", help="spider name, also its module name (e.g. books)")
    gs.add_argument("url", help="where it starts: a URL, or a domain for https://DOMAIN/")
    gs.add_argument("--project", type=Path, default=None,
                    help="project folder (default: the current folder)")
    demo = sub.add_parser("demo", help="crawl the bundled offline bookstore with `books`")
    out = demo.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE")
    out.add_argument("-O", "--overwrite-output", metavar="FILE")
    demo.add_argument("--books", type=int, default=1000, help="books in the local store")
    fr = sub.add_parser("frontier", help="inspect or clear a shared (Redis) frontier")
    fr.add_argument("action", choices=["status", "purge", "list"])
    fr.add_argument("--frontier", metavar="URL", help="e.g. redis://127.0.0.1:6379/0 "
                    "(default: the frontier_url setting)")
    fr.add_argument("--spider", help="spider name (needed for status and purge)")
    fr.add_argument("--crawl-id", default=None, help="crawl_id of the crawl (default: setting)")
    fr.add_argument("--json", action="store_true", help="status as JSON")
    fr.add_argument("--project", type=Path, default=None)
    mg = sub.add_parser("merge", help="merge workers' outputs, dropping repeats")
    mg.add_argument("out", help="merged output (.jsonl, .json, .csv by extension; - = stdout)")
    mg.add_argument("inputs", nargs="+", help="the workers' output files (.jsonl, .json, .csv)")
    mg.add_argument("--key", default="url", help="comma-separated item fields that identify "
                    "an item (default: url)")
    mg.add_argument("-O", "--overwrite", action="store_true", help="replace OUT if it exists")
    rp = sub.add_parser("report", help="write the HTML crawl report of saved stats")
    rp.add_argument("stats", nargs="+", metavar="STATS.json",
                    help="stats files written by --stats (several: added together)")
    rp.add_argument("-o", "--output", metavar="FILE", required=True, help="the HTML file")
    sub.add_parser("crawl", help="same as the `crawl` command", add_help=False)
    sub.add_parser("runspider", help="run the spider of one Python file (as Scrapy's)",
                   add_help=False)
    sh = sub.add_parser("shell", help="an interactive console with a fetched response")
    sh.add_argument("url", nargs="?")
    sh.add_argument("-s", dest="settings", metavar="NAME=VALUE", action="append", default=[])
    fe = sub.add_parser("fetch", help="fetch a URL and write its body to stdout")
    fe.add_argument("url")
    fe.add_argument("--headers", action="store_true", help="print the headers, not the body")
    fe.add_argument("-s", dest="settings", metavar="NAME=VALUE", action="append", default=[])
    vi = sub.add_parser("view", help="fetch a URL and open it in a browser")
    vi.add_argument("url")
    vi.add_argument("-s", dest="settings", metavar="NAME=VALUE", action="append", default=[])
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "crawl":
        return crawl_main(argv[1:], prog="crawler crawl")
    if argv and argv[0] == "runspider":
        return _runspider(argv[1:])
    args = p.parse_args(argv)
    if args.command == "version":
        print(f"crawler {__version__}")
        return EXIT_OK
    from . import tools  # here: each tool imports what it needs when it runs

    if args.command != "list":  # only the list is over once its imports are
        _end_startup()
    if args.command == "list":
        return tools.list_spiders(args.project)
    if args.command == "parse":
        return tools.parse(args)
    if args.command in ("startproject", "genspider"):
        return tools.scaffold(args)
    if args.command == "demo":
        return tools.demo(args.output, args.overwrite_output, args.books)
    if args.command == "frontier":
        return tools.frontier(args)
    if args.command == "merge":
        return tools.merge(args)
    if args.command == "report":
        return tools.report(args.stats, args.output)
    if args.command in ("shell", "fetch", "view"):
        return tools.fetch(args)
    return EXIT_USAGE


def _runspider(argv: list[str]) -> int:
    """``crawler runspider FILE.py [-o/-O FILE] [-a k=v] [-s k=v]``."""
    try:
        return _crawl(argv, "crawler runspider", runspider=True)
    except KeyboardInterrupt:
        print("crawler runspider: interrupted before the crawl started", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    crawler_script()
