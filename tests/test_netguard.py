"""crawler.netguard: the public-suffix cookie jar, the private-address checks and the
guarded resolver."""

from __future__ import annotations

import socket
from http.cookies import SimpleCookie

import orjson
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from crawler import Request
from crawler.downloader import Downloader
from crawler.errors import BlockedAddress
from crawler.netguard import GuardedResolver, SafeCookieJar, is_blocked_ip, is_public_suffix
from crawler.stats import Stats

from .conftest import make_settings
from .servers import Canned, TestSite


class NamesResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1: lets a test use real-looking host names."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None



async def test_public_suffix_cookies_are_ignored(site: TestSite) -> None:
    site.canned["/cookies"] = Canned(200, "ok", [
        ("Set-Cookie", "suffix=1; Domain=co.uk; Path=/"),
        ("Set-Cookie", "dotted=1; Domain=.CO.UK; Path=/"),
        ("Set-Cookie", "tld=1; Domain=uk; Path=/"),
        ("Set-Cookie", "case=1; Path=/; doMain=Co.Uk"),
        ("Set-Cookie", "mixed=1; Domain=shop.co.uk; Domain=co.uk; Path=/"),
        ("Set-Cookie", "site=1; Domain=shop.co.uk; Path=/"),
        ("Set-Cookie", "host=1; Path=/"),
    ])  # fmt: skip
    site.canned["/pages-cookie"] = Canned(200, "ok", [
        ("Set-Cookie", "platform=1; Domain=github.io; Path=/"),
        ("Set-Cookie", "mine=1; Domain=me.github.io; Path=/"),
    ])  # fmt: skip
    port = site.port

    async with Downloader(make_settings(), Stats(), resolver=NamesResolver()) as downloader:

        async def cookies_seen_by(host: str) -> dict[str, str]:
            response = await downloader.fetch(Request(f"http://{host}:{port}/echo"))
            cookies: dict[str, str] = orjson.loads(response.body)["cookies"]
            return cookies

        await downloader.fetch(Request(f"http://shop.co.uk:{port}/cookies"))
        await downloader.fetch(Request(f"http://me.github.io:{port}/pages-cookie"))
        assert await cookies_seen_by("other.co.uk") == {}
        assert await cookies_seen_by("www.shop.co.uk") == {"site": "1"}
        assert await cookies_seen_by("shop.co.uk") == {"site": "1", "host": "1"}
        assert await cookies_seen_by("you.github.io") == {}
        assert await cookies_seen_by("me.github.io") == {"mine": "1"}
        jar = downloader.session.cookie_jar
        assert isinstance(jar, SafeCookieJar) and jar.refused == 6



async def test_public_suffix_equal_to_the_host_becomes_host_only() -> None:
    jar = SafeCookieJar(unsafe=True)
    jar.update_cookies_from_headers(["a=1; Domain=github.io"], URL("http://github.io/"))
    cookie = SimpleCookie()
    cookie.load("b=2; Domain=co.uk")
    jar.update_cookies(cookie, URL("http://shop.co.uk/"))  # the Morsel path refuses it too
    assert set(jar.filter_cookies(URL("http://github.io/"))) == {"a"}
    assert not jar.filter_cookies(URL("http://x.github.io/"))
    assert not jar.filter_cookies(URL("http://x.co.uk/"))



@pytest.mark.parametrize(
    ("domain", "suffix"),
    [("com", True), ("uk", True), ("co.uk", True), (".co.uk", True), ("CO.UK", True),
     ("com.au", True), ("co.jp", True), ("github.io", True), ("herokuapp.com", True),
     ("example.com", False), ("shop.co.uk", False), ("me.github.io", False),
     ("example.co", False), ("127.0.0.1", False), ("localhost", True),
     # The Public Suffix List's own rules: a wildcard, its exception, a private suffix, IDN.
     ("foo.ck", True), ("www.ck", False), ("s3.amazonaws.com", True), ("\u0440\u0444", True),
     ("xn--p1ai", True), ("shop.xn--p1ai", False)],
)  # fmt: skip
def test_is_public_suffix(domain: str, suffix: bool) -> None:
    assert is_public_suffix(domain) is suffix



@pytest.mark.parametrize(
    ("address", "blocked"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
     ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
     ("240.0.0.1", True), ("255.255.255.255", True), ("::1", True), ("fe80::1%eth0", True),
     ("fc00::1", True), ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True),
     ("2002:a00:1::", True), ("::", True), ("ff02::1", True),
     ("8.8.8.8", False), ("93.184.216.34", False), ("2606:4700:4700::1111", False),
     ("not an address", True)],
)  # fmt: skip
def test_is_blocked_ip(address: str, blocked: bool) -> None:
    assert is_blocked_ip(address) is blocked



class MixedResolver(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0} for a in self.addresses]

    async def close(self) -> None:
        return None



async def test_guarded_resolver_keeps_only_public_addresses() -> None:
    guard = GuardedResolver(MixedResolver(["10.0.0.1", "93.184.216.34"]))
    assert [r["host"] for r in await guard.resolve("mixed.example")] == ["93.184.216.34"]
    guard = GuardedResolver(MixedResolver(["169.254.169.254"]))
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254"):
        await guard.resolve("metadata.example")
    exempt = GuardedResolver(MixedResolver(["10.0.0.1"]), exempt=["proxy.internal"])
    assert len(await exempt.resolve("proxy.internal")) == 1

