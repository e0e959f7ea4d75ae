"""This project's spiders: every ``Spider`` subclass in a module here is found by ``crawl``.

- ``books``: books.toscrape.com (or a local copy: ``-a start_url=http://127.0.0.1:8000/``).
- ``quotes``: quotes.toscrape.com (or a local copy: ``-a start_url=http://127.0.0.1:8000/quotes/``).
"""
