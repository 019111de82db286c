"""Write-side primitives the normalizer composes inside one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store.tables import (
    attachments,
    customers,
    identities,
    messages,
    tenants,
    ticket_threads,
    tickets,
)

CLOSED = ("solved", "closed")
_TICKET_COLS = (
    tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.customer_id,
    tickets.c.priority, tickets.c.closed_at, tickets.c.updated_at,
)


async def find_message(conn: AsyncConnection, tenant_id: int, channel: str, dedup_key: str) -> Row | None:
    return (
        await conn.execute(
            select(messages.c.id, messages.c.ticket_id, messages.c.envelope_id).where(
                messages.c.tenant_id == tenant_id, messages.c.channel == channel,
                messages.c.dedup_key == dedup_key,
            )
        )
    ).first()


async def resolve_customer(
    conn: AsyncConnection, tenant_id: int, kind: str, scope: str, value: str, name: str, now: int
) -> Row:
    """The customer behind an identity, created on first contact. Returns (id, vip_tier)."""
    row = (
        await conn.execute(
            select(customers.c.id, customers.c.vip_tier)
            .join(identities, identities.c.customer_id == customers.c.id)
            .where(
                identities.c.tenant_id == tenant_id, identities.c.kind == kind,
                identities.c.scope == scope, identities.c.value == value,
            )
        )
    ).first()
    if row:
        return row
    cid = (
        await conn.execute(insert(customers).values(tenant_id=tenant_id, name=name[:200], created_at=now))
    ).inserted_primary_key[0]
    # A concurrent first contact of the same identity fails here on the unique key; the
    # caller retries the transaction and then finds the winner's customer.
    await conn.execute(
        insert(identities).values(
            tenant_id=tenant_id, customer_id=cid, kind=kind, scope=scope, value=value, created_at=now
        )
    )
    return (await conn.execute(select(customers.c.id, customers.c.vip_tier).where(customers.c.id == cid))).one()


async def ticket_for_keys(
    conn: AsyncConnection, tenant_id: int, account_id: int, keys: Iterable[str]
) -> Row | None:
    """The newest ticket holding any of these conversation keys."""
    keys = list(keys)
    if not keys:
        return None
    return (
        await conn.execute(
            select(*_TICKET_COLS)
            .join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
            .where(
                ticket_threads.c.tenant_id == tenant_id, ticket_threads.c.account_id == account_id,
                ticket_threads.c.thread_key.in_(keys),
            )
            .order_by(tickets.c.id.desc())
            .limit(1)
        )
    ).first()


async def ticket_by_number(conn: AsyncConnection, tenant_id: int, number: int) -> Row | None:
    return (
        await conn.execute(
            select(*_TICKET_COLS).where(tickets.c.tenant_id == tenant_id, tickets.c.number == number)
        )
    ).first()


async def create_ticket(conn: AsyncConnection, **values: Any) -> tuple[int, int]:
    """Insert a ticket with the tenant's next number; returns (id, number)."""
    # The row lock on the tenant serializes numbering (PostgreSQL); SQLite has one writer.
    number = (
        await conn.execute(
            update(tenants)
            .where(tenants.c.id == values["tenant_id"])
            .values(next_ticket_number=tenants.c.next_ticket_number + 1)
            .returning(tenants.c.next_ticket_number)
        )
    ).scalar_one()
    now = values.pop("now")
    result = await conn.execute(
        insert(tickets).values(number=number, tags=[], created_at=now, updated_at=now, **values)
    )
    return result.inserted_primary_key[0], number


async def bind_thread_keys(
    conn: AsyncConnection, tenant_id: int, account_id: int, ticket_id: int, keys: Iterable[str],
    now: int, repoint: bool = False,
) -> None:
    """Make each key lead to this ticket. Existing keys move only with ``repoint``."""
    keys = list(dict.fromkeys(k for k in keys if k))
    if not keys:
        return
    scope = and_(
        ticket_threads.c.tenant_id == tenant_id, ticket_threads.c.account_id == account_id,
        ticket_threads.c.thread_key.in_(keys),
    )
    existing = set((await conn.execute(select(ticket_threads.c.thread_key).where(scope))).scalars())
    if repoint and existing:
        await conn.execute(update(ticket_threads).where(scope).values(ticket_id=ticket_id))
    missing = [k for k in keys if k not in existing]
    if missing:
        await conn.execute(
            insert(ticket_threads),
            [
                dict(tenant_id=tenant_id, account_id=account_id, thread_key=k, ticket_id=ticket_id, created_at=now)
                for k in missing
            ],
        )


async def add_message(conn: AsyncConnection, **values: Any) -> int:
    return (await conn.execute(insert(messages).values(**values))).inserted_primary_key[0]


async def add_attachments(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(attachments), rows)


async def touch_ticket(conn: AsyncConnection, ticket_id: int, now: int, reopen: bool = False) -> None:
    values: dict[str, Any] = {"updated_at": now}
    if reopen:
        values.update(status="open", closed_at=None)
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))


async def ticket_by_id(conn: AsyncConnection, tenant_id: int, ticket_id: int) -> Row | None:
    return (
        await conn.execute(
            select(*_TICKET_COLS).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
        )
    ).first()


async def ticket_has_message(conn: AsyncConnection, tenant_id: int, ticket_id: int, dedup_keys: Iterable[str]) -> bool:
    """Whether one of these ids is a message stored on the ticket (not merely a thread key)."""
    dedup_keys = list(dedup_keys)
    if not dedup_keys:
        return False
    found = await conn.execute(
        select(messages.c.id).where(
            messages.c.tenant_id == tenant_id, messages.c.ticket_id == ticket_id,
            messages.c.dedup_key.in_(dedup_keys),
        ).limit(1)
    )
    return found.first() is not None


async def message_headers(conn: AsyncConnection, message_id: int) -> dict:
    """A message's headers, its row locked until commit (a read-modify-write follows)."""
    row = (await conn.execute(
        select(messages.c.headers).where(messages.c.id == message_id).with_for_update())).first()
    return dict(row.headers or {}) if row else {}


async def update_message(conn: AsyncConnection, message_id: int, **values: Any) -> None:
    await conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


async def tag_ticket(conn: AsyncConnection, ticket_id: int, tags: Iterable[str], priority: int) -> None:
    """Add tags to a ticket and raise its priority to at least ``priority``."""
    row = (await conn.execute(
        select(tickets.c.tags, tickets.c.priority).where(tickets.c.id == ticket_id).with_for_update())).one()
    merged = list(dict.fromkeys([*(row.tags or []), *tags]))
    if merged != list(row.tags or []) or priority > row.priority:
        await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(
            tags=merged, priority=max(priority, row.priority)))
