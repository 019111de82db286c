"""Routing decisions: each with its outcome and the reasons behind it (``detail``), for the trail."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection, Row

from ticket_service.store.compiled import Statement
from ticket_service.store.tables import routing_decisions

B = bindparam
_RECORD = Statement(insert(routing_decisions), ("tenant_id", "ticket_id", "outcome", "agent_id", "rule_id",
                                                "detail", "elapsed_us", "created_at"))
_DECISIONS = Statement(
    select(routing_decisions)
    .where(routing_decisions.c.tenant_id == B("tenant_id"), routing_decisions.c.ticket_id == B("ticket_id"))
    .order_by(routing_decisions.c.id)
)


def record(conn: Connection, tenant_id: int, ticket_id: int, outcome: str, now: int, *,
           agent_id: int | None = None, rule_id: int | None = None, detail: dict | None = None,
           elapsed_us: int = 0) -> None:
    _RECORD.rowcount(conn, {
        "tenant_id": tenant_id, "ticket_id": ticket_id, "outcome": outcome, "agent_id": agent_id,
        "rule_id": rule_id, "detail": detail or {}, "elapsed_us": min(elapsed_us, 2**31 - 1), "created_at": now,
    })


def decisions(conn: Connection, tenant_id: int, ticket_id: int) -> list[Row]:
    return _DECISIONS.all(conn, {"tenant_id": tenant_id, "ticket_id": ticket_id})
