"""The latency bench spider: ``n`` URLs of a server that answers each after ``delay`` seconds.

    crawl latency -a port=8080 -a n=100 -a delay=1
    crawl latency -a port=8080 -a n=10000 -a delay=0.1 -a hosts=127.0.0.1,...,127.0.0.10

URLs are spread round-robin over ``hosts`` (comma-separated); each is distinct (``?i=N``) so
none is a duplicate. Nothing is extracted: the figure is the wall time of the crawl.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crawler import Request, Response, Spider


class LatencySpider(Spider):
    name = "latency"

    def __init__(
        self,
        port: str = "8000",
        n: str = "100",
        delay: str = "1",
        hosts: str = "127.0.0.1",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.port = int(port)
        self.n = int(n)
        self.delay = float(delay)
        self.hosts = [h.strip() for h in hosts.split(",") if h.strip()]

    async def start(self) -> AsyncIterator[Request]:
        hosts = self.hosts
        for i in range(self.n):
            host = hosts[i % len(hosts)]
            yield Request(f"http://{host}:{self.port}/delay/{self.delay:g}?i={i}",
                          callback=self.parse)

    def parse(self, response: Response) -> list[Any]:
        return []
