"""Threading rules: which existing ticket, if any, a message belongs to.

Rules run in order; each says why it hit or missed, so a decision can be explained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Row

from connectors.inbound import Inbound
from core.channel import no_token_places
from ticket_service.store import reply_tokens
from ticket_service.store import tickets as store


@dataclass(slots=True)
class Context:
    tenant_id: int
    account_id: int
    customer_id: int
    inbound: Inbound
    keys: list[str]  # the message's conversation keys, already normalized
    session_key: str = ""  # chat channels: the sender's session key, already normalized
    session_window_ms: int = 0
    now: int = 0
    reply_secret: str = ""  # signs reply tokens; empty: tokens are neither issued nor honoured
    token_places: Callable[[Inbound], list[str]] = no_token_places  # the channel's: where a token may be


@dataclass(slots=True)
class ThreadMatch:
    ticket: Row | None = None
    rule: str = ""
    trail: list[str] = field(default_factory=list)


Rule = Callable[[Connection, Context], tuple[Row | None, str]]


def by_session(conn: Connection, ctx: Context) -> tuple[Row | None, str]:
    """Chat: the ticket this sender's session last landed on, if active within the window."""
    if not ctx.session_key:
        return None, "not a chat message"
    ticket = store.ticket_for_keys(conn, ctx.tenant_id, ctx.account_id, [ctx.session_key])
    if ticket is None:
        return None, "no session"
    idle_s = (ctx.now - ticket.updated_at) // 1000
    if ctx.now - ticket.updated_at > ctx.session_window_ms:
        return None, f"session of ticket {ticket.number} idle {idle_s}s, past the window"
    return ticket, f"session on ticket {ticket.number}, idle {idle_s}s"


def by_reply_token(conn: Connection, ctx: Context) -> tuple[Row | None, str]:
    """Our signed token in In-Reply-To/References, the To/Cc plus-address or the body marker."""
    if not ctx.reply_secret:
        return None, "reply tokens off"
    places = ctx.token_places(ctx.inbound)
    for ticket_id in reply_tokens.verified_ticket_ids(ctx.reply_secret, ctx.tenant_id, places):
        ticket = store.ticket_by_id(conn, ctx.tenant_id, ticket_id)
        if ticket is not None:
            return ticket, f"signed reply token of ticket {ticket.number}"
    if any(reply_tokens.TOKEN.search(p.lower()) for p in places):
        return None, "token forged, stale or of a deleted ticket: ignored"
    return None, "no reply token"


def by_reference(conn: Connection, ctx: Context) -> tuple[Row | None, str]:
    """A key of this message (In-Reply-To, References, its own id) is held by a ticket.

    Someone other than the ticket's customer joins it only by answering one of its stored
    messages: a shared root, such as a newsletter everyone replies to, is not enough.
    """
    ticket = store.ticket_for_keys(conn, ctx.tenant_id, ctx.account_id, ctx.keys)
    if ticket is None:
        return None, "no known key"
    if ticket.customer_id != ctx.customer_id and not store.ticket_has_message(
        conn, ctx.tenant_id, ticket.id, ctx.keys
    ):
        return None, f"ticket {ticket.number} holds only a shared root and belongs to another customer"
    return ticket, f"key held by ticket {ticket.number}"


def by_ticket_number(conn: Connection, ctx: Context) -> tuple[Row | None, str]:
    """A ticket number quoted in the subject, only when the sender is that ticket's customer."""
    number = ctx.inbound.ticket_number
    if number is None:
        return None, "no ticket number"
    ticket = store.ticket_by_number(conn, ctx.tenant_id, number)
    if ticket is None:
        return None, f"no ticket {number}"
    if ticket.customer_id != ctx.customer_id:
        return None, f"sender is not the customer of ticket {number}"
    return ticket, f"ticket {number} of this customer"


RULES: tuple[tuple[str, Rule], ...] = (
    ("session", by_session),
    ("reply_token", by_reply_token),
    ("reference", by_reference),
    ("ticket_number", by_ticket_number),
)


def find_thread(conn: Connection, ctx: Context) -> ThreadMatch:
    match = ThreadMatch()
    for name, rule in RULES:
        ticket, why = rule(conn, ctx)
        match.trail.append(f"{name}: {'hit' if ticket else 'miss'} ({why})")
        if ticket is not None:
            match.ticket, match.rule = ticket, name
            break
    return match
