"""Benchmarks of the framework (``make bench`` runs ``bench/run.py``; see BENCHMARKS.md).

- ``run.py``: the entry point: options, sections (``--only``), the order they run in.
- ``harness.py``: processes and their timing, free ports, the machine, the shop server
  (nginx, which ``make bench-deps`` installs, else the bundled test site).
- ``scenarios.py``: each section's runs (throughput, latency, broad, memory, start-up, ...).
- ``report.py``: the goal of every figure, the printed table, BENCHMARKS.md.
- ``raw_loop.py``: the hand-written aiohttp + parsel crawl the framework is compared with.
- ``project/``: the bench project (``settings.toml``, spiders ``shop`` and ``latency``,
  ``shop_selectors.py`` shared by the ``shop`` spider and the raw loop).
- ``feeds.py``: the outputs figure (JSON lines, SQLite, PostgreSQL), section ``feeds``.
- ``latency_server.py``: the slow server of the latency scenarios (its own process).
- ``memory_frontier.py``: peak RSS with a million requests pending in memory.
- ``profile_shop.py``: cProfile of the throughput crawl, framework against the raw loop.
"""
