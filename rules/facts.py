"""The facts a condition asks of one ticket, read in the rules' own transaction.

``ticket_facts`` reads the ticket, its customer's VIP tier and its account's address in
one query; the text of the message the event is about (else the ticket's latest inbound
one) only when a condition asks for it. Custom field values come from the ticket's
``fields`` column where the schema has it. Times are ms since the epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from rules.conditions import TEXT_LIMIT, Facts
from ticket_service.store.tables import channel_accounts, customers, messages, tickets

HOUR_MS = 3_600_000


def ticket_row(conn: Connection, tenant_id: int, ticket_id: int) -> Row | None:
    """The ticket with ``vip_tier`` and ``account_address``; None if it is not the tenant's."""
    stmt = (select(tickets, customers.c.vip_tier, channel_accounts.c.address.label("account_address"))
            .join(customers, customers.c.id == tickets.c.customer_id)
            .join(channel_accounts, channel_accounts.c.id == tickets.c.account_id)
            .where(tickets.c.id == ticket_id, tickets.c.tenant_id == tenant_id))
    return conn.execute(stmt).first()


def ticket_facts(conn: Connection, row: Row, now: int, event: dict[str, Any] | None = None,
                 business_hours: Callable[[str | None], bool | None] | None = None) -> Facts:
    """Facts of ``row`` (from ``ticket_row``) at ``now``, about ``event`` if given."""
    t = row._mapping
    event = event or {}
    message_id = event.get("message_id")

    def message() -> Row | None:
        stmt = select(messages.c.text, messages.c.sender, messages.c.direction, messages.c.created_at)
        if isinstance(message_id, int):
            stmt = stmt.where(messages.c.id == message_id, messages.c.ticket_id == t["id"])
        else:
            stmt = (stmt.where(messages.c.ticket_id == t["id"], messages.c.direction == "in")
                    .order_by(messages.c.id.desc()).limit(1))
        return conn.execute(stmt).first()

    cache: dict[str, Row | None] = {}

    def the_message() -> Row | None:
        if "m" not in cache:
            cache["m"] = message()
        return cache["m"]

    def since(at: Any) -> float | None:
        return None if not at else max(0, now - int(at)) / HOUR_MS

    status_at = t.get("status_at") or t["updated_at"]
    values: dict[str, Any] = {
        "event": str(event.get("type") or ""),
        "channel": t["channel"],
        "account": t["account_address"],
        "status": t["status"],
        "language": t["language"],
        "assignee": t["assignee_id"] if t["assigned_at"] else None,
        "priority": t["priority"],
        "vip_tier": t["vip_tier"],
        "tags": list(t["tags"] or []),
        "subject": t["subject"],
        "fields": dict(t.get("fields") or {}),
        "text": lambda: ((m := the_message()) and m.text or "")[:TEXT_LIMIT],
        "sender": lambda: (m := the_message()) and m.sender or "",
        "direction": lambda: (m := the_message()) and m.direction or None,
        "hours_since_created": since(t["created_at"]),
        "hours_since_updated": since(t["updated_at"]),
        "hours_since_assigned": since(t["assigned_at"]),
        "hours_since_pending": since(status_at) if t["status"] == "pending" else None,
        "hours_since_solved": since(t["closed_at"] or status_at) if t["status"] in ("solved", "closed") else None,
        "hours_since_customer_message": since(t.get("customer_message_at")),
        "sla_metric": event.get("metric"),
        "auto": t["auto_reason"] if t["auto"] else "",
    }
    if business_hours is not None:
        values["business_hours"] = business_hours
    return Facts(values)
