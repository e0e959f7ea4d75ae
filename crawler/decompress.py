"""Incremental, bomb-safe decoding of a body's Content-Encoding.

:class:`BodyDecoder` is fed the raw body chunk by chunk as it streams in and returns the
decoded bytes. It raises :class:`~crawler.errors.ResponseTooLarge` as soon as the decoded
size passes the limit, and never materialises much more than the limit to find out: every
decompressor is asked for bounded output (zlib's ``max_length``, brotli's
``output_buffer_limit``, and for zstd, whose stream API has no output bound, input fed in
slices small enough to bound the output, since a zstd block yields at most 128 KiB from at
least 4 input bytes). A gzip bomb of 1 GiB of zeros therefore costs about the limit in
memory, not 1 GiB.

Supported codings: ``gzip`` (also ``x-gzip``; any number of concatenated members),
``deflate`` (zlib-wrapped as RFC 9110 says, or raw deflate as some servers send; told apart
by the first two bytes; a gzip stream labelled deflate is accepted too), ``br``, ``zstd``
(windows up to 8 MiB, as RFC 9659 lets decoders require) and ``identity``. Stacked codings
(``Content-Encoding: gzip, br``) are undone in reverse order.

Decisions:

* An unknown coding (``compress``, ``x-foo``, ...) anywhere in the list leaves the whole
  body as received: it is passed through undecoded (Scrapy also leaves it), and
  :attr:`BodyDecoder.unsupported` names the coding.
* The limit applies to identity and undecodable bodies too, so one object enforces
  ``max_response_size`` whatever the encoding.
* A compressed stream that ends early is a :class:`~crawler.errors.ProtocolError`
  (``truncated compressed body``); corrupt data is one too (``invalid gzip data: ...``).
  An empty body is not an error (a HEAD or 304 response often announces an encoding).
* Bytes after the end of a gzip or deflate stream that do not start another gzip member are
  ignored, as browsers do; bytes after the end of a brotli stream are an error (the brotli
  decoder itself rejects them when they arrive with the end of the stream).
"""

from __future__ import annotations

import logging
import zlib
from typing import Protocol

import brotli  # untyped: see the mypy override in pyproject.toml
import zstandard

from crawler.errors import ProtocolError, ResponseTooLarge

__all__ = ["SUPPORTED_ENCODINGS", "BodyDecoder"]

logger = logging.getLogger(__name__)

#: Content-Encoding tokens this module decodes (``identity`` is a no-op).
SUPPORTED_ENCODINGS = ("gzip", "x-gzip", "deflate", "br", "zstd")

# Output asked of an intermediate stage of stacked codings per call: it is passed straight
# on to the next stage, so it bounds memory, not the result.
_INTERMEDIATE_STEP = 1 << 18
# Per-call output cap for brotli: its buffer grows in doubling blocks past the cap, so a
# small cap keeps the overshoot small (observed: under 100 KiB with 64 KiB).
_BROTLI_STEP = 1 << 16
# Output asked of zlib and zstd per call: bounds the transient copies they make.
_ZLIB_STEP = 1 << 18
_ZSTD_STEP = 1 << 18
_ZSTD_BLOCK_MAX = 128 * 1024  # the most one zstd block can yield
_ZSTD_MAX_WINDOW = 8 << 20


class _DecodeFailure(Exception):
    """Corrupt or truncated data inside a stage; BodyDecoder turns it into ProtocolError."""


class _Stage(Protocol):
    """One decoding step. ``room`` is at least 1."""

    #: True when the stage holds output or input it could not return for lack of room.
    pending: bool

    def decompress(self, data: bytes, room: int, out: list[bytes]) -> int:
        """Take ``data``, append decoded bytes to ``out`` and return how many: about ``room``
        at most (a little more is allowed; the caller checks). When the output is cut short,
        set ``pending``: the caller then calls again with ``b""`` before feeding more input."""
        ...

    def finish(self) -> None:
        """Raise _DecodeFailure if the stream started but did not end."""
        ...


