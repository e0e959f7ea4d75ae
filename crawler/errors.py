"""Every exception the framework raises, in one place.

The hierarchy::

    CrawlerError                       base of everything raised here
    ├── ConfigError                    stops the run before any request (exit code 2)
    │   ├── SettingsError              a setting is unknown or has a wrong value
    │   ├── SpiderNotFound             no spider with that name
    │   ├── SpiderLoadError            a spider module failed to import
    │   ├── JobDirError                a job directory cannot be used
    │   └── BrowserUnavailable         a page must be rendered and no browser can be started
    ├── InvalidURL (also ValueError)   a URL that cannot be crawled
    ├── UnstorableRequest (ValueError) a request a durable frontier cannot store
    ├── DownloadError                  a request failed; the engine may retry it
    │   ├── DownloadTimeout            connect / read / total deadline passed
    │   ├── ConnectError               connection refused, reset, DNS failure
    │   │   └── OutOfFiles                 no file descriptor left (EMFILE): back-pressure
    │   ├── ProtocolError              malformed status line or headers, truncated body
    │   ├── ResponseTooLarge           body (or decompressed body) over max_response_size
    │   ├── HttpError                  a non-2xx status left after retries and redirects
    │   ├── RedirectError              too many hops, or a target that is not http(s)
    │   ├── BlockedAddress             host resolves to a private range (block_private_addresses)
    │   └── BrowserError               the browser crashed, hung or refused a page action
    ├── IgnoreRequest                  a request dropped on purpose (robots, offsite, budgets)
    ├── DropItem                       raised by a pipeline to discard an item
    ├── OutputFailed                   a durable job's output could not be written
    ├── OutputClosed                   the reader of -o - went away (| head -1)
    ├── CloseSpider                    raised by a callback to end the crawl gracefully
    └── FrontierLost                   a shared frontier's state vanished (the run fails)

Third-party exceptions (aiohttp, zlib, ...) are translated into these at the boundary that
calls the library (the downloader), so the engine only ever sees this hierarchy.
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Base class of every exception raised by the framework."""


class ConfigError(CrawlerError):
    """The run cannot start: a usage, settings or spider error. The CLI exits with 2."""


class SettingsError(ConfigError):
    """A setting is unknown or invalid.

    ``name`` is the setting, ``source`` the layer it came from (``"settings.toml"``,
    ``"CLI -s"``, ...), ``suggestion`` the closest valid name for a misspelling.
    """

    def __init__(
        self, name: str, source: str, message: str, suggestion: str | None = None
    ) -> None:
        self.name = name
        self.source = source
        self.suggestion = suggestion
        text = f"setting {name!r} from {source}: {message}"
        if suggestion:
            text += f" (did you mean {suggestion!r}?)"
        super().__init__(text)


class SpiderNotFound(ConfigError):
    """No spider has the requested name; ``available`` lists the names that exist."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listing = ", ".join(available) if available else "(none found)"
        super().__init__(f"spider not found: {name!r}. Available spiders: {listing}")


class SpiderLoadError(ConfigError):
    """A module of the spiders package failed to import."""

    def __init__(self, module: str, error: BaseException) -> None:
        self.module = module
        self.error = error
        super().__init__(f"cannot import spider module {module!r}: {type(error).__name__}: {error}")


class JobDirError(ConfigError):
    """A job directory is from another spider or version, or is locked by another run."""


class BrowserUnavailable(ConfigError):
    """A page is to be rendered (``browser=True``) but Playwright or Chromium is missing or
    will not start; the message names what to install. Raised before the crawl starts when
    the spider or the settings render every page, else at the first rendered request, whose
    request is then left in the frontier for a process that has a browser."""


class InvalidURL(CrawlerError, ValueError):
    """A URL that cannot be crawled: relative, not http(s), or malformed. ``reason`` says why."""

    def __init__(self, url: object, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"invalid URL {url!r}: {reason}")


class UnstorableRequest(CrawlerError, ValueError):
    """A request that a durable frontier cannot serialise; ``field`` names the culprit."""

    def __init__(self, url: str, field: str, reason: str) -> None:
        self.url = url
        self.field = field
        super().__init__(f"request {url} cannot be stored: field {field!r}: {reason}")


class DownloadError(CrawlerError):
    """A request failed. ``url`` is the request URL. Subclasses tell what kind of failure."""

    #: Whether the engine may retry the request after this error.
    retryable: bool = True

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"{url}: {detail}" if detail else url)


class DownloadTimeout(DownloadError):
    """The connect timeout, the read timeout (gap between bytes) or the total deadline passed."""


class ConnectError(DownloadError):
    """The connection could not be made or was lost (refused, reset, DNS failure)."""

    #: Why the host cannot be reached at all ("connection refused", "name does not
    #: resolve ..."), or "" for other connection errors. After its retries, such an error
    #: fails the host: its other requests fail at once, through their errbacks.
    unreachable: str = ""


class OutOfFiles(ConnectError):
    """The process has no file descriptor left for a connection (EMFILE, ENFILE). Not the
    request's fault: the engine waits and tries it again, without counting a retry."""


class ProtocolError(DownloadError):
    """The server broke HTTP: invalid status line or headers, or a body shorter than announced."""


class ResponseTooLarge(DownloadError):
    """The body, before or after decompression, passed ``max_response_size``."""

    retryable = False


class HttpError(DownloadError):
    """A response outside 2xx (and not in ``handle_status``) left after retries and redirects."""

    retryable = False

    def __init__(self, url: str, status: int, response: object = None) -> None:
        self.status = status
        self.response = response
        super().__init__(url, f"HTTP {status}")


class RedirectError(DownloadError):
    """Too many redirects, a redirect loop, or a redirect to a target that is not http(s)."""

    retryable = False


class BlockedAddress(DownloadError):
    """The host resolves to a loopback, private, link-local or reserved address."""

    retryable = False


class BrowserError(DownloadError):
    """The browser failed a rendered request: the renderer or the whole browser crashed or
    hung (retried, on a restarted browser when needed), or a page action could not run
    (``retryable`` False)."""


class IgnoreRequest(CrawlerError):
    """A request dropped on purpose (robots.txt, offsite, a budget). ``reason`` is a stat key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DropItem(CrawlerError):
    """Raised by a pipeline's ``process_item`` to discard an item; the message says why."""


class CloseSpider(CrawlerError):
    """Raised from a callback to end the crawl gracefully; ``reason`` ends up in the stats."""

    def __init__(self, reason: str = "cancelled") -> None:
        self.reason = reason
        super().__init__(reason)


class FrontierLost(CrawlerError):
    """The shared frontier's state vanished mid-crawl (Redis restarted without its data, or
    the crawl was purged): the crawl cannot go on without crawling again from nothing, so
    the engine stops and the run fails (exit 1) with this message."""


class OutputFailed(CrawlerError):
    """A durable job's output could not be written (a full disk): the job's frontier refuses
    to record the write, the run ends, and the runner says once which output failed and that
    the same command resumes the items not written."""

    def __init__(self, output: str, cause: BaseException) -> None:
        super().__init__(f"output {output} failed: {type(cause).__name__}: {cause}")
        self.output = output


class OutputClosed(CrawlerError):
    """The reader of standard output went away (``crawl ... -o - | head -1``): the crawl
    stops quietly with the reason ``output_closed``."""
