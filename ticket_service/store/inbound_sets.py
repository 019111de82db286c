"""Set-based reads and writes for a normalizer batch: one statement per kind of row.

A batch of a hundred chat messages costs about six statements per message when each is
stored on its own (dedup, identity, session, ticket, thread key, message); on PostgreSQL
each statement is a round trip. These functions read the rows a whole batch needs with one
statement per table and write each table's new rows with one multi-row statement
(``normalizer.batch_writer``). Rows are written in key order, so two normalizers writing
overlapping rows lock them in the same order.

Multi-row inserts return the new ids in the order of their rows: on PostgreSQL through
SQLAlchemy's ``sort_by_parameter_order`` (``INSERT … SELECT … ORDER BY`` a counter); on
SQLite a multi-row ``INSERT … RETURNING`` under the one writer's lock gives each row
``max(rowid) + 1`` in turn (an ``INTEGER PRIMARY KEY`` without ``AUTOINCREMENT``, SQLite
"ROWIDs and the INTEGER PRIMARY KEY"), so the ids sorted are the rows' ids in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.engine import Connection, Row

from ticket_service.store.compiled import Statement
from ticket_service.store.tables import (
    customers,
    identities,
    messages,
    tenants,
    ticket_threads,
    tickets,
)

_SEEN = select(messages.c.tenant_id, messages.c.channel, messages.c.dedup_key, messages.c.id,
               messages.c.ticket_id, messages.c.envelope_id).where(
    tuple_(messages.c.tenant_id, messages.c.channel, messages.c.dedup_key).in_(bindparam("keys", expanding=True)))
_IDENTITIES = (
    select(identities.c.tenant_id, identities.c.kind, identities.c.scope, identities.c.value,
           identities.c.customer_id, customers.c.vip_tier)
    .join(customers, customers.c.id == identities.c.customer_id)
    .where(tuple_(identities.c.tenant_id, identities.c.value).in_(bindparam("keys", expanding=True)))
)
_THREADS = (
    select(tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.customer_id, tickets.c.priority,
           tickets.c.closed_at, tickets.c.updated_at, tickets.c.auto, tickets.c.cc,
           ticket_threads.c.tenant_id, ticket_threads.c.account_id, ticket_threads.c.thread_key)
    .join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
    .where(tuple_(ticket_threads.c.tenant_id, ticket_threads.c.account_id, ticket_threads.c.thread_key)
           .in_(bindparam("keys", expanding=True)))
)
# Reads the counter and locks the tenant's row until commit (PostgreSQL); SQLite has one writer.
_LOCK_NUMBER = Statement(
    update(tenants).where(tenants.c.id == bindparam("tenant_id"))
    .values(next_ticket_number=tenants.c.next_ticket_number).returning(tenants.c.next_ticket_number)
)
_SET_NUMBER = Statement(update(tenants).where(tenants.c.id == bindparam("tenant_id"))
                        .values(next_ticket_number=bindparam("last")))
_TOUCH = update(tickets).where(tickets.c.id.in_(bindparam("ids", expanding=True))).values(
    updated_at=bindparam("now"))
_REPOINT = update(ticket_threads).where(
    ticket_threads.c.tenant_id == bindparam("in_tenant"), ticket_threads.c.account_id == bindparam("in_account"),
    ticket_threads.c.thread_key == bindparam("key")).values(ticket_id=bindparam("to_ticket"))


def _all(conn: Connection, stmt, keys: Iterable[tuple]) -> list[Row]:
    keys = sorted(set(keys))
    return conn.execute(stmt, {"keys": keys}).all() if keys else []


def seen_messages(conn: Connection, keys: Iterable[tuple[int, str, str]]) -> list[Row]:
    """Stored messages by ``(tenant_id, channel, dedup_key)``: the batch's dedup in one read."""
    return _all(conn, _SEEN, keys)


def identities_by_value(conn: Connection, keys: Iterable[tuple[int, str]]) -> list[Row]:
    """Identities (with their customer's VIP tier) by ``(tenant_id, value)``."""
    return _all(conn, _IDENTITIES, keys)


def tickets_by_thread_key(conn: Connection, keys: Iterable[tuple[int, int, str]]) -> list[Row]:
    """Tickets by ``(tenant_id, account_id, thread_key)``, each row naming the key that led to it."""
    return _all(conn, _THREADS, keys)


def lock_ticket_number(conn: Connection, tenant_id: int) -> int:
    """The tenant's last ticket number, its row locked until commit (``set_ticket_number``)."""
    number = _LOCK_NUMBER.scalar(conn, {"tenant_id": tenant_id})
    if number is None:
        raise LookupError(f"no tenant {tenant_id}")
    return number


def set_ticket_number(conn: Connection, tenant_id: int, last: int) -> None:
    _SET_NUMBER.rowcount(conn, {"tenant_id": tenant_id, "last": last})


def insert_returning_ids(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert rows (each with the same columns, named explicitly); their new ids, in order."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        # One multi-row statement under the writer's lock: ids ascend in row order (see above).
        result = conn.execute(insert(table).returning(table.c.id), list(rows))
        return sorted(row.id for row in result)
    result = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), list(rows))
    return [row.id for row in result]


def insert_runs(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """``insert_returning_ids`` for rows whose column sets may differ (a ticket with a Cc and
    one without): one statement per run of rows with the same columns, so ids keep row order."""
    ids: list[int] = []
    for _, run in groupby(rows, key=lambda row: tuple(row)):
        ids += insert_returning_ids(conn, table, list(run))
    return ids


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows without reading anything back (executemany: one round trip on asyncpg)."""
    if rows:
        conn.execute(insert(table), list(rows))


def touch_tickets(conn: Connection, ticket_ids: Iterable[int], now: int) -> None:
    """Mark activity on these tickets; rows are locked in id order."""
    ids = sorted(set(ticket_ids))
    if ids:
        conn.execute(_TOUCH, {"ids": ids, "now": now})


def update_tickets(conn: Connection, changes: dict[int, dict[str, Any]]) -> None:
    """Per ticket id its changed columns (reopened, Cc, no longer auto): in id order."""
    for ticket_id in sorted(changes):
        conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**changes[ticket_id]))


def repoint_thread_keys(conn: Connection, moves: Iterable[tuple[int, int, str, int]]) -> None:
    """Move ``(tenant_id, account_id, thread_key)`` to the ticket given last in each tuple."""
    params = [{"in_tenant": t, "in_account": a, "key": k, "to_ticket": ticket} for t, a, k, ticket in sorted(moves)]
    if params:
        conn.execute(_REPOINT, params)
