"""Request fingerprints: the dedup identity of a request.

A fingerprint is the 16-byte BLAKE2b digest of the upper-cased method, the canonical URL
(:func:`crawler.urls.canonical_url`) and the body, each of the first two followed by a NUL
byte (neither can contain one, so no two different triples hash the same input)::

    blake2b(b"GET\\0http://example.com/?a=1\\0" + body, digest_size=16)

It is stable across processes, machines and Python versions (never ``hash()``), so durable
frontiers may store it. BLAKE2b is used rather than SHA-1 because it is the faster of the
two for the dominant case, a bodiless GET (about 0.6 µs against 0.8 µs); SHA-1 is faster
only on bodies of several KiB. Changing this format invalidates stored fingerprints.
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["FINGERPRINT_SIZE", "fingerprint_hex", "request_fingerprint"]

#: Length of a fingerprint in bytes.
FINGERPRINT_SIZE = 16


def request_fingerprint(method: str, canonical: str, body: bytes) -> bytes:
    """The 16-byte fingerprint of a request (see the module docstring for the format)."""
    digest = blake2b(f"{method.upper()}\0{canonical}\0".encode(), digest_size=FINGERPRINT_SIZE)
    if body:
        digest.update(body)
    return digest.digest()


def fingerprint_hex(fp: bytes) -> str:
    """A fingerprint as 32 lower-case hex digits, for logs and text stores."""
    return fp.hex()
