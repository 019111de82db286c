"""Write-side primitives the normalizer composes inside one transaction.

Synchronous on purpose: the normalizer runs a whole batch of messages through them in one
transaction with ``Database.run_write`` (a thread with a plain SQLite connection, or
``run_sync`` over asyncpg). Async callers use ``await conn.run_sync(fn, ...)``. Statements
are built once, with bind parameters, so each call costs a cached compile and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Row

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

_FIND_MESSAGE = select(messages.c.id, messages.c.ticket_id, messages.c.envelope_id).where(
    messages.c.tenant_id == bindparam("tenant_id"), messages.c.channel == bindparam("channel"),
    messages.c.dedup_key == bindparam("dedup_key"),
)
_CUSTOMER_BY_IDENTITY = (
    select(customers.c.id, customers.c.vip_tier)
    .join(identities, identities.c.customer_id == customers.c.id)
    .where(identities.c.tenant_id == bindparam("tenant_id"), identities.c.kind == bindparam("kind"),
           identities.c.scope == bindparam("scope"), identities.c.value == bindparam("value"))
)
_CUSTOMER = select(customers.c.id, customers.c.vip_tier).where(customers.c.id == bindparam("id"))
_INSERT_CUSTOMER = insert(customers)
_INSERT_IDENTITY = insert(identities)
# Parameter names differ from the columns': an UPDATE reserves the column names for SET.
_THREAD_SCOPE = (
    ticket_threads.c.tenant_id == bindparam("in_tenant"), ticket_threads.c.account_id == bindparam("in_account"),
    ticket_threads.c.thread_key.in_(bindparam("keys", expanding=True)),
)
_TICKET_FOR_KEYS = (
    select(*_TICKET_COLS).join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
    .where(*_THREAD_SCOPE).order_by(tickets.c.id.desc()).limit(1)
)
# The common case of one key (a chat session) without the cost of expanding an IN list.
_TICKET_FOR_KEY = (
    select(*_TICKET_COLS).join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
    .where(*_THREAD_SCOPE[:2], ticket_threads.c.thread_key == bindparam("key"))
)
_BOUND_KEYS = select(ticket_threads.c.thread_key).where(*_THREAD_SCOPE)
_REPOINT_KEYS = update(ticket_threads).where(*_THREAD_SCOPE).values(ticket_id=bindparam("to_ticket"))
_INSERT_THREAD_KEY = insert(ticket_threads)
_TICKET_BY_NUMBER = select(*_TICKET_COLS).where(
    tickets.c.tenant_id == bindparam("tenant_id"), tickets.c.number == bindparam("number"))
_TICKET_BY_ID = select(*_TICKET_COLS).where(
    tickets.c.tenant_id == bindparam("tenant_id"), tickets.c.id == bindparam("ticket_id"))
# The row lock on the tenant serializes numbering (PostgreSQL); SQLite has one writer.
_NEXT_NUMBER = (
    update(tenants).where(tenants.c.id == bindparam("tenant_id"))
    .values(next_ticket_number=tenants.c.next_ticket_number + 1).returning(tenants.c.next_ticket_number)
)
_INSERT_TICKET = insert(tickets)
_INSERT_MESSAGE = insert(messages)
_INSERT_ATTACHMENTS = insert(attachments)
_TOUCH = update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(updated_at=bindparam("now"))
_REOPEN = update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    updated_at=bindparam("now"), status="open", closed_at=None)
_TICKET_HAS_MESSAGE = select(messages.c.id).where(
    messages.c.tenant_id == bindparam("tenant_id"), messages.c.ticket_id == bindparam("ticket_id"),
    messages.c.dedup_key.in_(bindparam("keys", expanding=True)),
).limit(1)
_MESSAGE_HEADERS = select(messages.c.headers).where(messages.c.id == bindparam("id")).with_for_update()
_TICKET_TAGS = select(tickets.c.tags, tickets.c.priority).where(tickets.c.id == bindparam("id")).with_for_update()
_SET_TAGS = update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    tags=bindparam("new_tags"), priority=bindparam("new_priority"))


def find_message(conn: Connection, tenant_id: int, channel: str, dedup_key: str) -> Row | None:
    return conn.execute(_FIND_MESSAGE, {"tenant_id": tenant_id, "channel": channel, "dedup_key": dedup_key}).first()


def resolve_customer(conn: Connection, tenant_id: int, kind: str, scope: str, value: str, name: str, now: int) -> Row:
    """The customer behind an identity, created on first contact. Returns (id, vip_tier)."""
    row = conn.execute(_CUSTOMER_BY_IDENTITY,
                       {"tenant_id": tenant_id, "kind": kind, "scope": scope, "value": value}).first()
    if row:
        return row
    cid = conn.execute(_INSERT_CUSTOMER, {"tenant_id": tenant_id, "name": name[:200], "created_at": now}
                       ).inserted_primary_key[0]
    # A concurrent first contact of the same identity fails here on the unique key; the
    # caller retries the transaction and then finds the winner's customer.
    conn.execute(_INSERT_IDENTITY, {"tenant_id": tenant_id, "customer_id": cid, "kind": kind, "scope": scope,
                                    "value": value, "created_at": now})
    return conn.execute(_CUSTOMER, {"id": cid}).one()


def ticket_for_keys(conn: Connection, tenant_id: int, account_id: int, keys: Iterable[str]) -> Row | None:
    """The newest ticket holding any of these conversation keys."""
    keys = list(keys)
    if not keys:
        return None
    if len(keys) == 1:
        return conn.execute(_TICKET_FOR_KEY, {"in_tenant": tenant_id, "in_account": account_id, "key": keys[0]}).first()
    return conn.execute(_TICKET_FOR_KEYS, {"in_tenant": tenant_id, "in_account": account_id, "keys": keys}).first()


def ticket_by_number(conn: Connection, tenant_id: int, number: int) -> Row | None:
    return conn.execute(_TICKET_BY_NUMBER, {"tenant_id": tenant_id, "number": number}).first()


def create_ticket(conn: Connection, **values: Any) -> tuple[int, int]:
    """Insert a ticket with the tenant's next number; returns (id, number)."""
    number = conn.execute(_NEXT_NUMBER, {"tenant_id": values["tenant_id"]}).scalar_one()
    now = values.pop("now")
    values.setdefault("tags", [])
    result = conn.execute(_INSERT_TICKET, {"number": number, "created_at": now, "updated_at": now, **values})
    return result.inserted_primary_key[0], number


