"""The broad-crawl bench spider: ``pages`` URLs on each of ``hosts`` hosts, yielded host after
host (the order of a crawl that discovers one site at a time), each answered after
``delay`` seconds by ``bench/latency_server.py``.

    crawl broad -a port=8080 -a hosts=127.0.0.2,...,127.0.0.101 -a pages=20 -a delay=0.01 \\
        -s download_delay=0.5 -s concurrency_per_host=1 -s obey_robots=false

Each page yields one item (its URL), so the bench can check that every page's item was
written exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from crawler import Request, Response, Spider


class BroadSpider(Spider):
    name = "broad"

    def __init__(
        self,
        port: str = "8000",
        hosts: str = "127.0.0.2",
        pages: str = "20",
        delay: str = "0.01",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.port = int(port)
        self.hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        self.pages = int(pages)
        self.delay = float(delay)

    async def start(self) -> AsyncIterator[Request]:
        for host in self.hosts:
            for i in range(self.pages):
                yield Request(f"http://{host}:{self.port}/delay/{self.delay:g}?page={i}")

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {"url": response.url}
