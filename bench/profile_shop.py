"""Profile the throughput crawl: the framework (``crawl shop``) against the raw loop.

    python bench/profile_shop.py http://127.0.0.1:8080/shop/ [--concurrency 64]

Both run under cProfile on asyncio's own loop (``CRAWLER_NO_UVLOOP=1`` / ``--no-uvloop``), so the
time the loop sleeps in ``epoll.poll`` is one visible entry: it is subtracted, and every share
is of the *busy* time. cProfile slows small Python functions down more than C code, so shares
are a guide to where the time goes, not exact figures; the absolute figures are CPU µs per page.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECT = BENCH / "project"

_IDLE = "<method 'poll' of 'select.epoll' objects>"

# (substring of the file path, group), first match wins.
_GROUPS: tuple[tuple[str, str], ...] = (
    (str(ROOT / "crawler") + os.sep, "crawler"),
    (str(PROJECT / "spiders") + os.sep, "spider"),
    (str(BENCH) + os.sep, "raw loop"),
    ("site-packages/aiohttp/", "aiohttp"),
    ("site-packages/yarl/", "yarl"),
    ("site-packages/multidict/", "multidict"),
    ("site-packages/parsel/", "parsel"),
    ("site-packages/cssselect/", "cssselect"),
    ("site-packages/lxml/", "lxml"),
    ("site-packages/w3lib/", "w3lib"),
    ("site-packages/pydantic", "pydantic"),
    ("site-packages/", "other packages"),
    ("/asyncio/", "asyncio"),
    ("/urllib/", "urllib"),
)
_BUILTIN_GROUPS: tuple[tuple[str, str], ...] = (
    ("lxml", "lxml"),
    ("orjson", "orjson"),
    ("multidict", "multidict"),
    ("yarl", "yarl"),
    ("aiohttp", "aiohttp"),
    ("_asyncio", "asyncio"),
    ("socket", "socket I/O"),
    ("select", "socket I/O"),
    ("posix.write", "file I/O"),
    ("_io.", "file I/O"),
)


def group_of(filename: str, func: str) -> str:
    """The package a profiled function belongs to (for the self-time breakdown)."""
    if filename == "~":
        for needle, group in _BUILTIN_GROUPS:
            if needle in func:
                return group
        return "builtins"
    for needle, group in _GROUPS:
        if needle in filename:
            return group
    return "stdlib"


# The same work in both crawls, as (path suffix, function name) pairs whose cumulative times
# add up to it. Compared per page, they show where the framework spends more than the loop.
_Spec = tuple[tuple[str, str], ...]
OPERATIONS: tuple[tuple[str, _Spec, _Spec], ...] = (
    ("HTTP exchange: request, response, body",
     (("aiohttp/client.py", "_request"), ("aiohttp/client_reqrep.py", "text")),
     (("crawler/downloader.py", "fetch"),)),
    ("HTML tree (lxml, once per page)",
     (("parsel/selector.py", "create_root_node"),),
     (("parsel/selector.py", "create_root_node"), ("crawler/http.py", "_parse_tree"))),
    ("CSS queries (parsel; the response's css() and follow_all's own XPath)",
     (("parsel/selector.py", "xpath"),),
     (("parsel/selector.py", "xpath"), ("crawler/http.py", "_select_css"),
      ("crawler/http.py", "_css_links"))),
    ("link → new request (raw: yarl joins only; framework: follow_all known check + follow)",
     (("yarl/_url.py", "join"),), (("crawler/http.py", "_follow_new"),)),
    ("dedup + enqueue (set + Queue / frontier add)",
     (("asyncio/queues.py", "put_nowait"),), (("crawler/frontier/memory.py", "add_nowait"),)),
    ("item to JSON lines",
     (("~", "<orjson.dumps>"), ("~", "<method 'write' of '_io.BufferedWriter' objects>")),
     (("crawler/exporters.py", "write"),)),
    ("scheduling (Queue.get / feeder, slots)",
     (("asyncio/queues.py", "get"),),
     (("crawler/engine.py", "_feed"), ("crawler/engine.py", "_slot_done"))),
)


@dataclass(slots=True)
class FunctionTime:
    name: str  #: "module.py:line(func)"
    group: str
    self_pct: float
    cum_pct: float


@dataclass(slots=True)
class Profile:
    """One profiled crawl, summarised; shares are percentages of the busy time."""

    label: str
    pages: int
    busy_s: float
    idle_s: float
    by_group: dict[str, float] = field(default_factory=dict)
    top_self: list[FunctionTime] = field(default_factory=list)
    framework_cum: list[FunctionTime] = field(default_factory=list)
    operations: dict[str, float] = field(default_factory=dict)  #: µs per page

    @property
    def us_per_page(self) -> float:
        return self.busy_s / max(1, self.pages) * 1e6


def _short(filename: str, line: int, func: str) -> str:
    if filename == "~":
        return func
    path = Path(filename)
    try:
        rel = str(path.relative_to(ROOT))
    except ValueError:
        parts = path.parts
        rel = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts \
            else path.name
    return f"{rel}:{line}({func})"


def summarise(path: str, label: str, pages: int, top: int = 15) -> Profile:
    """Read a cProfile dump into a :class:`Profile`."""
    # Stats.stats (undocumented in typeshed): {(file, line, func): (cc, nc, tt, ct, callers)}
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = vars(
        pstats.Stats(path)
    )["stats"]
    idle = sum(tt for (f, _, fn), (_, _, tt, _, _) in raw.items() if f == "~" and fn == _IDLE)
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    busy = max(1e-9, total - idle)
    by_group: dict[str, float] = {}
    rows: list[FunctionTime] = []
    for (filename, line, func), (_, _, tt, ct, _) in raw.items():
        if filename == "~" and func == _IDLE:
            continue
        group = group_of(filename, func)
        by_group[group] = by_group.get(group, 0.0) + tt
        rows.append(FunctionTime(_short(filename, line, func), group, 100 * tt / busy,
                                 100 * ct / busy))
    rows.sort(key=lambda r: r.self_pct, reverse=True)
    operations: dict[str, float] = {}
    for name, raw_spec, fw_spec in OPERATIONS:
        spec = raw_spec if label == "raw loop" else fw_spec
        seconds = sum(
            ct for (filename, _, func), (_, _, _, ct, _) in raw.items()
            if any(func == f and filename.endswith(suffix) for suffix, f in spec)
        )
        operations[name] = seconds / max(1, pages) * 1e6
    framework = sorted((r for r in rows if r.group == "crawler"), key=lambda r: r.cum_pct,
                       reverse=True)
    return Profile(
        label=label,
        pages=pages,
        busy_s=busy,
        idle_s=idle,
        by_group={g: 100 * t / busy for g, t in sorted(by_group.items(), key=lambda x: -x[1])},
        top_self=rows[:top],
        framework_cum=framework[:top],
        operations=operations,
    )


def profile_both(start_url: str, workdir: Path, concurrency: int, pages: int) -> list[Profile]:
    """Run the raw loop and the framework once each under cProfile; return both summaries."""
    env = dict(os.environ)
    env["CRAWLER_NO_UVLOOP"] = "1"
    raw_prof = workdir / "raw.prof"
    fw_prof = workdir / "framework.prof"
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(raw_prof), str(BENCH / "raw_loop.py"),
         start_url, str(workdir / "raw-profiled.jsonl"), "--concurrency", str(concurrency),
         "--no-uvloop"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    with open(workdir / "framework-profiled.log", "wb") as log:
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(fw_prof), "-m", "crawler.cli", "crawl",
             "shop", "-O", str(workdir / "framework-profiled.jsonl"), "-a",
             f"start_url={start_url}", "-s", f"concurrency={concurrency}", "-s",
             f"concurrency_per_host={concurrency}"],
            check=True, env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
        )
    return [summarise(str(raw_prof), "raw loop", pages),
            summarise(str(fw_prof), "framework", pages)]


def render(profiles: list[Profile]) -> str:
    """The profiles as Markdown: CPU per page, self time by package, top functions."""
    out: list[str] = []
    groups: list[str] = []
    for p in profiles:
        for g in p.by_group:
            if g not in groups:
                groups.append(g)
    out.append("| | " + " | ".join(p.label for p in profiles) + " |")
    out.append("|---|" + "---:|" * len(profiles))
    out.append("| busy CPU per page (µs, under cProfile) | "
               + " | ".join(f"{p.us_per_page:,.0f}" for p in profiles) + " |")
    for g in groups:
        cells = []
        for p in profiles:
            share = p.by_group.get(g, 0.0)
            cells.append(f"{share:.1f}% ({share * p.us_per_page / 100:,.0f} µs)")
        out.append(f"| self time in {g} | " + " | ".join(cells) + " |")
    if len(profiles) == 2:
        raw, fw = profiles
        out += ["", "The same work in both, cumulative µs per page (which functions make up each"
                " line: `OPERATIONS` in `bench/profile_shop.py`):", "",
                "| work | raw loop | framework | framework - raw | framework % of busy |",
                "|---|---:|---:|---:|---:|"]
        for name, _, _ in OPERATIONS:
            a, b = raw.operations.get(name, 0.0), fw.operations.get(name, 0.0)
            out.append(f"| {name} | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |"
                       f" {100 * b / fw.us_per_page:.1f}% |")
        rest_a = raw.us_per_page - sum(raw.operations.values())
        rest_b = fw.us_per_page - sum(fw.operations.values())
        out.append(f"| everything else | {rest_a:,.0f} | {rest_b:,.0f} | {rest_b - rest_a:+,.0f} |"
                   f" {100 * rest_b / fw.us_per_page:.1f}% |")
    for p in profiles:
        out.append("")
        out.append(f"Top functions by self time, {p.label} (% of busy time):")
        out.append("")
        out.append("| self % | cum % | function |")
        out.append("|---:|---:|---|")
        for r in p.top_self:
            out.append(f"| {r.self_pct:.1f} | {r.cum_pct:.1f} | `{r.name}` |")
        if p.framework_cum:
            out.append("")
            out.append(f"Framework functions by cumulative time, {p.label}:")
            out.append("")
            out.append("| cum % | self % | function |")
            out.append("|---:|---:|---|")
            for r in p.framework_cum:
                out.append(f"| {r.cum_pct:.1f} | {r.self_pct:.1f} | `{r.name}` |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("start_url", help="the shop's /shop/ URL")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--pages", type=int, default=21_001, help="pages the crawl fetches")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crawler-profile-") as tmp:
        print(render(profile_both(args.start_url, Path(tmp), args.concurrency, args.pages)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
