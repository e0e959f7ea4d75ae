"""Request fingerprints: stable, 16 bytes, sensitive to method, URL and body only."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from crawler import fingerprint
from crawler.fingerprint import FINGERPRINT_SIZE, fingerprint_hex, request_fingerprint
from crawler.urls import canonical_url, parse_url


def fp(method: str, url: str, body: bytes = b"") -> bytes:
    return request_fingerprint(method, canonical_url(parse_url(url)), body)


def test_known_answers() -> None:
    # Durable frontiers store these: a change here invalidates every stored job.
    assert fingerprint_hex(request_fingerprint("GET", "http://example.com/", b"")) == (
        "cddedffa06e5bb4bfd9473b35a2713f6"
    )
    assert fingerprint_hex(request_fingerprint("post", "http://example.com/form", b"a=1&b=2")) == (
        "3cac8780712cf7b5033c57e1149ae351"
    )


def test_format_is_blake2b_of_method_url_body() -> None:
    expected = hashlib.blake2b(b"PUT\0http://e.com/x\0payload", digest_size=16).digest()
    assert request_fingerprint("put", "http://e.com/x", b"payload") == expected
    assert len(expected) == FINGERPRINT_SIZE


def test_stable_across_processes() -> None:
    # Loaded by path, so the child does not pay for importing the whole package.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('fp', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(module.request_fingerprint('GET', 'http://example.com/a?b=1', b'').hex())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, fingerprint.__file__],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},  # hash() would differ; this must not
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {request_fingerprint("GET", "http://example.com/a?b=1", b"").hex()}


def test_method_case_does_not_matter() -> None:
    assert fp("get", "http://example.com/") == fp("GET", "http://example.com/")


def test_each_part_matters() -> None:
    prints = {
        fp("GET", "http://example.com/a"),
        fp("POST", "http://example.com/a"),
        fp("GET", "http://example.com/b"),
        fp("GET", "https://example.com/a"),
        fp("GET", "http://example.com/a?x=1"),
        fp("POST", "http://example.com/a", b"x=1"),
        fp("POST", "http://example.com/a", b"x=2"),
    }
    assert len(prints) == 7


def test_no_ambiguity_between_parts() -> None:
    # The NUL separators keep a URL ending like a body apart from that body.
    assert request_fingerprint("GET", "http://e.com/a", b"b") != request_fingerprint(
        "GET", "http://e.com/ab", b""
    )
    assert request_fingerprint("GE", "Thttp://e.com/", b"") != request_fingerprint(
        "GET", "http://e.com/", b""
    )


def test_equivalent_urls_share_a_fingerprint() -> None:
    same = {
        fp("GET", "HTTP://Example.com:80/a%7Eb?b=2&a=1#frag"),
        fp("GET", "http://example.com/a~b?a=1&b=2"),
        fp("get", "http://EXAMPLE.com/a%7eb?a=1&b=2#other"),
    }
    assert len(same) == 1


def test_hex() -> None:
    value = fp("GET", "http://example.com/")
    text = fingerprint_hex(value)
    assert len(text) == 32
    assert bytes.fromhex(text) == value
    assert text == text.lower()
