"""MIME -> Inbound: one raw RFC 5322 message, as received over SMTP, becomes one Inbound."""

from __future__ import annotations

import re
from datetime import UTC
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from hashlib import sha256
from html import unescape
from mimetypes import MimeTypes

import nh3

from connectors.email import tnef
from connectors.email.autoreply import classify
from connectors.email.charsets import decode_bytes, decode_header_value, unescape_8bit
from connectors.inbound import Attachment, Inbound, Sender
from core.envelope import Envelope
from core.errors import PermanentError

MAX_DEPTH = 50  # multipart levels walked; deeper parts are ignored
MAX_PARTS = 1000  # parts walked; later parts are ignored
MAX_NESTING = 100  # boundaries open at once: refused before parsing
MAX_HEADER_FIELDS = 5000
MAX_HEADER_CHARS = 16 * 1024
# The stdlib splits parameters in time quadratic in their number: cut those headers shorter.
MAX_PARAM_HEADER_CHARS = 8 * 1024
MAX_PARAMS = 64
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
# The stdlib parser tests every line against every open boundary: bound levels x lines.
_WORK_BUDGET = 20_000_000

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^"\s;]{1,200}))', re.I)
_CLOSE = re.compile(rb"^--([^\r\n]{1,200}?)--[ \t]*\r?$", re.M)  # RFC 2046 §5.1.1
_MSGID = re.compile(r"<([^<>]*)>")
_HEADER_MSGID = re.compile(r"^\s*Message-ID:\s*<([^<>\s]{1,998})>", re.I | re.M)
_TICKET = re.compile(r"\[(?:ticket\s*)?#\s*([0-9]{1,12})\]", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([\w.:-]{1,40})", re.I)
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "hr", "pre", "table", "ul", "ol", "blockquote",
               "h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_TAG = re.compile(rf"</?(?:{'|'.join(_BLOCK_TAGS)})>")  # nh3 output: no attributes
_SPACES = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_DROP_CONTENT = {"script", "style", "title"}
_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}  # RFC 2392: <img src="cid:..."> inline parts
_TYPES = MimeTypes()  # the built-in table only, so default names do not depend on the host
_PLAIN_CHARSETS = frozenset({"us-ascii", "ascii", "utf-8", "utf8"})


class UnparseableMail(PermanentError):
    """The payload is not an RFC 5322 message at all."""


class _Message(Message):
    """A Message whose malformed parameters read as absent instead of raising.

    The stdlib raises TypeError for ``name=a; name*0=b`` and ValueError for a 5,000-digit
    continuation number.
    """

    def get_params(self, failobj=None, header="content-type", unquote=True):
        try:
            return super().get_params(failobj, header, unquote)
        except (TypeError, ValueError):
            return failobj

    def get_param(self, param, failobj=None, header="content-type", unquote=True):
        try:
            return super().get_param(param, failobj, header, unquote)
        except (TypeError, ValueError):
            return failobj


class _RawPolicy(type(compat32)):
    """compat32, but header values come back raw (8-bit stays surrogate-escaped) and capped."""

    def header_fetch_parse(self, name, value):
        if not isinstance(value, str):
            return value
        if name.lower() not in _PARAM_HEADERS:
            return value[:MAX_HEADER_CHARS]
        kept = value[:MAX_PARAM_HEADER_CHARS].split(";", MAX_PARAMS + 1)[: MAX_PARAMS + 1]
        return ";".join(kept)


_POLICY = _RawPolicy(message_factory=_Message)
_EML_POLICY = _POLICY.clone(linesep="\r\n", max_line_length=0)  # RFC 5322 line ends, no refolding


