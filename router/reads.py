"""The read transaction of a round: what its decisions are made on."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Row

from router import policy, snapshot
from router.queue import QueueHead
from ticket_service.store import agents as agents_store
from ticket_service.store import queue as queue_store
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as tickets_store


@dataclass(slots=True)
class RouteRead:
    """A ticket's routing state, its first message's text and its waiting entry, if any."""

    row: Row | None
    text: str = ""
    waiting: Row | None = None


@dataclass(slots=True)
class RoundRead:
    routes: list[RouteRead] = field(default_factory=list)
    tenants: dict[int, tuple[list[Row], list[Row]]] = field(default_factory=dict)  # agents, rules
    agents: list[Row | None] = field(default_factory=list)  # of the pulls
    queue: QueueHead = field(default_factory=QueueHead)


def read_round(conn: Connection, routes: list[int], pulls: list[tuple[int, int]], cached: set[int],
               scan: int) -> RoundRead:
    """Each ticket's routing state; the agents and rules of tenants without a snapshot
    (``cached`` have one); the pulling agents, and the queue pages their picks come from."""
    read = RoundRead()
    rows = tickets_store.tickets_for_routing(conn, routes)
    open_ids = [t for t in routes if (row := rows.get(t)) is not None and not tickets_store.held(row)]
    texts, waiting = tickets_store.first_message_texts(conn, open_ids), queue_store.entries(conn, open_ids)
    for ticket_id in routes:
        row = rows.get(ticket_id)
        if row is None or tickets_store.held(row):
            read.routes.append(RouteRead(row))
            continue
        read.routes.append(RouteRead(row, texts[ticket_id], waiting.get(ticket_id)))
        if row.tenant_id not in cached and row.tenant_id not in read.tenants:
            read.tenants[row.tenant_id] = (agents_store.list_agents(conn, row.tenant_id, online_only=True),
                                           rules_store.list_rules(conn, row.tenant_id))
    agents: dict[tuple[int, int], Row] = {}
    for tenant_id in {tenant_id for tenant_id, _ in pulls}:
        ids = [agent_id for t, agent_id in pulls if t == tenant_id]
        agents.update(((tenant_id, i), row) for i, row in agents_store.get_agents(conn, tenant_id, ids).items())
    for tenant_id, agent_id in pulls:
        row = agents.get((tenant_id, agent_id))
        read.agents.append(row)
        if row is not None and row.status == policy.ONLINE:
            agent = snapshot.agent(row)
            for cls in agents_store.CLASSES:
                if agent.free(cls) > 0:
                    read.queue.reserve(conn, tenant_id, agent, cls, scan)
    return read
