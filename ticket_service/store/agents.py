"""Agents: their skills, status and capacity per channel class, and the load they carry.

A ticket holds capacity while it has an assignee, an ``assigned_at`` and an open status
(see ``tickets``). Taking capacity is a compare-and-set on the agent's load, so no agent
passes its capacity, whatever the number of routers.

Synchronous functions on a ``Connection``, like the rest of the store: run them with
``Database.run_read``/``run_write``, or ``await conn.run_sync(fn, ...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from core.channel import CAPACITY_CLASSES, class_of
from core.ids import now_ms
from ticket_service.store.compiled import Statement
from ticket_service.store.tables import agents, customers, tenants, tickets

CLASSES = CAPACITY_CLASSES
DEFAULT_REQUEUE_ON = ("offline",)
# The status of an agent an administrator disabled (``switchboard user disable``): it signs in
# no more and, not being online, is never assigned. Only ``user enable`` lifts it (to offline).
DISABLED = "disabled"
LOAD = {c: agents.c[f"load_{c}"] for c in CLASSES}
CAP = {c: agents.c[f"cap_{c}"] for c in CLASSES}
AGENT_COLS = (
    agents.c.id, agents.c.tenant_id, agents.c.name, agents.c.email, agents.c.status, agents.c.tier,
    agents.c.skills, agents.c.last_assigned_at, agents.c.status_at, *CAP.values(), *LOAD.values(),
)
B = bindparam  # parameters of UPDATE/INSERT statements are named b_*: never a column's name



def capacity_columns(capacity: Mapping[str, int]) -> dict[str, int]:
    unknown = set(capacity) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown channel class {sorted(unknown)[0]!r} (known: {', '.join(CLASSES)})")
    return {f"cap_{c}": int(capacity.get(c, 0)) for c in CLASSES}


_AGENTS = select(*AGENT_COLS).where(agents.c.tenant_id == B("tenant_id")).order_by(agents.c.id)
_ONLINE_AGENTS = _AGENTS.where(agents.c.status == "online")
_LIST_AGENTS = {False: Statement(_AGENTS), True: Statement(_ONLINE_AGENTS)}
_ONLINE_WITH_ROOM = {c: Statement(_ONLINE_AGENTS.where(LOAD[c] < CAP[c])) for c in CLASSES}
_AGENTS_BY_ID = select(*AGENT_COLS).where(agents.c.tenant_id == B("tenant_id"),
                                          agents.c.id.in_(B("agent_ids", expanding=True)))
_SET_STATUS = Statement(update(agents).where(agents.c.id == B("b_agent"))
                        .values(status=B("b_status"), status_at=B("b_now")))
_ROOM = [LOAD[c] < CAP[c] for c in CLASSES]
_AGENTS_WITH_ROOM = Statement(
    select(agents.c.id)
    .where(agents.c.tenant_id == B("tenant_id"), agents.c.status == "online", _ROOM[0] | _ROOM[1] | _ROOM[2])
    .order_by(agents.c.last_assigned_at)
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
_LOADS_LOCKED = Statement(select(agents.c.id, *LOAD.values()).where(agents.c.tenant_id == B("tenant_id"))
                          .order_by(agents.c.id).with_for_update())
_OPEN = (tickets.c.status != "solved") & (tickets.c.status != "closed")
_HELD_COUNTS = Statement(
    select(tickets.c.assignee_id, tickets.c.channel, func.count().label("n"))
    .where(tickets.c.tenant_id == B("tenant_id"), tickets.c.assignee_id.is_not(None),
           tickets.c.assigned_at.is_not(None), _OPEN)
    .group_by(tickets.c.assignee_id, tickets.c.channel)
)
_SET_LOAD = {c: Statement(update(agents).where(agents.c.id == B("b_agent")).values({LOAD[c]: B("b_load")}))
             for c in CLASSES}
_TENANT_SETTINGS = Statement(select(tenants.c.settings).where(tenants.c.id == B("tenant_id")))


def create_agent(conn: Connection, tenant: int, name: str, email: str, *, status: str = "offline",
                 tier: int = 0, skills: dict | None = None, capacity: dict | None = None) -> int:
    """Add an agent; "idle since" starts when the agent is added."""
    now = now_ms()
    result = conn.execute(insert(agents).values(
        tenant_id=tenant, name=name, email=email.lower(), status=status, tier=tier,
        skills=skills or {}, capacity=capacity or {}, created_at=now, status_at=now, last_assigned_at=now,
        **capacity_columns(capacity or {}),
    ))
    return result.inserted_primary_key[0]


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


class Disabled(ValueError):
    """The agent is disabled: its status stays until ``switchboard user enable``."""


def set_agent_status(conn: Connection, tenant_id: int, agent_id: int, status: str, now: int) -> Row | None:
    """Set the status; returns the agent's previous row, or None when there is no such agent.
    ``Disabled`` for a disabled agent, whose status only ``set_disabled`` changes."""
    before = get_agent(conn, tenant_id, agent_id)
    if before is not None and before.status == DISABLED and status != DISABLED:
        raise Disabled(f"agent {agent_id} is disabled (switchboard user enable lifts it)")
    if before is not None and before.status != status:
        _SET_STATUS.rowcount(conn, {"b_agent": agent_id, "b_status": status, "b_now": now})
    return before


def set_disabled(conn: Connection, tenant_id: int, agent_id: int, disabled: bool, now: int) -> Row | None:
    """Disable the agent, or enable a disabled one (it comes back offline); returns its previous
    row, or None when there is no such agent."""
    before = get_agent(conn, tenant_id, agent_id)
    if before is None or (before.status == DISABLED) == disabled:
        return before
    _SET_STATUS.rowcount(conn, {"b_agent": agent_id, "b_status": DISABLED if disabled else "offline", "b_now": now})
    return before


def agents_with_room(conn: Connection, tenant_id: int) -> list[int]:
    """The online agents with room in any class, longest idle first."""
    return [row.id for row in _AGENTS_WITH_ROOM.all(conn, {"tenant_id": tenant_id})]


def take_capacity(conn: Connection, agent_id: int, cls: str, now: int) -> bool:
    """Compare-and-set: one more ticket for an online agent still under capacity."""
    return _TAKE_CAPACITY[cls].rowcount(conn, {"b_agent": agent_id, "b_now": now}) == 1


def free_capacity(conn: Connection, agent_id: int, cls: str) -> None:
    _FREE_CAPACITY[cls].rowcount(conn, {"b_agent": agent_id})


def remember_agent(conn: Connection, customer_id: int, agent_id: int) -> None:
    """The customer's last agent, whom the next ticket prefers (sticky)."""
    _REMEMBER_AGENT.rowcount(conn, {"b_customer": customer_id, "b_agent": agent_id})


def reconcile_loads(conn: Connection, tenant_id: int,
                    classes: Mapping[str, str]) -> list[tuple[int, str, int, int]]:
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


def tenant_settings(conn: Connection, tenant_id: int) -> dict:
    return _TENANT_SETTINGS.scalar(conn, {"tenant_id": tenant_id}) or {}


def requeue_statuses(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Agent statuses that hand the agent's not-yet-started tickets back to the queue."""
    return tuple(settings.get("routing", {}).get("requeue_on", DEFAULT_REQUEUE_ON))
