"""parse_url, canonical_url, host_key and DomainFilter (pure functions: no server needed)."""

from __future__ import annotations

import logging

import pytest
from yarl import URL

from crawler.errors import InvalidURL
from crawler.urls import DomainFilter, canonical_url, host_key, parse_url

BASE = URL("http://example.com/dir/page.html?x=1#top")

VALID = [
    # (input, expected str of the parsed URL)
    ("http://example.com/", "http://example.com/"),
    ("https://example.com/a/b?c=d#frag", "https://example.com/a/b?c=d#frag"),
    ("HTTP://EXAMPLE.COM/Path", "http://example.com/Path"),
    ("http://bücher.de/", "http://xn--bcher-kva.de/"),
    ("http://münchen.de/straße", "http://xn--mnchen-3ya.de/stra%C3%9Fe"),
    ("http://faß.de/", "http://xn--fa-hia.de/"),  # IDNA 2008: ß kept, not mapped to "ss"
    ("http://xn--mnchen-3ya.de/", "http://xn--mnchen-3ya.de/"),
    ("  http://example.com/a  ", "http://example.com/a"),  # outer whitespace stripped
    ("\x00\x1fhttp://example.com/\x1f", "http://example.com/"),  # outer C0 controls too
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/?q=a b", "http://example.com/?q=a%20b"),  # %20, not "+"
    ("http://example.com/a\n/b\t/c\r", "http://example.com/a/b/c"),  # as browsers do
    ("http://example.com/%zz", "http://example.com/%25zz"),  # bad escape kept, re-encoded
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/%7e%41", "http://example.com/~A"),
    ("http://example.com/€", "http://example.com/%E2%82%AC"),
    ("http://example.com:8080/", "http://example.com:8080/"),
    ("http://example.com:80/", "http://example.com/"),
    ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://under_score.example.com/", "http://under_score.example.com/"),
    ("http://example.com./", "http://example.com./"),
    ("http://user:pass@example.com/", "http://user:pass@example.com/"),
    ("http://" + "a" * 63 + ".com/", "http://" + "a" * 63 + ".com/"),
]