def parse(envelope: Envelope) -> list[Inbound]:
    """Turn one raw RFC 5322 message into exactly one Inbound."""
    raw, meta = envelope.payload, envelope.meta
    msg = read_message(raw)
    leaves = _leaves(msg)
    hint = _charset_hint(leaves)
    text, html, attachments = _body(leaves, hint)
    attachments, tnef_text = tnef.expand(attachments)
    text = text or tnef_text
    own = _own_id(msg.get("Message-ID"))
    dedup_key = own or "hdr:" + sha256(_header_block(raw)).hexdigest()
    irt, refs = _ids(_raw_header(msg, "in-reply-to")), _ids(_raw_header(msg, "references"))
    if len(refs) > 101:
        refs = refs[:1] + refs[-100:]  # the root and the nearest ancestors
    sender = _sender(msg, meta, hint)
    subject = _line(decode_header_value(msg.get("Subject", ""), hint))
    return_path = meta["mail_from"] if "mail_from" in meta else msg.get("Return-Path")
    ticket = _TICKET.search(subject)
    auto = classify(msg, sender.value, return_path)
    if auto.kind == "bounce":
        # The bounced original's id leads the refs, so the bounce lands on its ticket.
        irt = list(dict.fromkeys([*_bounced_ids(leaves, text), *irt]))
    return [Inbound(
        dedup_key=dedup_key, sender=sender, subject=subject, text=text, html=html,
        attachments=attachments, sent_at=_sent_at(msg.get("Date")), own_key=own,
        # The parent first, then older ancestors (RFC 5322 §3.6.4 orders References).
        thread_refs=[i for i in dict.fromkeys(irt + refs[::-1]) if i != own],
        thread_root=refs[0] if refs else irt[0] if irt else dedup_key,
        ticket_number=int(ticket.group(1)) if ticket else None,
        auto_reason=auto.reason, auto_kind=auto.kind,
        headers=_header_fields(msg, meta, own, irt, refs, hint) | ({"bounce": auto.bounce} if auto.bounce else {}),
    )]


def _bounced_ids(leaves: list[tuple[Message, int]], text: str) -> list[str]:
    """Message-IDs of the mail a bounce returns: the attached original or its headers
    (RFC 3464 §2, RFC 6522), else the copy Exim and qmail quote in the text."""
    found: list[str] = []
    for part, _ in leaves:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload()
            if inner and isinstance(inner[0], Message):
                found += _ids(inner[0].get("Message-ID"))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            data = (part.get_payload(decode=True) or b"").decode("latin-1")
            found += _HEADER_MSGID.findall(data)
    return list(dict.fromkeys(found or _HEADER_MSGID.findall(text)))


def read_message(raw: bytes) -> Message:
    """Parse the bytes, refusing what is not a mail or would take unbounded time."""
    if not raw.strip():
        raise UnparseableMail("empty payload")
    _check_nesting(raw)
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(raw)
    except RecursionError:
        raise UnparseableMail("MIME structure nested too deeply") from None
    except (ValueError, TypeError, LookupError, IndexError) as exc:
        raise UnparseableMail(f"mail parser failed: {type(exc).__name__}: {exc}") from exc
    if len(msg) > MAX_HEADER_FIELDS:
        raise UnparseableMail(f"more than {MAX_HEADER_FIELDS} header fields")
    if not any(name.strip() for name in msg.keys()):
        raise UnparseableMail("no header fields: not a mail")
    if msg.get("From") is None and msg.get("Message-ID") is None and not _has_body(msg):
        raise UnparseableMail("no From, no Message-ID and no body")
    return msg


def _check_nesting(raw: bytes) -> None:
    declared = [(m.start(), 1, m.group(1) or m.group(2)) for m in _BOUNDARY.finditer(raw)]
    if len(declared) < 2:
        return
    closed = [(m.start(), -1, m.group(1)) for m in _CLOSE.finditer(raw)]
    active: set[bytes] = set()
    deepest = 0
    for _, step, name in sorted(declared + closed):
        if step > 0:
            active.add(name)
            deepest = max(deepest, len(active))
        else:
            active.discard(name)
    if deepest > MAX_NESTING or deepest * raw.count(b"\n") > _WORK_BUDGET:
        raise UnparseableMail(f"MIME structure too deep: {deepest} multiparts open at once")


def _has_body(msg: Message) -> bool:
    payload = msg.get_payload()
    return bool(payload) if isinstance(payload, list) else bool(str(payload or "").strip())


