"""Agents, routing rules, the waiting queue and decisions in the store.

A ticket holds capacity while it has an assignee, an ``assigned_at`` and an open status;
solving or closing it keeps the assignee (history) and clears ``assigned_at``.

Lock order, everywhere: ticket row, then agent row, then customer row. A claim locks the
ticket (``lock_ticket``: nobody may hold it), takes capacity with a compare-and-set on the
agent's load, and sets the assignee, all in one transaction, so no agent passes its
capacity and no ticket gets two assignees on SQLite (one writer) or PostgreSQL (row locks,
and READ COMMITTED re-checks the ``WHERE`` of an UPDATE that waited for a lock).

Every function here is synchronous and takes a ``sqlalchemy.engine.Connection``: the router
runs them in one transaction through ``Database.run_read``/``run_write``; async code calls
them with ``await conn.run_sync(fn, ...)``. The statements are built once, with bind
parameters, so a call costs no statement construction or cache-key generation; the reads
the router makes for many tickets or agents at once take lists (``tickets_for_routing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from core.channel import CAPACITY_CLASSES, class_of
from ticket_service.rule_schema import MAX_RULES, RuleError
from ticket_service.store.compiled import RawJSON, Statement
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

CLASSES = CAPACITY_CLASSES
CLOSED = ("solved", "closed")
NOT_STARTED = "new"
LOAD = {c: agents.c[f"load_{c}"] for c in CLASSES}
CAP = {c: agents.c[f"cap_{c}"] for c in CLASSES}
AGENT_COLS = (
    agents.c.id, agents.c.tenant_id, agents.c.name, agents.c.email, agents.c.status, agents.c.tier,
    agents.c.skills, agents.c.last_assigned_at, agents.c.status_at, *CAP.values(), *LOAD.values(),
)
DEFAULT_REQUEUE_ON = ("offline",)
B = bindparam  # parameters of UPDATE/INSERT statements are named b_*: never a column's name


def capacity_columns(capacity: Mapping[str, int]) -> dict[str, int]:
    unknown = set(capacity) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown channel class {sorted(unknown)[0]!r} (known: {', '.join(CLASSES)})")
    return {f"cap_{c}": int(capacity.get(c, 0)) for c in CLASSES}




# --- agents ---------------------------------------------------------------------------

_AGENTS = select(*AGENT_COLS).where(agents.c.tenant_id == B("tenant_id")).order_by(agents.c.id)
_ONLINE_AGENTS = _AGENTS.where(agents.c.status == "online")
_LIST_AGENTS = {False: Statement(_AGENTS), True: Statement(_ONLINE_AGENTS)}
_ONLINE_WITH_ROOM = {c: Statement(_ONLINE_AGENTS.where(LOAD[c] < CAP[c])) for c in CLASSES}
_AGENTS_BY_ID = select(*AGENT_COLS).where(agents.c.tenant_id == B("tenant_id"),
                                          agents.c.id.in_(B("agent_ids", expanding=True)))
_SET_STATUS = Statement(update(agents).where(agents.c.id == B("b_agent"))
                         .values(status=B("b_status"), status_at=B("b_now")))


def list_agents(conn: Connection, tenant_id: int, online_only: bool = False) -> list[Row]:
    return _LIST_AGENTS[online_only].all(conn, {"tenant_id": tenant_id})


def online_agents_with_room(conn: Connection, tenant_id: int, cls: str) -> list[Row]:
    """The online agents with free ``cls`` capacity, in id order (usually few when busy)."""
    return _ONLINE_WITH_ROOM[cls].all(conn, {"tenant_id": tenant_id})


def get_agents(conn: Connection, tenant_id: int, agent_ids: list[int]) -> dict[int, Row]:
    """The tenant's agents among ``agent_ids``, by id."""
    if not agent_ids:
        return {}
    return {row.id: row for row in conn.execute(_AGENTS_BY_ID, {"tenant_id": tenant_id, "agent_ids": agent_ids})}


