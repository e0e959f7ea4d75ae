"""The ``crawler`` project tools other than ``crawl`` and ``runspider``: ``list``, ``parse``,
``startproject``, ``genspider``, ``demo``, ``frontier``, ``merge``, ``report``, ``shell``,
``fetch`` and ``view``. :func:`crawler.cli.crawler_main` parses the command line and calls
the function named after the subcommand; each returns the exit code (see :mod:`crawler.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    crawl_main,
    load_spider_and_settings,
    run_async,
    setup_logging,
)
from .errors import ConfigError, InvalidURL

if TYPE_CHECKING:
    from .runner import ParseResult
    from .spider import Spider

__all__ = ["demo", "fetch", "frontier", "list_spiders", "merge", "parse", "report", "scaffold"]


def report(paths: list[str], output: str) -> int:
    """``crawler report STATS.json... -o FILE``: the HTML report of saved stats."""
    from .report import load_stats, write_report

    try:
        stats = load_stats(paths)
        names = ", ".join(map(os.path.basename, paths))
        write_report(stats, output, title=f"Crawl report: {names}")
    except ConfigError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"crawler: error: cannot write {output!r}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Wrote {output}", file=sys.stderr)
    return EXIT_OK


def fetch(args: argparse.Namespace) -> int:
    """``crawler fetch URL [--headers]``, ``crawler view URL``, ``crawler shell [URL]``."""
    from .http import Request
    from .settings import build_settings
    from .shell import fetch_one, open_in_browser, start_shell

    try:
        settings = build_settings(project_dir=Path.cwd(), cli=args.settings)
        setup_logging(settings.log_level if args.command == "shell" else "WARNING")
        if args.command == "shell":
            start_shell(settings, args.url)
            return EXIT_OK
        response = run_async(fetch_one(settings, Request(args.url)))
    except (ConfigError, InvalidURL) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a download error: say what, not a traceback
        print(f"crawler: {args.command} {args.url} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.command == "view":
        open_in_browser(response)
        return EXIT_OK
    if args.headers:
        print(f"{response.status} {response.url}")
        for key, value in response.headers.items():
            print(f"{key}: {value}")
    else:
        sys.stdout.buffer.write(response.body)
        sys.stdout.flush()
    return EXIT_OK


def frontier(args: argparse.Namespace) -> int:
    """``crawler frontier status|purge|list``: a shared crawl's state, or clearing it."""
    import json

    from .frontier.redis_admin import frontier_crawls, frontier_purge, frontier_status
    from .settings import build_settings

    try:
        settings = build_settings(project_dir=(args.project or Path.cwd()).resolve())
        url = args.frontier or settings.frontier_url
        crawl_id = settings.crawl_id if args.crawl_id is None else args.crawl_id
        if not url:
            raise ConfigError("no frontier: give --frontier redis://host:port/db")
        if args.action == "list":
            for spider, cid in run_async(frontier_crawls(url)):
                print(f"{spider}\t{cid or '(no crawl_id)'}")
            return EXIT_OK
        if not args.spider:
            raise ConfigError(f"frontier {args.action} needs --spider NAME")
        if args.action == "purge":
            deleted = run_async(frontier_purge(url, args.spider, crawl_id))
            print(f"purged {deleted} keys of crawl {args.spider!r} {crawl_id!r}")
            return EXIT_OK
        known = run_async(frontier_crawls(url))
        if (args.spider, crawl_id) not in known:
            # A typo in --crawl-id must not read as a crawl that is running.
            others = ", ".join(cid or "(no crawl_id)" for name, cid in known
                               if name == args.spider) or "none"
            print(f"crawl {args.spider!r} crawl_id {crawl_id!r}: unknown (no such crawl in "
                  f"{url}; crawl ids of {args.spider!r} there: {others})", file=sys.stderr)
            return EXIT_FAILED
        status = run_async(frontier_status(url, args.spider, crawl_id))
    except ConfigError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return EXIT_OK
    print(f"crawl {args.spider!r} crawl_id {crawl_id!r}: "
          f"{'finished' if status.get('finished') else 'running'}")
    for key in ("pending", "delayed", "leased", "done", "dead_lettered", "seen",
                "workers_alive"):
        print(f"  {key:<14} {status.get(key, 0):>10,}")
    for worker in status.get("workers", []):
        age = worker.get("last_heartbeat_age")
        print(f"  worker {worker.get('id')}: {worker.get('state')}, "
              f"{worker.get('leases', 0)} leases, last heartbeat "
              f"{'?' if age is None else f'{age:.1f}s'} ago")
    for dead in status.get("dead_letters", []):
        print(f"  dead letter {dead.get('url')}: {dead.get('reason')}")
    return EXIT_OK


