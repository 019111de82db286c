"""Generated mail for the MIME parser: every input parses or is refused as unparseable, fast.

``make test`` runs a few hundred inputs per property; ``make fuzz`` sets FUZZ_EXAMPLES high.
"""

from __future__ import annotations

from dataclasses import asdict

import msgpack
from fuzzing import FUZZ, bounded
from hypothesis import given
from hypothesis import strategies as st

from connectors.email import UnparseableMail, parse
from connectors.inbound import Inbound
from core.envelope import Envelope

CHARSETS = ["utf-8", "gb2312", "gbk", "gb18030", "big5", "iso-2022-jp", "koi8-r", "windows-1251",
            "windows-1252", "iso-8859-1", "shift_jis", "euc-kr", "utf-7", "x-unknown", "", "utf-16"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus", ""]
TYPES = ["text/plain", "text/html", "application/pdf", "image/png", "message/rfc822",
         "message/delivery-status", "application/ms-tnef", "text/calendar", "x/y", "garbage"]
HEADER_NAMES = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
                "Auto-Submitted", "Precedence", "Content-Disposition", "Return-Path", "Sender",
                "X-Autoreply", "Reply-To", "X-Failed-Recipients", "Content-ID"]

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_raw = st.binary(max_size=200)


@st.composite
def header_value(draw) -> bytes:
    kind = draw(st.sampled_from(["text", "raw", "encoded", "address", "msgid", "params"]))
    if kind == "text":
        return draw(_text).encode("utf-8", "surrogateescape")
    if kind == "raw":
        return draw(_raw).replace(b"\r", b"").replace(b"\n", b"")
    if kind == "encoded":
        cs = draw(st.sampled_from(CHARSETS)).encode()
        enc = draw(st.sampled_from([b"B", b"Q", b"X"]))
        return b"=?" + cs + b"?" + enc + b"?" + draw(_raw).replace(b"?", b"").replace(b"\n", b"")[:40] + b"?="
    if kind == "address":
        name = draw(_text).replace("\n", " ")
        local = draw(st.from_regex(r"[a-zA-Z0-9._+-]{0,20}", fullmatch=True))
        return f'"{name}" <{local}@{draw(st.sampled_from(["example.cn", "", "x", "[1.2.3.4]"]))}>'.encode(
            "utf-8", "surrogateescape")
    if kind == "msgid":
        return b" ".join(b"<" + draw(_raw).replace(b"\n", b"").replace(b">", b"")[:30] + b">"
                         for _ in range(draw(st.integers(0, 5))))
    params = b"".join(
        b"; " + draw(st.sampled_from([b"name", b"filename", b"filename*", b"name*0", b"name*1*", b"charset",
                                      b"boundary", b"x"]))
        + b"=" + draw(_raw).replace(b"\n", b"")[:40]
        for _ in range(draw(st.integers(0, 6)))
    )
    return draw(st.sampled_from([b"attachment", b"inline", b"text/plain", b"multipart/mixed"])) + params


@st.composite
def body(draw, depth: int) -> tuple[list[bytes], bytes]:
    """(content headers, body) of one part, maybe multipart with nested parts."""
    ctype = draw(st.sampled_from(TYPES + (["multipart/mixed", "multipart/alternative"] if depth < 4 else [])))
    headers = [b"Content-Type: " + ctype.encode()]
    if ctype.startswith("multipart/"):
        boundary = draw(st.sampled_from([b"b", b"==x==", b"", b"b" * 80])) + str(depth).encode()
        headers[0] += b'; boundary="' + boundary + b'"'
        parts = draw(st.lists(body(depth + 1), max_size=4))
        chunks = [b"--" + boundary + b"\r\n" + b"\r\n".join(h) + b"\r\n\r\n" + b for h, b in parts]
        closing = draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"", b"--" + boundary + b"\r\n"]))
        return headers, b"preamble\r\n" + b"\r\n".join(chunks) + b"\r\n" + closing
    charset = draw(st.sampled_from(CHARSETS))
    if charset:
        headers[0] += b"; charset=" + charset.encode()
    cte = draw(st.sampled_from(ENCODINGS))
    if cte:
        headers.append(b"Content-Transfer-Encoding: " + cte.encode())
    if draw(st.booleans()):
        headers.append(b"Content-Disposition: " + draw(header_value()))
    payload = draw(st.one_of(_raw, _text.map(lambda t: t.encode("utf-8", "surrogateescape")),
                             st.sampled_from([b"<html><body><script>x</script><p>hi</p>", "你好".encode("gbk")])))
    return headers, payload


@st.composite
def mail(draw) -> bytes:
    headers = [draw(st.sampled_from(HEADER_NAMES)).encode() + b": " + draw(header_value())
               for _ in range(draw(st.integers(0, 12)))]
    content_headers, payload = draw(body(0))
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    return newline.join(headers + content_headers) + newline + newline + payload.replace(b"\r\n", newline)


def _check(raw: bytes) -> None:
    with bounded(f"{len(raw)} bytes"):
        try:
            result = parse(Envelope(tenant="t", channel="email", account="1", payload=raw))
        except UnparseableMail as exc:
            assert str(exc), "a refusal names its reason"
            return
    assert result and all(isinstance(i, Inbound) for i in result)
    for inbound in result:
        assert inbound.dedup_key and isinstance(inbound.text, str) and isinstance(inbound.subject, str)
        assert "<script" not in inbound.html.lower()
        msgpack.packb(asdict(inbound), use_bin_type=True)  # what the normalizer publishes


@FUZZ
@given(mail())
def test_structured_mail_parses_or_is_refused(raw):
    _check(raw)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_are_refused(raw):
    _check(raw)


def test_bombs_are_bounded():
    # Deep nesting, ten thousand parts, a huge header, and a base64 "zip bomb"-like body.
    nested = b"".join(b'Content-Type: multipart/mixed; boundary="%d"\r\n\r\n--%d\r\n' % (i, i) for i in range(5000))
    many = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + b"--p\r\n\r\nx\r\n" * 10_000 + b"--p--\r\n"
    huge_header = b"Subject: " + b"A" * 2_000_000 + b"\r\n\r\nbody"
    zeros = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + (
        b"AAAA" * 19 + b"\r\n") * 200_000
    for raw in (nested, many, huge_header, zeros):
        _check(raw)
