"""BodyDecoder: every Content-Encoding, stacked codings, bombs, truncation, corruption."""

from __future__ import annotations

import gzip
import os
import random
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import aiohttp
import brotli
import pytest
import zstandard
from aiohttp import web

from crawler.decompress import BodyDecoder
from crawler.errors import ProtocolError, ResponseTooLarge

MiB = 1 << 20
URL = "http://127.0.0.1/body"

_rng = random.Random(7)
_WORDS = [bytes(_rng.choice(b"abcdefghij") for _ in range(_rng.randint(2, 9))) for _ in range(300)]
# Compressible text with an incompressible stretch: about 250 KB.
PAYLOAD = os.urandom(10_000) + b" ".join(_rng.choice(_WORDS) for _ in range(40_000))


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)  # the default, 11, is slow for tests


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "deflate-raw": raw_deflate,  # what some servers send instead
    "br": br,
    "zstd": zstd,
}


def header(name: str) -> str:
    return "deflate" if name == "deflate-raw" else name


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def decode(encoding: str | None, body: bytes, *, limit: int = 64 * MiB, size: int = 16384) -> bytes:
    decoder = BodyDecoder(encoding, limit, URL)
    out = [decoder.feed(chunk) for chunk in chunks(body, size)]
    out.append(decoder.finish())
    result = b"".join(out)
    assert decoder.total_out == len(result)
    return result


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("size", [1, 5, 4096, 10 * MiB])
def test_round_trip_in_any_chunking(name: str, size: int) -> None:
    data = PAYLOAD if size > 1 else PAYLOAD[:8000]  # byte-at-a-time on a smaller body
    assert decode(header(name), ENCODERS[name](data), size=size) == data


@pytest.mark.parametrize("encoding", [None, "", "identity", "IDENTITY", " identity , "])
def test_identity_passes_bytes_through(encoding: str | None) -> None:
    assert decode(encoding, PAYLOAD) == PAYLOAD


def test_header_is_case_and_space_insensitive() -> None:
    body = br(gzip.compress(PAYLOAD))
    assert decode(" GZip ,BR ", body) == PAYLOAD


