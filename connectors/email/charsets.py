"""Charset decoding for mail: declared names mapped to the codec that really decodes them.

Mail clients routinely declare a charset narrower than the bytes they send (GB2312 for GBK
text, Big5 for HKSCS, ISO-8859-1 for Windows-1252), so each declared name maps to the
superset codec browsers use (WHATWG Encoding Standard), and undecodable bytes fall back to
UTF-8 and then to detection rather than to mojibake.
"""

from __future__ import annotations

import codecs
import re
from email.errors import HeaderParseError
from email.header import decode_header
from functools import lru_cache

from charset_normalizer import from_bytes

# Declared name (lower-case, "_" as "-") -> codecs tried strictly, in order.
_FAMILIES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("gb2312", "gbk", "x-gbk", "euc-cn", "x-euc-cn", "cp936", "ms936", "windows-936",
     "gb-2312-80", "csgb2312", "chinese", "iso-ir-58", "gb18030"): ("gb18030",),
    ("hz-gb-2312", "hz"): ("hz",),
    ("big5", "x-big5", "cn-big5", "csbig5", "cp950", "ms950", "windows-950", "big5-hkscs",
     "big5hkscs"): ("big5hkscs", "cp950"),
    ("ks-c-5601-1987", "ks-c-5601", "ksc5601", "ksc-5601", "euc-kr", "cseuckr", "korean",
     "iso-ir-149", "windows-949", "cp949"): ("cp949",),
    ("shift-jis", "sjis", "x-sjis", "ms-kanji", "csshiftjis", "windows-31j", "cp932"): ("cp932",),
    ("iso-2022-jp", "csiso2022jp"): ("iso2022_jp_2", "iso2022_jp_ext"),
    ("euc-jp", "x-euc-jp"): ("euc_jp", "euc_jis_2004"),
    # WHATWG: these labels mean windows-1252 / -1254 / -874 in practice.
    ("iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819", "csisolatin1",
     "windows-1252", "cp1252"): ("cp1252", "latin-1"),
    ("iso-8859-9", "iso8859-9", "latin5", "windows-1254", "cp1254"): ("cp1254", "iso8859_9"),
    ("tis-620", "iso-8859-11", "windows-874", "cp874"): ("cp874",),
    ("utf-8", "utf8", "unicode-1-1-utf-8", "utf8mb4"): ("utf-8",),
}
_ALIASES = {name: tried for names, tried in _FAMILIES.items() for name in names}
# Labels that say "we do not know": go straight to detection.
_UNKNOWN = frozenset({"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default",
                      "8bit", "binary", "charset", "none", "us-ascii8bit"})
# Python text codecs that are not charsets a sender may pick for us (they rewrite text).
_UNSAFE = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
_DETECT_SAMPLE = 64 * 1024
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 §2.2.3


@lru_cache(maxsize=512)
def codecs_for(declared: str | None) -> tuple[str, ...]:
    """Python codecs to try strictly, in order, for a declared charset; () means detect."""
    if not declared or len(declared) > 64:
        return ()
    # RFC 2231 §5 lets an encoded word carry a language: "utf-8*en".
    name = declared.strip().strip("\"'").lower().split("*", 1)[0].strip().replace("_", "-")
    if name in _ALIASES:
        return _ALIASES[name]
    if not name or name in _UNKNOWN:
        return ()
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return ()
    try:
        b"a".decode(info.name)  # LookupError for bytes-to-bytes codecs such as base64
    except LookupError:
        return ()
    except ValueError:
        pass  # a real text codec that wants more than one byte (UTF-16)
    return () if info.name in _UNSAFE else (info.name,)


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode mail bytes: declared charset strictly, then UTF-8, detection, replacement."""
    tried = codecs_for(declared)
    for codec in tried:
        try:
            return _text(data.decode(codec))
        except ValueError:
            continue
    if data.isascii():
        # RFC 1468 ISO-2022-JP is 7-bit: undeclared, it still announces itself by escapes.
        if b"\x1b$B" in data or b"\x1b$@" in data:
            return decode_bytes(data, "iso-2022-jp")
        return data.decode("ascii")
    try:
        return _text(data.decode("utf-8"))
    except ValueError:
        pass
    detected = _detect(data)
    if detected is not None:
        return detected
    return _text(data.decode(tried[0] if tried else "utf-8", "replace"))


def _detect(data: bytes) -> str | None:
    sample = data[:_DETECT_SAMPLE]
    if len(data) > _DETECT_SAMPLE:
        # Cut at a line end: no CJK multibyte code has "\n" as a trail byte.
        cut = sample.rfind(b"\n")
        sample = sample[:cut] if cut > 0 else sample
    best = from_bytes(sample).best()
    if best is None:
        return None
    tried = codecs_for(best.encoding) or (best.encoding,)
    for codec in tried:
        try:
            return _text(data.decode(codec))
        except (ValueError, LookupError):
            continue
    return _text(data.decode(tried[0], "replace"))


def _text(value: str) -> str:
    return value[1:] if value.startswith("\ufeff") else value


def unescape_8bit(value: str, fallback: str | None = None) -> str:
    """Turn raw 8-bit header bytes, surrogate-escaped by the stdlib parser, back into text."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return _raw_text(_to_bytes(value), fallback)


def decode_header_value(raw: str | bytes, fallback: str | None = None) -> str:
    """Decode a header value: RFC 2047 encoded words and raw 8-bit text.

    ``fallback`` (the body's charset) decodes raw 8-bit text that is not UTF-8.
    """
    # Work on a latin-1 view of the bytes so every unencoded run maps back to its bytes.
    data = raw if isinstance(raw, bytes) else _to_bytes(raw)
    text = _UNFOLD.sub("", data.decode("latin-1")).replace("\r", " ").replace("\n", " ")
    try:
        # Joins adjacent encoded words of one charset before decoding (a multibyte
        # character may be split across them) and drops the space between encoded
        # words (RFC 2047 §6.2).
        chunks = decode_header(text)
    except (HeaderParseError, ValueError):
        chunks = [(text, None)]
    out = []
    for chunk, charset in chunks:
        # Unencoded runs come back as str (no encoded word at all) or latin-1 bytes.
        data = chunk.encode("latin-1") if isinstance(chunk, str) else chunk
        out.append(_raw_text(data, fallback) if charset is None else decode_bytes(data, charset))
    return "".join(out)


def _to_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate the parser did not make
        return value.encode("utf-8", "replace")


def _raw_text(data: bytes, fallback: str | None) -> str:
    # UTF-8 goes before the fallback: valid UTF-8 is rarely anything else, while a GBK
    # decoder accepts most UTF-8 byte pairs as mojibake.
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except ValueError:
        return decode_bytes(data, fallback)
