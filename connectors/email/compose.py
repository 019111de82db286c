"""Outgoing -> RFC 5322: an agent's reply as the MIME message the customer receives."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime

from core.outbound import Outgoing

# The form connectors/email/mime.py (_TICKET) reads back from a reply's subject.
_TICKET = re.compile(r"\[(?:ticket\s*)?#\s*([0-9]{1,12})\]", re.I)
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.I)
_MSGID = re.compile(r"<[^<>\s]+>")
_ID_HEADERS = frozenset({"message-id", "in-reply-to", "references"})


class _Policy(EmailPolicy):
    """The SMTP policy, except that Message-ID lists fold only between ids.

    The stdlib turns an id longer than a line into RFC 2047 encoded words, which no mail
    client matches against a Message-ID any more: the customer's answer would lose its thread.
    """

    def fold(self, name, value):
        return self._fold_ids(name, str(value)) if self._is_ids(name, value) else super().fold(name, value)

    def fold_binary(self, name, value):
        if self._is_ids(name, value):
            return self._fold_ids(name, str(value)).encode("ascii")
        return super().fold_binary(name, value)

    @staticmethod
    def _is_ids(name: str, value) -> bool:
        return name.lower() in _ID_HEADERS and str(value).isascii()

    def _fold_ids(self, name: str, value: str) -> str:
        lines, line = [], f"{name}:"
        for ident in value.split():
            if len(line) + 1 + len(ident) > self.max_line_length and line != f"{name}:":
                lines.append(line)
                line = ""
            line += f" {ident}"
        return self.linesep.join([*lines, line]) + self.linesep


# Bodies as 7bit (quoted-printable/base64): a relay without 8BITMIME would otherwise
# re-encode them and break the DKIM body hash (RFC 6376 §5.3).
_WIRE = _Policy(linesep="\r\n", cte_type="7bit")
_WIRE_UTF8 = _WIRE.clone(utf8=True)


def reply_subject(subject: str, ticket_number: int) -> str:
    """``Re: <subject> [#N]``: one ``Re:``, and the number the inbound threading rule reads."""
    subject = " ".join(subject.split())  # a header line holds no CR/LF (RFC 5322 §2.2)
    if not _REPLY_PREFIX.match(subject):
        subject = f"Re: {subject}" if subject else "Re:"
    if ticket_number and not any(int(n) == ticket_number for n in _TICKET.findall(subject)):
        subject = f"{subject} [#{ticket_number}]"
    return subject


def msg_id(value: str) -> str:
    """One Message-ID in angle brackets (RFC 5322 §3.6.4), or "" when there is none."""
    value = value.strip()
    if not value:
        return ""
    return value if _MSGID.fullmatch(value) else f"<{value.strip('<>')}>"


def references(out: Outgoing) -> list[str]:
    """The thread so far, oldest first, ending with the mail we answer (RFC 5322 §3.6.4)."""
    ids = [msg_id(r) for r in (*out.references, out.in_reply_to)]
    return list(dict.fromkeys(i for i in ids if i))


def needs_utf8(out: Outgoing) -> bool:
    """An address with non-ASCII characters can only travel as SMTPUTF8 (RFC 6531)."""
    return not (out.to + out.account_address + out.reply_to).isascii()


def address(name: str, addr: str) -> Address:
    """A mailbox header value; ValueError when ``addr`` is not one address."""
    if addr.isascii():
        return Address(display_name=name, addr_spec=addr)
    # The stdlib's parser refuses a UTF-8 local part even where RFC 6532 §3.2 allows it.
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain) or any(c in addr for c in ' <>,;"\r\n'):
        raise ValueError(f"not a mailbox: {addr!r}")
    return Address(display_name=name, username=local, domain=domain)


def build(out: Outgoing, from_name: str) -> EmailMessage:
    """The reply as a message; ValueError when an address cannot be written as a header."""
    msg = EmailMessage(policy=_WIRE)
    msg["From"] = address(from_name, out.account_address)
    msg["To"] = address(out.to_name, out.to)
    if out.reply_to:
        msg["Reply-To"] = address("", out.reply_to)
    msg["Subject"] = reply_subject(out.subject, out.ticket_number)
    msg["Date"] = format_datetime(datetime.now(UTC))
    # The idempotency handle: every retry of this reply carries the same Message-ID.
    msg["Message-ID"] = msg_id(out.handle)
    if out.in_reply_to:
        msg["In-Reply-To"] = msg_id(out.in_reply_to)
    refs = references(out)
    if refs:
        msg["References"] = " ".join(refs)
    msg["X-Switchboard-Ticket"] = str(out.ticket_number)
    # No Auto-Submitted: a person wrote this (RFC 3834 §5 is for machine-made mail).
    msg.set_content(out.text or "")
    if out.html:
        msg.add_alternative(out.html, subtype="html")
    for file in out.attachments:
        maintype, _, subtype = file.content_type.partition("/")
        if not (maintype and subtype) or maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(file.data, maintype=maintype, subtype=subtype, filename=file.filename or "attachment")
    return msg


def serialize(msg: EmailMessage, utf8: bool) -> bytes:
    """Wire bytes, CRLF line ends; RFC 2047 words unless the relay is to get SMTPUTF8."""
    return msg.as_bytes(policy=_WIRE_UTF8 if utf8 else _WIRE)
