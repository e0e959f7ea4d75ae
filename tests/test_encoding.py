"""decode_body: which codec wins, and decoding that never raises (pure: no server needed)."""

from __future__ import annotations

import codecs

import pytest

from crawler.encoding import decode_body, resolve_encoding

HTML_UTF8 = "<p>Crème brûlée — 中文</p>"
PADDING = b"<!-- " + b"x" * 4096 + b" -->"

# (name, body, Content-Type, expected codec, expected text or, when it ends with "...",
#  the expected prefix of the text)
CORPUS: list[tuple[str, bytes, str | None, str, str]] = [
    ("empty body", b"", None, "utf-8", ""),
    ("empty body, header charset", b"", "text/plain; charset=windows-1252", "cp1252", ""),
    ("plain utf-8 default", HTML_UTF8.encode(), "text/html", "utf-8", HTML_UTF8),
    ("no content type", HTML_UTF8.encode(), None, "utf-8", HTML_UTF8),
    ("header utf-8", HTML_UTF8.encode(), "text/html; charset=utf-8", "utf-8", HTML_UTF8),
    ("header upper case, quoted", b"caf\xc3\xa9", 'text/html; CHARSET="UTF-8"', "utf-8", "café"),
    ("header no space", b"caf\xe9", "text/html;charset=windows-1252", "cp1252", "café"),
    ("header spaces around =", b"caf\xe9", "text/html; charset = cp1252", "cp1252", "café"),
    ("header charset then param", b"abc", "text/html; charset=utf-8; q=1", "utf-8", "abc"),
    ("charset inside a quoted param", b"\x93", 'text/html; x="charset=latin1"', "utf-8", "\ufffd"),
    # WHATWG aliases: latin-1 family and ASCII decode as windows-1252.
    ("iso-8859-1 is cp1252", b"\x93hi\x94", "text/html; charset=iso-8859-1", "cp1252", "“hi”"),
    ("latin-1 is cp1252", b"\x93hi\x94", "text/html; charset=latin-1", "cp1252", "“hi”"),
    ("ascii is cp1252", b"\x93hi\x94", "text/html; charset=ascii", "cp1252", "“hi”"),
    ("us-ascii is cp1252", b"\x80", "text/html; charset=US-ASCII", "cp1252", "€"),
    ("gb2312 is gb18030", "中文€".encode("gb18030"), "text/html; charset=gb2312",
     "gb18030", "中文€"),
    ("gbk is gb18030", "中文".encode("gbk"), "text/html; charset=GBK", "gb18030", "中文"),
    ("x-gbk is gb18030", "中文".encode("gbk"), "text/html; charset=x-gbk", "gb18030", "中文"),
    ("shift_jis is cp932", "①".encode("cp932"), "text/html; charset=shift_jis", "cp932", "①"),
    ("euc-kr is cp949", "똠".encode("cp949"), "text/html; charset=euc-kr", "cp949", "똠"),
    ("koi8-r", "привет".encode("koi8-r"), "text/html; charset=koi8-r", "koi8-r", "привет"),
    # Header vs BOM: the header wins (the order) ...
    ("header wins over BOM", codecs.BOM_UTF8 + b"hi", "text/html; charset=windows-1252",
     "cp1252", "ï»¿hi"),
    ("header utf-8 with utf-8 BOM", codecs.BOM_UTF8 + b"hi", "text/html; charset=utf-8",
     "utf-8", "hi"),
    # ... except a UTF-16/32 header without endianness: the BOM decides.
    ("utf-16 header, LE BOM", codecs.BOM_UTF16_LE + "hé".encode("utf-16-le"),
     "text/html; charset=utf-16", "utf-16-le", "hé"),
    ("utf-16 header, BE BOM", codecs.BOM_UTF16_BE + "hé".encode("utf-16-be"),
     "text/html; charset=UTF-16", "utf-16-be", "hé"),
    ("utf-16 header, no BOM", "hé".encode("utf-16-le"), "text/html; charset=utf-16",
     "utf-16-le", "hé"),
    ("utf-16le header, LE BOM", codecs.BOM_UTF16_LE + "hé".encode("utf-16-le"),
     "text/html; charset=utf-16le", "utf-16-le", "hé"),
    # BOM, when the header says nothing usable.
    ("utf-8 BOM", codecs.BOM_UTF8 + HTML_UTF8.encode(), "text/html", "utf-8", HTML_UTF8),
    ("utf-16 LE BOM", codecs.BOM_UTF16_LE + HTML_UTF8.encode("utf-16-le"), None,
     "utf-16-le", HTML_UTF8),
    ("utf-16 BE BOM", codecs.BOM_UTF16_BE + HTML_UTF8.encode("utf-16-be"), None,
     "utf-16-be", HTML_UTF8),
    ("utf-32 LE BOM", codecs.BOM_UTF32_LE + HTML_UTF8.encode("utf-32-le"), None,
     "utf-32-le", HTML_UTF8),
    ("utf-32 BE BOM", codecs.BOM_UTF32_BE + HTML_UTF8.encode("utf-32-be"), None,
     "utf-32-be", HTML_UTF8),
    ("BOM wins over meta", codecs.BOM_UTF8 + b'<meta charset="koi8-r">\xc3\xa9', None,
     "utf-8", '<meta charset="koi8-r">é'),
    ("unknown header charset falls to BOM", codecs.BOM_UTF16_LE + "ok".encode("utf-16-le"),
     "text/html; charset=x-foo", "utf-16-le", "ok"),
    # <meta>, in both forms, any case, quotes optional.
    ("meta charset", b'<html><head><meta charset="windows-1251"></head>\xcf\xf0\xe8',
     "text/html", "cp1251", '<html><head><meta charset="windows-1251"></head>При'),
    ("meta charset unquoted", b"<meta charset=koi8-r><p>\xd0\xd2", None, "koi8-r",
     "<meta charset=koi8-r><p>пр"),
    ("meta single quotes", b"<meta charset='iso-8859-15'>\xa4", None, "iso8859-15",
     "<meta charset='iso-8859-15'>€"),
    ("meta http-equiv", (b'<HEAD><META HTTP-EQUIV="Content-Type" '
     b'CONTENT="text/html; charset=Shift_JIS"></HEAD>\x82\xa0'), None, "cp932", "<HEAD>..."),
    ("meta http-equiv unquoted content",
     b"<meta http-equiv=content-type content=text/html;charset=gb2312>\xd6\xd0", None,
     "gb18030", "<meta http-equiv=content-type content=text/html;charset=gb2312>中"),
    ("meta latin-1 is cp1252", b'<meta charset="ISO-8859-1">\x93', None, "cp1252",
     '<meta charset="ISO-8859-1">“'),
    ("meta unknown then known", b"<meta charset=x-foo><meta charset=koi8-r>\xc1", None,
     "koi8-r", "<meta charset=x-foo><meta charset=koi8-r>\u0430"),  # Cyrillic a
    ("meta utf-16 means utf-8", b"<meta charset=utf-16><p>\xc3\xa9", None, "utf-8",
     "<meta charset=utf-16><p>é"),
    ("meta without charset", b'<meta name="x" content="y"><p>\xc3\xa9', None, "utf-8",
     '<meta name="x" content="y"><p>é'),
    ("header wins over meta", b'<meta charset="koi8-r">\xc3\xa9', "text/html; charset=utf-8",
     "utf-8", '<meta charset="koi8-r">é'),
    ("meta after 4 KiB ignored", PADDING + b'<meta charset="koi8-r">\xc3\xa9', None, "utf-8",
     "<!-- x..."),
    ("meta just inside 4 KiB", b" " * 4000 + b'<meta charset="koi8-r">\xc1', None, "koi8-r",
     " ..."),
    ("xml declaration", b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
     "application/xml", "cp1252", '<?xml version="1.0" encoding="ISO-8859-1"?><a>é</a>'),
    # Unknown or refused names fall through.
    ("unknown header charset", b"caf\xc3\xa9", "text/html; charset=x-foo", "utf-8", "café"),
    ("empty header charset", b"caf\xc3\xa9", "text/html; charset=", "utf-8", "café"),
    ("utf-7 refused", b"+ADw-script+AD4-", "text/html; charset=utf-7", "utf-8",
     "+ADw-script+AD4-"),
    ("base64 is not a text codec", b"aGk=", "text/html; charset=base64", "utf-8", "aGk="),
    ("idna refused", b"abc", "text/html; charset=idna", "utf-8", "abc"),
    # Invalid bytes are replaced, never raised.
    ("invalid utf-8", b"ok \xff\xfe\xc3 end", "text/html; charset=utf-8", "utf-8",
     "ok \ufffd\ufffd\ufffd end"),
    ("invalid default utf-8", b"bad \xff", None, "utf-8", "bad \ufffd"),
    ("invalid gb18030", b"\xd6\xd0\xff", "text/html; charset=gb2312", "gb18030", "中\ufffd"),
    ("odd-length utf-16", codecs.BOM_UTF16_LE + b"h\x00i", None, "utf-16-le", "h\ufffd"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "codec", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CORPUS],
)
def test_decode_body_corpus(
    body: bytes, content_type: str | None, codec: str, expected: str
) -> None:
    text, used = decode_body(body, content_type)
    assert used == codec
    if expected.endswith("..."):
        assert text.startswith(expected[:-3])
    else:
        assert text == expected


