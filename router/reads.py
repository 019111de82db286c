"""The read transaction of a round: what its decisions are made on."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Row

from router import policy, snapshot
from router.pool import Agent
from router.queue import QueueHead
from ticket_service.store import agents as agents_store
from ticket_service.store import route_sets
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as tickets_store


@dataclass(slots=True)
class RouteRead:
    """A ticket's routing state, its first message's text and its waiting entry, if any."""

    row: Row | None
    text: str = ""
    waiting: Row | route_sets.Waiting | None = None


@dataclass(slots=True)
class RoundRead:
    routes: list[RouteRead] = field(default_factory=list)
    tenants: dict[int, tuple[list[Row], list[Row]]] = field(default_factory=dict)  # agents, rules
    agents: list[Row | None] = field(default_factory=list)  # of the pulls
    queue: QueueHead = field(default_factory=QueueHead)


def read_round(conn: Connection, routes: list[int], pulls: list[tuple[int, int]], cached: set[int],
               scan: int) -> RoundRead:
    """Each ticket's routing state; the agents and rules of tenants without a snapshot
    (``cached`` have one); the pulling agents, and the queue pages their picks come from.
    A fixed number of statements (``route_sets``), plus two per tenant without a snapshot."""
    read = RoundRead()
    found = route_sets.tickets_for_routing(conn, routes)
    for ticket_id in routes:
        row, text, waiting = found.get(ticket_id, (None, "", None))
        if row is None or tickets_store.held(row):
            read.routes.append(RouteRead(row))
            continue
        read.routes.append(RouteRead(row, text, waiting))
        if row.tenant_id not in cached and row.tenant_id not in read.tenants:
            read.tenants[row.tenant_id] = (agents_store.list_agents(conn, row.tenant_id, online_only=True),
                                           rules_store.list_rules(conn, row.tenant_id))
    rows = route_sets.agents_by_id(conn, {agent_id for _, agent_id in pulls})
    pulling: list[tuple[int, Agent]] = []
    free: dict[tuple[int, str], int] = {}
    for tenant_id, agent_id in pulls:
        row = rows.get(agent_id)
        row = row if row is not None and row.tenant_id == tenant_id else None
        read.agents.append(row)
        if row is not None and row.status == policy.ONLINE:
            agent = snapshot.agent(row)
            pulling.append((tenant_id, agent))
            for cls in agents_store.CLASSES:
                if agent.free(cls) > 0:
                    free[(tenant_id, cls)] = free.get((tenant_id, cls), 0) + agent.free(cls)
    read.queue.prefetch(conn, free, scan)
    for tenant_id, agent in pulling:
        for cls in agents_store.CLASSES:
            if agent.free(cls) > 0:
                read.queue.reserve(conn, tenant_id, agent, cls, scan)
    return read
