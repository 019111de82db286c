"""What a submitter's receipt resolves to: the stored message and its ticket, if any yet."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store.tables import messages, tickets


async def message_ticket(conn: AsyncConnection, tenant_id: int, channel: str, dedup_key: str) -> Row | None:
    """(message_id, ticket_id, number, status) of the message stored under this dedup key."""
    return (
        await conn.execute(
            select(messages.c.id.label("message_id"), messages.c.ticket_id, tickets.c.number, tickets.c.status)
            .select_from(messages.outerjoin(tickets, tickets.c.id == messages.c.ticket_id))
            .where(messages.c.tenant_id == tenant_id, messages.c.channel == channel,
                   messages.c.dedup_key == dedup_key)
        )
    ).first()
