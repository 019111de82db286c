"""Agents, routing rules, the waiting queue and decisions in the store.

A ticket holds capacity while it has an assignee, an ``assigned_at`` and an open status;
solving or closing it keeps the assignee (history) and clears ``assigned_at``.

Lock order, everywhere: ticket row, then agent row, then customer row. A claim sets the
ticket's empty assignee first and then takes capacity with a compare-and-set on the
agent's load; both happen in one transaction, so no agent passes its capacity and no
ticket gets two assignees on SQLite (one writer) or PostgreSQL (row locks, and READ
COMMITTED re-checks the ``WHERE`` of an UPDATE that waited for a lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store.tables import (
    agents,
    customers,
    messages,
    routing_decisions,
    routing_queue,
    routing_rules,
    tenants,
    tickets,
)

CLASSES = ("email", "chat", "voice")
CLOSED = ("solved", "closed")
NOT_STARTED = "new"
LOAD = {c: agents.c[f"load_{c}"] for c in CLASSES}
CAP = {c: agents.c[f"cap_{c}"] for c in CLASSES}
AGENT_COLS = (
    agents.c.id, agents.c.tenant_id, agents.c.name, agents.c.email, agents.c.status, agents.c.tier,
    agents.c.skills, agents.c.last_assigned_at, agents.c.status_at, *CAP.values(), *LOAD.values(),
)
DEFAULT_REQUEUE_ON = ("offline",)


def capacity_columns(capacity: Mapping[str, int]) -> dict[str, int]:
    unknown = set(capacity) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown channel class {sorted(unknown)[0]!r} (known: {', '.join(CLASSES)})")
    return {f"cap_{c}": int(capacity.get(c, 0)) for c in CLASSES}


# --- agents ---------------------------------------------------------------------------

async def list_agents(conn: AsyncConnection, tenant_id: int, online_only: bool = False) -> list[Row]:
    stmt = select(*AGENT_COLS).where(agents.c.tenant_id == tenant_id).order_by(agents.c.id)
    if online_only:
        stmt = stmt.where(agents.c.status == "online")
    return list((await conn.execute(stmt)).all())


async def get_agent(conn: AsyncConnection, tenant_id: int, agent_id: int) -> Row | None:
    return (
        await conn.execute(select(*AGENT_COLS).where(agents.c.tenant_id == tenant_id, agents.c.id == agent_id))
    ).first()


async def set_agent_status(conn: AsyncConnection, tenant_id: int, agent_id: int, status: str, now: int) -> Row | None:
    """Set the status; returns the agent's previous row, or None when there is no such agent."""
    before = await get_agent(conn, tenant_id, agent_id)
    if before is not None and before.status != status:
        await conn.execute(update(agents).where(agents.c.id == agent_id).values(status=status, status_at=now))
    return before


# --- rules ----------------------------------------------------------------------------

async def list_rules(conn: AsyncConnection, tenant_id: int) -> list[Row]:
    return list((await conn.execute(
        select(routing_rules).where(routing_rules.c.tenant_id == tenant_id)
        .order_by(routing_rules.c.position, routing_rules.c.id)
    )).all())


async def add_rule(conn: AsyncConnection, tenant_id: int, now: int, position: int | None = None,
                   **fields: Any) -> int:
    """Insert a rule at ``position`` (1 = first), or last; later rules move down one."""
    last = (await conn.execute(
        select(func.max(routing_rules.c.position)).where(routing_rules.c.tenant_id == tenant_id)
    )).scalar() or 0
    if position is None or position > last:
        position = last + 1
    else:
        position = max(position, 1)
        await conn.execute(
            update(routing_rules)
            .where(routing_rules.c.tenant_id == tenant_id, routing_rules.c.position >= position)
            .values(position=routing_rules.c.position + 1)
        )
    values = {"match": {}, "required": {}, "preferred": {}, "widen": {}, **fields}
    result = await conn.execute(insert(routing_rules).values(
        tenant_id=tenant_id, position=position, created_at=now, **values
    ))
    return result.inserted_primary_key[0]


async def delete_rule(conn: AsyncConnection, tenant_id: int, rule_id: int) -> bool:
    result = await conn.execute(
        delete(routing_rules).where(routing_rules.c.tenant_id == tenant_id, routing_rules.c.id == rule_id)
    )
    return result.rowcount == 1


# --- what the router reads ------------------------------------------------------------

async def ticket_for_routing(conn: AsyncConnection, ticket_id: int) -> Row | None:
    return (await conn.execute(
        select(
            tickets.c.id, tickets.c.tenant_id, tickets.c.number, tickets.c.status, tickets.c.channel,
            tickets.c.account_id, tickets.c.priority, tickets.c.tags, tickets.c.language,
            tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.customer_id, tickets.c.created_at,
            tickets.c.subject,
            customers.c.vip_tier, customers.c.last_agent_id,
        )
        .join(customers, customers.c.id == tickets.c.customer_id)
        .where(tickets.c.id == ticket_id)
    )).first()