def _leaves(msg: Message) -> list[tuple[Message, int]]:
    """Leaf parts in document order, each with its nearest multipart/alternative (or -1)."""
    leaves: list[tuple[Message, int]] = []
    stack, seen = [(msg, 0, -1)], 0
    while stack and seen < MAX_PARTS:
        part, depth, group = stack.pop()
        seen += 1
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            if depth < MAX_DEPTH:
                group = seen if part.get_content_subtype() == "alternative" else group
                stack.extend((child, depth + 1, group) for child in reversed(part.get_payload()))
        else:
            leaves.append((part, group))
    return leaves


def _charset_hint(leaves: list[tuple[Message, int]]) -> str | None:
    """The first declared body charset: raw 8-bit headers are usually in it (Foxmail)."""
    for part, _ in leaves:
        charset = part.get_content_charset()
        if charset and charset not in _PLAIN_CHARSETS:
            return charset
    return None


def _body(leaves: list[tuple[Message, int]], hint: str | None) -> tuple[str, str, list[Attachment]]:
    """Text, sanitized HTML and attachments; one text and one HTML per alternative."""
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    taken: set[tuple[int, str]] = set()
    for part, group in leaves:
        kind = _body_kind(part)
        if not kind:
            attachments.append(_attachment(part, len(attachments) + 1, hint))
        elif group < 0 or (group, kind) not in taken:
            taken.add((group, kind))
            (htmls if kind == "html" else texts).append(_part_text(part, kind == "html"))
    text = "\n\n".join(t.strip() for t in texts if t.strip())
    html = "\n".join(htmls)
    if not text and html:
        text = html_to_text(html)
    clean = nh3.clean(html, clean_content_tags=_DROP_CONTENT, url_schemes=_URL_SCHEMES)
    return text, clean.strip(), attachments


def _body_kind(part: Message) -> str:
    """"plain" or "html" for a body part, "" for an attachment."""
    if (part.get_content_disposition() == "attachment"
            or part.get_param("filename", None, "content-disposition") is not None
            or part.get_param("name", None, "content-type") is not None):
        return ""
    ctype = part.get_content_type()
    if ctype == "text/html":
        return "html"
    # A multipart without a usable boundary cannot be split: show it as text.
    return "plain" if ctype == "text/plain" or ctype.startswith("multipart/") else ""


def _part_text(part: Message, html: bool) -> str:
    data = part.get_payload(decode=True) or b""
    charset = part.get_content_charset()
    if charset is None and html:
        found = _META_CHARSET.search(data[:4096])
        charset = found.group(1).decode("ascii") if found else None
    text = decode_bytes(data, charset)
    # NUL is legal in 8-bit MIME but not in a PostgreSQL text column.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def html_to_text(html: str) -> str:
    """Readable text from HTML: block tags become line breaks, all other markup is dropped."""
    bare = nh3.clean(html, tags=_BLOCK_TAGS, clean_content_tags=_DROP_CONTENT, attributes={},
                     link_rel=None)
    text = unescape(_BLOCK_TAG.sub("\n", _SPACES.sub(" ", bare))).replace("\xa0", " ")
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()


def _attachment(part: Message, n: int, hint: str | None) -> Attachment:
    ctype = part.get_content_type()
    data = _message_bytes(part) if part.is_multipart() else part.get_payload(decode=True) or b""
    name = _safe_name(_filename(part, hint) or _eml_name(part, hint))
    if not name:
        name = f"attachment-{n}{_TYPES.guess_extension(ctype) or '.bin'}"
    cid = _own_id(part.get("Content-ID")) or None
    # RFC 2392: a part with a Content-ID is shown where the HTML points at it.
    inline = cid is not None and part.get_content_disposition() != "attachment"
    return Attachment(filename=name, content_type=ctype, data=data, content_id=cid, inline=inline)


