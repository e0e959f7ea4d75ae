"""URL parsing, canonicalisation, per-host keys and the offsite filter.

Every URL the crawler handles goes through :func:`parse_url` once, so it is on the hot path:
the common case (a printable ASCII absolute URL) costs one ``yarl.URL`` construction plus a
few attribute reads and one cached per-host check.

Deliberate choices, compared with browsers (the WHATWG URL standard) and Scrapy:

* Leading and trailing C0 controls and spaces are stripped and ASCII tab, CR and LF are
  removed anywhere (as browsers do: ``href`` values wrapped over several lines are common);
  any other control character (``\\x00``-``\\x1f``, ``\\x7f``) makes the URL invalid.
* Inner spaces are encoded as ``%20`` everywhere, including the query (yarl alone would
  write ``+`` there, which a server may read as a literal plus).
* A bad percent-escape such as ``%zz`` is kept literally, re-encoded as ``%25zz``
  (browsers do the same); it is not an error.
* Host names are IDNA-encoded by yarl (UTS #46 / IDNA 2008 via the ``idna`` package, falling
  back to IDNA 2003), so ``münchen.de`` becomes ``xn--mnchen-3ya.de``. On top of that a host
  must be letters, digits, ``-``, ``_`` and dots, with labels of 1 to 63 characters and at
  most 253 characters in total; a host whose last label is numeric must be a valid IPv4
  address. Such hosts could never be resolved, so they fail here, with the reason.
* Lone surrogates make the URL invalid (yarl would silently drop them).
* Port 0 is rejected; yarl rejects ports above 65535.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from functools import lru_cache

from yarl import URL

from crawler.errors import InvalidURL

__all__ = ["DomainFilter", "canonical_url", "host_key", "parse_url", "redact_password",
           "redact_userinfo"]

logger = logging.getLogger(__name__)

_HTTP_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What the WHATWG parser strips from both ends: C0 controls and space.
_C0_OR_SPACE = "".join(chr(i) for i in range(0x21))
# Removed anywhere, as browsers do.
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A registered name after IDNA encoding: letters, digits, hyphen, underscore, dots.
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_BAD_HOST_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


def parse_url(url: str | URL, base: URL | None = None) -> URL:
    """Return ``url`` as an absolute, encoded http(s) ``yarl.URL``.

    A relative reference is joined to ``base`` per RFC 3986; the fragment is kept (it is
    :func:`canonical_url` that drops it). Raises :class:`~crawler.errors.InvalidURL`, whose
    ``reason`` says what is wrong: empty, relative without a base, a scheme other than http
    or https, no host, a host that cannot be IDNA-encoded or is malformed, a port out of
    range, a control character or a lone surrogate. See the module docstring for how
    whitespace and bad percent-escapes are handled.
    """
    if type(url) is str:
        text = url.strip(_C0_OR_SPACE)
        if not text:
            raise InvalidURL(url, "empty URL")
        if not (text.isascii() and text.isprintable()) or " " in text:
            text = _clean(url, text)
        if base is not None:
            # A path reference ("page.html", "../x", "/x") is written onto the base and
            # parsed once: cheaper than parsing it alone and joining, with the RFC 3986
            # result (yarl removes dot segments while parsing), and it avoids a yarl bug:
            # URL.join decodes the base path ("/a%20b/" joined with "c" gives "/a b/c").
            prefixes = _base_prefixes(base)
            if prefixes is not None:
                first = text[0]
                if first == "/":
                    if text[1:2] != "/":
                        text = prefixes[0] + text
                elif first != "?" and first != "#":
                    colon = text.find(":")
                    if colon == -1 or -1 < text.find("/") < colon:  # no scheme
                        text = prefixes[1] + text
        try:
            parsed = URL(text)
        except ValueError as exc:  # UnicodeError (IDNA) is a ValueError too
            raise InvalidURL(url, _yarl_reason(exc)) from exc
    elif isinstance(url, URL):
        if base is not None and not (url.scheme and url.absolute):
            return parse_url(str(url), base)  # joined as text, as below
        parsed = url
    elif isinstance(url, str):  # a str subclass
        return parse_url(str(url), base)
    else:
        raise InvalidURL(url, f"expected str or yarl.URL, got {type(url).__name__}")

    scheme = parsed.scheme
    if not scheme or not parsed.absolute:  # "/x", "//host/x", "mailto:x", "http:///x"
        if scheme and scheme not in _HTTP_SCHEMES:
            raise InvalidURL(url, f"scheme {scheme!r} is not http or https")
        if base is None:
            raise InvalidURL(url, "no host" if scheme else "relative URL without a base")
        fragment = parsed.raw_fragment
        try:
            parsed = base.join(parsed)
            if not fragment and parsed.raw_fragment:
                # yarl keeps the base's fragment for a "?query" reference; RFC 3986 does not.
                parsed = parsed.with_fragment(None)
        except ValueError as exc:
            raise InvalidURL(url, _yarl_reason(exc)) from exc
        scheme = parsed.scheme
    if scheme not in _HTTP_SCHEMES:
        raise InvalidURL(url, f"scheme {scheme!r} is not http or https")
    host = parsed.raw_host
    if not host:
        raise InvalidURL(url, "no host")
    problem = _host_problem(host)
    if problem is not None:
        raise InvalidURL(url, problem)
    if parsed.explicit_port == 0:
        raise InvalidURL(url, "port 0 is not usable")
    return parsed


@lru_cache(maxsize=64)
def _base_prefixes(base: URL) -> tuple[str, str] | None:
    """``("scheme://authority", "scheme://authority/dir/")`` of an absolute http(s) base."""
    scheme = base.scheme
    if scheme not in _HTTP_SCHEMES or not base.raw_host:
        return None
    origin = f"{scheme}://{base.raw_authority}"
    path = base.raw_path
    return origin, origin + path[: path.rfind("/") + 1]


def _clean(original: str, text: str) -> str:
    """The slow path of :func:`parse_url` for non-ASCII, non-printable or spaced input."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidURL(
                original, f"lone surrogate {text[exc.start]!r} at position {exc.start}"
            ) from None
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_TAB_OR_NEWLINE)
    bad = _CONTROL.search(text)
    if bad is not None:
        raise InvalidURL(original, f"control character {bad.group()!r} at position {bad.start()}")
    if " " in text:
        text = text.replace(" ", "%20")
    return text


