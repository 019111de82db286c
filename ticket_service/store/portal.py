"""What the customer status page reads and writes: one ticket's public side, and its links.

Public means: the customer's own messages (not machine-made ones) and agents' replies;
never internal notes, never another ticket's messages, agents by display name only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.ids import now_ms
from ticket_service.store.tables import (
    agents,
    attachments,
    channel_accounts,
    customers,
    identities,
    messages,
    tenants,
    tickets,
)

CHANNEL = "portal"
_PUBLIC = or_(
    and_(messages.c.direction == "in", messages.c.auto_reason == ""),
    and_(messages.c.direction == "out", messages.c.kind == "reply"),
)


@dataclass(frozen=True, slots=True)
class PublicMessage:
    id: int
    from_customer: bool
    author: str  # an agent's display name; "" for the customer and for unsigned replies
    text: str
    created_at: int
    files: list[Row] = field(default_factory=list)


async def link_ticket(conn: AsyncConnection, tenant_id: int, ticket_id: int) -> Row | None:
    """The ticket with what its links are checked against: ``portal_generation``, status, customer."""
    return (await conn.execute(
        select(tickets.c.id, tickets.c.tenant_id, tickets.c.number, tickets.c.subject, tickets.c.status, tickets.c.closed_at,
               tickets.c.customer_id, tickets.c.portal_generation, tickets.c.language,
               tenants.c.slug.label("tenant_slug"), tenants.c.name.label("tenant_name"),
               tenants.c.settings.label("tenant_settings"))
        .join(tenants, tenants.c.id == tickets.c.tenant_id)
        .where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
    )).first()


async def ticket_by_number(conn: AsyncConnection, tenant_id: int, number: int) -> Row | None:
    return (await conn.execute(
        select(tickets.c.id, tickets.c.number, tickets.c.portal_generation)
        .where(tickets.c.tenant_id == tenant_id, tickets.c.number == number)
    )).first()


async def revoke(conn: AsyncConnection, tenant_id: int, ticket_id: int) -> int | None:
    """Raise the ticket's generation: every link issued so far stops opening. The new generation."""
    changed = (await conn.execute(
        update(tickets).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
        .values(portal_generation=tickets.c.portal_generation + 1)
    )).rowcount
    if not changed:
        return None
    return (await conn.execute(select(tickets.c.portal_generation).where(tickets.c.id == ticket_id))).scalar_one()


async def conversation(conn: AsyncConnection, tenant_id: int, ticket_id: int) -> list[PublicMessage]:
    """The ticket's public messages, oldest first, with their attachments."""
    rows = (await conn.execute(
        select(messages.c.id, messages.c.direction, messages.c.text, messages.c.created_at, agents.c.name)
        .outerjoin(agents, and_(agents.c.id == messages.c.author_id, agents.c.tenant_id == tenant_id))
        .where(messages.c.tenant_id == tenant_id, messages.c.ticket_id == ticket_id, _PUBLIC)
        .order_by(messages.c.created_at, messages.c.id)
    )).all()
    files: dict[int, list[Row]] = defaultdict(list)
    if rows:
        for f in (await conn.execute(
            select(attachments.c.id, attachments.c.message_id, attachments.c.filename, attachments.c.size)
            .where(attachments.c.tenant_id == tenant_id, attachments.c.message_id.in_([r.id for r in rows]))
            .order_by(attachments.c.id)
        )).all():
            files[f.message_id].append(f)
    return [PublicMessage(r.id, r.direction == "in", (r.name or "") if r.direction == "out" else "", r.text,
                          r.created_at, files[r.id]) for r in rows]


async def public_attachment(conn: AsyncConnection, tenant_id: int, ticket_id: int, attachment_id: int) -> Row | None:
    """An attachment of one of the ticket's public messages, else None."""
    return (await conn.execute(
        select(attachments.c.filename, attachments.c.content_type, attachments.c.blob_key)
        .join(messages, messages.c.id == attachments.c.message_id)
        .where(attachments.c.tenant_id == tenant_id, attachments.c.id == attachment_id,
               messages.c.tenant_id == tenant_id, messages.c.ticket_id == ticket_id, _PUBLIC)
    )).first()


async def customer_identity(conn: AsyncConnection, tenant_id: int, customer_id: int) -> Row | None:
    """The customer's first identity and name: a portal message is theirs under it."""
    return (await conn.execute(
        select(identities.c.kind, identities.c.scope, identities.c.value, customers.c.name)
        .join(customers, customers.c.id == identities.c.customer_id)
        .where(identities.c.tenant_id == tenant_id, identities.c.customer_id == customer_id)
        .order_by(identities.c.id).limit(1)
    )).first()


async def portal_account(conn: AsyncConnection, tenant_id: int, slug: str) -> int:
    """The tenant's one ``portal`` channel account (address: its slug), made on first use."""
    find = select(channel_accounts.c.id).where(channel_accounts.c.channel == CHANNEL,
                                               channel_accounts.c.address == slug,
                                               channel_accounts.c.tenant_id == tenant_id)
    found = (await conn.execute(find)).scalar()
    if found is not None:
        return found
    try:
        async with conn.begin_nested():
            result = await conn.execute(channel_accounts.insert().values(
                tenant_id=tenant_id, channel=CHANNEL, address=slug, name="status page", settings={},
                active=True, created_at=now_ms()))
            return result.inserted_primary_key[0]
    except IntegrityError:  # another request made it first
        return (await conn.execute(find)).scalar_one()