INVALID = [
    # (input, a substring of the reason)
    ("", "empty URL"),
    ("   \t\n", "empty URL"),
    ("/relative/path", "relative URL without a base"),
    ("page.html", "relative URL without a base"),
    ("//example.com/x", "relative URL without a base"),
    ("javascript:alert(1)", "scheme 'javascript' is not http or https"),
    ("mailto:someone@example.com", "scheme 'mailto'"),
    ("data:text/html,hello", "scheme 'data'"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("ftp://example.com/file", "scheme 'ftp'"),
    ("tel:+123456", "scheme 'tel'"),
    ("http:///path", "no host"),
    ("http://", "no host"),
    ("http://" + "a" * 64 + ".com/", "host label longer than 63 characters"),
    ("http://" + "abc." * 63 + "com/", "host longer than 253 characters"),
    ("http://ü" + "ü" * 70 + ".de/", "cannot be IDNA-encoded"),
    ("http://a\u200b.com/", "invalid host"),
    ("http://exa mple.com/", "space in host"),
    ("http://exa%41mple.com/", "invalid character '%' in host"),
    ("http://exa*mple.com/", "invalid character '*' in host"),
    ("http://a..b/", "empty label"),
    ("http://1.2.3/", "invalid IPv4 address"),
    ("http://256.1.1.1/", "invalid IPv4 address"),
    ("http://example.com:99999/", "port out of range"),
    ("http://example.com:0/", "port 0"),
    ("http://example.com:abc/", "port"),
    ("http://[zz]/", "malformed URL"),
    ("http://example.com/a\x00b", "control character '\\x00'"),
    ("http://example.com/a\x7fb", "control character '\\x7f'"),
    ("http://exam\x01ple.com/", "control character"),
    ("http://example.com/\ud800", "lone surrogate"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_urls(text: str, expected: str) -> None:
    url = parse_url(text)
    assert isinstance(url, URL)
    assert str(url) == expected


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_urls_name_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(text)
    assert reason in info.value.reason
    assert info.value.url == text
    assert isinstance(info.value, ValueError)


def test_bytes_and_other_types_are_rejected() -> None:
    with pytest.raises(InvalidURL, match="got bytes"):
        parse_url(b"http://example.com/")  # type: ignore[arg-type]
    with pytest.raises(InvalidURL, match="got int"):
        parse_url(42)  # type: ignore[arg-type]


def test_yarl_url_input_is_checked_and_returned_as_is() -> None:
    url = URL("https://example.com/x")
    assert parse_url(url) is url
    with pytest.raises(InvalidURL, match="scheme 'ftp'"):
        parse_url(URL("ftp://example.com/"))
    with pytest.raises(InvalidURL, match="relative URL without a base"):
        parse_url(URL("/x"))
    assert str(parse_url(URL("other.html"), BASE)) == "http://example.com/dir/other.html"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("other.html", "http://example.com/dir/other.html"),
        ("../up.html", "http://example.com/up.html"),
        ("../../../../g", "http://example.com/g"),
        ("/root?a=1", "http://example.com/root?a=1"),
        ("?y=2", "http://example.com/dir/page.html?y=2"),
        ("#frag", "http://example.com/dir/page.html?x=1#frag"),
        ("//cdn.example.net/a.js", "http://cdn.example.net/a.js"),
        ("https://other.org/", "https://other.org/"),
        ("g;x?y#s", "http://example.com/dir/g;x?y#s"),
        ("  sub/page 2.html\n", "http://example.com/dir/sub/page%202.html"),
        ("http:same-scheme", "http://example.com/dir/same-scheme"),
    ],
)
def test_relative_references_join_per_rfc3986(ref: str, expected: str) -> None:
    assert str(parse_url(ref, BASE)) == expected


@pytest.mark.parametrize("ref", ["javascript:void(0)", "mailto:a@b.c", "tel:1", "data:,x"])
def test_non_http_links_fail_even_with_a_base(ref: str) -> None:
    with pytest.raises(InvalidURL, match="is not http or https"):
        parse_url(ref, BASE)


def test_join_result_is_validated() -> None:
    with pytest.raises(InvalidURL, match="port 0"):
        parse_url("//example.com:0/", BASE)
    with pytest.raises(InvalidURL, match="empty URL"):
        parse_url("", BASE)


# --- canonical_url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTP://Example.COM/a", "http://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com/a#one", "http://example.com/a#two"),
        ("http://example.com/a", "http://example.com/a#"),
        ("http://example.com/?b=2&a=1", "http://example.com/?a=1&b=2"),
        ("http://example.com/?a=2&a=1", "http://example.com/?a=1&a=2"),
        ("http://example.com/?a=&b=1", "http://example.com/?b=1&a="),
        ("http://example.com/?a=1&&b=2", "http://example.com/?b=2&a=1"),
        ("http://example.com/a%7Eb", "http://example.com/a~b"),
        ("http://example.com/a%7eb", "http://example.com/a~b"),
        ("http://example.com/%c3%a9", "http://example.com/é"),
        ("http://example.com/?q=%7e", "http://example.com/?q=~"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com/p?", "http://example.com/p"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://[::1]:80/", "http://[::1]/"),
    ],
)
def test_equivalent_urls_share_a_canonical_form(a: str, b: str) -> None:
    assert canonical_url(parse_url(a)) == canonical_url(parse_url(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://example.com/a", "https://example.com/a"),
        ("http://example.com/a", "http://example.com:8080/a"),
        ("http://example.com/A", "http://example.com/a"),  # paths are case-sensitive
        ("http://example.com/?a=1", "http://example.com/?a=2"),
        ("http://example.com/?a", "http://example.com/?a="),
        ("http://example.com/a%2Fb", "http://example.com/a/b"),  # %2F is not a separator
        ("http://example.com/?q=a+b", "http://example.com/?q=a%20b"),
        ("http://u@example.com/", "http://example.com/"),
    ],
)
def test_different_urls_keep_different_canonical_forms(a: str, b: str) -> None:
    assert canonical_url(parse_url(a)) != canonical_url(parse_url(b))


