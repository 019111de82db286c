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

On SQLite every statement here runs on the sqlite3 cursor, compiled once (``compiled`` for
the reads and updates, ``sqlite_rows`` for the multi-row inserts): SQLAlchemy's per-call
work was about a fifth of a chat message's CPU in the normalizer, spent under the write lock.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import JSON, Table, Text, any_, bindparam, cast, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from ticket_service.store import sqlite_rows
from ticket_service.store.compiled import Statement
from ticket_service.store.db import _json_dumps
from ticket_service.store.tables import (
    customers,
    identities,
    messages,
    tenants,
    ticket_threads,
    tickets,
)


def _member(column, name: str, dialect: str):
    """``column`` is one of the list bound as ``name``: one parameter whatever the list's
    length, so the statement is compiled (and on PostgreSQL prepared) once, not per count."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(select(func.json_each(bindparam(name)).table_valued("value").c.value))


def _seen(dialect: str):
    return select(messages.c.tenant_id, messages.c.channel, messages.c.dedup_key, messages.c.id,
                  messages.c.ticket_id, messages.c.envelope_id).where(
        messages.c.tenant_id == bindparam("tenant_id"), messages.c.channel == bindparam("channel"),
        _member(messages.c.dedup_key, "keys", dialect))


def _identities(dialect: str):
    return (
        select(identities.c.tenant_id, identities.c.kind, identities.c.scope, identities.c.value,
               identities.c.customer_id, customers.c.vip_tier)
        .join(customers, customers.c.id == identities.c.customer_id)
        .where(identities.c.tenant_id == bindparam("tenant_id"), _member(identities.c.value, "keys", dialect))
    )


def _threads(dialect: str):
    return (
        select(tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.customer_id, tickets.c.priority,
               tickets.c.closed_at, tickets.c.updated_at, tickets.c.auto, tickets.c.cc,
               ticket_threads.c.tenant_id, ticket_threads.c.account_id, ticket_threads.c.thread_key)
        .join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
        .where(ticket_threads.c.tenant_id == bindparam("tenant_id"),
               ticket_threads.c.account_id == bindparam("account_id"),
               _member(ticket_threads.c.thread_key, "keys", dialect))
    )


_READS = {name: {"seen": _seen(name), "identities": _identities(name), "threads": _threads(name)}
          for name in ("postgresql", "sqlite")}
# SQLite: compiled once, run on the sqlite3 cursor (``compiled.Statement``).
_SQLITE_READS = {read: Statement(stmt) for read, stmt in _READS["sqlite"].items()}
# Reads the counter and locks the tenant's row until commit (PostgreSQL); SQLite has one writer.
_LOCK_NUMBER = Statement(
    update(tenants).where(tenants.c.id == bindparam("tenant_id"))
    .values(next_ticket_number=tenants.c.next_ticket_number).returning(tenants.c.next_ticket_number)
)
_SET_NUMBER = Statement(update(tenants).where(tenants.c.id == bindparam("tenant_id"))
                        .values(next_ticket_number=bindparam("last")))
_TOUCH = update(tickets).where(tickets.c.id.in_(bindparam("ids", expanding=True))).values(
    updated_at=bindparam("now"))
# SQLite: the ids as one JSON list, so the statement text is one whatever their count.
_SQLITE_TOUCH = Statement(update(tickets).where(_member(tickets.c.id, "ids", "sqlite")).values(
    updated_at=bindparam("now")))
_REPOINT = update(ticket_threads).where(
    ticket_threads.c.tenant_id == bindparam("in_tenant"), ticket_threads.c.account_id == bindparam("in_account"),
    ticket_threads.c.thread_key == bindparam("key")).values(ticket_id=bindparam("to_ticket"))


def _all(conn: Connection, read: str, scope: tuple[str, ...], keys: Iterable[tuple]) -> list[Row]:
    """One read per scope (a tenant, its channel or account: one in a usual batch) with the
    scope's keys as one list parameter (the last element of each key tuple); on SQLite the
    list is JSON written by orjson (``json_each`` reads it as ``json.dumps``'s)."""
    # By scope, then each scope's values sorted (as sorting the whole key tuples would).
    found: dict[tuple, set[str]] = defaultdict(set)
    for key in keys:
        found[key[:-1]].add(key[-1])
    lists = {where: sorted(found[where]) for where in sorted(found)}
    rows: list = []
    if conn.dialect.name == "sqlite":
        statement = _SQLITE_READS[read]
        for where, values in lists.items():
            rows += statement.tuples(conn, {**dict(zip(scope, where, strict=True)), "keys": _json_dumps(values)})
        return rows
    stmt = _READS[conn.dialect.name][read]
    for where, values in lists.items():
        rows += conn.execute(stmt, {**dict(zip(scope, where, strict=True)), "keys": values}).all()
    return rows


# asyncpg prepares every statement, and after five runs PostgreSQL may switch a prepared
# statement to a generic plan, made without its parameters' values. For the reads above
# (``key = ANY($n)`` over a batch's keys) the generic plan of a table that grew since it was
# last analysed scans the tenant's whole channel and filters the keys, a cost that grows with
# every message stored (measured: about a fifth of a batch's time); a plan for the actual
# keys looks them up in the unique index. Set for the batch's transaction only: planning
# every statement would slow the many-row inserts of other paths.
_PLAN_FOR_VALUES = text("SET LOCAL plan_cache_mode = force_custom_plan")


def plan_for_values(conn: Connection) -> None:
    """PostgreSQL: plan this transaction's statements for the values they are given."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PLAN_FOR_VALUES)


def seen_messages(conn: Connection, keys: Iterable[tuple[int, str, str]]) -> list[Row]:
    """Stored messages by ``(tenant_id, channel, dedup_key)``: the batch's dedup in one read.

    These reads' rows are tuples in their select's column order (``_seen``, ``_identities``,
    ``_threads``), for the batch to unpack."""
    return _all(conn, "seen", ("tenant_id", "channel"), keys)


def identities_by_value(conn: Connection, keys: Iterable[tuple[int, str]]) -> list[Row]:
    """Identities (with their customer's VIP tier) by ``(tenant_id, value)``."""
    return _all(conn, "identities", ("tenant_id",), keys)


def tickets_by_thread_key(conn: Connection, keys: Iterable[tuple[int, int, str]]) -> list[Row]:
    """Tickets by ``(tenant_id, account_id, thread_key)``, each row naming the key that led to it."""
    return _all(conn, "threads", ("tenant_id", "account_id"), keys)


def lock_ticket_number(conn: Connection, tenant_id: int) -> int:
    """The tenant's last ticket number, its row locked until commit (``set_ticket_number``)."""
    number = _LOCK_NUMBER.scalar(conn, {"tenant_id": tenant_id})
    if number is None:
        raise LookupError(f"no tenant {tenant_id}")
    return number


def set_ticket_number(conn: Connection, tenant_id: int, last: int) -> None:
    _SET_NUMBER.rowcount(conn, {"tenant_id": tenant_id, "last": last})


def _unnest(table: Table, columns: tuple[str, ...], returning: bool):
    """PostgreSQL: ``INSERT … SELECT … FROM unnest(one array per column) WITH ORDINALITY
    ORDER BY ordinality``: one statement text per table and column set, prepared once,
    whatever the row count. Rows are inserted (and ids drawn) in ordinality order."""
    key = (table.name, columns, returning)
    stmt = _UNNEST.get(key)
    if stmt is None:
        # JSON goes as text (an array of lists would read as more dimensions) and is cast back.
        rows = func.unnest(*[bindparam(c, type_=ARRAY(Text if _is_json(table, c) else table.c[c].type))
                             for c in columns]).table_valued(*columns, with_ordinality="ord").render_derived()
        values = [cast(rows.c[c], table.c[c].type) if _is_json(table, c) else rows.c[c] for c in columns]
        stmt = insert(table).from_select(list(columns), select(*values).order_by(rows.c.ord))
        stmt = _UNNEST[key] = stmt.returning(table.c.id) if returning else stmt
    return stmt


_UNNEST: dict[tuple, Any] = {}


def _is_json(table: Table, column: str) -> bool:
    return isinstance(table.c[column].type, JSON)


def _arrays(table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> dict[str, list]:
    """One list per column; JSON values as their text (None stays SQL NULL)."""
    return {c: [None if row[c] is None else json.dumps(row[c]) for row in rows] if _is_json(table, c)
            else [row[c] for row in rows] for c in columns}


def insert_returning_ids(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert rows (each with the same columns, named explicitly); their new ids, in order."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        # One multi-row statement under the writer's lock: ids ascend in row order (see above).
        return sorted(row[0] for row in sqlite_rows.insert(conn, table, rows, returning=True))
    columns = tuple(rows[0])
    result = conn.execute(_unnest(table, columns, True), _arrays(table, columns, rows))
    return [row.id for row in result]


def insert_runs(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """``insert_returning_ids`` for rows whose column sets may differ (a ticket with a Cc and
    one without): one statement per run of rows with the same columns, so ids keep row order."""
    ids: list[int] = []
    for _, run in groupby(rows, key=lambda row: tuple(row)):
        ids += insert_returning_ids(conn, table, list(run))
    return ids


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (each with the same columns) without reading anything back."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        sqlite_rows.insert(conn, table, rows, returning=False)
        return
    columns = tuple(rows[0])
    conn.execute(_unnest(table, columns, False), _arrays(table, columns, rows))


def touch_tickets(conn: Connection, ticket_ids: Iterable[int], now: int) -> None:
    """Mark activity on these tickets; rows are locked in id order."""
    ids = sorted(set(ticket_ids))
    if ids and conn.dialect.name == "sqlite":
        _SQLITE_TOUCH.rowcount(conn, {"ids": _json_dumps(ids), "now": now})
    elif ids:
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