def get_agent(conn: Connection, tenant_id: int, agent_id: int) -> Row | None:
    return get_agents(conn, tenant_id, [agent_id]).get(agent_id)


def set_agent_status(conn: Connection, tenant_id: int, agent_id: int, status: str, now: int) -> Row | None:
    """Set the status; returns the agent's previous row, or None when there is no such agent."""
    before = get_agent(conn, tenant_id, agent_id)
    if before is not None and before.status != status:
        _SET_STATUS.rowcount(conn, {"b_agent": agent_id, "b_status": status, "b_now": now})
    return before


# --- rules ----------------------------------------------------------------------------

_RULES = Statement(select(routing_rules).where(routing_rules.c.tenant_id == B("tenant_id"))
                    .order_by(routing_rules.c.position, routing_rules.c.id))
_LAST_POSITION = Statement(select(func.max(routing_rules.c.position).label("last"))
                            .where(routing_rules.c.tenant_id == B("tenant_id")))
_MAKE_ROOM = Statement(
    update(routing_rules)
    .where(routing_rules.c.tenant_id == B("b_tenant"), routing_rules.c.position >= B("b_position"))
    .values(position=routing_rules.c.position + 1)
)
_COUNT_RULES = Statement(select(func.count().label("n")).select_from(routing_rules)
                         .where(routing_rules.c.tenant_id == B("tenant_id")))
_ADD_RULE = insert(routing_rules)
_DELETE_RULE = Statement(delete(routing_rules).where(routing_rules.c.tenant_id == B("b_tenant"),
                                                      routing_rules.c.id == B("b_rule")))


def list_rules(conn: Connection, tenant_id: int) -> list[Row]:
    return _RULES.all(conn, {"tenant_id": tenant_id})


def add_rule(conn: Connection, tenant_id: int, now: int, position: int | None = None, **fields: Any) -> int:
    """Insert a rule at ``position`` (1 = first), or last; later rules move down one.

    Raises ``RuleError`` when the tenant already has ``MAX_RULES``: every rule is looked at
    for every ticket, and each decision's trace lists them.
    """
    if _COUNT_RULES.scalar(conn, {"tenant_id": tenant_id}) >= MAX_RULES:
        raise RuleError(f"a tenant has at most {MAX_RULES} routing rules", 400, "too_many_rules")
    last = _LAST_POSITION.scalar(conn, {"tenant_id": tenant_id}) or 0
    if position is None or position > last:
        position = last + 1
    else:
        position = max(position, 1)
        _MAKE_ROOM.rowcount(conn, {"b_tenant": tenant_id, "b_position": position})
    values = {"match": {}, "required": {}, "preferred": {}, "widen": {}, **fields}
    result = conn.execute(_ADD_RULE, {"tenant_id": tenant_id, "position": position, "created_at": now, **values})
    return result.inserted_primary_key[0]


def delete_rule(conn: Connection, tenant_id: int, rule_id: int) -> bool:
    return _DELETE_RULE.rowcount(conn, {"b_tenant": tenant_id, "b_rule": rule_id}) == 1


# --- what the router reads ------------------------------------------------------------

_TICKETS_FOR_ROUTING = (
    select(
        tickets.c.id, tickets.c.tenant_id, tickets.c.number, tickets.c.status, tickets.c.channel,
        tickets.c.account_id, tickets.c.priority, tickets.c.tags, tickets.c.language,
        tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.customer_id, tickets.c.created_at,
        tickets.c.subject,
        customers.c.vip_tier, customers.c.last_agent_id,
    )
    .join(customers, customers.c.id == tickets.c.customer_id)
    .where(tickets.c.id.in_(B("ticket_ids", expanding=True)))
)
_FIRST_MESSAGES = select(messages.c.ticket_id, messages.c.subject, messages.c.text).where(messages.c.id.in_(
    select(func.min(messages.c.id))
    .where(messages.c.ticket_id.in_(B("ticket_ids", expanding=True)), messages.c.direction == "in")
    .group_by(messages.c.ticket_id)
    .scalar_subquery()
))
_TENANT_SETTINGS = Statement(select(tenants.c.settings).where(tenants.c.id == B("tenant_id")))
_QUEUE_PAGE = Statement(
    select(routing_queue)
    .where(routing_queue.c.tenant_id == B("tenant_id"), routing_queue.c.channel_class == B("cls"))
    .order_by(routing_queue.c.rank, routing_queue.c.id).limit(B("limit"))
)
_QUEUED = select(routing_queue).where(routing_queue.c.ticket_id.in_(B("ticket_ids", expanding=True)))


