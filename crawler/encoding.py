"""Decoding a response body to text: which codec, and decoding that never fails.

The codec is chosen in this order, the server's own word first:

1. the ``charset`` parameter of the Content-Type header, if it names a known codec
   (an unknown name such as ``x-foo`` falls through to the next step);
2. a byte order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE);
3. ``<meta charset=...>`` or ``<meta http-equiv="Content-Type" content="...; charset=...">``
   in the first 4 KiB (case-insensitive, quotes optional), then an XML declaration's
   ``encoding``;
4. UTF-8.

Deliberately, the header wins over a BOM (the WHATWG standard lets the BOM win): the one
exception is a header naming UTF-16 or UTF-32 without an endianness, where the BOM decides
(little-endian without one). A BOM is never part of the returned text.

Labels are resolved as browsers do (the WHATWG Encoding Standard) where Python differs:
``iso-8859-1``, ``latin-1``, ``ascii`` and ``us-ascii`` decode as windows-1252 (so byte
0x93 is a curly quote), ``gb2312`` and ``gbk`` as gb18030, ``shift_jis`` as cp932,
``euc-kr`` as cp949, ``big5`` as big5-hkscs, ``iso-8859-9`` as cp1254, ``tis-620`` as cp874.
UTF-7 and the ISO-2022-KR / HZ encodings (which let ASCII bytes spell markup) and Python's
non-text or special codecs (``base64``, ``idna``, ``unicode_escape``, ...) are refused, as
unknown names. A ``<meta>`` declaring UTF-16 or UTF-32 means UTF-8 (the page could not have
been read as ASCII to find it otherwise).
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

__all__ = ["decode_body", "resolve_encoding"]

#: How far into the body ``<meta charset>`` is looked for.
META_SCAN_BYTES = 4096

# WHATWG labels Python does not know, mapped to the Python codec that decodes them.
_EXTRA_LABELS = {
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "iso-ir-58": "gb18030",
    "csgb2312": "gb18030",
    "csiso58gb231280": "gb18030",
    "chinese": "gb18030",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "csshiftjis": "cp932",
    "x-euc-jp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "windows-949": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "csksc56011987": "cp949",
    "iso-ir-149": "cp949",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "windows-874": "cp874",
    "dos-874": "cp874",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic",
    "iso-8859-8-i": "iso8859-8",
    "csiso88598i": "iso8859-8",
    "logical": "iso8859-8",
    "koi8-ru": "koi8-u",
    "x-user-defined": "cp1252",
    "unicode-1-1-utf-8": "utf-8",
    "unicode11utf8": "utf-8",
    "unicode20utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "unicode": "utf-16-le",
    "unicodefeff": "utf-16-le",
    "csunicode": "utf-16-le",
    "iso-10646-ucs-2": "utf-16-le",
    "ucs-2": "utf-16-le",
    "unicodefffe": "utf-16-be",
    **{f"x-cp{n}": f"cp{n}" for n in range(1250, 1259)},
}
# Python codec names (``codecs.lookup(label).name``) that browsers decode differently.
_WHATWG_CODEC = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "euc_kr": "cp949",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "utf-8-sig": "utf-8",
}
_REFUSED_CODECS = frozenset(
    {
        "utf-7",
        "hz",
        "iso2022_kr",
        "idna",
        "punycode",
        "undefined",
        "unicode-escape",
        "raw-unicode-escape",
        "charmap",
    }
)
_WIDE_CODECS = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})

# Searched in place, ignoring case: as fast as bytes.find, and no lower-cased copy to make.
_META_CHARSET = re.compile(
    rb"<meta[\s/][^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_:.+-]+)", re.IGNORECASE
)
_XML_ENCODING = re.compile(
    rb"<\?xml\s[^>]*?encoding\s*=\s*[\"']?\s*([a-z0-9_:.+-]+)", re.IGNORECASE
)


@lru_cache(maxsize=512)
def resolve_encoding(label: str) -> str | None:
    """The Python codec name that decodes an encoding label as browsers do, or None.

    None means unknown or refused (see the module docstring). Cached.
    """
    key = label.strip().strip("\"'").strip().lower()
    if not key:
        return None
    name = _EXTRA_LABELS.get(key, key)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return _WHATWG_CODEC.get(info.name, info.name)


@lru_cache(maxsize=512)
def _header_encoding(content_type: str) -> str | None:
    """The codec of the first ``charset`` parameter of a Content-Type value, or None."""
    lowered = content_type.lower()
    start = lowered.find("charset")
    while start != -1:
        before = lowered[start - 1] if start else ";"
        pos = start + 7
        if before in "; \t" and lowered[pos : pos + 1] in ("=", " ", "\t"):
            value = lowered[pos:].lstrip(" \t")
            if value[:1] == "=":
                value = value[1:].lstrip(" \t")
                if value[:1] in ('"', "'"):
                    end = value.find(value[0], 1)
                    value = value[1:end] if end != -1 else value[1:]
                else:
                    for stop in (";", ",", " ", "\t"):
                        cut = value.find(stop)
                        if cut != -1:
                            value = value[:cut]
                return resolve_encoding(value)
        start = lowered.find("charset", pos)
    return None


def _bom(body: bytes) -> tuple[str, int] | None:
    """The codec a byte order mark announces and the BOM's length, or None."""
    first = body[:1]
    if first == b"\xef":
        return ("utf-8", 3) if body[:3] == b"\xef\xbb\xbf" else None
    if first == b"\xff":
        if body[:4] == b"\xff\xfe\x00\x00":
            return "utf-32-le", 4
        return ("utf-16-le", 2) if body[1:2] == b"\xfe" else None
    if first == b"\xfe":
        return ("utf-16-be", 2) if body[1:2] == b"\xff" else None
    if first == b"\x00":
        return ("utf-32-be", 4) if body[:4] == b"\x00\x00\xfe\xff" else None
    return None


def _meta_encoding(body: bytes) -> str | None:
    """The codec a ``<meta>`` (or an XML declaration) in the first 4 KiB declares, or None."""
    for match in _META_CHARSET.finditer(body, 0, META_SCAN_BYTES):
        codec = resolve_encoding(match.group(1).decode("ascii"))
        if codec is not None:
            return "utf-8" if codec in _WIDE_CODECS else codec
    if body.startswith(b"<?xml"):
        declaration = _XML_ENCODING.match(body, 0, META_SCAN_BYTES)
        if declaration is not None:
            codec = resolve_encoding(declaration.group(1).decode("ascii"))
            if codec is not None:
                return "utf-8" if codec in _WIDE_CODECS else codec
    return None


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode a response body; return ``(text, codec_name)``.

    ``codec_name`` is the Python codec used (``"utf-8"``, ``"cp1252"``, ``"gb18030"``,
    ``"utf-16-le"``, ...). The codec is chosen as the module docstring describes.
    Undecodable bytes become U+FFFD: this never raises. A leading BOM is removed.
    """
    codec = _header_encoding(content_type) if content_type else None
    if codec is None:
        bom = _bom(body)
        codec = bom[0] if bom is not None else (_meta_encoding(body) or "utf-8")
    elif codec == "utf-16" or codec == "utf-32":
        bom = _bom(body)
        codec = bom[0] if bom is not None else codec + "-le"
    try:
        text = body.decode(codec, "replace")
    except (LookupError, UnicodeError):  # a codec that ignores "replace"; refused ones aside
        codec = "utf-8"
        text = body.decode(codec, "replace")
    if text[:1] == "\ufeff":
        text = text[1:]
    return text, codec
