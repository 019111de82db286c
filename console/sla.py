"""SLA clocks as the console shows them: the inbox's SLA filter and badges, the ticket's panel.

A clock's state as people see it is the rules' state read against now, as the dashboard reads
it (``reports.sla_summary``): a running clock past its due time is breached even before the
rules role marks it, and one due within ``SLA_RISK_MS`` is at risk.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.engine import Connection, Row

from ticket_service.store.reports import SLA_RISK_MS
from ticket_service.store.tables import sla_clocks, tickets

FILTERS = ("running", "at_risk", "breached", "met")
METRICS = ("first_reply", "next_reply", "resolution")
_URGENCY = ("breached", "at_risk", "running")  # the badge shows the first a ticket has


def _state(c, now: int) -> ColumnElement:
    """A clock of ``sla_clocks`` (``c``) in the inbox filter's state at ``now``."""
    running = c.state == "running"
    return {
        "running": running & ((c.due_at.is_(None)) | (c.due_at > now)),
        "at_risk": running & (c.due_at > now) & (c.due_at <= now + SLA_RISK_MS),
        "breached": (c.state == "breached") | (running & (c.due_at <= now)),
        "met": c.state == "met",
    }


def condition(tenant_id: int, state: str, now: int) -> ColumnElement:
    """Tickets with any clock in ``state`` (one of ``FILTERS``)."""
    c = sla_clocks
    return exists().where(c.c.tenant_id == tenant_id, c.c.ticket_id == tickets.c.id, _state(c.c, now)[state])


def effective(row: Row, now: int) -> str:
    """One clock's state as shown: running, at_risk, breached, paused or met."""
    if row.state != "running" or row.due_at is None:
        return row.state
    if row.due_at <= now:
        return "breached"
    return "at_risk" if row.due_at <= now + SLA_RISK_MS else "running"


@dataclass(frozen=True, slots=True)
class Badge:
    """The most urgent clock of a ticket: what the inbox row shows."""

    state: str
    metric: str
    due_at: int | None


def badges(conn: Connection, tenant_id: int, ticket_ids: list[int], now: int) -> dict[int, Badge]:
    """The badge of each listed ticket that has a breached, at-risk or running clock."""
    if not ticket_ids:
        return {}
    c = sla_clocks.c
    rows = conn.execute(select(c.ticket_id, c.metric, c.state, c.due_at).where(
        c.tenant_id == tenant_id, c.ticket_id.in_(ticket_ids), c.state.in_(("running", "breached"))))
    out: dict[int, Badge] = {}
    for row in rows:
        badge = Badge(effective(row, now), row.metric, row.due_at)
        held = out.get(row.ticket_id)
        if held is None or _rank(badge) < _rank(held):
            out[row.ticket_id] = badge
    return out


def _rank(badge: Badge) -> tuple[int, int]:
    return _URGENCY.index(badge.state), badge.due_at or 0


@dataclass(frozen=True, slots=True)
class Clock:
    """One metric of the ticket's SLA panel."""

    metric: str
    state: str
    due_at: int | None
    met_at: int | None
    breached_at: int | None
    remaining_s: float | None  # a paused clock's business time left


def panel(rows: list[Row], now: int) -> dict | None:
    """The ticket's policy and clocks in metric order (None without a policy), as ``sla_json`` reads them."""
    if not rows:
        return None
    order = {m: n for n, m in enumerate(METRICS)}
    clocks = [Clock(r.metric, effective(r, now), r.due_at, r.met_at, r.breached_at,
                    max(0, r.target_ms - r.used_ms) / 1000 if r.state == "paused" else None)
              for r in sorted(rows, key=lambda r: order.get(r.metric, len(order)))]
    return {"policy": rows[0].policy, "clocks": clocks}
