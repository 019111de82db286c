"""One MIME part's bytes and, for a file, its name: leniently, as mail clients show them."""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from email.message import Message
from email.policy import Policy
from mimetypes import MimeTypes

from connectors.email.charsets import decode_bytes, decode_header_value, unescape_8bit
from connectors.inbound import Attachment

_TYPES = MimeTypes()  # the built-in table only, so default names do not depend on the host
# RFC 3464 / RFC 8098 / RFC 6522 report parts are text a person reads; the table has none.
_REPORT_PARTS = frozenset({"message/delivery-status", "message/disposition-notification",
                           "text/rfc822-headers", "message/rfc822-headers",
                           "message/global-delivery-status", "message/global-headers"})
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_FILE_LIKE = re.compile(r"^[\w .()-]{1,100}\.[A-Za-z0-9]{2,5}$")


def payload(part: Message) -> bytes:
    """The decoded content; a broken transfer encoding is decoded as far as it goes."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    raw = part.get_payload(decode=False)
    if not isinstance(raw, str):
        return b""
    if cte == "base64":
        return _base64(raw)
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue") and not _has_begin(raw):
        return _uu_lines(raw)
    return part.get_payload(decode=True) or b""


def _base64(text: str) -> bytes:
    raw = text.encode("ascii", "ignore")
    try:
        return binascii.a2b_base64(raw)  # RFC 2045 §6.8: non-alphabet characters are ignored
    except binascii.Error:
        pass
    # A length that is not a multiple of four is a cut-off tail: decode the whole bytes.
    data = _B64_JUNK.sub(b"", raw.split(b"=", 1)[0])
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return b""


def _has_begin(text: str) -> bool:
    return any(line.startswith("begin ") for line in text.splitlines()[:20])


def _uu_lines(text: str) -> bytes:
    """uuencoded lines without the ``begin`` line some Mac mailers leave out."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.strip() == "end":
            continue
        try:
            out.append(binascii.a2b_uu(line.encode("ascii", "ignore")))
        except binascii.Error:
            continue
    return b"".join(out)


def attachment(part: Message, n: int, hints: Sequence[str], policy: Policy) -> Attachment:
    """A file the sender attached (or a part no body can show), named as the sender named it."""
    ctype = part.get_content_type()
    data = message_bytes(part, policy) if part.is_multipart() else payload(part)
    name = safe_name(filename(part, hints) or _eml_name(part, hints))
    cid = own_cid(part)
    if not name:
        name = _default_name(ctype, cid, n)
    # RFC 2392: a part with a Content-ID is shown where the HTML points at it.
    inline = cid is not None and part.get_content_disposition() != "attachment"
    return Attachment(filename=name, content_type=ctype, data=data, content_id=cid, inline=inline)


def own_cid(part: Message) -> str | None:
    value = "".join(unescape_8bit(str(part.get("Content-ID", ""))).split()).strip("<>")
    return value or None


def _default_name(ctype: str, cid: str | None, n: int) -> str:
    if ctype in _REPORT_PARTS:
        return ctype.split("/", 1)[1] + ".txt"  # delivery-status.txt
    # Outlook names inline images only in the Content-ID: <image001.jpg@01CDB132.D8A510F0>.
    local = safe_name(cid.split("@", 1)[0]) if cid else ""
    if _FILE_LIKE.match(local):
        return local
    return f"attachment-{n}{_TYPES.guess_extension(ctype) or '.bin'}"


def filename(part: Message, hints: Sequence[str]) -> str:
    """The sender's file name: RFC 2231 first (RFC 6266 §4.3), then RFC 2047 or raw 8-bit."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        values = [v for k, v in part.get_params([], header=header)[1:] if k.strip().lower() == param]
        extended = next((v for v in values if isinstance(v, tuple)), None)
        if extended is not None:
            # (charset, language, %-decoded text as latin-1), continuations already joined.
            charset, _, text = extended
            return decode_bytes(text.encode("latin-1", "surrogateescape"), charset, hints)
        if values:
            # Outlook and Foxmail put RFC 2047 words inside the quotes, against RFC 2047 §5.
            return decode_header_value(values[0], hints)
    return ""


def _eml_name(part: Message, hints: Sequence[str]) -> str:
    inner = part.get_payload() if part.get_content_type() == "message/rfc822" else None
    if not isinstance(inner, list) or not inner or not isinstance(inner[0], Message):
        return ""
    subject = " ".join(decode_header_value(inner[0].get("Subject", ""), hints).split())
    subject = subject.replace("\x00", "")
    return subject.replace("/", "_").replace("\\", "_")[:200] + ".eml" if subject else ""


def safe_name(name: str) -> str:
    """The last path component, printable only: senders do send ../../etc/passwd."""
    name = "".join(ch for ch in name if ch.isprintable())
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if name in (".", "..") else name[:255]


def message_bytes(part: Message, policy: Policy) -> bytes:
    """A message/* part's content, regenerated: the stdlib keeps no byte offsets."""
    try:
        return b"".join(m.as_bytes(policy=policy)
                        for m in part.get_payload() if isinstance(m, Message))
    except (RecursionError, ValueError, TypeError, LookupError):
        return b""