def _yarl_reason(exc: ValueError) -> str:
    if isinstance(exc, UnicodeError):
        return f"host cannot be IDNA-encoded: {exc}"
    message = str(exc)
    if message.startswith("Host "):
        return f"invalid host: {message}"
    if "port" in message.lower():
        return message[0].lower() + message[1:]  # "port out of range 0-65535", ...
    return f"malformed URL: {message}"


@lru_cache(maxsize=8192)
def _host_problem(host: str) -> str | None:
    """Why an encoded host (``URL.raw_host``) cannot be crawled, or None. Cached per host."""
    if ":" in host:
        return None  # an IPv6 literal, already validated by yarl
    name = host[:-1] if host[-1] == "." else host  # a fully qualified "example.com." is fine
    if not name:
        return "no host"
    if _HOST_NAME.fullmatch(name) is None:
        if "%20" in name:
            return "space in host"
        bad = _BAD_HOST_CHAR.search(name)
        char = bad.group() if bad is not None else "?"
        return f"invalid character {char!r} in host {host!r}"
    if len(name) > 253:
        return f"host longer than 253 characters ({len(name)})"
    labels = name.split(".")
    for label in labels:
        if not label:
            return f"empty label in host {host!r}"
        if len(label) > 63:
            return f"host label longer than 63 characters ({len(label)}): {label[:20]}..."
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return f"invalid IPv4 address {host!r}"
    return None


def canonical_url(url: URL) -> str:
    """The URL's identity for dedup, as a string.

    Lower-cased scheme and host, default port dropped, fragment dropped, an empty path
    written as ``/``, query parameters sorted (a stable order; blank values and repeated
    keys kept; ``a`` and ``a=`` stay different). Percent-encoding of the path and query is
    normalised by yarl when the URL is parsed from a string (``%7E`` and ``~`` are equal,
    hex digits upper-cased), which is what :func:`parse_url` returns; a URL built with
    ``encoded=True`` is taken as it is.
    """
    scheme = url.scheme.lower()
    host = url.raw_host or ""
    if not host.islower():
        host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    port = url.explicit_port
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    user = url.raw_user
    if user is not None:
        password = url.raw_password
        host = f"{user}:{password}@{host}" if password is not None else f"{user}@{host}"
    query = url.raw_query_string
    if not query:
        return f"{scheme}://{host}{url.raw_path}"
    if "&" in query:
        query = "&".join(sorted([pair for pair in query.split("&") if pair]))
    return f"{scheme}://{host}{url.raw_path}?{query}"