def _filename(part: Message, hint: str | None) -> str:
    """The sender's file name: RFC 2231 first (RFC 6266 §4.3), then RFC 2047 or raw 8-bit."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        values = [v for k, v in part.get_params([], header=header)[1:] if k.strip().lower() == param]
        extended = next((v for v in values if isinstance(v, tuple)), None)
        if extended is not None:
            # (charset, language, %-decoded text as latin-1), continuations already joined.
            charset, _, text = extended
            return decode_bytes(text.encode("latin-1", "surrogateescape"), charset or hint)
        if values:
            # Outlook and Foxmail put RFC 2047 words inside the quotes, against RFC 2047 §5.
            return decode_header_value(values[0], hint)
    return ""


def _eml_name(part: Message, hint: str | None) -> str:
    payload = part.get_payload() if part.get_content_type() == "message/rfc822" else None
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], Message):
        return ""
    subject = _line(decode_header_value(payload[0].get("Subject", ""), hint))
    return subject.replace("/", "_").replace("\\", "_")[:200] + ".eml" if subject else ""


def _safe_name(name: str) -> str:
    """The last path component, printable only: senders do send ../../etc/passwd."""
    name = "".join(ch for ch in name if ch.isprintable())
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if name in (".", "..") else name[:255]


def _message_bytes(part: Message) -> bytes:
    """A message/* part's content, regenerated: the stdlib keeps no byte offsets."""
    try:
        return b"".join(m.as_bytes(policy=_EML_POLICY)
                        for m in part.get_payload() if isinstance(m, Message))
    except (RecursionError, ValueError, TypeError, LookupError):
        return b""


def _addresses(values: list[str], hint: str | None) -> list[tuple[str, str]]:
    """(lower-case address, display name) pairs; [] for what the stdlib cannot parse."""
    try:
        pairs = getaddresses(values)
    except (RecursionError, ValueError, IndexError, TypeError):  # nested comments, junk
        return []
    found = []
    for name, addr in pairs:
        addr = unescape_8bit(addr).strip().lower()  # RFC 6532 allows UTF-8 addresses
        if "@" in addr:
            found.append((addr, _line(decode_header_value(name, hint))))
    return found


def _sender(msg: Message, meta: dict[str, str], hint: str | None) -> Sender:
    for header in ("From", "Sender"):
        found = _addresses(msg.get_all(header, []), hint)
        if found:
            return Sender(kind="email", value=found[0][0], name=found[0][1])
    for value in (msg.get("Return-Path", ""), meta.get("mail_from", "")):
        found = _addresses([value], hint)
        if found:
            return Sender(kind="email", value=found[0][0])
    return Sender(kind="email", value="")


def _raw_header(msg: Message, name: str) -> str | None:
    # Uncapped: a long thread's References ends with the ids that matter most.
    return next((v for k, v in msg.raw_items() if k.lower() == name), None)


def _ids(value: str | None) -> list[str]:
    """Message ids in a header without their <> (RFC 5322 §3.6.4); case is kept."""
    if not value:
        return []
    found = _MSGID.findall(value) or [t for t in value.split() if "@" in t]
    ids = ("".join(unescape_8bit(i).split()).strip("<>") for i in found)
    return [i for i in ids if i]


def _own_id(value: str | None) -> str:
    ids = _ids(value)
    return ids[0] if ids else "".join(unescape_8bit(value or "").split()).strip("<>")


def _sent_at(value: str | None) -> int | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(unescape_8bit(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 5322 §3.3: "-0000" is UTC with the local zone unknown
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _line(value: str) -> str:
    return " ".join(value.replace("\x00", "").split())


def _header_block(raw: bytes) -> bytes:
    """Everything before the first blank line (RFC 5322 §2.1)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[: min(ends)] if ends else raw


def _header_fields(msg: Message, meta: dict[str, str], own: str, irt: list[str],
                   refs: list[str], hint: str | None) -> dict[str, object]:
    reply_to = _addresses(msg.get_all("Reply-To", []), hint)
    return {
        "message_id": own,
        "in_reply_to": irt[0] if irt else "",
        "references": refs,
        "to": [addr for addr, _ in _addresses(msg.get_all("To", []), hint)],
        "cc": [addr for addr, _ in _addresses(msg.get_all("Cc", []), hint)],
        "reply_to": reply_to[0][0] if reply_to else "",
        "date": _line(unescape_8bit(msg.get("Date", ""))),
        "mail_from": meta.get("mail_from", ""),
        "rcpt_to": [a.strip().lower() for a in meta.get("rcpt_to", "").split(",") if a.strip()],
    }