class _ZlibStage:
    """gzip (multi-member) and deflate (zlib-wrapped or raw) with zlib's ``max_length``."""

    __slots__ = ("_buf", "_coding", "_d", "_gzip", "_ignore", "_more", "pending")

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._d: zlib._Decompress | None = None
        self._gzip = False  # the stream is gzip, so another member may follow the first
        self._buf = b""  # input held back: an undecided header, or input left for lack of room
        self._more = False  # zlib may hold output it could not return for lack of room
        self._ignore = False  # trailing garbage seen after a complete stream
        self.pending = False

    def _open(self, head: bytes) -> zlib._Decompress:
        b0, b1 = head[0], head[1]
        if b0 == 0x1F and b1 == 0x8B:
            self._gzip = True
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if b0 & 0x0F == 8 and b0 >> 4 <= 7 and ((b0 << 8) | b1) % 31 == 0:
            return zlib.decompressobj(zlib.MAX_WBITS)
        if self._coding == "deflate":
            # No zlib header: raw deflate. A real zlib header cannot be taken for raw data
            # by mistake (it would be a stored block with non-zero padding bits).
            return zlib.decompressobj(-zlib.MAX_WBITS)
        raise _DecodeFailure(f"invalid {self._coding} data: not a gzip stream")

    def decompress(self, data: bytes, room: int, out: list[bytes]) -> int:
        if self._ignore:
            return 0
        if self._buf:
            data = self._buf + data if data else self._buf
            self._buf = b""
        d = self._d
        if d is None:
            if len(data) < 2:
                self._buf = data
                self.pending = False
                return 0
            d = self._d = self._open(data)
        start = room
        more = self._more
        while True:
            if d.eof:
                if not data:
                    break
                if not self._gzip or data[:2] != b"\x1f\x8b"[: len(data)]:
                    logger.debug(
                        "ignoring %d bytes after the end of a %s stream", len(data), self._coding
                    )
                    self._ignore = True
                    break
                if len(data) < 2:  # b"\x1f": maybe the start of another member
                    self._buf = data
                    break
                d = self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif not data and not more:
                break
            cap = min(_ZLIB_STEP, room)
            try:
                piece = d.decompress(data, cap)
            except zlib.error as exc:
                raise _DecodeFailure(f"invalid {self._coding} data: {exc}") from exc
            more = len(piece) >= cap  # zlib may hold output back
            if piece:
                out.append(piece)
                room -= len(piece)
            data = d.unused_data if d.eof else d.unconsumed_tail
            if room <= 0:
                self._buf = data
                self._more = more and not d.eof
                self.pending = True
                return start - room
            if not (data or more or d.eof):
                break  # zlib needs more input
        self._more = False
        self.pending = False
        return start - room

    def finish(self) -> None:
        if self._ignore:
            return
        d = self._d
        if d is None:
            if self._buf:
                raise _DecodeFailure(f"truncated compressed body ({self._coding})")
            return  # empty body
        if not d.eof:
            raise _DecodeFailure(f"truncated compressed body ({self._coding})")


class _BrotliStage:
    """br with ``output_buffer_limit`` (brotli >= 1.2)."""

    __slots__ = ("_buf", "_d", "_started", "pending")

    def __init__(self, coding: str) -> None:
        self._d = brotli.Decompressor()
        self._buf = b""
        self._started = False
        self.pending = False

    def decompress(self, data: bytes, room: int, out: list[bytes]) -> int:
        d = self._d
        if self._buf:
            data = self._buf + data if data else self._buf
            self._buf = b""
        if data:
            self._started = True
        start = room
        try:
            while True:
                cap = min(_BROTLI_STEP, room)
                if data and d.can_accept_more_data():
                    if d.is_finished():
                        raise _DecodeFailure("invalid br data: bytes after the end of the stream")
                    piece = d.process(data, output_buffer_limit=cap)
                    data = b""
                else:
                    # Drain: a capped call may leave output behind, and can_accept_more_data()
                    # does not tell (it is True again as soon as the input is buffered).
                    piece = d.process(b"", output_buffer_limit=cap)
                    if not piece:
                        if not data:
                            break
                        if not d.can_accept_more_data():
                            raise _DecodeFailure("invalid br data: the decoder stalled")
                if piece:
                    out.append(piece)
                    room -= len(piece)
                if room <= 0:
                    self._buf = data
                    self.pending = True
                    return start - room
        except brotli.error as exc:
            raise _DecodeFailure(f"invalid br data: {exc}") from exc
        self.pending = False
        return start - room

    def finish(self) -> None:
        if self._started and not self._d.is_finished():
            raise _DecodeFailure("truncated compressed body (br)")


# zstd frame walking (RFC 8878, section 3.1): magic numbers and walker states.
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = 0x184D2A50  # the low 4 bits are free
(
    _Z_MAGIC,
    _Z_SKIP_SIZE,
    _Z_SKIP,
    _Z_FRAME_HEADER,
    _Z_FRAME_HEADER_REST,
    _Z_BLOCK_HEADER,
    _Z_BLOCK,
    _Z_CHECKSUM,
) = range(8)
_Z_DICT_ID_SIZE = (0, 1, 2, 4)
_Z_CONTENT_SIZE_SIZE = (0, 2, 4, 8)