async def first_message_text(conn: AsyncConnection, ticket_id: int) -> str:
    row = (await conn.execute(
        select(messages.c.subject, messages.c.text)
        .where(messages.c.ticket_id == ticket_id, messages.c.direction == "in")
        .order_by(messages.c.id).limit(1)
    )).first()
    return f"{row.subject}\n{row.text}" if row else ""


async def tenant_settings(conn: AsyncConnection, tenant_id: int) -> dict:
    return (await conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id))).scalar() or {}


def requeue_statuses(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Agent statuses that hand the agent's not-yet-started tickets back to the queue."""
    return tuple(settings.get("routing", {}).get("requeue_on", DEFAULT_REQUEUE_ON))


async def queue_page(conn: AsyncConnection, tenant_id: int, cls: str, limit: int, after_rank: int | None = None
                     ) -> list[Row]:
    stmt = (
        select(routing_queue)
        .where(routing_queue.c.tenant_id == tenant_id, routing_queue.c.channel_class == cls)
        .order_by(routing_queue.c.rank, routing_queue.c.id).limit(limit)
    )
    if after_rank is not None:
        stmt = stmt.where(routing_queue.c.rank >= after_rank)
    return list((await conn.execute(stmt)).all())


async def queued(conn: AsyncConnection, ticket_id: int) -> Row | None:
    return (await conn.execute(select(routing_queue).where(routing_queue.c.ticket_id == ticket_id))).first()


# --- what the router writes -----------------------------------------------------------

async def lock_ticket(conn: AsyncConnection, ticket_id: int) -> Row | None:
    """The ticket's routing state, row-locked on PostgreSQL (SQLite's writer already is alone)."""
    return (await conn.execute(
        select(tickets.c.id, tickets.c.status, tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.tags,
               tickets.c.customer_id, tickets.c.created_at)
        .where(tickets.c.id == ticket_id).with_for_update()
    )).first()


def _unheld():
    return (tickets.c.assignee_id.is_(None) | tickets.c.assigned_at.is_(None)) & tickets.c.status.not_in(CLOSED)


async def take_ticket(conn: AsyncConnection, ticket_id: int, agent_id: int, now: int) -> Row | None:
    """Set the assignee where nobody holds the ticket yet and it is still open.

    Returns the ticket's (customer_id, created_at), or None when it was not free to take.
    """
    return (await conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id, _unheld())
        .values(assignee_id=agent_id, assigned_at=now, updated_at=now)
        .returning(tickets.c.customer_id, tickets.c.created_at)
    )).first()


async def take_capacity(conn: AsyncConnection, agent_id: int, cls: str, now: int) -> bool:
    """Compare-and-set: one more ticket for an online agent still under capacity."""
    result = await conn.execute(
        update(agents)
        .where(agents.c.id == agent_id, agents.c.status == "online", LOAD[cls] < CAP[cls])
        .values({LOAD[cls]: LOAD[cls] + 1, agents.c.last_assigned_at: now})
    )
    return result.rowcount == 1


async def free_capacity(conn: AsyncConnection, agent_id: int, cls: str) -> None:
    await conn.execute(
        update(agents).where(agents.c.id == agent_id, LOAD[cls] > 0).values({LOAD[cls]: LOAD[cls] - 1})
    )


async def remember_agent(conn: AsyncConnection, customer_id: int, agent_id: int) -> None:
    await conn.execute(update(customers).where(customers.c.id == customer_id).values(last_agent_id=agent_id))


async def set_language(conn: AsyncConnection, ticket_id: int, language: str) -> None:
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(language=language))


async def set_tags(conn: AsyncConnection, ticket_id: int, tags: list[str]) -> None:
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(tags=tags))


