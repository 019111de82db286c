"""MIME -> Inbound: one raw RFC 5322 message, as received over SMTP, becomes one Inbound."""

from __future__ import annotations

import re
from datetime import UTC
from email.message import Message
from email.utils import parsedate_to_datetime
from hashlib import sha256

from connectors.email import addresses, feedparser_paths, headers, tnef
from connectors.email.autoreply import classify
from connectors.email.body import MAX_DEPTH, MAX_PARTS, body
from connectors.email.charsets import decode_header_value, unescape_8bit
from connectors.email.message import ParsedMessage, RawPolicy
from connectors.inbound import Inbound, Sender
from core.envelope import Envelope
from core.errors import PermanentError

MAX_NESTING = 100  # boundaries open at once: refused before parsing
MAX_HEADER_FIELDS = 5000
# The stdlib parser tests every line against every open boundary: bound levels x lines.
_WORK_BUDGET = 20_000_000

# Matched against the lower-cased mail (a literal prefix the regex engine finds fast; with
# re.I it tried every octet: 240 µs of a 28 KB mail with an attachment); the names are then
# taken from the raw bytes at the same offsets (lower() of bytes changes ASCII letters only).
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^"\s;]{1,200}))')
_CLOSE = re.compile(rb"^--([^\r\n]{1,200}?)--[ \t]*\r?$", re.M)  # RFC 2046 §5.1.1
_MSGID = re.compile(r"<([^<>]*)>")
_HEADER_MSGID = re.compile(r"^\s*Message-ID:\s*<([^<>\s]{1,998})>", re.I | re.M)
_TICKET = re.compile(r"\[(?:ticket\s*)?#\s*([0-9]{1,12})\]", re.I)
_PLAIN_CHARSETS = frozenset({"us-ascii", "ascii", "utf-8", "utf8"})
_WORD_CHARSET = re.compile(rb"=\?([A-Za-z0-9_.:-]{1,40})(?:\*[A-Za-z-]{1,20})?\?[BbQq]\?")
feedparser_paths.install()


class UnparseableMail(PermanentError):
    """The payload is not an RFC 5322 message at all."""


_POLICY = RawPolicy(message_factory=ParsedMessage)
_EML_POLICY = _POLICY.clone(linesep="\r\n", max_line_length=0)  # RFC 5322 line ends, no refolding


def parse(envelope: Envelope) -> list[Inbound]:
    """Turn one raw RFC 5322 message into exactly one Inbound.

    Over the bench's mail mix (``ops.bench.email.mail_mix(2000)``) this took 401 µs of CPU
    per mail before the quick paths in ``message``, ``addresses``, ``feedparser_paths`` and
    ``headers`` and the nesting check's count, and 306 µs after (``time.process_time``, best
    of 5 runs alternating; other runs: 408 to 321, 378 to 322). Leaf bodies read at once
    (``feedparser_paths``) and parameters looked up by name and shared between mails
    (``message``) then took it from 318 to 274 µs (other pairs 321 to 275, 324 to 281), and
    from 1.84 to 1.41 million instructions per mail (valgrind). Answering plain header lines,
    absent address fields and mails without auto-reply fields without the full work, and
    making an HTML option's text only when it is read, then took it from 304 to 275 µs
    (best of 5, three pairs alternating: 354/314 to 278/280 in the others) and 69,000
    instructions fewer per mail (callgrind, 500 mails less 100).
    """
    raw, meta = envelope.payload, envelope.meta
    msg = read_message(raw)
    hint = _charsets(msg)
    text, html, attachments = body(msg, hint, _EML_POLICY)
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
        irt = list(dict.fromkeys([*_bounced_ids(msg, text), *irt]))
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


def _bounced_ids(msg: Message, text: str) -> list[str]:
    """Message-IDs of the mail a bounce returns: the attached original or its headers
    (RFC 3464 §2, RFC 6522), else the copy Exim and qmail quote in the text."""
    found: list[str] = []
    for part in _leaves(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload()
            if inner and isinstance(inner[0], Message):
                found += _ids(inner[0].get("Message-ID"))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            data = (part.get_payload(decode=True) or b"").decode("latin-1")
            found += _HEADER_MSGID.findall(data)
    return list(dict.fromkeys(found or _HEADER_MSGID.findall(text)))


def _leaves(msg: Message) -> list[Message]:
    """Non-multipart parts (a message/rfc822 is one) in document order, within the caps."""
    leaves: list[Message] = []
    stack, seen = [(msg, 0)], 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(part.get_payload()))
        else:
            leaves.append(part)
    return leaves