class _ZstdStage:
    """zstd through one decompressobj, fed input cut at block boundaries to bound output.

    zstandard's decompressobj returns all the output of its input, however large, so the
    input is walked first: frame and block headers only (contents are skipped by length),
    which gives each block's worst-case output (its size for raw and RLE blocks, 128 KiB for
    compressed ones) and where frames end. The input is cut before the block that would pass
    the room left, so a call yields at most one block more than asked. The walk also tells
    a stream that stopped inside a frame (truncated) from one that stopped between frames.
    """

    __slots__ = (
        "_buf",
        "_checksum",
        "_d",
        "_hdr",
        "_last",
        "_need",
        "_started",
        "_state",
        "pending",
    )

    def __init__(self, coding: str) -> None:
        self._d = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj(
            read_across_frames=True
        )
        self._state = _Z_MAGIC
        self._need = 4  # bytes wanted by the current state
        self._hdr = bytearray()  # a header split across chunks
        self._last = False  # the current block is the frame's last
        self._checksum = False  # the current frame ends with a 4-byte checksum
        self._started = False
        self._buf = b""
        self.pending = False

    def _walk(self, data: memoryview, pos: int, budget: int) -> int:
        """Advance the walk from ``pos``; return where to cut so that the blocks begun
        before the cut yield at most ``budget`` bytes (at least one block is taken)."""
        end = len(data)
        out = 0
        state = self._state
        need = self._need
        hdr = self._hdr
        while pos < end:
            if state in (_Z_BLOCK, _Z_SKIP):  # contents: skipped by length
                take = min(end - pos, need)
                pos += take
                need -= take
                if need:
                    break
                if state == _Z_SKIP:
                    state, need = _Z_MAGIC, 4
                elif not self._last:
                    state, need = _Z_BLOCK_HEADER, 3
                elif self._checksum:
                    state, need = _Z_CHECKSUM, 4
                else:
                    state, need = _Z_MAGIC, 4
                continue
            if state == _Z_BLOCK_HEADER and not hdr and out and out + _ZSTD_BLOCK_MAX > budget:
                break  # cut before this block
            take = need - len(hdr)
            hdr += data[pos : pos + take]
            pos += take
            if len(hdr) < need:
                break  # the header continues in the next chunk
            value = int.from_bytes(hdr, "little")
            hdr.clear()
            if state == _Z_BLOCK_HEADER:
                self._last = bool(value & 1)
                kind = (value >> 1) & 3
                size = value >> 3
                if kind == 3:
                    raise _DecodeFailure("invalid zstd data: reserved block type")
                out += _ZSTD_BLOCK_MAX if kind == 2 else size
                state, need = _Z_BLOCK, (1 if kind == 1 else size)
                if need == 0:  # an empty raw block ends here (the stream may end with it)
                    if not self._last:
                        state, need = _Z_BLOCK_HEADER, 3
                    elif self._checksum:
                        state, need = _Z_CHECKSUM, 4
                    else:
                        state, need = _Z_MAGIC, 4
            elif state == _Z_MAGIC:
                if value == _ZSTD_MAGIC:
                    state, need = _Z_FRAME_HEADER, 1
                elif value & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
                    state, need = _Z_SKIP_SIZE, 4
                else:
                    raise _DecodeFailure("invalid zstd data: not a zstd frame")
            elif state == _Z_FRAME_HEADER:
                single_segment = (value >> 5) & 1
                self._checksum = bool((value >> 2) & 1)
                rest = (
                    (0 if single_segment else 1)  # window descriptor
                    + _Z_DICT_ID_SIZE[value & 3]
                    + (_Z_CONTENT_SIZE_SIZE[value >> 6] or single_segment)
                )
                state, need = (_Z_FRAME_HEADER_REST, rest) if rest else (_Z_BLOCK_HEADER, 3)
            elif state == _Z_FRAME_HEADER_REST:
                state, need = _Z_BLOCK_HEADER, 3
            elif state == _Z_SKIP_SIZE:
                state, need = (_Z_SKIP, value) if value else (_Z_MAGIC, 4)
            else:  # _Z_CHECKSUM
                state, need = _Z_MAGIC, 4
        self._state = state
        self._need = need
        return pos

    def decompress(self, data: bytes, room: int, out: list[bytes]) -> int:
        if self._buf:
            data = self._buf + data if data else self._buf
            self._buf = b""
        if not data:
            self.pending = False
            return 0
        self._started = True
        start = room
        view = memoryview(data)
        pos = 0
        end = len(data)
        d = self._d
        try:
            while pos < end:
                cut = self._walk(view, pos, min(_ZSTD_STEP, room))
                piece = d.decompress(view[pos:cut])
                pos = cut
                if piece:
                    out.append(piece)
                    room -= len(piece)
                    if room <= 0:
                        self._buf = bytes(view[pos:])
                        self.pending = bool(self._buf)  # decompressobj keeps no output back
                        return start - room
        except zstandard.ZstdError as exc:
            raise _DecodeFailure(f"invalid zstd data: {exc}") from exc
        self.pending = False
        return start - room

    def finish(self) -> None:
        if self._started and (self._state != _Z_MAGIC or self._hdr):
            raise _DecodeFailure("truncated compressed body (zstd)")