def test_canonical_form_is_exact() -> None:
    url = parse_url("HTTP://User:Pw@Example.COM:8080/p%7e/q?b=2&a=1&a=#frag")
    assert canonical_url(url) == "http://User:Pw@example.com:8080/p~/q?a=&a=1&b=2"
    assert canonical_url(parse_url("https://example.com:443")) == "https://example.com/"


def test_canonical_lower_cases_hosts_of_urls_built_encoded() -> None:
    url = URL.build(scheme="HTTP", host="EXAMPLE.COM", port=80, path="/x", encoded=True)
    assert canonical_url(url) == "http://example.com/x"


# --- host_key -----------------------------------------------------------------------------


def test_host_key_is_the_lower_case_host_without_port() -> None:
    assert host_key(parse_url("http://Example.COM/a")) == "example.com"
    assert host_key(parse_url("https://example.com:8443/")) == "example.com"
    assert host_key(parse_url("http://example.com/")) == host_key(parse_url("https://example.com/"))
    assert host_key(parse_url("http://bücher.de/")) == "xn--bcher-kva.de"
    assert host_key(parse_url("http://[::1]:8080/")) == "::1"
    assert host_key(URL("http://EXAMPLE.com/", encoded=True)) == "example.com"
    assert host_key(parse_url("http://example.com./")) == "example.com"


# --- DomainFilter ---------------------------------------------------------------------------


def test_domain_filter_allows_domain_and_subdomains_only() -> None:
    f = DomainFilter(["example.com", "Other.ORG"])
    assert f.allows("example.com")
    assert f.allows("www.example.com")
    assert f.allows("a.b.c.example.com")
    assert f.allows("other.org")
    assert f.allows("WWW.Other.org")
    assert f.allows("example.com.")  # fully qualified
    assert not f.allows("badexample.com")  # a suffix, but not at a label boundary
    assert not f.allows("example.com.evil.net")
    assert not f.allows("com")
    assert not f.allows("example.net")
    assert not f.allows("")


def test_domain_filter_without_domains_allows_everything() -> None:
    assert DomainFilter(None).allows("anything.example")
    assert DomainFilter([]).allows("anything.example")


def test_domain_filter_accepts_urls_and_ports_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler.urls"):
        f = DomainFilter(["https://shop.example.com/path", "example.org:8080", ".example.net"])
    assert f.domains == frozenset({"shop.example.com", "example.org", "example.net"})
    assert f.allows("www.shop.example.com")
    assert not f.allows("example.com")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not URLs" in messages
    assert "without ports" in messages