def _charsets(msg: Message) -> tuple[str, ...]:
    """The charsets this mail declares, in order: its parts', then its encoded words'.

    Raw 8-bit headers and undeclared parts are usually in one of them (Foxmail, Outlook).
    """
    found: list[str] = []
    stack, seen = [msg], 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        charset = part.get_param("charset")
        if isinstance(charset, str) and charset.strip().lower() not in _PLAIN_CHARSETS:
            found.append(charset.strip().lower())
        if part.is_multipart():
            stack.extend(c for c in reversed(part.get_payload()) if isinstance(c, Message))
    words = _WORD_CHARSET.findall(_raw_headers(msg))
    found += [w.decode("ascii").lower() for w in words]
    return tuple(c for c in dict.fromkeys(found) if c not in _PLAIN_CHARSETS)[:8]


def _raw_headers(msg: Message) -> bytes:
    return "\n".join(f"{k}: {v}" for k, v in msg.raw_items()).encode("utf-8", "surrogateescape")


def read_message(raw: bytes) -> Message:
    """Parse the bytes, refusing what is not a mail or would take unbounded time."""
    if not raw.strip():
        raise UnparseableMail("empty payload")
    _check_nesting(raw)
    raw = headers.repair(raw)
    try:
        msg = feedparser_paths.parse_bytes(raw, _POLICY)
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
    lowered = raw.lower()
    # Each declaration starts with the word, which cannot overlap itself: fewer than two, no
    # nesting. Counting is a fast search; the pattern's was 31 of the 54 µs this took for a
    # mail with a 20 KB attachment (the bench's mail mix: 17 µs per mail on average, now 8).
    if lowered.count(b"boundary") < 2:
        return
    declared = [(m.start(), 1, raw[m.start(1):m.end(1)] if m.start(1) >= 0 else raw[m.start(2):m.end(2)])
                for m in _BOUNDARY.finditer(lowered)]
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


def _addresses(values: list[str], hint: str | None, names: bool = True) -> list[tuple[str, str]]:
    """(lower-case address, display name) pairs; [] for what the stdlib cannot parse.

    ``names=False`` leaves the names "" undecoded, where only the addresses are kept.
    """
    # An absent field (most mails have no Cc, no Reply-To): nothing to parse. Through the
    # stdlib's parser this was half of ``_header_fields``.
    if not values:
        return []
    try:
        pairs = addresses.parse(values)
    except (RecursionError, ValueError, IndexError, TypeError):  # nested comments, junk
        return []
    found = []
    for name, addr in pairs:
        addr = unescape_8bit(addr).strip().lower()  # RFC 6532 allows UTF-8 addresses
        if "@" in addr:
            found.append((addr, _line(decode_header_value(name, hint)) if names and name else ""))
    return found


def _sender(msg: Message, meta: dict[str, str], hint: tuple[str, ...]) -> Sender:
    # A From without an address ("我" <>) is answered at Reply-To (RFC 5322 §3.6.2); the
    # Return-Path is the bounce address, often a list's or a bulk sender's: last.
    for header in ("From", "Reply-To", "Sender"):
        found = _addresses(msg.get_all(header, []), hint)
        if found:
            return Sender(kind="email", value=found[0][0], name=found[0][1])
    for value in (msg.get("Return-Path", ""), meta.get("mail_from", "")):
        found = _addresses([value], hint, names=False)
        if found:
            return Sender(kind="email", value=found[0][0])
    # "From: MAILER-DAEMON (Mail Delivery System)": a local name is still who sent it.
    local = _local_only(msg.get("From", ""))
    return Sender(kind="email", value=local)


def _local_only(value: str) -> str:
    try:
        pairs = addresses.parse([value])
    except (RecursionError, ValueError, IndexError, TypeError):
        return ""
    addr = unescape_8bit(pairs[0][1]).strip().lower() if len(pairs) == 1 else ""
    return addr if addr and " " not in addr and "@" not in addr and addr.isprintable() else ""


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
    end = headers.first_blank_line(raw)
    return raw[:end] if end >= 0 else raw


def _header_fields(msg: Message, meta: dict[str, str], own: str, irt: list[str],
                   refs: list[str], hint: str | None) -> dict[str, object]:
    reply_to = _addresses(msg.get_all("Reply-To", []), hint, names=False)
    return {
        "message_id": own,
        "in_reply_to": irt[0] if irt else "",
        "references": refs,
        "to": [addr for addr, _ in _addresses(msg.get_all("To", []), hint, names=False)],
        "cc": [addr for addr, _ in _addresses(msg.get_all("Cc", []), hint, names=False)],
        "reply_to": reply_to[0][0] if reply_to else "",
        "date": _line(unescape_8bit(msg.get("Date", ""))),
        "mail_from": meta.get("mail_from", ""),
        "rcpt_to": [a.strip().lower() for a in meta.get("rcpt_to", "").split(",") if a.strip()],
    }