_STAGES: dict[str, type[_ZlibStage | _BrotliStage | _ZstdStage]] = {
    "gzip": _ZlibStage,
    "x-gzip": _ZlibStage,
    "deflate": _ZlibStage,
    "br": _BrotliStage,
    "zstd": _ZstdStage,
}


class BodyDecoder:
    """Decodes one response body for its Content-Encoding, chunk by chunk, within a limit.

    ``feed(chunk)`` returns the decoded bytes that chunk produced (possibly ``b""``);
    ``finish()`` is called once after the last chunk and checks that the compressed stream
    ended. ``total_out`` is the decoded size so far. Raises
    :class:`~crawler.errors.ResponseTooLarge` once ``total_out`` would pass ``limit`` (the
    decoded bytes past it are never returned) and :class:`~crawler.errors.ProtocolError`
    for corrupt or truncated data. See the module docstring for the supported codings and
    the choices made.
    """

    __slots__ = (
        "_inner_limit",
        "_inner_out",
        "_stages",
        "encodings",
        "limit",
        "total_out",
        "unsupported",
        "url",
    )

    def __init__(self, content_encoding: str | None, limit: int, url: str) -> None:
        self.url = url
        self.limit = limit
        self.total_out = 0
        #: The codings being undone, in the order they were applied by the server.
        self.encodings: tuple[str, ...] = ()
        #: The first coding this module cannot decode, if any: the body then passes as is.
        self.unsupported: str | None = None
        self._stages: list[_Stage] = []
        if content_encoding:
            tokens = (c.strip() for c in content_encoding.lower().split(","))
            codings = [c for c in tokens if c and c != "identity"]
            for coding in codings:
                if coding not in _STAGES:
                    self.unsupported = coding
                    logger.debug(
                        "unsupported Content-Encoding %r for %s: body left encoded",
                        content_encoding,
                        url,
                    )
                    break
            else:
                self.encodings = tuple(codings)
                self._stages = [_STAGES[c](c) for c in reversed(codings)]
        # A stage before the last outputs compressed data, which may exceed the final size
        # slightly when incompressible; it is still bounded, to stop a bomb of a bomb.
        self._inner_out = [0] * len(self._stages)
        self._inner_limit = limit + (limit >> 6) + 4096

    def feed(self, chunk: bytes) -> bytes:
        """Decode one chunk of the raw body; return the bytes it produced."""
        if not chunk:
            return b""
        if not self._stages:
            total = self.total_out + len(chunk)
            if total > self.limit:
                raise ResponseTooLarge(self.url, f"body larger than {self.limit} bytes")
            self.total_out = total
            return chunk
        parts: list[bytes] = []
        try:
            self._run(0, chunk, parts)
        except _DecodeFailure as exc:
            raise ProtocolError(self.url, str(exc)) from exc.__cause__
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def _run(self, index: int, data: bytes, parts: list[bytes]) -> None:
        stage = self._stages[index]
        if index == len(self._stages) - 1:
            limit = self.limit
            while True:
                # Room for one byte over the limit: producing it proves the body too large.
                self.total_out += stage.decompress(data, limit - self.total_out + 1, parts)
                if self.total_out > limit:
                    raise ResponseTooLarge(self.url, f"decompressed body larger than {limit} bytes")
                if not stage.pending:
                    return
                data = b""
        while True:
            pieces: list[bytes] = []
            self._inner_out[index] += stage.decompress(data, _INTERMEDIATE_STEP, pieces)
            if self._inner_out[index] > self._inner_limit:
                raise ResponseTooLarge(
                    self.url, f"decompressed body larger than {self.limit} bytes"
                )
            for piece in pieces:
                self._run(index + 1, piece, parts)
            if not stage.pending:
                return
            data = b""

    def finish(self) -> bytes:
        """Check the end of the stream; return any last decoded bytes (``b""`` today)."""
        try:
            for stage in self._stages:
                stage.finish()
        except _DecodeFailure as exc:
            raise ProtocolError(self.url, str(exc)) from None
        return b""
