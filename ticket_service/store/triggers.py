"""A tenant's triggers and automations: ordered tables of conditions and actions.

Both are kept the same way (``position`` 1 = first, ties by id). The columns are stored as
given: checking them is ``rules.definitions``, at the API and again where they run, so one
bad row cannot stop anybody else's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Connection, Row

from ticket_service.store.tables import automations, triggers

TABLES: dict[str, Table] = {"trigger": triggers, "automation": automations}


class TooMany(ValueError):
    """The tenant holds the most it may of this kind."""


def _table(kind: str) -> Table:
    return TABLES[kind]


def listed(conn: Connection, kind: str, tenant_id: int, active_only: bool = False) -> list[Row]:
    t = _table(kind)
    stmt = select(t).where(t.c.tenant_id == tenant_id)
    if active_only:
        stmt = stmt.where(t.c.active.is_(True))
    return conn.execute(stmt.order_by(t.c.position, t.c.id)).all()


def get(conn: Connection, kind: str, tenant_id: int, item_id: int) -> Row | None:
    t = _table(kind)
    return conn.execute(select(t).where(t.c.tenant_id == tenant_id, t.c.id == item_id)).first()


def _place(conn: Connection, t: Table, tenant_id: int, position: int | None, item_id: int | None = None) -> int:
    """The position to write at (1 = first; None or past the end: last), the rows from it moved down."""
    others = t.c.tenant_id == tenant_id
    if item_id is not None:
        others &= t.c.id != item_id
    last = conn.execute(select(func.max(t.c.position)).where(others)).scalar() or 0
    if position is None or position > last:
        return last + 1
    position = max(position, 1)
    conn.execute(update(t).where(others, t.c.position >= position).values(position=t.c.position + 1))
    return position


def add(conn: Connection, kind: str, tenant_id: int, now: int, limit: int, position: int | None = None,
        **values: Any) -> int:
    """Insert at ``position``; ``TooMany`` when the tenant has ``limit`` already."""
    t = _table(kind)
    if conn.execute(select(func.count()).select_from(t).where(t.c.tenant_id == tenant_id)).scalar() >= limit:
        raise TooMany(f"a tenant has at most {limit} {kind}s")
    at = _place(conn, t, tenant_id, position)
    return conn.execute(t.insert().values(tenant_id=tenant_id, position=at, created_at=now, updated_at=now,
                                          **values)).inserted_primary_key[0]


def replace(conn: Connection, kind: str, tenant_id: int, item_id: int, now: int, position: int | None = None,
            **values: Any) -> bool:
    """Overwrite one (moved to ``position`` when given, else where it is); False if it is not the tenant's."""
    t = _table(kind)
    row = get(conn, kind, tenant_id, item_id)
    if row is None:
        return False
    at = row.position if position is None else _place(conn, t, tenant_id, position, item_id)
    conn.execute(update(t).where(t.c.id == item_id).values(position=at, updated_at=now, **values))
    return True


def move(conn: Connection, kind: str, tenant_id: int, item_id: int, position: int, now: int) -> bool:
    return replace(conn, kind, tenant_id, item_id, now, position)


def remove(conn: Connection, kind: str, tenant_id: int, item_id: int) -> bool:
    t = _table(kind)
    return conn.execute(delete(t).where(t.c.tenant_id == tenant_id, t.c.id == item_id)).rowcount == 1


def active_automations(conn: Connection) -> list[Row]:
    """Every tenant's active automations, by tenant and position (the timer's round)."""
    t = automations
    return conn.execute(select(t).where(t.c.active.is_(True)).order_by(t.c.tenant_id, t.c.position, t.c.id)).all()
