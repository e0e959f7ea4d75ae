"""``crawler startproject`` and ``crawler genspider``: a new project, a new spider.

A project is a folder holding ``settings.toml`` and a ``spiders/`` package; a spider is one
module of that package. Both commands refuse to overwrite anything and say why.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .errors import ConfigError, InvalidURL
from .settings import SETTINGS_FILE
from .urls import parse_url

__all__ = ["new_project", "new_spider"]

_SPIDER_NAME = re.compile(r"[a-z_][a-z0-9_]*")
#: What genspider takes for a domain: a host name, maybe a port and a path, no scheme.
_BARE_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?(?:/\S*)?")

SETTINGS_TEMPLATE = """\
# Project settings for `crawl`. Every setting, its default and meaning: the README's table.
# Layers, lowest first: defaults < this file < a spider's custom_settings
#                       < environment CRAWLER_<NAME> < command line `-s name=value`.

log_level = "INFO"
concurrency = 64            # requests in flight, all hosts together
concurrency_per_host = 8    # requests in flight to one host
obey_robots = true

# Say who you are: sites block anonymous bots first.
# user_agent = "{name}/1.0 (+https://example.com/bot)"
# download_delay = 0.5      # seconds between two requests to the same host
# autothrottle = true       # adapt the delay to each host's latency
# retries = 3
# depth_limit = 0           # 0 = no limit

# Stop the crawl gracefully once a limit is reached (0 = no limit).
# [close_on]
# items = 1000
# seconds = 3600
"""

SPIDER_TEMPLATE = '''\
"""The {name} spider: {host}."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider


class {cls}(Spider):
    name = "{name}"
    allowed_domains = ["{host}"]
    start_urls = ["{url}"]

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        # Follow links (the duplicate filter and allowed_domains keep the crawl on track):
        # yield from response.follow_all(css="a", callback=self.parse)
'''


def new_project(path: Path) -> list[Path]:
    """Create the project folder ``path`` (or fill an existing folder that holds no project);
    returns the files written."""
    settings = path / SETTINGS_FILE
    spiders = path / "spiders"
    for existing in (settings, spiders):
        if existing.exists():
            raise ConfigError(f"{path} already holds a project ({existing.name} exists)")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a folder")
    spiders.mkdir(parents=True)
    init = spiders / "__init__.py"
    init.write_text('"""The spiders of this project: `crawl <name>` runs one."""\n')
    settings.write_text(SETTINGS_TEMPLATE.format(name=_bot_name(path)))
    written = [settings, init]
    ignore = path / ".gitignore"
    if not ignore.exists():  # an existing repository keeps its own
        ignore.write_text(".httpcache/\n__pycache__/\n")
        written.append(ignore)
    return written


def new_spider(project: Path, name: str, target: str) -> Path:
    """Write ``spiders/<name>.py`` in ``project``: a spider called ``name`` that starts at
    ``target`` (a URL, or a bare domain for ``https://<domain>/``) and stays on its host."""
    if not _SPIDER_NAME.fullmatch(name) or keyword.iskeyword(name):
        suggestion = re.sub(r"\W", "_", name.lower()).lstrip("0123456789_") or "my"
        if keyword.iskeyword(suggestion) or suggestion == name:
            suggestion += "_spider"
        raise ConfigError(
            f"spider name {name!r} must be a lower-case Python identifier (it names the"
            f" module too), e.g. {suggestion!r}"
        )
    spiders = project / "spiders"
    if not spiders.is_dir():
        raise ConfigError(
            f"no spiders/ folder in {project}: run `crawler startproject` first, or give"
            " --project"
        )
    module = spiders / f"{name}.py"
    if module.exists():
        raise ConfigError(f"{module} exists already")
    text = target.strip()
    if "://" not in text:
        if not _BARE_DOMAIN.fullmatch(text):
            raise ConfigError(
                f"cannot start a spider at {target!r}: give an http(s) URL or a domain"
                " (example.com)"
            )
        text = f"https://{text}" if "/" in text else f"https://{text}/"
    try:
        url = parse_url(text)
    except InvalidURL as exc:
        raise ConfigError(f"cannot start a spider at {target!r}: {exc.reason}") from None
    host = url.host or ""
    module.write_text(SPIDER_TEMPLATE.format(
        name=name, cls=_class_name(name), host=host, url=str(url.with_fragment(None))
    ))
    return module


def _class_name(name: str) -> str:
    """``books_fr`` -> ``BooksFrSpider``."""
    return ("".join(part.capitalize() for part in name.split("_")) or "My") + "Spider"


def _bot_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", path.resolve().name) or "mybot"