def test_deflate_accepts_raw_zlib_and_gzip_streams() -> None:
    assert decode("deflate", zlib.compress(PAYLOAD)) == PAYLOAD
    assert decode("deflate", raw_deflate(PAYLOAD)) == PAYLOAD
    assert decode("deflate", gzip.compress(PAYLOAD)) == PAYLOAD  # mislabelled, still read
    assert decode("gzip", zlib.compress(PAYLOAD)) == PAYLOAD  # likewise


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip, br", lambda d: br(gzip.compress(d))),
        ("br, gzip", lambda d: gzip.compress(br(d))),
        ("deflate, zstd", lambda d: zstd(zlib.compress(d))),
        ("gzip, deflate, zstd, br", lambda d: br(zstd(zlib.compress(gzip.compress(d))))),
        ("identity, gzip", gzip.compress),
    ],
)
def test_stacked_encodings_are_undone_in_reverse_order(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    for size in (7, 65536):
        assert decode(encoding, encode(PAYLOAD), size=size) == PAYLOAD


def test_unknown_encoding_passes_the_body_through_undecoded() -> None:
    body = gzip.compress(b"hello")
    for encoding in ("compress", "x-foo", "gzip, x-foo", "x-foo, gzip"):
        decoder = BodyDecoder(encoding, MiB, URL)
        assert decoder.feed(body) + decoder.finish() == body
        assert decoder.unsupported == "x-foo" if "foo" in encoding else "compress"
        assert decoder.encodings == ()
    decoder = BodyDecoder("gzip, br", MiB, URL)
    assert decoder.unsupported is None
    assert decoder.encodings == ("gzip", "br")


@pytest.mark.parametrize("name", ENCODERS)
def test_empty_body_is_not_an_error(name: str) -> None:
    # A HEAD, 204 or 304 response announces an encoding without a body.
    assert decode(header(name), b"") == b""


def test_body_of_exactly_the_limit_passes() -> None:
    for name, encode in ENCODERS.items():
        assert decode(header(name), encode(PAYLOAD), limit=len(PAYLOAD)) == PAYLOAD
        with pytest.raises(ResponseTooLarge):
            decode(header(name), encode(PAYLOAD), limit=len(PAYLOAD) - 1)
    assert decode(None, PAYLOAD, limit=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(ResponseTooLarge, match="body larger than"):
        decode(None, PAYLOAD, limit=len(PAYLOAD) - 1)


# --- gzip members --------------------------------------------------------------------------

MEMBERS = [b"member %05d;" % i for i in range(10_000)]
MANY_MEMBERS = b"".join(gzip.compress(m) for m in MEMBERS)


@pytest.mark.parametrize("size", [3, 4096, 10 * MiB])
def test_ten_thousand_gzip_members_decode_fully(size: int) -> None:
    assert decode("gzip", MANY_MEMBERS, size=size) == b"".join(MEMBERS)


def test_many_gzip_members_trip_the_limit() -> None:
    limit = 5000 * len(MEMBERS[0]) + 3
    decoder = BodyDecoder("gzip", limit, URL)
    got = 0
    with pytest.raises(ResponseTooLarge):
        for chunk in chunks(MANY_MEMBERS, 4096):
            got += len(decoder.feed(chunk))
    assert got <= limit
    assert decoder.total_out == limit + 1


def test_bytes_after_the_last_gzip_member_are_ignored() -> None:
    for tail in (b"\x00\x00\x00\x00", b"trailing junk", b"\x1f"):
        assert decode("gzip", gzip.compress(b"hello") + tail, size=3) == b"hello"
    assert decode("deflate", zlib.compress(b"hello") + b"junk") == b"hello"


# --- truncated and corrupt streams ------------------------------------------------------


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("keep", [0.5, -1])
def test_truncated_stream_is_a_protocol_error(name: str, keep: float) -> None:
    body = ENCODERS[name](PAYLOAD)
    cut = body[: int(len(body) * keep)] if keep > 0 else body[:-1]
    with pytest.raises(ProtocolError, match="truncated compressed body"):
        decode(header(name), cut)


@pytest.mark.parametrize("name", ENCODERS)
def test_a_single_byte_is_truncated_too(name: str) -> None:
    with pytest.raises(ProtocolError, match="truncated compressed body"):
        decode(header(name), ENCODERS[name](PAYLOAD)[:1])


@pytest.mark.parametrize("name", ENCODERS)
def test_corrupt_stream_is_a_protocol_error(name: str) -> None:
    label = "gzip" if name == "x-gzip" else header(name).split("-")[0]
    with pytest.raises(ProtocolError, match=f"invalid {header(name)} data") as info:
        decode(header(name), b"this is not compressed data at all, not at all")
    assert info.value.url == URL
    assert label in str(info.value)


def test_corruption_in_the_middle_is_a_protocol_error() -> None:
    for name in ("gzip", "deflate", "br", "zstd"):
        body = bytearray(ENCODERS[name](PAYLOAD))
        body[len(body) // 2 : len(body) // 2 + 64] = bytes(64)
        # Depending on where the damage lands the decoder sees bad data or an early end.
        with pytest.raises(ProtocolError, match=f"(invalid {name} data|truncated)") as info:
            decode(name, bytes(body))
        assert info.value.url == URL


def test_bytes_after_the_end_of_a_brotli_stream_are_an_error() -> None:
    for size in (3, MiB):
        with pytest.raises(ProtocolError, match="invalid br data"):
            decode("br", brotli.compress(b"hello") + b"junk", size=size)


def test_zstd_many_frames_and_skippable_frames() -> None:
    skippable = (0x184D2A5E).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    checksummed = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    body = zstd(b"one,") + skippable + checksummed.compress(b"two,") + zstd(b"") + zstd(b"3")
    for size in (1, 2, 5, MiB):
        assert decode("zstd", body, size=size) == b"one,two,3"
    with pytest.raises(ProtocolError, match="truncated"):
        decode("zstd", body[:-1])


def test_zstd_window_over_8_mib_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(
        3, window_log=25, write_content_size=False
    )
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = c.compress(PAYLOAD) + c.flush()
    with pytest.raises(ProtocolError, match="invalid zstd data"):
        decode("zstd", body)


# --- bombs ----------------------------------------------------------------------------------


def zlib_bomb(wbits: int, total: int) -> bytes:
    """``total`` zeros, compressed in about a millisecond per GiB: after a full flush the
    compressor's state is reset, so every MiB of zeros compresses to the same bytes.
    (The gzip trailer is for 2 MiB, never reached: the decoder stops at the limit.)"""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(MiB)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    unit = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    return first + unit * (total // MiB - 1) + c.flush()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """1 GiB of zeros in every coding (streamed through the compressors)."""
    zeros = bytes(MiB)
    br = brotli.Compressor(quality=0)
    zs = zstandard.ZstdCompressor(level=1).compressobj()
    return {
        "gzip": zlib_bomb(16 + zlib.MAX_WBITS, 1 << 30),
        "deflate": zlib_bomb(zlib.MAX_WBITS, 1 << 30),
        "deflate-raw": zlib_bomb(-zlib.MAX_WBITS, 1 << 30),
        "br": b"".join([br.process(zeros) for _ in range(1024)] + [br.finish()]),
        "zstd": b"".join([zs.compress(zeros) for _ in range(1024)] + [zs.flush()]),
    }


def feed_until_too_large(decoder: BodyDecoder, body: bytes, size: int = 65536) -> int:
    """Feed a bomb; return the peak of Python allocations while doing it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ResponseTooLarge, match="decompressed body larger than"):
            for chunk in chunks(body, size):
                decoder.feed(chunk)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["gzip", "deflate", "deflate-raw", "br", "zstd"])
def test_bomb_aborts_at_the_limit_in_bounded_memory(name: str, bombs: dict[str, bytes]) -> None:
    limit = 4 * MiB
    decoder = BodyDecoder(header(name), limit, URL)
    peak = feed_until_too_large(decoder, bombs[name])
    # The 1 GiB is never materialised: a little over the limit was produced, and the peak
    # of Python allocations stays near the limit.
    assert limit < decoder.total_out < limit + 256 * 1024
    assert peak < limit + MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("outer", ["br", "zstd", "gzip"])
def test_stacked_bomb_aborts_in_bounded_memory(outer: str, bombs: dict[str, bytes]) -> None:
    """A gzip bomb wrapped in another coding: each stage is bounded, not just the last."""
    inner = bombs["gzip"]
    wrapped = {"br": br, "zstd": zstd, "gzip": gzip.compress}[outer](inner)
    limit = 4 * MiB
    decoder = BodyDecoder(f"gzip, {outer}", limit, URL)
    peak = feed_until_too_large(decoder, wrapped)
    assert peak < limit + 3 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_bomb_of_a_bomb_trips_on_the_intermediate_size(bombs: dict[str, bytes]) -> None:
    """br over 1 GiB of gzip members that decode to nothing: the intermediate stage is
    bounded too, so this costs neither memory nor unbounded CPU."""
    empty_member = gzip.compress(b"")
    inner = empty_member * (64 * MiB // len(empty_member))
    c = brotli.Compressor(quality=0)
    body = b"".join([c.process(inner), c.finish()])
    decoder = BodyDecoder("gzip, br", MiB, URL)
    with pytest.raises(ResponseTooLarge):
        for chunk in chunks(body, 65536):
            decoder.feed(chunk)
    assert decoder.total_out == 0


# --- against a real server ----------------------------------------------------------------


async def test_streamed_from_a_real_server() -> None:
    """Chunks as a real connection delivers them (aiohttp's own decoding switched off)."""
    bodies = {name: ENCODERS[name](PAYLOAD) for name in ("gzip", "br", "zstd")}
    bomb = zlib_bomb(16 + zlib.MAX_WBITS, 256 * MiB)

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = bomb if name == "bomb" else bodies[name]
        response = web.StreamResponse(
            headers={"Content-Encoding": "gzip" if name == "bomb" else name}
        )
        await response.prepare(request)
        for chunk in chunks(body, 1000):  # many small writes
            await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for name in bodies:
                url = f"http://127.0.0.1:{port}/{name}"
                async with session.get(url) as response:
                    decoder = BodyDecoder(response.headers.get("Content-Encoding"), 8 * MiB, url)
                    parts = [decoder.feed(c) async for c in response.content.iter_any()]
                    parts.append(decoder.finish())
                assert b"".join(parts) == PAYLOAD
            url = f"http://127.0.0.1:{port}/bomb"
            async with session.get(url) as response:
                decoder = BodyDecoder(response.headers.get("Content-Encoding"), MiB, url)
                with pytest.raises(ResponseTooLarge):
                    async for chunk in response.content.iter_any():
                        decoder.feed(chunk)
    finally:
        await runner.cleanup()
