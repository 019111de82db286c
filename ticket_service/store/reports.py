"""What a supervisor reads: the queue now, agents' load, and KPIs over a period.

The queue and the agents are read as they are (one grouped query each). KPIs are computed
over the tickets created in a period (at most ``MAX_DAYS`` days, so one report reads a
bounded number of rows): volume, first-reply time (ticket created → first agent reply),
resolution time (created → solved/closed), grouped by day in the tenant's time zone, by
channel or by agent. Percentiles are nearest-rank over the group's values.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from ticket_service.store.tables import agents, messages, routing_queue, sla_clocks, tickets

MAX_DAYS = 366
GROUPS = ("day", "channel", "agent")
UNASSIGNED = "(unassigned)"
KPI_COLUMNS = ("key", "volume", "replied", "solved", "first_reply_p50_s", "first_reply_p90_s",
               "resolution_p50_s", "resolution_p90_s")


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
                          messages.c.kind == "reply", messages.c.auto_reason == "")
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
        key = _group_key(r, by, tz)
        g = groups[key]
        g.key = key
        g.volume += 1
        if r.replied_at is not None and r.replied_at >= r.created_at:
            g.first_reply_s.append((r.replied_at - r.created_at) / 1000)
        if r.status in ("solved", "closed") and r.closed_at:
            g.solved += 1
            g.resolution_s.append(max(0, r.closed_at - r.created_at) / 1000)
    return [groups[k].row() for k in sorted(groups)]


def _group_key(r, by: str, tz: ZoneInfo) -> str:
    """A ticket row's group: its creation day in ``tz``, its channel or its assignee's name."""
    if by == "day":
        return datetime.fromtimestamp(r.created_at / 1000, tz).date().isoformat()
    if by == "channel":
        return r.channel
    return r.agent or UNASSIGNED


def csv_text(columns: tuple[str, ...], rows: list[dict]) -> str:
    """A report as CSV (RFC 4180 line ends), a header row first; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value):
    # A cell starting with = + - @ is a formula to a spreadsheet: an agent's name could run one.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def kpi_csv(rows: list[dict]) -> str:
    """The KPI rows as the reports API and the console's dashboard both export them."""
    return csv_text(KPI_COLUMNS, rows)


# SLA clocks: one row per ticket and metric (first reply, next reply, resolution) kept by
# the rules role (``rules.clocks``).
SLA_RISK_MS = 3_600_000  # a running clock due within the hour is "at risk"
SLA_LIST = 20
SLA_COLUMNS = ("key", "met", "breached", "attainment_pct")
_OPEN = ("new", "open", "pending")


def sla_summary(conn: Connection, tenant_id: int, since_ms: int, until_ms: int, by: str, zone: str,
                now: int) -> dict:
    """SLA clocks at risk and breached on open tickets now, and attainment of the tickets
    created in [since_ms, until_ms) grouped ``by`` day|channel|agent."""
    return {"now": _sla_now(conn, tenant_id, now), "rows": sla_attainment(conn, tenant_id, since_ms, until_ms, by, zone)}


def _sla_now(conn: Connection, tenant_id: int, now: int) -> dict:
    """Open tickets' running clocks due within ``SLA_RISK_MS`` and breached clocks, soonest due first.

    A running clock past its due time is breached even before the rules role marks it.
    """
    c = sla_clocks.c
    late = or_(c.state == "breached", (c.state == "running") & (c.due_at <= now))
    soon = (c.state == "running") & (c.due_at > now) & (c.due_at <= now + SLA_RISK_MS)
    stmt = (select(c.metric, c.state, c.due_at, tickets.c.number, tickets.c.subject, late.label("late"))
            .join(tickets, tickets.c.id == c.ticket_id)
            .where(c.tenant_id == tenant_id, tickets.c.tenant_id == tenant_id, tickets.c.status.in_(_OPEN),
                   or_(late, soon))
            .order_by(c.due_at, tickets.c.number))
    rows = conn.execute(stmt).all()
    listed = [{"number": r.number, "subject": r.subject, "metric": r.metric, "due_at": r.due_at,
               "breached": bool(r.late)} for r in rows[:SLA_LIST]]
    breached = sum(1 for r in rows if r.late)
    return {"breached": breached, "at_risk": len(rows) - breached, "tickets": listed}


def sla_attainment(conn: Connection, tenant_id: int, since_ms: int, until_ms: int, by: str, zone: str) -> list[dict]:
    """Met and breached clocks of the tickets created in the period, per group, with the share met.

    Only call it when ``has_sla_clocks`` (``sla_summary`` does).
    """
    c = sla_clocks.c
    stmt = (select(c.state, tickets.c.created_at, tickets.c.channel, agents.c.name.label("agent"))
            .join(tickets, tickets.c.id == c.ticket_id)
            .outerjoin(agents, agents.c.id == tickets.c.assignee_id)
            .where(c.tenant_id == tenant_id, tickets.c.tenant_id == tenant_id, c.state.in_(("met", "breached")),
                   tickets.c.created_at >= since_ms, tickets.c.created_at < until_ms))
    tz = ZoneInfo(zone)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in conn.execute(stmt):
        counts[_group_key(r, by, tz)][0 if r.state == "met" else 1] += 1
    return [{"key": k, "met": met, "breached": late, "attainment_pct": round(100 * met / (met + late), 1)}
            for k, (met, late) in sorted(counts.items())]


def queue_csv(depth: list[dict]) -> str:
    return csv_text(("vip_tier", "channel", "waiting", "oldest_queued_at"), depth)


def agents_csv(loads: list[dict]) -> str:
    flat = [{"name": a["name"], "email": a["email"], "status": a["status"],
             **{f"{c}_{k}": v[k] for c, v in a["load"].items() for k in ("load", "capacity")}} for a in loads]
    return csv_text(("name", "email", "status", "email_load", "email_capacity", "chat_load", "chat_capacity",
                     "voice_load", "voice_capacity"), flat)