def bind_thread_keys(
    conn: Connection, tenant_id: int, account_id: int, ticket_id: int, keys: Iterable[str],
    now: int, repoint: bool = False,
) -> None:
    """Make each key lead to this ticket. Existing keys move only with ``repoint``."""
    keys = list(dict.fromkeys(k for k in keys if k))
    if not keys:
        return
    scope = {"in_tenant": tenant_id, "in_account": account_id, "keys": keys}
    existing = set(conn.execute(_BOUND_KEYS, scope).scalars())
    if repoint and existing:
        conn.execute(_REPOINT_KEYS, {**scope, "to_ticket": ticket_id})
    missing = [k for k in keys if k not in existing]
    if missing:
        conn.execute(_INSERT_THREAD_KEY, [
            {"tenant_id": tenant_id, "account_id": account_id, "thread_key": k, "ticket_id": ticket_id,
             "created_at": now} for k in missing
        ])


def add_message(conn: Connection, **values: Any) -> int:
    return conn.execute(_INSERT_MESSAGE, values).inserted_primary_key[0]


def add_attachments(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_ATTACHMENTS, rows)


def touch_ticket(conn: Connection, ticket_id: int, now: int, reopen: bool = False) -> None:
    conn.execute(_REOPEN if reopen else _TOUCH, {"ticket_id": ticket_id, "now": now})


def ticket_by_id(conn: Connection, tenant_id: int, ticket_id: int) -> Row | None:
    return conn.execute(_TICKET_BY_ID, {"tenant_id": tenant_id, "ticket_id": ticket_id}).first()


def ticket_has_message(conn: Connection, tenant_id: int, ticket_id: int, dedup_keys: Iterable[str]) -> bool:
    """Whether one of these ids is a message stored on the ticket (not merely a thread key)."""
    dedup_keys = list(dedup_keys)
    if not dedup_keys:
        return False
    found = conn.execute(_TICKET_HAS_MESSAGE, {"tenant_id": tenant_id, "ticket_id": ticket_id, "keys": dedup_keys})
    return found.first() is not None


def message_headers(conn: Connection, message_id: int) -> dict:
    """A message's headers, its row locked until commit (a read-modify-write follows)."""
    row = conn.execute(_MESSAGE_HEADERS, {"id": message_id}).first()
    return dict(row.headers or {}) if row else {}


def update_message(conn: Connection, message_id: int, **values: Any) -> None:
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def tag_ticket(conn: Connection, ticket_id: int, tags: Iterable[str], priority: int) -> None:
    """Add tags to a ticket and raise its priority to at least ``priority``."""
    row = conn.execute(_TICKET_TAGS, {"id": ticket_id}).one()
    merged = list(dict.fromkeys([*(row.tags or []), *tags]))
    if merged != list(row.tags or []) or priority > row.priority:
        conn.execute(_SET_TAGS, {"ticket_id": ticket_id, "new_tags": merged,
                                 "new_priority": max(priority, row.priority)})
