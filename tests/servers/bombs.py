"""Decompression bombs: bodies that inflate to far more than they weigh, and the routes that
serve them (``TestSite(routes=bomb_routes())``)."""

from __future__ import annotations

import asyncio
import struct
import zlib

from aiohttp import web

from crawler.demosite import int_param

__all__ = ["bomb_body", "bomb_routes"]

_BOMB_CODINGS = frozenset({"gzip", "deflate", "br", "zstd", "gzip-members"})


def bomb_body(coding: str, n: int) -> bytes:
    """``n`` zero bytes compressed with ``coding`` (``gzip``, ``deflate`` (zlib-wrapped),
    ``br``, ``zstd``, or ``gzip-members``: one gzip member per 64 KiB, concatenated), built
    chunk by chunk so ``n`` may be far larger than memory."""
    step = 1 << 20
    zeros = bytes(min(n, step))
    if coding == "gzip-members":
        member = zlib.compress(bytes(1 << 16), 9, wbits=31)
        count, rest = divmod(n, 1 << 16)
        tail = zlib.compress(bytes(rest), 9, wbits=31) if rest else b""
        return member * count + tail
    if coding in ("gzip", "deflate"):
        # Raw deflate blocks of 1 MiB of zeros, each ended by a full flush: byte-aligned and
        # independent, so one compressed block repeats (a 1 GiB bomb costs milliseconds).
        count, rest = divmod(n, step)
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = z.compress(zeros) + z.flush(zlib.Z_FULL_FLUSH) if count else b""
        tail = z.compress(bytes(rest)) + z.flush(zlib.Z_FINISH)
        raw = block * count + tail
        if coding == "gzip":
            crc = 0
            for _ in range(count):
                crc = zlib.crc32(zeros, crc)
            crc = zlib.crc32(bytes(rest), crc)
            header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            return header + raw + struct.pack("<II", crc, n & 0xFFFFFFFF)
        adler = 1
        for _ in range(count):
            adler = zlib.adler32(zeros, adler)
        adler = zlib.adler32(bytes(rest), adler)
        return b"\x78\xda" + raw + struct.pack(">I", adler)
    if coding == "br":
        import brotli

        c = brotli.Compressor(quality=5)
        feed, finish = c.process, c.finish
    elif coding == "zstd":
        import zstandard

        zc = zstandard.ZstdCompressor(level=3).compressobj()
        feed, finish = zc.compress, zc.flush
    else:
        raise ValueError(f"unknown coding {coding!r}")
    parts = [feed(zeros[: min(n - done, step)]) for done in range(0, n, step)]
    parts.append(finish())
    return b"".join(parts)


def bomb_routes() -> list[web.RouteDef]:
    """Routes of bombs, each body built once and kept:

    * ``/bomb/{coding}/{n}``: a body inflating to ``n`` zero bytes with ``Content-Encoding``
      ``gzip``, ``deflate``, ``br`` or ``zstd``; ``gzip-members`` is gzip made of many small
      concatenated members (64 KiB each), see :func:`bomb_body`.
    * ``/gzip-bomb/{n}``: the same as ``/bomb/gzip/{n}``.
    """
    cache: dict[tuple[str, int], bytes] = {}

    async def respond(coding: str, n: int) -> web.Response:
        body = cache.get((coding, n))
        if body is None:
            body = await asyncio.to_thread(bomb_body, coding, n)
            cache[(coding, n)] = body
        header = "gzip" if coding == "gzip-members" else coding
        return web.Response(
            body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": header},
        )

    async def gzip_bomb(request: web.Request) -> web.Response:
        return await respond("gzip", int_param(request, "n"))

    async def bomb(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        n = int_param(request, "n")
        if coding not in _BOMB_CODINGS:
            raise web.HTTPBadRequest(text=f"coding must be one of {sorted(_BOMB_CODINGS)}")
        return await respond(coding, n)

    return [web.get(r"/gzip-bomb/{n:\d+}", gzip_bomb), web.get(r"/bomb/{coding}/{n:\d+}", bomb)]