def _by_ticket(conn: Connection, stmt, ticket_ids: list[int], key: str = "ticket_id") -> dict[int, Row]:
    if not ticket_ids:
        return {}
    return {getattr(row, key): row for row in conn.execute(stmt, {"ticket_ids": ticket_ids})}


def tickets_for_routing(conn: Connection, ticket_ids: list[int]) -> dict[int, Row]:
    """The routing state of each ticket (with its customer's VIP tier and last agent), by id."""
    return _by_ticket(conn, _TICKETS_FOR_ROUTING, ticket_ids, "id")


def ticket_for_routing(conn: Connection, ticket_id: int) -> Row | None:
    return tickets_for_routing(conn, [ticket_id]).get(ticket_id)


def first_message_texts(conn: Connection, ticket_ids: list[int]) -> dict[int, str]:
    """Subject and text of each ticket's first inbound message, by ticket id ("" without one)."""
    rows = _by_ticket(conn, _FIRST_MESSAGES, ticket_ids)
    return {ticket_id: f"{row.subject}\n{row.text}" if (row := rows.get(ticket_id)) else ""
            for ticket_id in ticket_ids}


def first_message_text(conn: Connection, ticket_id: int) -> str:
    return first_message_texts(conn, [ticket_id])[ticket_id]


def tenant_settings(conn: Connection, tenant_id: int) -> dict:
    return _TENANT_SETTINGS.scalar(conn, {"tenant_id": tenant_id}) or {}


