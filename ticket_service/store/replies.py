"""Storing an agent's reply or note: the message and its outbox row in one transaction.

Synchronous, for ``Database.run_write``. Where a reply goes is decided here once, and the
outbox row keeps it: the channel (the customer's last message's, unless asked), the
account it leaves from, the customer's identity on that channel, and for email the
Message-ID and reply-to address that carry our signed reply token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.ids import new_id
from ticket_service.store import reply_tokens
from ticket_service.store import tickets as store
from ticket_service.store.tables import (
    agents,
    channel_accounts,
    identities,
    messages,
    outbox,
    tickets,
)

# The identity a reply on each channel is addressed to: (kind, scoped by the account?).
IDENTITY = {"email": ("email", False), "wechat": ("wechat", True), "weibo": ("weibo", False),
            "sdk": ("sdk", True), "voice": ("phone", False)}
CHANNELS = frozenset(IDENTITY) | {"webform"}
NO_REPLY_CHANNEL = "no_reply_channel"
# Channels a customer writes on that are no way back: the status page. A reply goes on the
# channel of the customer's last message elsewhere (email, WeChat ...), never on these.
SIDE_CHANNELS = frozenset({"portal"})
CALLBACK = "callback"


class ReplyError(Exception):
    """A request the store refuses: HTTP status, code, the field at fault and why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class Draft:
    """What the API validated: the text, sanitized HTML, files already in the blob store."""

    kind: str  # reply | note
    text: str
    html: str = ""
    channel: str = ""  # "" = the channel of the customer's last message
    idempotency_key: str = ""
    author_id: int | None = None
    # Set when a rule wrote it (``trigger`` | ``automation``): an acknowledgement or a reminder is
    # not an agent's answer, so no reply clock and no first-reply figure counts it.
    auto_reason: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)  # filename, content_type, size, sha256, blob_key


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    mode: str  # send | callback
    account_id: int
    address: str
    recipient: str = ""
    recipient_name: str = ""
    failure: str = ""  # set: the reply cannot go anywhere (no_reply_channel)


def _last_inbound(conn: Connection, tenant_id: int, ticket_id: int):
    return conn.execute(
        select(messages.c.channel, messages.c.headers, messages.c.sender_name)
        .where(messages.c.tenant_id == tenant_id, messages.c.ticket_id == ticket_id, messages.c.direction == "in",
               messages.c.channel.not_in(SIDE_CHANNELS))
        .order_by(messages.c.id.desc()).limit(1)
    ).first()


def _first_account(conn: Connection, tenant_id: int, channel: str):
    return conn.execute(
        select(channel_accounts.c.id, channel_accounts.c.address)
        .where(channel_accounts.c.tenant_id == tenant_id, channel_accounts.c.channel == channel,
               channel_accounts.c.active)
        .order_by(channel_accounts.c.id).limit(1)
    ).first()


def _identity(conn: Connection, tenant_id: int, customer_id: int, channel: str, account_id: int) -> str | None:
    kind, scoped = IDENTITY[channel]
    stmt = select(identities.c.value).where(
        identities.c.tenant_id == tenant_id, identities.c.customer_id == customer_id, identities.c.kind == kind)
    if scoped:
        stmt = stmt.where(identities.c.scope == str(account_id))
    return conn.execute(stmt.order_by(identities.c.id).limit(1)).scalar()


def route(conn: Connection, tenant_id: int, ticket, asked: str) -> Route:
    """Where a reply on ``ticket`` goes; ReplyError 400 for a channel asked for that cannot take it."""
    last = _last_inbound(conn, tenant_id, ticket.id)
    name = last.sender_name if last else ""
    channel = asked or (last.channel if last else ticket.channel)
    if not asked and channel in SIDE_CHANNELS:  # opened on the status page: no channel of its own
        return Route(channel, "send", ticket.account_id, "", failure=NO_REPLY_CHANNEL)
    if channel not in CHANNELS:
        raise ReplyError(400, "invalid_field", f"field 'channel': {channel!r} is not a channel")
    # A web form has no way back of its own: the answer goes by email to the address it collected.
    send_on = "email" if channel == "webform" else channel
    if send_on == ticket.channel:
        account = conn.execute(select(channel_accounts.c.id, channel_accounts.c.address)
                               .where(channel_accounts.c.id == ticket.account_id)).one()
    else:
        account = _first_account(conn, tenant_id, send_on)
    mode = CALLBACK if send_on == "voice" else "send"
    if account is None:
        if asked and asked != "webform":
            raise ReplyError(400, "invalid_field", f"field 'channel': the tenant has no {send_on} account")
        return Route(send_on, mode, ticket.account_id, "", failure=NO_REPLY_CHANNEL)
    recipient = _identity(conn, tenant_id, ticket.customer_id, send_on, account.id)
    if recipient is None:
        if asked and asked != "webform":
            raise ReplyError(400, "invalid_field", f"field 'channel': the customer has no {send_on} identity")
        return Route(send_on, mode, account.id, account.address, failure=NO_REPLY_CHANNEL)
    return Route(send_on, mode, account.id, account.address, recipient, name)


