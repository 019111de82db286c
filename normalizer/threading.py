"""Threading rules: which existing ticket, if any, a message belongs to.

Rules run in order; each says why it hit or missed, so a decision can be explained.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.inbound import Inbound
from ticket_service.store import tickets as store


@dataclass(slots=True)
class Context:
    tenant_id: int
    account_id: int
    customer_id: int
    inbound: Inbound
    keys: list[str]  # the message's conversation keys, already normalized


@dataclass(slots=True)
class ThreadMatch:
    ticket: Row | None = None
    rule: str = ""
    trail: list[str] = field(default_factory=list)


Rule = Callable[[AsyncConnection, Context], Awaitable[tuple[Row | None, str]]]


async def by_reference(conn: AsyncConnection, ctx: Context) -> tuple[Row | None, str]:
    """A key of this message (In-Reply-To, References, its own id) is held by a ticket."""
    ticket = await store.ticket_for_keys(conn, ctx.tenant_id, ctx.account_id, ctx.keys)
    return (ticket, f"key held by ticket {ticket.number}") if ticket else (None, "no known key")


async def by_ticket_number(conn: AsyncConnection, ctx: Context) -> tuple[Row | None, str]:
    """A ticket number quoted in the subject, only when the sender is that ticket's customer."""
    number = ctx.inbound.ticket_number
    if number is None:
        return None, "no ticket number"
    ticket = await store.ticket_by_number(conn, ctx.tenant_id, number)
    if ticket is None:
        return None, f"no ticket {number}"
    if ticket.customer_id != ctx.customer_id:
        return None, f"sender is not the customer of ticket {number}"
    return ticket, f"ticket {number} of this customer"


RULES: tuple[tuple[str, Rule], ...] = (
    ("reference", by_reference),
    ("ticket_number", by_ticket_number),
)


async def find_thread(conn: AsyncConnection, ctx: Context) -> ThreadMatch:
    match = ThreadMatch()
    for name, rule in RULES:
        ticket, why = await rule(conn, ctx)
        match.trail.append(f"{name}: {'hit' if ticket else 'miss'} ({why})")
        if ticket is not None:
            match.ticket, match.rule = ticket, name
            break
    return match
