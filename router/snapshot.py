"""Store rows into the policy's snapshot types."""

from __future__ import annotations

from sqlalchemy.engine import Row

from router import policy
from ticket_service.store import routing as store


def agent(row: Row) -> policy.Agent:
    return policy.Agent(
        id=row.id, name=row.name, status=row.status, tier=row.tier, skills=dict(row.skills or {}),
        capacity={c: getattr(row, f"cap_{c}") for c in store.CLASSES},
        load={c: getattr(row, f"load_{c}") for c in store.CLASSES},
        last_assigned_at=row.last_assigned_at,
    )


def rule(row: Row) -> policy.Rule:
    return policy.Rule(
        id=row.id, name=row.name, match=dict(row.match or {}), required=dict(row.required or {}),
        preferred=dict(row.preferred or {}), priority=row.priority, min_tier=row.min_tier,
        escalate_after_s=row.escalate_after_s, widen=dict(row.widen or {}),
    )


def ticket(row: Row, language: str, text: str) -> policy.Ticket:
    return policy.Ticket(
        id=row.id, channel=row.channel, account_id=row.account_id, customer_tier=row.vip_tier,
        priority=row.priority, tags=tuple(row.tags or ()), language=language, text=text,
        previous_agent=row.last_agent_id,
    )
