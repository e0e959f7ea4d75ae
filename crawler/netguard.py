"""Network safety: refusing private addresses, and a cookie jar that refuses public suffixes.

``block_private_addresses``
    :class:`GuardedResolver` wraps aiohttp's resolver and removes every address that is not
    publicly routable (:func:`is_blocked_ip`: loopback, private, link-local including
    169.254.169.254, shared, reserved, multicast, unspecified, and IPv6 addresses that embed
    one of those). A host left with no address raises
    :class:`~crawler.errors.BlockedAddress` before any connection is opened. Filtering the
    resolver's answer (instead of resolving twice and checking) leaves no window for a DNS
    rebinding trick: the addresses checked are the ones connected to. aiohttp never calls the
    resolver for an IP-literal host, so the downloader checks those with
    :func:`blocked_literal`.

Cookies
    aiohttp's ``CookieJar`` already keeps host-only cookies to their host and refuses a
    ``Domain`` the response host is not inside, but it has no Public Suffix List: a page on
    ``shop.co.uk`` could set a cookie for ``Domain=co.uk`` that every other ``*.co.uk`` site
    would then receive. :class:`SafeCookieJar` applies RFC 6265 section 5.3 step 5 with the
    Public Suffix List bundled by the ``publicsuffixlist`` package, its private section
    included (``github.io``, ``herokuapp.com``: unrelated parties get subdomains there too),
    and an unknown top-level label counted as a suffix. Such a ``Domain`` is ignored when it
    is the response host itself (the cookie becomes host-only) and the cookie is refused
    otherwise. The list (~10,000 rules, ~35 ms to build) is loaded by the first cookie that
    names a ``Domain``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from .errors import BlockedAddress

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

__all__ = [
    "GuardedResolver",
    "SafeCookieJar",
    "blocked_literal",
    "is_blocked_ip",
    "is_public_suffix",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_blocked(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address reaches that address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is not None and _is_blocked(embedded):
            return True
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


@lru_cache(maxsize=4096)
def is_blocked_ip(address: str) -> bool:
    """Whether ``address`` (an IP address as text) must not be connected to under
    ``block_private_addresses``. Text that is not an IP address is blocked too."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone ("%eth0")
    except ValueError:
        return True
    return _is_blocked(ip)


@lru_cache(maxsize=4096)
def blocked_literal(host: str) -> bool:
    """Whether ``host`` (a URL's ``raw_host``) is an IP literal that :func:`is_blocked_ip`
    refuses. Host names return False: the resolver checks what they resolve to."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return _is_blocked(ip)


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that removes blocked addresses from ``inner``'s answer.

    Raises :class:`~crawler.errors.BlockedAddress` (with the host name as its ``url``; the
    downloader puts the request URL back) when nothing is left. ``exempt`` names hosts
    resolved as they are: the configured proxy, which is often on a private address.
    """

    def __init__(self, inner: AbstractResolver, exempt: Iterable[str] = ()) -> None:
        self._inner = inner
        self._exempt = frozenset(h.lower() for h in exempt)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if host.lower() in self._exempt:
            return infos
        allowed = [info for info in infos if not is_blocked_ip(info["host"])]
        if not allowed:
            addresses = ", ".join(sorted({info["host"] for info in infos}))
            raise BlockedAddress(host, f"{host} resolves to a blocked address ({addresses})")
        if len(allowed) < len(infos):
            logger.debug("%s: ignoring its private addresses", host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


# ------------------------------------------------------------------------------------ cookies

_NO_URL = URL()
_DOMAIN_ATTR = re.compile(r";\s*domain\s*=\s*([^;]*)", re.IGNORECASE)


@lru_cache(maxsize=4096)
def is_public_suffix(domain: str) -> bool:
    """Whether a cookie ``Domain`` value is a public suffix (``com``, ``co.uk``, ``github.io``;
    a top-level label the list does not know counts as one too).

    Leading and trailing dots and case are ignored; an IP address is never a public suffix, a
    name that cannot be IDNA-encoded always is (it is no usable cookie domain).
    """
    name = domain.strip().strip(".").lower()
    if not name:
        return False
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
        return False
    except ValueError:
        pass
    return bool(_suffix_list().is_public(name))


@cache
def _suffix_list() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList(accept_unknown=True)


class SafeCookieJar(aiohttp.CookieJar):
    """aiohttp's ``CookieJar`` that refuses cookies scoped to a public suffix.

    Built with ``unsafe=True`` by the downloader (crawls often target IP-address hosts, whose
    cookies the default jar drops); host-only cookies still stay with their host. Refused
    cookies are counted in :attr:`refused`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refused = 0

    def update_cookies_from_headers(self, headers: Sequence[str], response_url: URL) -> None:
        host = (response_url.raw_host or "").lower()
        kept: list[str] = []
        for header in headers:
            fixed = self._check_header(header, host)
            if fixed is not None:
                kept.append(fixed)
        if kept:
            super().update_cookies_from_headers(kept, response_url)

    def update_cookies(self, cookies: Any, response_url: URL = _NO_URL) -> None:
        host = (response_url.raw_host or "").lower()
        items = cookies.items() if hasattr(cookies, "items") else cookies
        kept: list[tuple[str, Any]] = []
        for name, value in items:
            if isinstance(value, Morsel) and value["domain"]:
                domain = value["domain"].strip().strip(".").lower()
                if is_public_suffix(domain):
                    if domain != host:
                        self._refuse(name, domain, host)
                        continue
                    value = value.copy()
                    del value["domain"]
            kept.append((name, value))
        if kept:
            super().update_cookies(kept, response_url)

    def _check_header(self, header: str, host: str) -> str | None:
        """The Set-Cookie field to store: as it is, without its Domain (a public suffix that
        is the host itself), or None to refuse it (a public suffix above the host)."""
        domains = [m.strip().strip(".").lower() for m in _DOMAIN_ATTR.findall(header)]
        suffixes = [d for d in domains if d and is_public_suffix(d)]
        if not suffixes:
            return header
        if any(d != host for d in suffixes):
            # Several Domain attributes: refuse if any of them is a suffix above the host,
            # whichever one the cookie parser would pick.
            self._refuse(header.partition("=")[0].strip(), suffixes[0], host)
            return None
        return _DOMAIN_ATTR.sub("", header)

    def _refuse(self, name: str, domain: str, host: str) -> None:
        self.refused += 1
        logger.debug("Refused cookie %r from %s: Domain=%s is a public suffix", name, host, domain)
