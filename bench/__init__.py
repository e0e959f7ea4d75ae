"""Benchmarks of the framework (``make bench`` runs ``bench/run.py``; see BENCHMARKS.md).

- ``run.py``: every figure, with and without uvloop, as a table; writes BENCHMARKS.md.
- ``raw_loop.py``: the hand-written aiohttp + parsel crawl the framework is compared with.
- ``project/``: the bench project (``settings.toml``, spiders ``shop`` and ``latency``).
- ``latency_server.py``: the slow server of the latency scenarios (its own process).
- ``memory_frontier.py``: peak RSS with a million requests pending in memory.
- ``profile_shop.py``: cProfile of the throughput crawl, framework against the raw loop.
"""
