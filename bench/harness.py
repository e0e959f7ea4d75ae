"""The bench's harness: processes and their timing, free ports, the machine, the shop server.

The static shop is served by nginx when it is installed (``make bench-deps`` installs it);
without it, by the bundled test site in its own process, which the output says. The bench
never installs system packages itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECT = BENCH / "project"
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `crawler` importable
    sys.path.insert(0, str(ROOT))

LOOPS = ("uvloop", "asyncio")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Processes


def loop_env(loop: str) -> dict[str, str]:
    """The environment of a crawl on ``loop`` ("uvloop" or "asyncio")."""
    env = dict(os.environ)
    env.pop("CRAWLER_NO_UVLOOP", None)
    if loop == "asyncio":
        env["CRAWLER_NO_UVLOOP"] = "1"
    return env


def _script(name: str) -> list[str]:
    """The console script ``name`` of this venv, else the module behind it."""
    path = Path(sys.executable).with_name(name)
    if path.exists():
        return [str(path)]
    return [sys.executable, "-m", "crawler.cli"] + (["crawl"] if name == "crawl" else [])


def crawl_command(*args: str) -> list[str]:
    return _script("crawl") + list(args)


def crawler_command(*args: str) -> list[str]:
    return _script("crawler") + list(args)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(slots=True)
class ProcessTime:
    wall: float  #: seconds from exec to exit
    cpu: float  #: user + system CPU seconds of the process (and any child it waited for)


def run_logged(cmd: list[str], logfile: Path, **kwargs: Any) -> ProcessTime:
    """Run ``cmd`` with its output in ``logfile``; returns its wall and CPU seconds. Raises
    with the log's tail when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(logfile, "wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{_tail(logfile)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ProcessTime(wall, cpu)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0) -> None:
    """Wait until ``url`` answers (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.05)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


# --------------------------------------------------------------------------------------------
# Machine


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, str]:
    """CPU model, cores, Python, versions and date, for the record."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("aiohttp", "parsel", "lxml", "yarl", "uvloop"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # not installed
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": _loadavg(),
        "uvloop": versions["uvloop"],
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items() if k != "uvloop"),
    }


# --------------------------------------------------------------------------------------------
# The static shop server


def find_nginx() -> str | None:
    """The nginx binary, or None: the bench never installs it (``make bench-deps`` does)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    charset utf-8;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name localhost;
        root {root};
        index index.html;
    }}
}}
"""


@dataclass(slots=True)
class ShopServer:
    url: str  #: the shop's index, ``http://127.0.0.1:PORT/shop/``
    kind: str  #: what serves it, for the report
    pages: int  #: pages a full crawl fetches
    pid: int | None = None  #: the serving process (nginx's master), for its CPU time


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children so far (Linux /proc; 0
    where it cannot be read): the CPU a server spent, read while it runs."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextlib.contextmanager
def serve_shop(workdir: Path, products: int, prefer: str = "nginx") -> Iterator[ShopServer]:
    """Serve a shop of ``products`` products from another process: nginx over static files,
    or (``prefer="testsite"``, or nginx unavailable) ``python -m crawler.demosite``."""
    nginx = find_nginx() if prefer == "nginx" else None
    if nginx is None:
        if prefer == "nginx":
            log("nginx is not installed (`make bench-deps` installs it): serving the shop with"
                " crawler.demosite in its own process (an aiohttp server; it may be the"
                " bottleneck)")
        with _serve_testsite(products) as server:
            yield server
        return
    from crawler.demosite import write_static_shop

    docroot = workdir / "www"
    log(f"writing the static shop ({products:,} products) ...")
    pages = write_static_shop(docroot, products)
    for path in (workdir, docroot):
        path.chmod(0o755)  # nginx's worker may run as another user
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir()
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    kind = (version.stderr.strip().replace("nginx version: ", "") or "nginx") + \
        " (1 worker, access log off, static files)"
    for _attempt in range(5):
        port = free_port()
        conf = nginx_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=nginx_dir, port=port, root=docroot))
        proc = subprocess.Popen(
            [nginx, "-p", str(nginx_dir), "-c", str(conf), "-e", str(nginx_dir / "error.log"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/shop/", timeout=5)
        except RuntimeError:
            proc.terminate()
            proc.wait()
            continue
        try:
            yield ShopServer(f"http://127.0.0.1:{port}/shop/", kind, pages, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return
    raise RuntimeError(f"nginx did not start: {_tail(nginx_dir / 'error.log')}")


@contextlib.contextmanager
def _serve_testsite(products: int) -> Iterator[ShopServer]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.demosite", "--port", "0", "--shop", str(products)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"crawler.demosite did not start (printed {base!r})")
        listings = -(-products // 20)
        yield ShopServer(f"{base}/shop/", "crawler.demosite in its own process (aiohttp)",
                         1 + listings + products, proc.pid)
    finally:
        proc.terminate()
        proc.wait()
