"""The servers of the test suite, on 127.0.0.1 with a free port (the package ships only the
demo site, :mod:`crawler.demosite`):

* :class:`TestSite` (``site.py``): the demo site plus fault endpoints and canned responses;
  a test adds its own endpoints with ``TestSite(routes=[...])``.
* :class:`HostileServer` (``hostile.py``): raw sockets that break HTTP.
* :func:`bomb_body` and :func:`bomb_routes` (``bombs.py``): decompression bombs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from crawler.demosite import serve_in_thread

from .bombs import bomb_body, bomb_routes
from .hostile import HostileServer, hostile_page
from .site import Canned, TestSite

__all__ = ["Canned", "HostileServer", "TestSite", "bomb_body", "bomb_routes", "hostile_page",
           "run_in_thread"]


def run_in_thread(**kwargs: Any) -> contextlib.AbstractContextManager[TestSite]:
    """Serve a :class:`TestSite` (keyword arguments go to it) from a daemon thread, for
    callers without a running loop."""
    return serve_in_thread(lambda: TestSite(**kwargs))
