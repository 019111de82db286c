"""The waiting queue: tickets no agent could take yet, best first by ``rank``, per channel class.

An entry keeps the requirements it was queued with and its escalation stage; a periodic
pass moves due entries to their next stage (``due_escalations``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from ticket_service.store.compiled import Statement
from ticket_service.store.tables import routing_queue, tenants

B = bindparam
_PAGE = Statement(
    select(routing_queue)
    .where(routing_queue.c.tenant_id == B("tenant_id"), routing_queue.c.channel_class == B("cls"))
    .order_by(routing_queue.c.rank, routing_queue.c.id).limit(B("limit"))
)
_QUEUED = select(routing_queue).where(routing_queue.c.ticket_id.in_(B("ticket_ids", expanding=True)))
_COLUMNS = ("tenant_id", "ticket_id", "channel_class", "vip_tier", "rank", "queued_at", "rule_id",
            "requirements", "stage", "next_stage_at")
_ENQUEUE = {
    "postgresql": Statement(postgresql.insert(routing_queue).on_conflict_do_nothing(index_elements=["ticket_id"]),
                            _COLUMNS),
    "sqlite": Statement(sqlite.insert(routing_queue).on_conflict_do_nothing(index_elements=["ticket_id"]),
                        _COLUMNS),
}
_DEQUEUE = Statement(delete(routing_queue).where(routing_queue.c.ticket_id == B("b_ticket")))
_SET_STAGE = Statement(update(routing_queue).where(routing_queue.c.ticket_id == B("b_ticket"))
                       .values(stage=B("b_stage"), next_stage_at=B("b_next_at")))
_POSTPONE_STAGE = Statement(update(routing_queue)
                            .where(routing_queue.c.ticket_id == B("b_ticket"), routing_queue.c.next_stage_at < B("b_at"))
                            .values(next_stage_at=B("b_at")))
_DUE_ESCALATIONS = Statement(select(routing_queue).where(routing_queue.c.next_stage_at <= B("now"))
                             .order_by(routing_queue.c.next_stage_at).limit(B("limit")))
_DEPTHS = Statement(
    select(tenants.c.slug, routing_queue.c.vip_tier, func.count().label("n"))
    .join(tenants, tenants.c.id == routing_queue.c.tenant_id)
    .group_by(tenants.c.slug, routing_queue.c.vip_tier)
)


def page(conn: Connection, tenant_id: int, cls: str, limit: int) -> list[Row]:
    """The first ``limit`` tickets waiting for a ``cls`` agent, best first."""
    return _PAGE.all(conn, {"tenant_id": tenant_id, "cls": cls, "limit": limit})


def entries(conn: Connection, ticket_ids: list[int]) -> dict[int, Row]:
    """The waiting entry of each of the tickets that waits, by ticket id."""
    if not ticket_ids:
        return {}
    return {row.ticket_id: row for row in conn.execute(_QUEUED, {"ticket_ids": ticket_ids})}


def entry(conn: Connection, ticket_id: int) -> Row | None:
    return entries(conn, [ticket_id]).get(ticket_id)


def enqueue(conn: Connection, **values: Any) -> None:
    """Add a waiting ticket unless it is already waiting."""
    _ENQUEUE[conn.dialect.name].rowcount(conn, values)


def dequeue(conn: Connection, ticket_id: int) -> None:
    _DEQUEUE.rowcount(conn, {"b_ticket": ticket_id})


def move_ahead(conn: Connection, ticket_id: int, rank: int) -> bool:
    """Give a waiting ticket ``rank`` unless it is that far ahead already; False if it moved not."""
    return conn.execute(update(routing_queue).where(routing_queue.c.ticket_id == ticket_id,
                                                    routing_queue.c.rank > rank).values(rank=rank)).rowcount > 0


def set_stage(conn: Connection, ticket_id: int, stage: int, next_at: int | None) -> None:
    _SET_STAGE.rowcount(conn, {"b_ticket": ticket_id, "b_stage": stage, "b_next_at": next_at})


def postpone_stage(conn: Connection, ticket_id: int, at: int) -> None:
    """Make a waiting ticket's next escalation due no earlier than ``at``."""
    _POSTPONE_STAGE.rowcount(conn, {"b_ticket": ticket_id, "b_at": at})


def due_escalations(conn: Connection, now: int, limit: int) -> list[Row]:
    return _DUE_ESCALATIONS.all(conn, {"now": now, "limit": limit})


def depths(conn: Connection) -> list[tuple[str, int, int]]:
    """(tenant slug, VIP tier, waiting tickets) for every non-empty combination."""
    return [tuple(r) for r in _DEPTHS.all(conn, {})]
