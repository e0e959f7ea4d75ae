"""A local site whose pages build their content in JavaScript, for the browser tests and the
browser benchmark: nothing useful is in the HTML the server sends."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PRODUCTS = 12
SCROLL_PAGES = 6  # the first page, then 5 more loaded by scrolling
SCROLL_PER_PAGE = 10

_TIMER = """<!doctype html><html><head><title>timer</title></head><body>
<div id="box"></div>
<script>
setTimeout(() => {
  const box = document.getElementById('box');
  for (let i = 0; i < 5; i++) {
    const p = document.createElement('p'); p.className = 'late'; p.textContent = 'late ' + i;
    box.appendChild(p);
  }
}, 300);
</script></body></html>"""

_LIST = """<!doctype html><html><head><title>shop</title></head><body>
<ul id="products"></ul>
<script>
fetch('/api/products.json').then(r => r.json()).then(items => {
  const ul = document.getElementById('products');
  for (const it of items) {
    const li = document.createElement('li'); li.className = 'product';
    const a = document.createElement('a'); a.href = '/product/' + it.id; a.textContent = it.name;
    li.appendChild(a); ul.appendChild(li);
  }
});
</script></body></html>"""

_PRODUCT = """<!doctype html><html><head><title>product</title></head><body>
<div id="detail"></div>
<script>
fetch('/api/product/%d.json').then(r => r.json()).then(p => {
  document.getElementById('detail').innerHTML =
    '<h1>' + p.name + '</h1><span class="price">' + p.price + '</span>';
});
</script></body></html>"""

_SCROLL = """<!doctype html><html><head><title>scroll</title>
<style>.row { height: 300px; }</style></head><body>
<div id="rows"></div>
<script>
let next = 1, loading = false;
async function more() {
  if (loading || next > %d) return;
  loading = true;
  const rows = await (await fetch('/api/scroll?page=' + next)).json();
  for (const r of rows) {
    const d = document.createElement('div'); d.className = 'row'; d.textContent = r;
    document.getElementById('rows').appendChild(d);
  }
  next += 1; loading = false;
}
window.addEventListener('scroll', () => {
  if (window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 50) more();
});
more();
</script></body></html>""".replace("%d", str(SCROLL_PAGES))

_EXPAND = """<!doctype html><html><head><title>expand</title></head><body>
<button id="more">Show details</button><div id="details"></div>
<form><input id="q" name="q"></form>
<script>
document.getElementById('more').addEventListener('click', async () => {
  const d = await (await fetch('/api/details')).json();
  document.getElementById('details').innerHTML =
    '<p class="detail">' + d.text + ' ' + document.getElementById('q').value + '</p>';
});
</script></body></html>"""

_NEVER = """<!doctype html><html><head><title>never</title>
<script src="/hang.js"></script></head><body><p>never loads</p></body></html>"""

_POLL = """<!doctype html><html><head><title>poll</title></head><body><p id="n">0</p>
<script>
let n = 0;
setInterval(() => fetch('/api/tick').then(() => {
  document.getElementById('n').textContent = String(++n);
}), 100);
</script></body></html>"""

_CRASH = """<!doctype html><html><head><title>crash</title></head><body>
<p id="state">waiting</p>
<script>
fetch('/api/crash-signal').then(r => r.text()).then(t => {
  document.getElementById('state').textContent = t;
  const p = document.createElement('p'); p.className = 'survived'; p.textContent = 'ok';
  document.body.appendChild(p);
});
</script></body></html>"""

_SPIN = """<!doctype html><html><head><title>spin</title></head><body><p>spin</p>
<script>window.addEventListener('load', () => { setTimeout(() => { while (true) {} }, 0); });
</script></body></html>"""

_CLOSE = """<!doctype html><html><head><title>close</title></head><body><p>bye</p>
<script>window.close();</script></body></html>"""

_SLOW = """<!doctype html><html><head><title>slow</title></head><body><p id="k">%s</p>
<script>
const p = document.createElement('p'); p.className = 'rendered'; p.textContent = 'yes';
document.body.appendChild(p);
</script></body></html>"""

_CONSOLE = """<!doctype html><html><head><title>console</title></head><body><p>c</p>
<script>console.error('first problem'); console.error('second problem');
setTimeout(() => { throw new Error('uncaught one'); }, 0);</script>
<img src="/img/a.png"><img src="/img/b.png"></body></html>"""

_COOKIE = """<!doctype html><html><head><title>cookie</title></head><body>
<p id="cookie"></p><script>document.getElementById('cookie').textContent = document.cookie;
</script></body></html>"""

_BENCH = """<!doctype html><html><head><title>bench %d</title></head><body><ul id="l"></ul>
<script>
const ul = document.getElementById('l');
for (let i = 0; i < 20; i++) {
  const li = document.createElement('li'); li.className = 'it'; li.textContent = 'item ' + i;
  ul.appendChild(li);
}
</script></body></html>"""


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _page(make: Callable[[web.Request], web.StreamResponse]) -> Handler:
    """An async handler from a plain function (aiohttp deprecates plain ones)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return make(request)

    return handler


