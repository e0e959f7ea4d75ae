"""The crawl report: one self-contained HTML page drawn from a crawl's stats.

``crawl NAME --report report.html`` writes it at the end of a crawl; ``crawler report
STATS.json... -o report.html`` writes it later from saved stats (several files, such as one per
worker, are added together as a resumed job's stats are; a ``--jobdir`` directory gives the
stats its job committed last). Everything it shows comes from the
counters :class:`~crawler.stats.Stats` records during the crawl (see that module for the keys):
pages/s, items/s and errors over time, responses by status, the slowest and the most failing
hosts, the depth distribution, drop reasons and item field coverage.

The page has no script and loads nothing: plots are inline SVG, styles are inline CSS.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import ConfigError
from .stats import HostRow, Stats, host_rows

__all__ = ["Coverage", "build_report", "field_coverage", "load_stats", "timeline", "write_report"]

#: Hosts shown in each of the two host tables.
TOP_HOSTS = 20
#: Points of the timeline plot at most (the buckets are added up into this many bins).
_MAX_POINTS = 240

_COLORS = {"pages": "#2563eb", "items": "#16a34a", "errors": "#dc2626"}


def load_stats(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """The stats saved in ``paths`` (``--stats`` files, or job directories), added together:
    counters summed, ``max_*`` the largest, elapsed times added. Raises ConfigError for a
    missing or unreadable file, naming it."""
    if not paths:
        raise ConfigError("no stats file given")
    if len(paths) == 1:
        return _read(paths[0])
    total = Stats()
    for path in paths:
        total.load(_read(path))
    return total.to_dict()


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    if Path(path).is_dir():
        return _read_job(Path(path))
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read stats file {os.fspath(path)!r}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)!r} is not a stats JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{os.fspath(path)!r} is not a stats JSON file (not an object)")
    return data


def _read_job(path: Path) -> dict[str, Any]:
    """The stats a ``--jobdir`` job committed last (even a job killed without ``--stats``),
    read without taking the job's lock: a running crawl is not disturbed."""
    import sqlite3

    from .jobdir import DB_FILE

    db = path / DB_FILE
    if not db.is_file():
        raise ConfigError(f"{os.fspath(path)!r} is a directory but not a job directory "
                          f"(no {DB_FILE})")
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'stats'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the stats of job {os.fspath(path)!r}: {exc}") from exc
    if not row or not row[0]:
        raise ConfigError(f"job {os.fspath(path)!r} has no stats yet")
    data = orjson.loads(row[0])
    return data if isinstance(data, dict) else {}


