"""Email replies: ``send`` builds the mail, signs it (DKIM) and hands it to the relay, or,
with no relay set, drops it into ``<data_dir>/outbox/`` (a Maildir)."""

from __future__ import annotations

import asyncio

import structlog

from connectors.email import compose, maildir, signing
from connectors.email.relay import RelayUrlError, deliver, parse_relay
from core.outbound import Outgoing, PermanentFailure, SendContext, Sent, TemporaryFailure

log = structlog.get_logger()

OUTBOX = "outbox"  # under the data folder


def from_name(out: Outgoing) -> str:
    """The From display name: the mailbox's ``from_name`` setting, else the tenant."""
    return str(out.account_settings.get("from_name") or out.tenant)


def envelope_sender(out: Outgoing) -> str:
    """MAIL FROM (where bounces go): the mailbox's ``return_path`` setting, else the mailbox."""
    return str(out.account_settings.get("return_path") or out.account_address)


def render(out: Outgoing) -> tuple[bytes, bool]:
    """The signed wire bytes of a reply and whether they need SMTPUTF8 (blocking: DKIM)."""
    if not out.handle:
        # Without the handle chosen with the outbox row a retry would be a second mail.
        raise PermanentFailure("no_handle", "the reply has no Message-ID handle")
    try:
        msg = compose.build(out, from_name(out))
    except (ValueError, IndexError) as exc:  # headerregistry's words for an unwritable address
        raise PermanentFailure("bad_address", f"cannot address the mail: {exc}") from exc
    utf8 = compose.needs_utf8(out)
    data = compose.serialize(msg, utf8)
    try:
        data = signing.sign(data, out.account_settings, out.account_address.rpartition("@")[2])
    except signing.DkimKeyError as exc:
        # Our fault: fixing the mailbox's key lets the retries through.
        log.error("email.dkim_failed", account_id=out.account_id, error=str(exc))
        raise TemporaryFailure("dkim_key", str(exc)) from exc
    return data, utf8


async def send(out: Outgoing, ctx: SendContext) -> Sent:
    """Deliver one reply: SMTP relay when ``smtp_relay`` is set, else the outbox Maildir."""
    settings = ctx.settings
    data, utf8 = await asyncio.to_thread(render, out)
    if not settings.smtp_relay:
        key = await asyncio.to_thread(maildir.store, settings.data_dir / OUTBOX, out.handle, data)
        log.info("email.stored", outbox_id=out.outbox_id, key=key)
        return Sent(platform_id=key)
    try:
        relay = parse_relay(settings.smtp_relay)
    except RelayUrlError as exc:
        log.error("email.relay_misconfigured", error=str(exc))
        raise TemporaryFailure("relay_config", str(exc)) from exc
    sent = await deliver(relay, envelope_sender(out), out.to, data, utf8=utf8,
                         local_hostname=settings.smtp_hostname, timeout_s=settings.smtp_relay_timeout_s)
    log.info("email.relayed", outbox_id=out.outbox_id, relay=relay.host, reply=sent.platform_id)
    return sent