async def enqueue(conn: AsyncConnection, **values: Any) -> None:
    """Add a waiting ticket unless it is already waiting."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(routing_queue).values(**values).on_conflict_do_nothing(index_elements=["ticket_id"])
    )


async def dequeue(conn: AsyncConnection, ticket_id: int) -> None:
    await conn.execute(delete(routing_queue).where(routing_queue.c.ticket_id == ticket_id))


async def set_stage(conn: AsyncConnection, ticket_id: int, stage: int, next_at: int | None) -> None:
    await conn.execute(
        update(routing_queue).where(routing_queue.c.ticket_id == ticket_id).values(stage=stage, next_stage_at=next_at)
    )


async def due_escalations(conn: AsyncConnection, now: int, limit: int) -> list[Row]:
    return list((await conn.execute(
        select(routing_queue).where(routing_queue.c.next_stage_at <= now)
        .order_by(routing_queue.c.next_stage_at).limit(limit)
    )).all())


async def record(conn: AsyncConnection, tenant_id: int, ticket_id: int, outcome: str, now: int, *,
                 agent_id: int | None = None, rule_id: int | None = None, detail: dict | None = None,
                 elapsed_us: int = 0) -> None:
    await conn.execute(insert(routing_decisions).values(
        tenant_id=tenant_id, ticket_id=ticket_id, outcome=outcome, agent_id=agent_id, rule_id=rule_id,
        detail=detail or {}, elapsed_us=min(elapsed_us, 2**31 - 1), created_at=now,
    ))


async def decisions(conn: AsyncConnection, tenant_id: int, ticket_id: int) -> list[Row]:
    return list((await conn.execute(
        select(routing_decisions)
        .where(routing_decisions.c.tenant_id == tenant_id, routing_decisions.c.ticket_id == ticket_id)
        .order_by(routing_decisions.c.id)
    )).all())


# --- capacity bookkeeping -------------------------------------------------------------

def _class_of(channel: str) -> str:
    return {"email": "email", "voice": "voice"}.get(channel, "chat")


async def unassign(conn: AsyncConnection, ticket_id: int, now: int, status: str | None = None,
                   only_status: str | None = None) -> int | None:
    """Clear the assignee (and optionally set ``status``), freeing the agent's capacity.

    Returns the agent that was freed, or None when the ticket had no assignee (or was not
    in ``only_status``). Capacity counts open tickets only, so a closed ticket frees nothing.
    """
    row = await _holder(conn, ticket_id)
    if row is None or row.assignee_id is None or (only_status and row.status != only_status):
        return None
    values: dict[str, Any] = {"assignee_id": None, "assigned_at": None, "updated_at": now}
    if status:
        values["status"] = status
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))
    if _holds(row):
        await free_capacity(conn, row.assignee_id, _class_of(row.channel))
        return row.assignee_id
    return None


async def _holder(conn: AsyncConnection, ticket_id: int) -> Row | None:
    return (await conn.execute(
        select(tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.status, tickets.c.channel)
        .where(tickets.c.id == ticket_id).with_for_update()
    )).first()


def _holds(row: Row) -> bool:
    return row.assignee_id is not None and row.assigned_at is not None and row.status not in CLOSED


async def close_ticket(conn: AsyncConnection, ticket_id: int, status: str, now: int) -> int | None:
    """Solve or close: the assignee stays on the ticket, its capacity is freed. Returns them."""
    row = await _holder(conn, ticket_id)
    if row is None:
        return None
    values: dict[str, Any] = {"status": status, "updated_at": now, "assigned_at": None}
    if row.status not in CLOSED:
        values["closed_at"] = now
    await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))
    if _holds(row):
        await free_capacity(conn, row.assignee_id, _class_of(row.channel))
        return row.assignee_id
    return None


async def not_started(conn: AsyncConnection, agent_id: int) -> list[int]:
    return list((await conn.execute(
        select(tickets.c.id).where(tickets.c.assignee_id == agent_id, tickets.c.status == NOT_STARTED,
                                   tickets.c.assigned_at.is_not(None))
        .order_by(tickets.c.id)
    )).scalars())


async def reconcile_loads(conn: AsyncConnection, tenant_id: int) -> list[tuple[int, str, int, int]]:
    """Set every agent's load to the open tickets it holds; returns the corrections made.

    The agents are locked first, so a claim that already took its ticket waits and then
    counts on the corrected load.
    """
    rows = (await conn.execute(
        select(agents.c.id, *LOAD.values()).where(agents.c.tenant_id == tenant_id)
        .order_by(agents.c.id).with_for_update()
    )).all()
    held = (await conn.execute(
        select(tickets.c.assignee_id, tickets.c.channel, func.count())
        .where(tickets.c.tenant_id == tenant_id, tickets.c.assignee_id.is_not(None),
               tickets.c.assigned_at.is_not(None), tickets.c.status.not_in(CLOSED))
        .group_by(tickets.c.assignee_id, tickets.c.channel)
    )).all()
    counts: dict[tuple[int, str], int] = {}
    for agent_id, channel, n in held:
        key = (agent_id, _class_of(channel))
        counts[key] = counts.get(key, 0) + n
    fixes = []
    for row in rows:
        for cls in CLASSES:
            want, have = counts.get((row.id, cls), 0), getattr(row, f"load_{cls}")
            if want != have:
                fixes.append((row.id, cls, have, want))
                await conn.execute(update(agents).where(agents.c.id == row.id).values({LOAD[cls]: want}))
    return fixes


async def queue_depths(conn: AsyncConnection) -> list[tuple[str, int, int]]:
    """(tenant slug, VIP tier, waiting tickets) for every non-empty combination."""
    return [tuple(r) for r in (await conn.execute(
        select(tenants.c.slug, routing_queue.c.vip_tier, func.count())
        .join(tenants, tenants.c.id == routing_queue.c.tenant_id)
        .group_by(tenants.c.slug, routing_queue.c.vip_tier)
    )).all()]


async def tenant_ids(conn: AsyncConnection) -> list[int]:
    return list((await conn.execute(select(tenants.c.id).order_by(tenants.c.id))).scalars())


async def agents_with_room(conn: AsyncConnection, tenant_id: int) -> list[int]:
    room = [LOAD[c] < CAP[c] for c in CLASSES]
    return list((await conn.execute(
        select(agents.c.id).where(agents.c.tenant_id == tenant_id, agents.c.status == "online",
                                  room[0] | room[1] | room[2])
        .order_by(agents.c.last_assigned_at)
    )).scalars())

