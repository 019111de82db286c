"""Inbound SMTP (aiosmtpd): accept mail for registered addresses, XADD it, then say 250."""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from dataclasses import dataclass

import structlog
from aiosmtpd.smtp import MISSING, SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from sqlalchemy.exc import SQLAlchemyError

from connectors.email.smtp_data import TooMuchData, read_data
from core import keys, metrics
from core.accounts import Account, Accounts
from core.bus import Bus
from core.connections import PER_IP, ConnectionLimits
from core.envelope import Envelope
from core.redis import REDIS_ERRORS

log = structlog.get_logger()
CHANNEL = "email"
STREAM = keys.ingest_stream(CHANNEL)


# C0, DEL and C1 controls (NUL among them): never stored from an SMTP command.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# RFC 5321 §4.1.2 Path in its everyday form: <dot-atom@dot-atom>, ASCII, no quotes, comments,
# source routes or address literals. Anything else goes to aiosmtpd's full parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+|$)")


def _printable(text: str) -> str:
    """Command text as it may be stored or echoed: controls dropped; bytes that were not UTF-8
    (aiosmtpd keeps them as surrogates) become U+FFFD instead of failing the stream write."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROLS.sub("", text)


@dataclass(frozen=True)
class SessionLimits:
    """What one SMTP listener allows a client (the settings ``smtp_*`` and ``max_connections``)."""

    idle_timeout_s: float = 300.0
    max_recipients: int = 100
    max_unknown_recipients: int = 20
    max_connections_per_ip: int = 50
    max_connections: int = 1000


def _without_detail(address: str) -> str:
    """``help+detail@acme.test`` -> ``help@acme.test`` (RFC 5233 subaddress, "+" separator)."""
    local, at, domain = address.rpartition("@")
    return f"{local.partition('+')[0]}{at}{domain}" if at and local.partition("+")[0] else address


class InboundHandler:
    """aiosmtpd handler hooks; RCPT is checked early so unknown mail is refused in-session."""

    def __init__(self, bus: Bus, accounts: Accounts, limits: SessionLimits = SessionLimits()) -> None:
        self.bus = bus
        self.accounts = accounts
        self.limits = limits

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options):
        key = address.strip().lower()
        if any(known.strip().lower() == key for known in envelope.rcpt_tos):
            return "250 2.1.5 OK"  # a repeated recipient counts once
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
            _count("rejected", "too_many_recipients")
            return "452 4.5.3 Too many recipients"
        try:
            account = await self.accounts.by_address(CHANNEL, key)
            if account is None and key != (base := _without_detail(key)):
                # Our replies' Reply-To is help+<signed token>@…: the mailbox itself receives it.
                account = await self.accounts.by_address(CHANNEL, base)
        except SQLAlchemyError:
            log.error("smtp.account_lookup_failed", exc_info=True)
            _count("rejected", "lookup_failed")
            return "451 4.3.0 Temporary lookup failure, try again later"
        if account is None:
            return self._unknown(session, address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        # Kept on the transaction's envelope, which RSET and a new MAIL replace.
        envelope.__dict__.setdefault("sb_accounts", []).append((account, address))
        return "250 2.1.5 OK"

    def _unknown(self, session: Session, address: str) -> str:
        log.info("smtp.rejected", reason="unknown_recipient", rcpt=address)
        _count("rejected", "unknown_recipient")
        unknown = session.__dict__["sb_unknown"] = session.__dict__.get("sb_unknown", 0) + 1
        if unknown >= self.limits.max_unknown_recipients:
            # Guessing addresses (directory harvest): the session ends here (CountingSMTP closes it).
            session.__dict__["sb_hang_up"] = True
            return "421 4.7.0 Too many unknown recipients, closing connection"
        return f"550 5.1.1 <{_printable(address)}>: no support mailbox here by that address"

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """EHLO's lines as aiosmtpd makes them, with PIPELINING (RFC 2920) before the last."""
        session.host_name = hostname  # what aiosmtpd does itself when no handler answers EHLO
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        accounts: list[tuple[Account, str]] = envelope.__dict__.pop("sb_accounts", [])
        raw = envelope.original_content or b""
        # One envelope per tenant: a mail to two of a tenant's mailboxes is one message (it
        # would dedup anyway), but two tenants each get their own copy, naming only their own
        # recipients (a tenant never learns which other businesses got the mail).
        tenants: dict[int, tuple[Account, list[str]]] = {}
        for account, address in accounts:
            tenants.setdefault(account.tenant_id, (account, []))[1].append(address)
        meta = {
            "mail_from": _printable(envelope.mail_from or ""),
            "remote_addr": str((session.peer or ("",))[0]),
            "helo": _printable(session.host_name or ""),
        }
        items = [
            (STREAM, Envelope(tenant=a.tenant_slug, channel=CHANNEL, account=str(a.id), payload=raw,
                              content_type="message/rfc822", meta={**meta, "rcpt_to": ",".join(rcpts)}))
            for a, rcpts in tenants.values()
        ]
        try:
            await self.bus.publish_many(items)
        except (*REDIS_ERRORS, OSError):
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

# RFC 5321 §3.8 and RFC 3463: 421 closes the session; 4.7.0 is a policy refusal, 4.3.2 a
# system not accepting network messages.
TOO_MANY = {
    PER_IP: b"421 4.7.0 Too many connections from your address\r\n",
    "total": b"421 4.3.2 Too many connections, try again later\r\n",
}