def write_report(stats: dict[str, Any], path: str | os.PathLike[str], *,
                 title: str = "Crawl report") -> None:
    """Write :func:`build_report` to ``path`` atomically (a reader never sees half a page)."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    tmp.write_text(build_report(stats, title=title), encoding="utf-8")
    os.replace(tmp, target)


# -- the figures, from the stats -----------------------------------------------------------


def timeline(stats: dict[str, Any]) -> tuple[float, list[float], dict[str, list[float]]]:
    """``(bin width in s, bin start offsets in s, {"pages"|"items"|"errors": per-second
    rates})`` from the ``timeline/<epoch>/<width>/<name>`` buckets. A bucket wider than a bin
    is spread evenly over the bins it covers."""
    buckets: list[tuple[int, int, str, float]] = []
    for key, value in stats.items():
        if not key.startswith("timeline/") or not isinstance(value, (int, float)):
            continue
        parts = key.split("/")
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        width = int(parts[2])
        if width > 0:
            buckets.append((int(parts[1]), width, parts[3], float(value)))
    series: dict[str, list[float]] = {"pages": [], "items": [], "errors": []}
    if not buckets:
        return 1.0, [], series
    t0 = min(b[0] for b in buckets)
    t1 = max(b[0] + b[1] for b in buckets)
    span = t1 - t0
    bin_width = float(max(1, math.ceil(span / _MAX_POINTS)))
    n = max(1, math.ceil(span / bin_width))
    sums = {name: [0.0] * n for name in series}
    for start, width, name, count in buckets:
        if name not in sums:
            continue
        a, b = start - t0, start - t0 + width
        first, last = int(a // bin_width), min(n - 1, int((b - 1e-9) // bin_width))
        for i in range(first, last + 1):
            lo, hi = max(a, i * bin_width), min(b, (i + 1) * bin_width)
            if hi > lo:
                sums[name][i] += count * (hi - lo) / width
    xs = [i * bin_width for i in range(n)]
    return bin_width, xs, {name: [v / bin_width for v in values] for name, values in sums.items()}


@dataclass(slots=True)
class Coverage:
    """One item field: in how many of the ``total`` items it was present and not empty, and
    URLs of pages whose items missed it."""

    field: str
    present: int
    total: int
    missing_examples: list[str]

    @property
    def share(self) -> float:
        return self.present / self.total if self.total else 0.0


def field_coverage(stats: dict[str, Any]) -> list[Coverage]:
    """Every tracked field's coverage, the least covered first."""
    total = int(stats.get("fields_checked") or 0)
    present: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for key, value in stats.items():
        if not key.startswith("fields/"):
            continue
        rest = key[7:]
        if rest.endswith("/present"):
            present[rest[:-8]] = int(value)
        elif "/missing/" in rest:
            name, _, url = rest.partition("/missing/")
            examples.setdefault(name, []).append(url)
    names = sorted(set(present) | set(examples))
    rows = [Coverage(n, present.get(n, 0), total, sorted(examples.get(n, []))[:5])
            for n in names]
    return sorted(rows, key=lambda c: (c.share, c.field))