def test_bom_is_never_in_the_text() -> None:
    for bom, codec in [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ]:
        text, _ = decode_body(bom + "x".encode(codec), None)
        assert text == "x"


def test_never_raises_on_arbitrary_bytes() -> None:
    import random

    rng = random.Random(1234)
    content_types = [None, "text/html", "text/html; charset=utf-16", "text/html; charset=big5",
                     "text/html; charset=euc-jp", "text/html; charset=utf-32",
                     "text/html; charset=hz"]
    for _ in range(300):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        for content_type in content_types:
            text, codec = decode_body(body, content_type)
            assert isinstance(text, str) and codec


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf8", "utf-8"),
        (" UTF-8 ", "utf-8"),
        ('"utf-8"', "utf-8"),
        ("latin1", "cp1252"),
        ("ISO_8859-1", "cp1252"),
        ("windows-1252", "cp1252"),
        ("gb_2312-80", "gb18030"),
        ("big5", "big5hkscs"),
        ("windows-31j", "cp932"),
        ("x-mac-roman", "mac-roman"),
        ("iso-8859-9", "cp1254"),
        ("tis-620", "cp874"),
        ("utf-7", None),
        ("hz-gb-2312", None),
        ("rot13", None),
        ("undefined", None),
        ("x-foo", None),
        ("", None),
    ],
)
def test_resolve_encoding(label: str, codec: str | None) -> None:
    assert resolve_encoding(label) == codec