def merge(args: argparse.Namespace) -> int:
    """``crawler merge OUT IN...``: the union of workers' outputs, each item once."""
    from .dedup import merge_outputs

    try:
        result = merge_outputs(args.inputs, args.out, key=tuple(args.key.split(",")),
                               overwrite=args.overwrite)
    except ConfigError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"read {result.read}, wrote {result.written}, dropped {result.duplicates} "
          f"repeats, skipped {result.invalid} unreadable lines", file=sys.stderr)
    return EXIT_OK


def parse(args: argparse.Namespace) -> int:
    """``crawler parse URL --spider NAME [-c CALLBACK]``: the items (as JSON lines) and the
    requests one page gives, on stdout; nothing is followed, validated, piped or written."""
    from .runner import parse_once

    project = (args.project or Path.cwd()).resolve()
    cli_settings = ["log_level=WARNING", *args.settings]
    try:
        spider_cls, settings = load_spider_and_settings(args.spider, project, cli_settings)
        result = run_async(parse_once(spider_cls, settings, args.url, args.callback,
                                      spider_args=dict(args.spider_args)))
    except (ConfigError, InvalidURL) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = _print_parsed(args, spider_cls, result)
        sys.stdout.flush()  # here, not at exit, where a closed pipe could not be caught
        return code
    except BrokenPipeError:  # `crawler parse ... | head -1`: the reader has what it wanted
        from .exporters import silence_stdout

        silence_stdout()
        return EXIT_OK


def _print_parsed(
    args: argparse.Namespace, spider_cls: type[Spider], result: ParseResult
) -> int:
    from .exporters import encode_item
    from .items import InvalidItem, to_dict, validate_item

    stats = result.stats
    if not result.called:
        failed = sorted(k.removeprefix("status/") for k in stats
                        if k.startswith("status/") and not k.startswith(("status/2", "status/3")))
        errors = sorted(k.removeprefix("errors/") for k in stats if k.startswith("errors/"))
        why = ("forbidden by robots.txt" if stats.get("robots_denied")
               else f"HTTP status {', '.join(failed)}" if failed
               else f"errors: {', '.join(errors)}" if errors else "nothing fetched")
        print(f"crawler: the callback did not run for {args.url} ({why})", file=sys.stderr)
        return EXIT_FAILED
    print(f"# {len(result.items)} item(s)")
    model = spider_cls.item_model
    for item in result.items:
        print(encode_item(to_dict(item)).decode())
        checked = validate_item(model, item) if model is not None else None
        if model is not None and isinstance(checked, InvalidItem):
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in checked.errors)
            print(f"#   invalid {model.__name__}: {problems}")
    print(f"# {len(result.requests)} request(s)")
    for request in result.requests:
        callback = request.callback
        name = callback if isinstance(callback, str) or callback is None else getattr(
            callback, "__name__", repr(callback))
        print(f"{request.method} {request.url}  callback={name or 'parse'}")
    return EXIT_OK


def scaffold(args: argparse.Namespace) -> int:
    """``crawler startproject PATH`` / ``crawler genspider NAME URL``."""
    from .scaffold import new_project, new_spider

    try:
        if args.command == "startproject":
            new_project(args.path)
            print(f"New project in {args.path}. Next:\n"
                  f"  cd {args.path}\n"
                  "  crawler genspider example example.com\n"
                  "  crawl example -o items.jsonl")
            return EXIT_OK
        module = new_spider((args.project or Path.cwd()), args.name, args.url)
    except (ConfigError, OSError) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Created spider {args.name!r} in {module}; run it with: crawl {args.name}")
    return EXIT_OK


def list_spiders(project: Path | None) -> int:
    from .loader import discover
    from .settings import build_settings

    project = (project or Path.cwd()).resolve()
    try:
        settings = build_settings(project_dir=project)
        if (project / "scrapy.cfg").is_file():  # a Scrapy project: its SPIDER_MODULES
            from .scrapyproject import load_project

            spiders = {}
            for package in load_project(project).spider_modules:
                spiders.update(discover(package, project))
        else:
            spiders = discover(settings.spiders, project)
    except ConfigError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    width = max((len(n) for n in spiders), default=0)
    for name, info in spiders.items():
        print(f"{name:<{width}}  {info.module}")
    return EXIT_OK


def demo(output: str | None, overwrite_output: str | None, books: int) -> int:
    """Serve the bundled bookstore on 127.0.0.1 and crawl it with the books spider."""
    from .demosite import run_in_thread

    target = os.path.abspath(overwrite_output or output or "books.jsonl")
    flag = "-o" if output else "-O"
    project = Path(__file__).resolve().parent.parent
    if not (Path.cwd() / "spiders").is_dir():
        os.chdir(project)
    with run_in_thread(books=books) as site:
        print(f"Serving the demo bookstore at {site.url}/", file=sys.stderr)
        code = crawl_main(
            ["books", flag, target, "-a", f"start_url={site.url}/"],
            prog="crawler demo",
        )
    if code == EXIT_OK:
        print(f"Wrote {target}", file=sys.stderr)
    return code