def _family(stats: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: float(v) for k, v in stats.items()
            if k.startswith(prefix) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _drops(stats: dict[str, Any]) -> list[tuple[str, float]]:
    """Why requests, links and items were dropped: every ``dropped/*`` and the other
    ``*_dropped`` / ``*_filtered`` / ``*_denied`` counters."""
    rows = [(f"dropped/{k}", v) for k, v in _family(stats, "dropped/").items()]
    for key in ("duplicates_filtered", "offsite_dropped", "robots_denied", "links_skipped",
                "items_dropped", "items_invalid", "retries_exhausted"):
        value = stats.get(key)
        if isinstance(value, (int, float)) and value:
            rows.append((key, float(value)))
    return sorted(rows, key=lambda r: -r[1])


# -- drawing ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _clock(seconds: float) -> str:
    if seconds < 10 and not float(seconds).is_integer():
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def _line_chart(xs: list[float], series: dict[str, list[float]], unit: str,
                label: str) -> str:
    """An SVG line chart of per-second rates against seconds since the start."""
    width, height, left, right, top, bottom = 900, 240, 60, 20, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((max(v) for v in series.values() if v), default=0.0))
    x_max = (xs[-1] if xs else 0.0) or 1.0
    parts = [f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {width} '
             f'{height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):  # horizontal grid with the y values
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="tick">{_num(peak * i / 4)}</text>')
    for i in range(6):
        x = left + plot_w * i / 5
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" '
                     f'class="tick">{_clock(x_max * i / 5)}</text>')
    parts.append(f'<text x="{left}" y="{height - 1}" class="tick">{_e(unit)}, '
                 'against time since the start</text>')
    for name, values in sorted(series.items(), key=lambda kv: kv[0] == "pages"):
        if not values or not any(values):
            continue  # pages last: on top of items when both are one line
        points = " ".join(
            f"{left + plot_w * x / x_max:.1f},{top + plot_h - plot_h * min(v, peak) / peak:.1f}"
            for x, v in zip(xs, values, strict=True)
        )
        dash = ' stroke-dasharray="6 4"' if name == "items" else ""
        parts.append(f'<polyline data-series="{_e(name)}" fill="none" stroke-width="2"{dash} '
                     f'stroke="{_COLORS.get(name, "#6b7280")}" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(rows: list[tuple[str, float]], label: str, color: str = "#2563eb") -> str:
    """A horizontal SVG bar chart, one bar per row, its value at its end."""
    if not rows:
        return '<p class="empty">Nothing recorded.</p>'
    bar, gap, left, width = 18, 6, 150, 900
    height = len(rows) * (bar + gap) + gap
    peak = max(v for _, v in rows) or 1.0
    parts = [f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {width} '
             f'{height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, value) in enumerate(rows):
        y = gap + i * (bar + gap)
        w = max(1.0, (width - left - 90) * value / peak)
        parts.append(f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end" '
                     f'class="label">{_e(name)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" rx="2" '
                     f'fill="{color}"><title>{_e(name)}: {_num(value)}</title></rect>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + bar - 5}" class="value">'
                     f'{_num(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _host_table(rows: Iterable[HostRow], caption: str) -> str:
    body = "".join(
        f"<tr><td class=host>{_e(r.host)}</td><td>{r.responses:,}</td>"
        f"<td>{r.mean_latency * 1000:,.0f} ms</td><td>{r.max_latency * 1000:,.0f} ms</td>"
        f"<td>{r.errors:,}</td><td>{r.http_errors:,}</td><td>{r.pauses:,}</td>"
        f"<td>{_clock(r.paused_seconds) if r.pauses else '-'}</td></tr>"
        for r in rows
    )
    if not body:
        return '<p class="empty">Nothing recorded.</p>'
    return (f"<table><caption>{_e(caption)}</caption><thead><tr><th>host</th><th>responses"
            "</th><th>mean latency</th><th>max latency</th><th>download errors</th>"
            "<th>HTTP ≥ 400</th><th>Retry-After pauses</th><th>paused</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _coverage_table(rows: list[Coverage]) -> str:
    if not rows:
        return '<p class="empty">No items.</p>'
    out = []
    for c in rows:
        pct = 100 * c.share
        tone = "good" if pct >= 99.95 else "warn" if pct >= 80 else "bad"
        missing = c.total - c.present
        examples = "".join(f'<li><a href="{_e(u)}">{_e(u)}</a></li>' for u in c.missing_examples)
        detail = (f"<details><summary>{missing:,} missing</summary><ul>{examples}</ul></details>"
                  if missing and examples else f"{missing:,} missing" if missing else "")
        out.append(
            f'<tr data-field="{_e(c.field)}"><td class=field>{_e(c.field)}</td>'
            f'<td class="cov"><div class="bar {tone}" style="width:{pct:.1f}%"></div></td>'
            f'<td class="pct">{pct:.1f}%</td><td>{c.present:,} of {c.total:,}</td>'
            f"<td>{detail}</td></tr>"
        )
    return ("<table class=coverage><thead><tr><th>field</th><th></th><th>covered</th>"
            "<th>present and not empty</th><th>items missing it (pages)</th></tr></thead>"
            f"<tbody>{''.join(out)}</tbody></table>")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
margin:0;background:#f9fafb}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;
margin-top:16px}
.sub{color:#6b7280;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{padding:4px 8px;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}
th{color:#6b7280;font-weight:500}
td.host,td.field,th:first-child{text-align:left}td.host{max-width:320px;overflow:hidden;
text-overflow:ellipsis}
td.cov{width:40%}.bar{height:12px;border-radius:3px}.bar.good{background:#16a34a}
.bar.warn{background:#d97706}.bar.bad{background:#dc2626}
td:last-child{text-align:left;white-space:normal}
details ul{margin:4px 0;padding-left:18px}details a{color:#2563eb;word-break:break-all}
.chart{max-width:100%;height:auto}.tick{font-size:11px;fill:#6b7280}
.label{font-size:12px;fill:#374151}.value{font-size:12px;fill:#111827}
.legend span{display:inline-block;margin-right:16px}
.legend i{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
.empty{color:#6b7280}
"""


def build_report(stats: dict[str, Any], *, title: str = "Crawl report") -> str:
    """The whole HTML page for a stats dict (:meth:`Stats.to_dict` or a saved ``--stats``)."""
    def n(key: str) -> float:
        value = stats.get(key, 0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    errors = sum(_family(stats, "errors/").values())
    elapsed = n("elapsed")
    cards = [
        ("pages", _num(n("responses"))), ("items", _num(n("items_scraped"))),
        ("errors", _num(errors)), ("pages/s", _num(n("pages_per_second"))),
        ("elapsed", _clock(elapsed)), ("requests", _num(n("requests"))),
        ("retries", _num(n("retries"))), ("max depth", _num(n("max_depth"))),
    ]
    head = (f"<h1>{_e(title)}</h1><p class=sub>Finished: "
            f"{_e(stats.get('finish_reason') or 'still running')} · started "
            f"{_e(stats.get('start_time') or '?')} · finished {_e(stats.get('finish_time') or '?')}"
            "</p><div class=cards>"
            + "".join(f"<div class=card><b>{v}</b><span>{_e(k)}</span></div>" for k, v in cards)
            + "</div>")
    width, xs, series = timeline(stats)
    legend = "".join(f'<span><i style="background:{_COLORS[k]}"></i>{k}/s</span>'
                     for k in ("pages", "items") if any(series[k]))
    rates = {k: series[k] for k in ("pages", "items")}
    over_time = (_line_chart(xs, rates, "pages and items per second", "pages and items per "
                             "second") + f"<p class=legend>{legend} · one point per "
                 f"{_clock(width)}</p>" + _line_chart(xs, {"errors": series["errors"]},
                                                      "errors per second", "errors per second")
                 if xs else '<p class="empty">Nothing recorded.</p>')
    statuses = sorted(_family(stats, "status/").items(),
                      key=lambda kv: (not kv[0].isdigit(), kv[0]))
    hosts = host_rows(stats)
    slowest = sorted((h for h in hosts if h.responses), key=lambda h: -h.mean_latency)
    failing = sorted((h for h in hosts if h.failures), key=lambda h: (-h.failures, h.host))
    depth = sorted(_family(stats, "depth/").items(),
                   key=lambda kv: int(kv[0]) if kv[0].isdigit() else 1 << 30)
    error_types = sorted(_family(stats, "errors/").items(), key=lambda kv: -kv[1])
    sections = [
        ("over-time", "Pages, items and errors over time", over_time),
        ("statuses", "Responses by status", _bar_chart(statuses, "responses by status")),
        ("errors", "Errors by type",
         _bar_chart(error_types, "errors by type", "#dc2626") if error_types
         else '<p class="empty">No errors.</p>'),
        ("slow-hosts", f"The {TOP_HOSTS} slowest hosts",
         _host_table(slowest[:TOP_HOSTS], f"by mean latency, of {len(hosts):,} hosts")),
        ("failing-hosts", f"The {TOP_HOSTS} most failing hosts",
         _host_table(failing[:TOP_HOSTS], "by download errors and HTTP statuses ≥ 400")
         if failing else '<p class="empty">No host failed.</p>'),
        ("depth", "Depth distribution",
         _bar_chart([(f"depth {k}", v) for k, v in depth], "responses by link depth",
                    "#7c3aed")),
        ("drops", "Drop reasons", _bar_chart(_drops(stats), "drop reasons", "#d97706")),
        ("coverage", "Item field coverage",
         "<p class=sub>Per field: the share of items where it is present and not empty. "
         "A selector that fails on part of a site shows here.</p>"
         + _coverage_table(field_coverage(stats))),
    ]
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>'
                   for sid, name, content in sections)
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{head}{body}</main></body></html>\n")