def _threading(conn: Connection, tenant_id: int, ticket_id: int) -> tuple[str, list[str]]:
    """In-Reply-To and References for an email reply: the customer's last mail and its ancestors."""
    last = _last_inbound(conn, tenant_id, ticket_id)
    headers = (last.headers or {}) if last and last.channel == "email" else {}
    own = headers.get("message_id") or ""
    refs = [r for r in [*(headers.get("references") or []), own] if r]
    return own, list(dict.fromkeys(refs))[-20:]


def _addresses(secret_key: str, tenant_id: int, ticket_id: int, r: Route) -> tuple[str, str]:
    """The handle (email: a Message-ID carrying our signed token) and reply-to, chosen once."""
    if r.channel != "email":
        return f"sb-out-{new_id().lower()}", ""
    if secret_key:
        issued = reply_tokens.issue(secret_key, tenant_id, ticket_id, r.address)
        return issued.message_id, issued.reply_to
    domain = r.address.partition("@")[2] or "switchboard.local"
    return f"<out.{new_id().lower()}@{domain}>", r.address


def existing(conn: Connection, tenant_id: int, idempotency_key: str):
    """The message an earlier request with this key stored, if any."""
    return conn.execute(select(messages.c.id, messages.c.ticket_id).where(
        messages.c.tenant_id == tenant_id, messages.c.dedup_key == f"idem:{idempotency_key}")).first()


def _check_author(conn: Connection, tenant_id: int, author_id: int | None) -> None:
    if author_id is not None and conn.execute(select(agents.c.id).where(
            agents.c.tenant_id == tenant_id, agents.c.id == author_id)).first() is None:
        raise ReplyError(400, "invalid_field", f"field 'agent_id': no agent {author_id}")


def store_reply(conn: Connection, tenant_id: int, ticket_id: int, draft: Draft, secret_key: str,
                now: int) -> tuple[int, bool]:
    """Store ``draft`` on the ticket (and queue it unless it is a note); returns (message id, created).

    A repeated ``idempotency_key`` returns the first message, created False.
    """
    ticket = conn.execute(select(tickets).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)).first()
    if ticket is None:
        raise ReplyError(404, "not_found", f"ticket {ticket_id} not found")
    if draft.idempotency_key and (seen := existing(conn, tenant_id, draft.idempotency_key)):
        if seen.ticket_id != ticket_id:
            raise ReplyError(409, "idempotency_key_reused", "field 'idempotency_key' was used for another ticket")
        return seen.id, False
    _check_author(conn, tenant_id, draft.author_id)
    r = (Route(ticket.channel, "note", ticket.account_id, "") if draft.kind == "note"
         else route(conn, tenant_id, ticket, draft.channel))
    dedup = f"idem:{draft.idempotency_key}" if draft.idempotency_key else f"out:{new_id()}"
    subject = ticket.subject if ticket.subject.lower().startswith("re:") else f"Re: {ticket.subject}".strip()
    message_id = store.add_message(
        conn, tenant_id=tenant_id, ticket_id=ticket_id, channel=r.channel, account_id=r.account_id,
        dedup_key=dedup, envelope_id=new_id(), direction="out", kind=draft.kind, author_id=draft.author_id,
        customer_id=ticket.customer_id, sender=r.address, subject=subject, text=draft.text, html=draft.html,
        auto_reason=draft.auto_reason, created_at=now,
    )
    store.add_attachments(conn, [{**f, "tenant_id": tenant_id, "message_id": message_id} for f in draft.files])
    store.touch_ticket(conn, ticket_id, now)
    if draft.kind == "reply":
        _queue(conn, tenant_id, ticket, message_id, r, draft.idempotency_key, secret_key, now)
    return message_id, True


def _queue(conn: Connection, tenant_id: int, ticket, message_id: int, r: Route, idem: str, secret_key: str,
           now: int) -> None:
    handle, reply_to = _addresses(secret_key, tenant_id, ticket.id, r)
    in_reply_to, refs = _threading(conn, tenant_id, ticket.id) if r.channel == "email" else ("", [])
    row = dict(
        tenant_id=tenant_id, ticket_id=ticket.id, message_id=message_id, channel=r.channel, mode=r.mode,
        account_id=r.account_id, recipient=r.recipient, recipient_name=r.recipient_name, handle=handle,
        reply_to=reply_to, in_reply_to=in_reply_to, refs=refs, status="queued", attempts=0,
        next_attempt_at=now, idempotency_key=idem or None, created_at=now,
    )
    if r.failure:
        row.update(status="failed", last_error_code=r.failure,
                   last_error="the customer left no address or number to answer on")
        store.tag_ticket(conn, ticket.id, [NO_REPLY_CHANNEL], 0)
    elif r.mode == CALLBACK:
        store.tag_ticket(conn, ticket.id, [CALLBACK], 0)
    conn.execute(outbox.insert().values(**row))