def test_domain_filter_normalises_idn_and_ignores_junk(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler.urls"):
        f = DomainFilter(["München.de", "not a domain", "*.wild.com"])
    assert f.domains == frozenset({"xn--mnchen-3ya.de"})
    assert f.allows(host_key(parse_url("http://www.münchen.de/")))
    assert sum("not a valid domain" in r.getMessage() for r in caplog.records) == 2


def test_domain_filter_with_only_invalid_entries_allows_nothing() -> None:
    f = DomainFilter(["not a domain"])
    assert not f.allows("example.com")


def test_domain_filter_given_a_single_string(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crawler.urls"):
        f = DomainFilter("example.com")
    assert f.allows("www.example.com")
    assert not f.allows("e.com")  # not split into characters
    assert "not the string" in caplog.text


RFC3986_BASE = URL("http://a/b/c/d;p?q")
# RFC 3986 section 5.4: the normal and abnormal examples ("//g" gives the empty path of
# "http://g", which is "http://g/").
RFC3986_EXAMPLES = {
    "g": "http://a/b/c/g", "./g": "http://a/b/c/g", "g/": "http://a/b/c/g/", "/g": "http://a/g",
    "//g": "http://g", "?y": "http://a/b/c/d;p?y", "g?y": "http://a/b/c/g?y",
    "#s": "http://a/b/c/d;p?q#s", "g#s": "http://a/b/c/g#s", "g?y#s": "http://a/b/c/g?y#s",
    ";x": "http://a/b/c/;x", "g;x": "http://a/b/c/g;x", "g;x?y#s": "http://a/b/c/g;x?y#s",
    ".": "http://a/b/c/", "./": "http://a/b/c/", "..": "http://a/b/", "../": "http://a/b/",
    "../g": "http://a/b/g", "../..": "http://a/", "../../": "http://a/", "../../g": "http://a/g",
    "../../../g": "http://a/g", "../../../../g": "http://a/g", "/./g": "http://a/g",
    "/../g": "http://a/g", "g.": "http://a/b/c/g.", ".g": "http://a/b/c/.g",
    "g..": "http://a/b/c/g..", "..g": "http://a/b/c/..g", "./../g": "http://a/b/g",
    "./g/.": "http://a/b/c/g/", "g/./h": "http://a/b/c/g/h", "g/../h": "http://a/b/c/h",
    "g;x=1/./y": "http://a/b/c/g;x=1/y", "g;x=1/../y": "http://a/b/c/y",
    "g?y/./x": "http://a/b/c/g?y/./x", "g?y/../x": "http://a/b/c/g?y/../x",
    "g#s/./x": "http://a/b/c/g#s/./x", "g#s/../x": "http://a/b/c/g#s/../x",
}  # fmt: skip


@pytest.mark.parametrize(("ref", "expected"), RFC3986_EXAMPLES.items())
def test_rfc3986_reference_resolution_examples(ref: str, expected: str) -> None:
    assert str(parse_url(ref, RFC3986_BASE)) == expected


def test_query_only_reference_drops_the_base_fragment() -> None:
    base = URL("http://a/b?q#frag")
    assert str(parse_url("?y", base)) == "http://a/b?y"
    assert str(parse_url("#s", base)) == "http://a/b?q#s"


def test_join_keeps_escapes_of_the_base_path() -> None:
    # yarl's URL.join decodes the base path here ("/a b/c"); parse_url does not.
    base = URL("http://example.com/a%20b/page")
    assert str(parse_url("c", base)) == "http://example.com/a%20b/c"
    assert str(parse_url(URL("c d"), base)) == "http://example.com/a%20b/c%20d"


def test_path_references_match_rfc3986_joining() -> None:
    """parse_url writes path references onto the base instead of calling URL.join; the
    results must be those of URL.join (on bases it handles correctly)."""
    import random

    rng = random.Random(42)
    segments = ["a", "b", ".", "..", "%2e", "", "x y", "ü", "%41", ";p", "~", "+", "!", "A.B"]
    bases = [URL(b) for b in ("http://a", "http://a/b/c/d;p?q#f", "https://u:p@h.com:8443/x/")]
    for _ in range(3000):
        ref = "/".join(rng.choice(segments) for _ in range(rng.randint(1, 5)))
        ref = rng.choice(["", "/"]) + ref + rng.choice(["", "?q=1", "#f", "?a#b"])
        if not ref.strip() or ref.startswith("//"):  # "//x" names a host, not a path
            continue
        base = rng.choice(bases)
        expected = base.join(URL(ref.strip().replace(" ", "%20")))
        if "#" not in ref and expected.raw_fragment:
            expected = expected.with_fragment(None)
        assert str(parse_url(ref, base)) == str(URL(str(expected))), (ref, base)