def host_key(url: URL) -> str:
    """The per-host slot key: the lower-case (IDNA-encoded) host name, without the port.

    Politeness is owed to a server host, not to a scheme or port: ``http://a`` and
    ``https://a:8443`` share one slot (Scrapy also keys its slots by host name).
    """
    host = url.raw_host or ""
    if host[-1:] == ".":  # "example.com." is the same server as "example.com"
        host = host[:-1]
    return host if host.islower() or not host else host.lower()


class DomainFilter:
    """Decides whether a host is onsite for a spider's ``allowed_domains``.

    A host is allowed when it equals an allowed domain or is a subdomain of one
    (``shop.example.com`` for ``example.com``). An empty or missing list allows every
    host. Entries are normalised: lower-cased, IDNA-encoded, leading and trailing dots
    removed. An entry that is a URL or carries a port is a mistake Scrapy also warns about:
    its host is used, with a warning. An entry that is not a host name at all is ignored,
    with a warning; if no entry is left the filter allows nothing (not everything).
    """

    __slots__ = ("_domains", "_restricted", "_verdicts")

    #: Verdicts remembered per host; the memo is cleared when it reaches this size.
    MEMO_SIZE = 65536

    def __init__(self, allowed_domains: Iterable[str] | None) -> None:
        if isinstance(allowed_domains, str):
            logger.warning(
                "allowed_domains should be a list of domains, not the string %r; "
                "using it as a one-domain list",
                allowed_domains,
            )
            allowed_domains = [allowed_domains]
        entries = list(allowed_domains or ())
        self._restricted = bool(entries)
        domains: set[str] = set()
        for entry in entries:
            domain = _normalise_domain(entry)
            if domain is not None:
                domains.add(domain)
        self._domains = frozenset(domains)
        self._verdicts: dict[str, bool] = {}

    @property
    def domains(self) -> frozenset[str]:
        """The normalised allowed domains (empty when every host is allowed)."""
        return self._domains

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a host name, as :func:`host_key` returns it) is onsite."""
        if not self._restricted:
            return True
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self._check(host)
            if len(self._verdicts) >= self.MEMO_SIZE:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def _check(self, host: str) -> bool:
        domains = self._domains
        host = host.lower()
        if host[-1:] == ".":
            host = host[:-1]
        if host in domains:
            return True
        dot = host.find(".")
        while dot != -1:
            if host[dot + 1 :] in domains:
                return True
            dot = host.find(".", dot + 1)
        return False


def _normalise_domain(entry: str) -> str | None:
    text = str(entry).strip()
    if "://" in text:
        try:
            host = URL(text).raw_host
        except ValueError:
            host = None
        if not host:
            logger.warning("allowed_domains entry %r is not a domain; ignoring it", entry)
            return None
        logger.warning(
            "allowed_domains accepts domains, not URLs: using %r for the entry %r", host, entry
        )
        text = host
    elif text.count(":") == 1:  # "example.com:8080"; an IPv6 literal has several colons
        host = text.partition(":")[0]
        logger.warning(
            "allowed_domains accepts domains without ports: using %r for the entry %r",
            host,
            entry,
        )
        text = host
    text = text.strip(".").lower()
    try:
        host = URL.build(scheme="http", host=text).raw_host if text else None
    except ValueError:
        host = None
    if not host or _host_problem(host) is not None:
        logger.warning("allowed_domains entry %r is not a valid domain; ignoring it", entry)
        return None
    return host


# The user-info part of any URL in a text: "user:password@" after "scheme://".
_USERINFO = re.compile(r"(?<=://)[^\s/?#@]+@")


def redact_password(uri: str) -> str:
    """``uri`` without its password (``postgresql://user:***@host/db``), for an output's
    messages; a URI without one is returned as written (yarl would print ``sqlite:///a.db``
    as ``sqlite:/a.db``)."""
    try:
        url = URL(uri)
    except (ValueError, TypeError):
        return uri
    if url.password is None:
        return uri
    return str(url.with_password("***"))


def redact_userinfo(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``
    (``http://user:secret@host/`` becomes ``http://***@host/``): for logs."""
    return _USERINFO.sub("***@", text) if "@" in text else text
