"""Inbound SMTP (aiosmtpd): accept mail for registered addresses, XADD it, then say 250."""

from __future__ import annotations

import asyncio
import ssl

import structlog
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from core import keys, metrics
from core.bus import Bus
from core.envelope import Envelope
from ticket_service.store.admin import Account
from ticket_service.store.directory import AccountDirectory

log = structlog.get_logger()
CHANNEL = "email"
STREAM = keys.ingest_stream(CHANNEL)


class InboundHandler:
    """aiosmtpd handler hooks; RCPT is checked early so unknown mail is refused in-session."""

    def __init__(self, bus: Bus, accounts: AccountDirectory) -> None:
        self.bus = bus
        self.accounts = accounts

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options):
        try:
            account = await self.accounts.by_address(CHANNEL, address.strip().lower())
        except SQLAlchemyError:
            log.error("smtp.account_lookup_failed", exc_info=True)
            _count("rejected", "lookup_failed")
            return "451 4.3.0 Temporary lookup failure, try again later"
        if account is None:
            log.info("smtp.rejected", reason="unknown_recipient", rcpt=address)
            _count("rejected", "unknown_recipient")
            return f"550 5.1.1 <{address}>: no support mailbox here by that address"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        session.__dict__.setdefault("sb_accounts", []).append(account)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        accounts: list[Account] = session.__dict__.pop("sb_accounts", [])
        raw = envelope.original_content or b""
        # One envelope per tenant: a mail to two of a tenant's mailboxes is one message (it
        # would dedup anyway), but two tenants each get their own copy.
        first: dict[int, Account] = {}
        for account in accounts:
            first.setdefault(account.tenant_id, account)
        meta = {
            "mail_from": envelope.mail_from or "",
            "rcpt_to": ",".join(envelope.rcpt_tos),
            "remote_addr": str((session.peer or ("",))[0]),
            "helo": session.host_name or "",
        }
        items = [
            (STREAM, Envelope(tenant=a.tenant_slug, channel=CHANNEL, account=str(a.id), payload=raw,
                              content_type="message/rfc822", meta=meta))
            for a in first.values()
        ]
        try:
            await self.bus.publish_many(items)
        except (RedisError, OSError):
            log.error("smtp.enqueue_failed", exc_info=True)
            _count("rejected", "queue_unavailable")
            return "451 4.3.0 Queue unavailable, try again later"
        ids = " ".join(env.id for _, env in items)
        log.info("smtp.accepted", envelope_id=ids, size=len(raw))
        _count("accepted", "")
        return f"250 2.0.0 Queued as {ids}"


def _count(outcome: str, reason: str) -> None:
    metrics.INGRESS.labels(CHANNEL, outcome, reason).inc()


TOO_MUCH_DATA = "552 Error: Too much mail data"  # aiosmtpd's own words for DATA over the size


class CountingSMTP(SMTP):
    """aiosmtpd's server with no line length limit short of the message size; counts its refusals.

    RFC 5322 §2.1.1 limits lines to 998 octets for senders, and real mail breaks it (HTML
    mailers writing a whole body on one line). Postfix accepts such lines and so do we: a
    bounce for a long line is a customer's mail lost, and the bytes are kept as sent.
    """

    def __init__(self, handler, *, data_size_limit: int, **kwargs) -> None:
        # aiosmtpd sizes its stream reader with line_length_limit in __init__ and refuses a
        # longer DATA line with 500; any line that fits in the message may be that long
        # (+ CRLF and a stuffed dot, RFC 5321 §4.5.2). Memory stays bounded by the size.
        self.line_length_limit = data_size_limit + len(b".\r\n")
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)

    async def push(self, status: str) -> None:
        if status.startswith("500 Line too long"):
            # Only a line longer than the whole message may be gets here: that is too much data.
            status = TOO_MUCH_DATA
        if status.startswith("552"):
            _count("rejected", "too_large")
        await super().push(status)


async def serve(bus: Bus, accounts: AccountDirectory, host: str, port: int, *, max_size: int,
                hostname: str, tls_context: ssl.SSLContext | None = None,
                require_tls: bool = False) -> asyncio.Server:
    """Listen for SMTP; ``max_size`` is announced in EHLO SIZE and enforced with 552.

    With ``tls_context`` STARTTLS is offered (RFC 3207); ``require_tls`` answers MAIL before
    it with 530, for domains that publish MTA-STS and take no mail in plain text.
    """
    handler = InboundHandler(bus, accounts)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: CountingSMTP(handler, data_size_limit=max_size, enable_SMTPUTF8=True, hostname=hostname,
                     ident="Switchboard ESMTP", tls_context=tls_context, require_starttls=require_tls),
        host=host, port=port,
    )
