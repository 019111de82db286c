"""The audit of triggers and automations: one row per firing, written with its effects.

``uq_audit_event_trigger`` makes a trigger fire at most once per event, and
``uq_audit_automation_episode`` an automation at most once per ticket per episode (the
ticket's ``status_at``): a redelivered event or a second look finds the row and does nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from ticket_service.store.tables import audit

APPLIED, ERROR = "applied", "error"
MAX_ERROR = 2000


def trigger_fired(conn: Connection, event_id: str, trigger_id: int) -> bool:
    return conn.execute(select(audit.c.id).where(audit.c.event_id == event_id,
                                                 audit.c.trigger_id == trigger_id)).first() is not None


def automation_fired(conn: Connection, automation_id: int, ticket_id: int, episode: int) -> bool:
    return conn.execute(select(audit.c.id).where(
        audit.c.automation_id == automation_id, audit.c.ticket_id == ticket_id,
        audit.c.episode == episode)).first() is not None


def record(conn: Connection, *, tenant_id: int, ticket_id: int, event_id: str, event_type: str, name: str,
           actions: list[dict[str, Any]], now: int, error: str = "", trigger_id: int | None = None,
           automation_id: int | None = None, episode: int | None = None) -> None:
    conn.execute(audit.insert().values(
        tenant_id=tenant_id, ticket_id=ticket_id, event_id=event_id[:64], event_type=event_type[:64],
        trigger_id=trigger_id, automation_id=automation_id, episode=episode, name=name[:200], actions=actions,
        result=ERROR if error else APPLIED, error=error[:MAX_ERROR], created_at=now))


def page(conn: Connection, tenant_id: int, ticket_id: int, limit: int, before: int | None = None) -> list[Row]:
    """A ticket's firings, newest first, ``limit`` of them from below the id ``before``."""
    stmt = select(audit).where(audit.c.tenant_id == tenant_id, audit.c.ticket_id == ticket_id)
    if before is not None:
        stmt = stmt.where(audit.c.id < before)
    return conn.execute(stmt.order_by(audit.c.id.desc()).limit(limit)).all()
