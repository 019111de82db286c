"""A tenant's business calendars and SLA policies, and the clocks of one ticket.

Synchronous, for ``Database.run_write``/``run_read``. Documents arrive checked (the rules
package validates them); this module only stores and orders them. Policies keep their
table order like routing rules: ``position`` 1 is looked at first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Row

from ticket_service.store.tables import calendars, sla_clocks, sla_policies

MAX_CALENDARS = 100
MAX_POLICIES = 100


class Full(Exception):
    """The tenant already has as many as it may."""


# -- calendars -------------------------------------------------------------------------------

def list_calendars(conn: Connection, tenant_id: int) -> list[Row]:
    return conn.execute(select(calendars).where(calendars.c.tenant_id == tenant_id)
                        .order_by(calendars.c.name)).all()


def get_calendar(conn: Connection, tenant_id: int, name: str) -> Row | None:
    return conn.execute(select(calendars).where(calendars.c.tenant_id == tenant_id,
                                                calendars.c.name == name)).first()


def add_calendar(conn: Connection, tenant_id: int, name: str, spec: dict, now: int) -> None:
    """Raises ``Full``, or IntegrityError when the name is taken."""
    count = conn.execute(select(func.count()).select_from(calendars)
                         .where(calendars.c.tenant_id == tenant_id)).scalar()
    if count >= MAX_CALENDARS:
        raise Full(f"a tenant has at most {MAX_CALENDARS} calendars")
    conn.execute(calendars.insert().values(tenant_id=tenant_id, name=name, spec=spec, created_at=now,
                                           updated_at=now))


def replace_calendar(conn: Connection, tenant_id: int, name: str, spec: dict, now: int) -> bool:
    return conn.execute(update(calendars).where(calendars.c.tenant_id == tenant_id, calendars.c.name == name)
                        .values(spec=spec, updated_at=now)).rowcount == 1


def remove_calendar(conn: Connection, tenant_id: int, name: str) -> bool:
    return conn.execute(delete(calendars).where(calendars.c.tenant_id == tenant_id,
                                                calendars.c.name == name)).rowcount == 1


def policies_using(conn: Connection, tenant_id: int, calendar: str) -> list[str]:
    return list(conn.execute(select(sla_policies.c.name).where(
        sla_policies.c.tenant_id == tenant_id, sla_policies.c.calendar == calendar)).scalars())


# -- policies --------------------------------------------------------------------------------

def list_policies(conn: Connection, tenant_id: int) -> list[Row]:
    return conn.execute(select(sla_policies).where(sla_policies.c.tenant_id == tenant_id)
                        .order_by(sla_policies.c.position, sla_policies.c.id)).all()


def get_policy(conn: Connection, tenant_id: int, name: str) -> Row | None:
    return conn.execute(select(sla_policies).where(sla_policies.c.tenant_id == tenant_id,
                                                   sla_policies.c.name == name)).first()


def _place(conn: Connection, tenant_id: int, policy_id: int, position: int | None) -> None:
    """Put the policy at ``position`` (1 = first; None or past the end: last) and number
    the tenant's policies 1..n again."""
    order = [r.id for r in list_policies(conn, tenant_id) if r.id != policy_id]
    at = len(order) if position is None else min(max(position, 1) - 1, len(order))
    order.insert(at, policy_id)
    for n, pid in enumerate(order, 1):
        conn.execute(update(sla_policies).where(sla_policies.c.id == pid, sla_policies.c.position != n)
                     .values(position=n))


def add_policy(conn: Connection, tenant_id: int, values: dict[str, Any], now: int) -> None:
    """Insert a checked policy; raises ``Full``, or IntegrityError when the name is taken."""
    count = conn.execute(select(func.count()).select_from(sla_policies)
                         .where(sla_policies.c.tenant_id == tenant_id)).scalar()
    if count >= MAX_POLICIES:
        raise Full(f"a tenant has at most {MAX_POLICIES} SLA policies")
    values = dict(values)
    position = values.pop("position", None)
    new_id = conn.execute(sla_policies.insert().values(tenant_id=tenant_id, position=0, created_at=now,
                                                       updated_at=now, **values)).inserted_primary_key[0]
    _place(conn, tenant_id, new_id, position)


def replace_policy(conn: Connection, tenant_id: int, name: str, values: dict[str, Any], now: int) -> bool:
    row = get_policy(conn, tenant_id, name)
    if row is None:
        return False
    values = dict(values)
    wanted = values.pop("position", None)
    conn.execute(update(sla_policies).where(sla_policies.c.id == row.id).values(updated_at=now, **values))
    if wanted is not None:
        _place(conn, tenant_id, row.id, wanted)
    return True


def remove_policy(conn: Connection, tenant_id: int, name: str) -> bool:
    return conn.execute(delete(sla_policies).where(sla_policies.c.tenant_id == tenant_id,
                                                   sla_policies.c.name == name)).rowcount == 1


# -- clocks ----------------------------------------------------------------------------------

def ticket_clocks(conn: Connection, tenant_id: int, ticket_id: int) -> list[Row]:
    return conn.execute(select(sla_clocks).where(sla_clocks.c.tenant_id == tenant_id,
                                                 sla_clocks.c.ticket_id == ticket_id)
                        .order_by(sla_clocks.c.id)).all()