def requeue_statuses(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Agent statuses that hand the agent's not-yet-started tickets back to the queue."""
    return tuple(settings.get("routing", {}).get("requeue_on", DEFAULT_REQUEUE_ON))


def queue_page(conn: Connection, tenant_id: int, cls: str, limit: int) -> list[Row]:
    """The first ``limit`` tickets waiting for a ``cls`` agent, best first."""
    return _QUEUE_PAGE.all(conn, {"tenant_id": tenant_id, "cls": cls, "limit": limit})


def queued_entries(conn: Connection, ticket_ids: list[int]) -> dict[int, Row]:
    """The waiting entry of each of the tickets that waits, by ticket id."""
    return _by_ticket(conn, _QUEUED, ticket_ids)


def queued(conn: Connection, ticket_id: int) -> Row | None:
    return queued_entries(conn, [ticket_id]).get(ticket_id)


# --- what the router writes -----------------------------------------------------------

_OPEN = and_(*(tickets.c.status != status for status in CLOSED))  # not NOT IN: no per-call expansion
_UNHELD = (tickets.c.assignee_id.is_(None) | tickets.c.assigned_at.is_(None)) & _OPEN
_LOCK_TICKET = Statement(
    select(tickets.c.id, tickets.c.status, tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.tags,
           tickets.c.customer_id, tickets.c.created_at)
    .where(tickets.c.id == B("ticket_id")).with_for_update()
)
_TAKE_TICKET = Statement(
    update(tickets)
    .where(tickets.c.id == B("b_ticket"), _UNHELD)
    .values(assignee_id=B("b_agent"), assigned_at=B("b_now"), updated_at=B("b_now"))
    .returning(tickets.c.customer_id, tickets.c.created_at)
)
_TAKE_CAPACITY = {
    c: Statement(
        update(agents)
        .where(agents.c.id == B("b_agent"), agents.c.status == "online", LOAD[c] < CAP[c])
        .values({LOAD[c]: LOAD[c] + 1, agents.c.last_assigned_at: B("b_now")})
    )
    for c in CLASSES
}
_FREE_CAPACITY = {
    c: Statement(update(agents).where(agents.c.id == B("b_agent"), LOAD[c] > 0).values({LOAD[c]: LOAD[c] - 1}))
    for c in CLASSES
}
_REMEMBER_AGENT = Statement(update(customers).where(customers.c.id == B("b_customer"))
                             .values(last_agent_id=B("b_agent")))
_SET_LANGUAGE = Statement(update(tickets).where(tickets.c.id == B("b_ticket")).values(language=B("b_language")))
_SET_TAGS = Statement(update(tickets).where(tickets.c.id == B("b_ticket"))
                       .values(tags=B("b_tags", type_=tickets.c.tags.type)))
_QUEUE_COLUMNS = ("tenant_id", "ticket_id", "channel_class", "vip_tier", "rank", "queued_at", "rule_id",
                  "requirements", "stage", "next_stage_at")
_ENQUEUE = {
    "postgresql": Statement(postgresql.insert(routing_queue).on_conflict_do_nothing(index_elements=["ticket_id"]),
                             _QUEUE_COLUMNS),
    "sqlite": Statement(sqlite.insert(routing_queue).on_conflict_do_nothing(index_elements=["ticket_id"]),
                         _QUEUE_COLUMNS),
}
_DEQUEUE = Statement(delete(routing_queue).where(routing_queue.c.ticket_id == B("b_ticket")))
_SET_STAGE = Statement(update(routing_queue).where(routing_queue.c.ticket_id == B("b_ticket"))
                        .values(stage=B("b_stage"), next_stage_at=B("b_next_at")))
_POSTPONE_STAGE = Statement(update(routing_queue)
                            .where(routing_queue.c.ticket_id == B("b_ticket"), routing_queue.c.next_stage_at < B("b_at"))
                            .values(next_stage_at=B("b_at")))
_DUE_ESCALATIONS = Statement(select(routing_queue).where(routing_queue.c.next_stage_at <= B("now"))
                              .order_by(routing_queue.c.next_stage_at).limit(B("limit")))
_RECORD = Statement(insert(routing_decisions), ("tenant_id", "ticket_id", "outcome", "agent_id", "rule_id",
                                                 "detail", "elapsed_us", "created_at"))
_DECISIONS = Statement(
    select(routing_decisions)
    .where(routing_decisions.c.tenant_id == B("tenant_id"), routing_decisions.c.ticket_id == B("ticket_id"))
    .order_by(routing_decisions.c.id)
)


def lock_ticket(conn: Connection, ticket_id: int) -> Row | None:
    """The ticket's routing state, row-locked on PostgreSQL (SQLite's writer already is alone)."""
    return _LOCK_TICKET.first(conn, {"ticket_id": ticket_id})


def take_ticket(conn: Connection, ticket_id: int, agent_id: int, now: int) -> Row | None:
    """Set the assignee where nobody holds the ticket yet and it is still open.

    Returns the ticket's (customer_id, created_at), or None when it was not free to take.
    """
    return _TAKE_TICKET.first(conn, {"b_ticket": ticket_id, "b_agent": agent_id, "b_now": now})


def take_capacity(conn: Connection, agent_id: int, cls: str, now: int) -> bool:
    """Compare-and-set: one more ticket for an online agent still under capacity."""
    return _TAKE_CAPACITY[cls].rowcount(conn, {"b_agent": agent_id, "b_now": now}) == 1


def free_capacity(conn: Connection, agent_id: int, cls: str) -> None:
    _FREE_CAPACITY[cls].rowcount(conn, {"b_agent": agent_id})


def remember_agent(conn: Connection, customer_id: int, agent_id: int) -> None:
    _REMEMBER_AGENT.rowcount(conn, {"b_customer": customer_id, "b_agent": agent_id})


def set_language(conn: Connection, ticket_id: int, language: str) -> None:
    _SET_LANGUAGE.rowcount(conn, {"b_ticket": ticket_id, "b_language": language})


def set_tags(conn: Connection, ticket_id: int, tags: list[str]) -> None:
    _SET_TAGS.rowcount(conn, {"b_ticket": ticket_id, "b_tags": tags})


def enqueue(conn: Connection, **values: Any) -> None:
    """Add a waiting ticket unless it is already waiting."""
    _ENQUEUE[conn.dialect.name].rowcount(conn, values)


def dequeue(conn: Connection, ticket_id: int) -> None:
    _DEQUEUE.rowcount(conn, {"b_ticket": ticket_id})


def set_stage(conn: Connection, ticket_id: int, stage: int, next_at: int | None) -> None:
    _SET_STAGE.rowcount(conn, {"b_ticket": ticket_id, "b_stage": stage, "b_next_at": next_at})


def postpone_stage(conn: Connection, ticket_id: int, at: int) -> None:
    """Make a waiting ticket's next escalation due no earlier than ``at``."""
    _POSTPONE_STAGE.rowcount(conn, {"b_ticket": ticket_id, "b_at": at})


def due_escalations(conn: Connection, now: int, limit: int) -> list[Row]:
    return _DUE_ESCALATIONS.all(conn, {"now": now, "limit": limit})


def record(conn: Connection, tenant_id: int, ticket_id: int, outcome: str, now: int, *,
           agent_id: int | None = None, rule_id: int | None = None, detail: dict | RawJSON | None = None,
           elapsed_us: int = 0) -> None:
    _RECORD.rowcount(conn, {
        "tenant_id": tenant_id, "ticket_id": ticket_id, "outcome": outcome, "agent_id": agent_id,
        "rule_id": rule_id, "detail": detail or {}, "elapsed_us": min(elapsed_us, 2**31 - 1), "created_at": now,
    })


def decisions(conn: Connection, tenant_id: int, ticket_id: int) -> list[Row]:
    return _DECISIONS.all(conn, {"tenant_id": tenant_id, "ticket_id": ticket_id})


# --- capacity bookkeeping -------------------------------------------------------------

_HOLDER = Statement(select(tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.status, tickets.c.channel)
                     .where(tickets.c.id == B("ticket_id")).with_for_update())
_UNASSIGN = update(tickets).where(tickets.c.id == B("b_ticket")).values(
    assignee_id=None, assigned_at=None, updated_at=B("b_now"))
_UNASSIGN_WITH_STATUS = Statement(_UNASSIGN.values(status=B("b_status")))
_CLOSE = update(tickets).where(tickets.c.id == B("b_ticket")).values(
    status=B("b_status"), updated_at=B("b_now"), assigned_at=None)
_CLOSE_FIRST_TIME = Statement(_CLOSE.values(closed_at=B("b_now")))
_UNASSIGN, _CLOSE = Statement(_UNASSIGN), Statement(_CLOSE)
_NOT_STARTED = Statement(
    select(tickets.c.id)
    .where(tickets.c.assignee_id == B("agent_id"), tickets.c.status == NOT_STARTED,
           tickets.c.assigned_at.is_not(None))
    .order_by(tickets.c.id)
)
_LOADS_LOCKED = Statement(select(agents.c.id, *LOAD.values()).where(agents.c.tenant_id == B("tenant_id"))
                           .order_by(agents.c.id).with_for_update())
_HELD_COUNTS = Statement(
    select(tickets.c.assignee_id, tickets.c.channel, func.count().label("n"))
    .where(tickets.c.tenant_id == B("tenant_id"), tickets.c.assignee_id.is_not(None),
           tickets.c.assigned_at.is_not(None), _OPEN)
    .group_by(tickets.c.assignee_id, tickets.c.channel)
)
_SET_LOAD = {c: Statement(update(agents).where(agents.c.id == B("b_agent")).values({LOAD[c]: B("b_load")}))
             for c in CLASSES}
_QUEUE_DEPTHS = Statement(
    select(tenants.c.slug, routing_queue.c.vip_tier, func.count().label("n"))
    .join(tenants, tenants.c.id == routing_queue.c.tenant_id)
    .group_by(tenants.c.slug, routing_queue.c.vip_tier)
)
_TENANT_IDS = Statement(select(tenants.c.id).order_by(tenants.c.id))
_ROOM = [LOAD[c] < CAP[c] for c in CLASSES]
_AGENTS_WITH_ROOM = Statement(
    select(agents.c.id)
    .where(agents.c.tenant_id == B("tenant_id"), agents.c.status == "online", _ROOM[0] | _ROOM[1] | _ROOM[2])
    .order_by(agents.c.last_assigned_at)
)


def unassign(conn: Connection, ticket_id: int, now: int, classes: Mapping[str, str], status: str | None = None,
             only_status: str | None = None) -> int | None:
    """Clear the assignee (and optionally set ``status``), freeing the agent's capacity.

    Returns the agent that was freed, or None when the ticket had no assignee (or was not
    in ``only_status``). Capacity counts open tickets only, so a closed ticket frees nothing.
    """
    row = _holder(conn, ticket_id)
    if row is None or row.assignee_id is None or (only_status and row.status != only_status):
        return None
    if status:
        _UNASSIGN_WITH_STATUS.rowcount(conn, {"b_ticket": ticket_id, "b_now": now, "b_status": status})
    else:
        _UNASSIGN.rowcount(conn, {"b_ticket": ticket_id, "b_now": now})
    if _holds(row):
        free_capacity(conn, row.assignee_id, class_of(classes, row.channel))
        return row.assignee_id
    return None


def _holder(conn: Connection, ticket_id: int) -> Row | None:
    return _HOLDER.first(conn, {"ticket_id": ticket_id})


def _holds(row: Row) -> bool:
    return row.assignee_id is not None and row.assigned_at is not None and row.status not in CLOSED


def close_ticket(conn: Connection, ticket_id: int, status: str, now: int, classes: Mapping[str, str]) -> int | None:
    """Solve or close: the assignee stays on the ticket, its capacity is freed. Returns them."""
    row = _holder(conn, ticket_id)
    if row is None:
        return None
    (_CLOSE if row.status in CLOSED else _CLOSE_FIRST_TIME).rowcount(
        conn, {"b_ticket": ticket_id, "b_status": status, "b_now": now})
    if _holds(row):
        free_capacity(conn, row.assignee_id, class_of(classes, row.channel))
        return row.assignee_id
    return None


def not_started(conn: Connection, agent_id: int) -> list[int]:
    return [row.id for row in _NOT_STARTED.all(conn, {"agent_id": agent_id})]


def reconcile_loads(conn: Connection, tenant_id: int, classes: Mapping[str, str]) -> list[tuple[int, str, int, int]]:
    """Set every agent's load to the open tickets it holds; returns the corrections made.

    The agents are locked first, so a claim that already took its ticket waits and then
    counts on the corrected load.
    """
    rows = _LOADS_LOCKED.all(conn, {"tenant_id": tenant_id})
    counts: dict[tuple[int, str], int] = {}
    for agent_id, channel, n in _HELD_COUNTS.all(conn, {"tenant_id": tenant_id}):
        key = (agent_id, class_of(classes, channel))
        counts[key] = counts.get(key, 0) + n
    fixes = []
    for row in rows:
        for cls in CLASSES:
            want, have = counts.get((row.id, cls), 0), getattr(row, f"load_{cls}")
            if want != have:
                fixes.append((row.id, cls, have, want))
                _SET_LOAD[cls].rowcount(conn, {"b_agent": row.id, "b_load": want})
    return fixes


def queue_depths(conn: Connection) -> list[tuple[str, int, int]]:
    """(tenant slug, VIP tier, waiting tickets) for every non-empty combination."""
    return [tuple(r) for r in _QUEUE_DEPTHS.all(conn, {})]


def tenant_ids(conn: Connection) -> list[int]:
    return [row.id for row in _TENANT_IDS.all(conn, {})]


def agents_with_room(conn: Connection, tenant_id: int) -> list[int]:
    return [row.id for row in _AGENTS_WITH_ROOM.all(conn, {"tenant_id": tenant_id})]
