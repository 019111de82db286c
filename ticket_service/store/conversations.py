"""An app user's conversation as the app shows it: every message of its ticket chain."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store import tickets as store
from ticket_service.store.tables import attachments, identities, messages, tickets

_MAX_CHAIN = 20  # follow-up tickets linked to earlier ones (parent_id) shown with them


async def conversation(
    conn: AsyncConnection, tenant_id: int, account_id: int, thread_key: str, identity: tuple[str, str, str],
    limit: int = 200,
) -> tuple[list[Row], dict[int, list[Row]]]:
    """(messages, attachments by message id), oldest first; empty unless ``identity`` owns it."""
    ticket = await conn.run_sync(store.ticket_for_keys, tenant_id, account_id, [thread_key])
    kind, scope, value = identity
    owner = (
        await conn.execute(
            select(identities.c.customer_id).where(
                identities.c.tenant_id == tenant_id, identities.c.kind == kind,
                identities.c.scope == scope, identities.c.value == value,
            )
        )
    ).scalar()
    if ticket is None or owner is None or ticket.customer_id != owner:
        return [], {}
    chain, current = [ticket.id], ticket.id
    while len(chain) < _MAX_CHAIN:
        parent = (await conn.execute(select(tickets.c.parent_id).where(tickets.c.id == current))).scalar()
        if parent is None:
            break
        chain.append(current := parent)
    rows = (
        await conn.execute(
            select(messages.c.id, messages.c.direction, messages.c.text, messages.c.sender_name,
                   messages.c.headers, messages.c.created_at)
            # An agent's internal note is never shown to the customer.
            .where(messages.c.tenant_id == tenant_id, messages.c.ticket_id.in_(chain), messages.c.kind != "note")
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
    ).all()[::-1]
    files: dict[int, list[Row]] = {}
    if rows:
        for a in (
            await conn.execute(
                select(attachments.c.id, attachments.c.message_id, attachments.c.filename,
                       attachments.c.content_type, attachments.c.size)
                .where(attachments.c.tenant_id == tenant_id, attachments.c.message_id.in_([r.id for r in rows]))
                .order_by(attachments.c.id)
            )
        ).all():
            files.setdefault(a.message_id, []).append(a)
    return rows, files