class BrowserSite:
    """The JS site on 127.0.0.1 (a free port). ``hits`` counts requests per path;
    ``inflight_max`` is the most ``/slow/*`` and ``/plain/*`` pages in flight at once."""

    def __init__(self, *, slow_delay: float = 0.3) -> None:
        self.hits: Counter[str] = Counter()
        self.headers: dict[str, dict[str, str]] = {}
        self.slow_delay = slow_delay
        self.inflight = 0
        self.inflight_max = 0
        self.crash_kills = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> BrowserSite:
        app = web.Application(middlewares=[self._count])
        r = app.router
        r.add_get("/timer", _page(lambda _: _html(_TIMER)))
        r.add_get("/list", _page(lambda _: _html(_LIST)))
        r.add_get("/api/products.json", self._products)
        r.add_get("/product/{id}", _page(lambda q: _html(_PRODUCT % int(q.match_info["id"]))))
        r.add_get("/api/product/{id}.json", self._product)
        r.add_get("/scroll", _page(lambda _: _html(_SCROLL)))
        r.add_get("/api/scroll", self._scroll)
        r.add_get("/expand", _page(lambda _: _html(_EXPAND)))
        r.add_get("/api/details", _page(lambda _: web.json_response({"text": "expanded"})))
        r.add_get("/never", _page(lambda _: _html(_NEVER)))
        r.add_get("/hang.js", self._hang)
        r.add_get("/poll", _page(lambda _: _html(_POLL)))
        r.add_get("/api/tick", _page(lambda _: web.Response(text="t")))
        r.add_get("/crash", _page(lambda _: _html(_CRASH)))
        r.add_get("/api/crash-signal", self._crash_signal)
        r.add_get("/spin", _page(lambda _: _html(_SPIN)))
        r.add_get("/close", _page(lambda _: _html(_CLOSE)))
        r.add_get("/slow/{n}", self._slow)
        r.add_get("/plain/{n}", self._slow)
        r.add_get("/console", _page(lambda _: _html(_CONSOLE)))
        r.add_get("/img/{name}", _page(
            lambda _: web.Response(body=b"\x89PNG", content_type="image/png")
        ))
        r.add_get("/redirect", _page(
            lambda _: web.Response(status=302, headers={"Location": "/timer"})
        ))
        r.add_get("/to-literal", self._to_literal)
        r.add_get("/set-cookie", self._set_cookie)
        r.add_get("/cookie", _page(lambda _: _html(_COOKIE)))
        r.add_route("*", "/headers", self._headers)
        r.add_get("/file.zip", _page(lambda _: web.Response(
            body=b"PK\x03\x04" + b"\0" * 100, content_type="application/zip",
            headers={"Content-Disposition": "attachment; filename=file.zip"})))
        r.add_get("/bench/{n}", _page(lambda q: _html(_BENCH % int(q.match_info["n"]))))
        r.add_get("/plainbench/{n}", self._plain_bench)
        r.add_get("/missing", _page(lambda _: _html("<p>gone</p>", status=404)))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.headers[request.path] = dict(request.headers)
        return await handler(request)

    async def _products(self, _: web.Request) -> web.Response:
        return web.json_response(
            [{"id": i, "name": f"Product {i}"} for i in range(1, PRODUCTS + 1)]
        )

    async def _product(self, request: web.Request) -> web.Response:
        n = int(request.match_info["id"])
        return web.json_response({"name": f"Product {n}", "price": f"{n * 1.5:.2f}"})

    async def _scroll(self, request: web.Request) -> web.Response:
        page = int(request.query["page"])
        await asyncio.sleep(0.05)
        return web.json_response(
            [f"row {page}-{i}" for i in range(SCROLL_PER_PAGE)] if page <= SCROLL_PAGES else []
        )

    async def _hang(self, _: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="")

    async def _crash_signal(self, _: web.Request) -> web.Response:
        # The first time, the renderer that asked dies (SIGKILL, as an out-of-memory kill
        # would do it); only this test process's own Chromium is touched.
        if self.crash_kills == 0:
            self.crash_kills = kill_renderers()
            await asyncio.sleep(5)
        return web.Response(text="alive")

    async def _slow(self, request: web.Request) -> web.Response:
        self.inflight += 1
        self.inflight_max = max(self.inflight_max, self.inflight)
        try:
            await asyncio.sleep(self.slow_delay)
        finally:
            self.inflight -= 1
        return _html(_SLOW % request.path)

    async def _plain_bench(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return _html(f"<html><body><h1>page {n}</h1><p class='it'>x</p></body></html>")

    async def _to_literal(self, request: web.Request) -> web.Response:
        """A redirect to this site by its IP literal (the page was asked for by name)."""
        return web.Response(status=302, headers={"Location": f"{self.url}/timer"})

    async def _set_cookie(self, _: web.Request) -> web.Response:
        response = _html("<p>set</p>")
        response.set_cookie("session", "abc123")
        return response

    async def _headers(self, request: web.Request) -> web.Response:
        body = orjson.dumps({str(k): v for k, v in request.headers.items()}).decode()
        return _html(f"<html><body><pre id='h'>{body}</pre><p id='m'>{request.method}</p>"
                     "</body></html>")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_renderers() -> int:
    """SIGKILL the Chromium renderer processes started by this process; returns how many."""
    killed = 0
    for pid in descendants(os.getpid()):
        if "--type=renderer" in _cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def kill_browser() -> int:
    """SIGKILL the main Chromium process(es) started by this process; returns how many."""
    killed = 0
    for pid in descendants(os.getpid()):
        line = _cmdline(pid)
        if "chrom" in line and "--type=" not in line and "--remote-debugging-pipe" in line:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def tree_pss(pid: int) -> int:
    """Proportional memory in bytes of ``pid`` and every process below it: a page shared by
    several processes (Chromium's libraries, its shared memory) is counted once in all."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of ``pid`` and every process below it."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for p in [pid, *descendants(pid)]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except OSError:
            pass
    return total


async def _serve(port: int) -> None:
    site = BrowserSite()
    site_port = port
    async with site:
        # Re-bound to the asked port for a server in its own process (the benchmark's).
        assert site._runner is not None
        extra = web.TCPSite(site._runner, "127.0.0.1", site_port)
        await extra.start()
        print(f"http://127.0.0.1:{site_port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # python -m tests.browser_site PORT: serve until killed
    import sys

    asyncio.run(_serve(int(sys.argv[1])))