class CountingSMTP(SMTP):
    """aiosmtpd's server with no line length limit short of the message size; counts its refusals.

    RFC 5322 §2.1.1 limits lines to 998 octets for senders, and real mail breaks it (HTML
    mailers writing a whole body on one line). Postfix accepts such lines and so do we: a
    bounce for a long line is a customer's mail lost, and the bytes are kept as sent.

    It also admits each connection against the listener's caps, hangs up a session its
    handler has ended with 421, and reads DATA in bulk (``smtp_data.read_data``).

    PIPELINING (RFC 2920, offered in EHLO by ``InboundHandler.handle_EHLO``): a client may
    send MAIL, RCPT and DATA in one go. The 250s to MAIL and RCPT are held while the next
    command is already in the buffer, and go out with the next reply in one write; a reply
    is never held when the server would wait for input (§3.1: only what is answered next is
    in hand). Any other reply, 4xx and 5xx among them, goes at once with those held.
    """

    def __init__(self, handler, *, data_size_limit: int, connections: ConnectionLimits, **kwargs) -> None:
        # aiosmtpd sizes its stream reader with line_length_limit in __init__: it is how far
        # the DATA reader buffers while looking for ".\r\n" before taking a stretch as it is
        # (any line that fits in the message may be that long, + CRLF and a stuffed dot, RFC
        # 5321 §4.5.2), and aiosmtpd's own DATA reader (decode_data) answers a longer line
        # with 500. Memory stays bounded by the size.
        self.line_length_limit = data_size_limit + len(b".\r\n")
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)
        self.connections = connections
        self.counted: str | None = None  # the peer address, while counted in
        self.refused = False
        self._may_hold = False  # answering MAIL or RCPT: a 250 may wait for the next reply
        self._held: list[bytes] = []
    def connection_made(self, transport) -> None:
        if self.transport is None:  # not the second call after STARTTLS
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) else ""
            over = self.connections.admit(address)
            if over:
                log.info("smtp.refused", reason=f"too_many_connections_{over}", remote_addr=address)
                _count("rejected", "too_many_connections")
                self.refused = True
                transport.write(TOO_MANY[over])
                transport.close()
                return
            self.counted = address
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self.refused:
            return
        if self.counted is not None:
            self.connections.release(self.counted)
            self.counted = None
        super().connection_lost(error)

    async def _answer_may_wait(self, command, arg) -> None:
        """``command`` (aiosmtpd's MAIL or RCPT) with its 250 allowed to wait for the next reply."""
        self._may_hold = True
        try:
            await command(self, arg)
        finally:
            self._may_hold = False

    @functools.wraps(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg) -> None:
        await self._answer_may_wait(SMTP.smtp_MAIL, arg)

    @functools.wraps(SMTP.smtp_RCPT)
    async def smtp_RCPT(self, arg) -> None:
        await self._answer_may_wait(SMTP.smtp_RCPT, arg)
        if self.session.__dict__.get("sb_hang_up") and self.transport is not None:
            self.transport.close()  # after the 421 went out

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """MAIL FROM / RCPT TO's address and what follows it; a plain <local@domain> is read here.

        aiosmtpd reads every path with the stdlib's RFC 5322 header parser: with a class it
        defines per call, about a third of the SMTP role's CPU per mail (cProfile, bench mix).
        """
        plain = _PLAIN_PATH.match(arg)
        rest = arg[plain.end():] if plain else "("
        if plain is None or rest.startswith("(") or (
                self.local_part_limit and len(plain.group(1).rpartition("@")[0]) > self.local_part_limit):
            return super()._getaddr(arg)  # comments after it, odd forms, over the local-part limit
        return plain.group(1), rest

    @functools.wraps(SMTP.smtp_DATA)
    async def smtp_DATA(self, arg: str) -> None:
        if self._decode_data:  # the body as text: aiosmtpd's own reader (this server keeps bytes)
            return await super().smtp_DATA(arg)
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            return await self.push("503 Error: need RCPT command")
        if arg:
            return await self.push("501 Syntax: DATA")
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            raw = await read_data(self._reader, self.data_size_limit or 0)
        except TooMuchData:
            # RFC 5321 §4.2.5: the answer comes after the whole body; the session goes on.
            self._set_post_data_state()
            return await self.push(TOO_MUCH_DATA)
        except asyncio.CancelledError:  # the connection went away during DATA
            self._writer.close()
            raise
        self.envelope.content = self.envelope.original_content = raw
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def push(self, status: str) -> None:
        if status.startswith("500 Line too long"):
            # Only a line longer than the whole message may be gets here: that is too much data.
            status = TOO_MUCH_DATA
        if status.startswith("552"):
            _count("rejected", "too_large")
        # aiosmtpd's push, with the replies held for a pipelined group written with this one.
        line = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        if self._may_hold and status.startswith("250 ") and b"\n" in self._reader._buffer:
            self._held.append(line)  # the next command is here already: answered together
            return
        if self._held:
            line = b"".join(self._held) + line
            self._held.clear()
        self._writer.write(line)
        await self._writer.drain()


async def serve(bus: Bus, accounts: Accounts, host: str, port: int, *, max_size: int,
                hostname: str, limits: SessionLimits = SessionLimits(),
                tls_context: ssl.SSLContext | None = None, require_tls: bool = False) -> asyncio.Server:
    """Listen for SMTP; ``max_size`` is announced in EHLO SIZE and enforced with 552.

    With ``tls_context`` STARTTLS is offered (RFC 3207); ``require_tls`` answers MAIL before
    it with 530, for domains that publish MTA-STS and take no mail in plain text.
    """
    handler = InboundHandler(bus, accounts, limits)
    connections = ConnectionLimits(limits.max_connections_per_ip, limits.max_connections)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: CountingSMTP(handler, data_size_limit=max_size, enable_SMTPUTF8=True, hostname=hostname,
                             ident="Switchboard ESMTP", timeout=limits.idle_timeout_s, connections=connections,
                             tls_context=tls_context, require_starttls=require_tls),
        host=host, port=port,
    )
