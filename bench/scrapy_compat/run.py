"""Scrapy compatibility check: each spider of ``spiders/`` run unchanged under this framework
and under real Scrapy, against local copies of quotes.toscrape.com and books.toscrape.com.

    .venv/bin/python bench/scrapy_compat/run.py [--only NAME] [--keep DIR]

Scrapy 2.x is installed by this script in a scratch virtualenv (``/tmp/scrapyvenv``, made
with ``python -m venv`` and ``pip install scrapy`` when missing), never in the project's.
Both frameworks reach the sites (http and https) through the local server of ``site.py`` as
their proxy: ``crawler runspider FILE -O out.jsonl -s proxy=http://127.0.0.1:PORT -s
verify_tls=false`` here (the local https certificate is self-signed), ``scrapy runspider FILE
-O out.jsonl`` with ``http_proxy=`` and ``https_proxy=`` for Scrapy. A spider file may name its
arguments in a first-line comment ``# run with: -a name=value``.

Two runs give the same items when the multisets of their items as canonical JSON (sorted
keys) are equal; the order of items is ignored. Prints one line per spider and
``N of M same``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from bench.scrapy_compat.site import serving  # noqa: E402

SPIDERS = HERE / "spiders"
VENV = Path(os.environ.get("SCRAPY_VENV", "/tmp/scrapyvenv"))


def scrapy_bin() -> Path:
    """The scratch virtualenv's ``scrapy``, installed when missing."""
    exe = VENV / "bin" / "scrapy"
    if not exe.exists():
        print(f"installing Scrapy in {VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "scrapy"], check=True)
    return exe


def crawler_bin() -> Path:
    return Path(sys.executable).parent / "crawler"


def spider_args(path: Path) -> list[str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# run with:"
    return shlex.split(first[len(prefix):]) if first.startswith(prefix) else []


def items_of(path: Path) -> collections.Counter[str]:
    if not path.exists():
        return collections.Counter()
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return collections.Counter(
        json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in lines)


def run_one(spider: Path, port: int, work: Path) -> tuple[bool, str]:
    args = spider_args(spider)
    ours_out = work / f"{spider.stem}.crawler.jsonl"
    theirs_out = work / f"{spider.stem}.scrapy.jsonl"
    proxy = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    scratch = work / "cwd"
    scratch.mkdir(exist_ok=True)
    ours = subprocess.run(
        [str(crawler_bin()), "runspider", str(spider), "-O", str(ours_out), "-s",
         f"proxy={proxy}", "-s", "verify_tls=false", "-s", "log_level=WARNING", *args],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=600)
    theirs = subprocess.run(
        [str(scrapy_bin()), "runspider", str(spider), "-O", str(theirs_out), "-s",
         "LOG_LEVEL=WARNING", *args],
        cwd=scratch, env={**env, "http_proxy": proxy, "https_proxy": proxy},
        capture_output=True, text=True,
        timeout=600)
    (work / f"{spider.stem}.crawler.log").write_text(ours.stderr)
    (work / f"{spider.stem}.scrapy.log").write_text(theirs.stderr)
    a, b = items_of(ours_out), items_of(theirs_out)
    same = a == b and ours.returncode == 0 and theirs.returncode == 0 and sum(b.values()) > 0
    detail = (f"{sum(a.values())} items here, {sum(b.values())} in Scrapy"
              f"{'' if ours.returncode == 0 else f', exit {ours.returncode} here'}"
              f"{'' if theirs.returncode == 0 else f', exit {theirs.returncode} in Scrapy'}")
    if not same and a != b:
        only_here = sum((a - b).values())
        only_there = sum((b - a).values())
        detail += f"; {only_here} only here, {only_there} only in Scrapy"
    return same, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="spider file stem(s) to run")
    parser.add_argument("--keep", type=Path, help="keep outputs and logs in this folder")
    args = parser.parse_args()
    spiders = sorted(SPIDERS.glob("*.py"))
    if args.only:
        spiders = [s for s in spiders if s.stem in args.only]
    scrapy_bin()
    version = subprocess.run([str(scrapy_bin()), "version"], capture_output=True,
                             text=True).stdout.strip()
    work = args.keep or Path(tempfile.mkdtemp(prefix="scrapy_compat."))
    work.mkdir(parents=True, exist_ok=True)
    same = 0
    t0 = time.monotonic()
    with serving() as port:
        for spider in spiders:
            ok, detail = run_one(spider, port, work)
            same += ok
            print(f"{'same' if ok else 'DIFF'}  {spider.stem:<28} {detail}", flush=True)
    print(f"{same} of {len(spiders)} same (vs {version}; {time.monotonic() - t0:.0f}s; "
          f"outputs in {work})")
    return 0 if same == len(spiders) else 1


if __name__ == "__main__":
    sys.exit(main())
