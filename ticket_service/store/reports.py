"""What a supervisor reads: the queue now, agents' load, and KPIs over a period.

The queue and the agents are read as they are (one grouped query each). KPIs are computed
over the tickets created in a period (at most ``MAX_DAYS`` days, so one report reads a
bounded number of rows): volume, first-reply time (ticket created → first agent reply),
resolution time (created → solved/closed), grouped by day in the tenant's time zone, by
channel or by agent. Percentiles are nearest-rank over the group's values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ticket_service.store.tables import agents, messages, routing_queue, tickets

MAX_DAYS = 366
GROUPS = ("day", "channel", "agent")


def queue_depth(conn: Connection, tenant_id: int) -> list[dict]:
    """Waiting tickets per VIP tier and channel, with when the oldest of them was queued."""
    stmt = (select(routing_queue.c.vip_tier, tickets.c.channel, func.count().label("n"),
                   func.min(routing_queue.c.queued_at).label("oldest"))
            .join(tickets, tickets.c.id == routing_queue.c.ticket_id)
            .where(routing_queue.c.tenant_id == tenant_id)
            .group_by(routing_queue.c.vip_tier, tickets.c.channel)
            .order_by(routing_queue.c.vip_tier.desc(), tickets.c.channel))
    return [{"vip_tier": r.vip_tier, "channel": r.channel, "waiting": r.n, "oldest_queued_at": r.oldest}
            for r in conn.execute(stmt)]


def agent_loads(conn: Connection, tenant_id: int) -> list[dict]:
    """Every agent with status and load/capacity per channel class."""
    stmt = select(agents).where(agents.c.tenant_id == tenant_id).order_by(agents.c.name, agents.c.id)
    out = []
    for r in conn.execute(stmt):
        m = r._mapping
        out.append({"id": r.id, "name": r.name, "email": r.email, "status": r.status, "status_at": r.status_at,
                    "load": {c: {"load": m[f"load_{c}"], "capacity": m[f"cap_{c}"]} for c in ("email", "chat", "voice")}})
    return out


@dataclass
class Group:
    key: str
    volume: int = 0
    solved: int = 0
    first_reply_s: list[float] = field(default_factory=list)
    resolution_s: list[float] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "key": self.key, "volume": self.volume, "replied": len(self.first_reply_s), "solved": self.solved,
            "first_reply_p50_s": percentile(self.first_reply_s, 50), "first_reply_p90_s": percentile(self.first_reply_s, 90),
            "resolution_p50_s": percentile(self.resolution_s, 50), "resolution_p90_s": percentile(self.resolution_s, 90),
        }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)


def kpis(conn: Connection, tenant_id: int, since_ms: int, until_ms: int, by: str, zone: str) -> list[dict]:
    """KPI rows of the tickets created in [since_ms, until_ms), grouped ``by`` day|channel|agent."""
    first_reply = (select(messages.c.ticket_id, func.min(messages.c.created_at).label("at"))
                   .where(messages.c.tenant_id == tenant_id, messages.c.direction == "out",
                          messages.c.kind == "reply")
                   .group_by(messages.c.ticket_id).subquery())
    stmt = (select(tickets.c.created_at, tickets.c.channel, tickets.c.assignee_id, tickets.c.status,
                   tickets.c.closed_at, first_reply.c.at.label("replied_at"), agents.c.name.label("agent"))
            .outerjoin(first_reply, first_reply.c.ticket_id == tickets.c.id)
            .outerjoin(agents, agents.c.id == tickets.c.assignee_id)
            .where(tickets.c.tenant_id == tenant_id, tickets.c.created_at >= since_ms,
                   tickets.c.created_at < until_ms, tickets.c.parent_id.is_(None)))
    tz = ZoneInfo(zone)
    groups: dict[str, Group] = defaultdict(lambda: Group(""))
    for r in conn.execute(stmt):
        if by == "day":
            key = datetime.fromtimestamp(r.created_at / 1000, tz).date().isoformat()
        elif by == "channel":
            key = r.channel
        else:
            key = r.agent or "(unassigned)"
        g = groups[key]
        g.key = key
        g.volume += 1
        if r.replied_at is not None and r.replied_at >= r.created_at:
            g.first_reply_s.append((r.replied_at - r.created_at) / 1000)
        if r.status in ("solved", "closed") and r.closed_at:
            g.solved += 1
            g.resolution_s.append(max(0, r.closed_at - r.created_at) / 1000)
    return [groups[k].row() for k in sorted(groups)]
