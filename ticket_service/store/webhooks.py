"""A tenant's webhooks: the URL, the event types it wants, its sealed signing secret; and the
tenant's choice whether webhooks may reach private addresses.

Synchronous functions on a ``Connection``: the API and the CLI run them with ``run_sync``,
the rules role inside its own transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from ticket_service.store.tables import tenants, webhook_deliveries, webhooks
from ticket_service.webhook_url import ALLOW_PRIVATE

MAX_PER_TENANT = 100
ANY = "*"


class LimitReached(Exception):
    """The tenant has ``MAX_PER_TENANT`` webhooks already."""


@dataclass(frozen=True, slots=True)
class Hook:
    id: int
    url: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return ANY in self.events or event_type in self.events


def create(conn: Connection, tenant_id: int, url: str, events: Sequence[str], secret_enc: str, now: int) -> int:
    count = conn.execute(select(func.count()).select_from(webhooks).where(webhooks.c.tenant_id == tenant_id)).scalar()
    if count >= MAX_PER_TENANT:
        raise LimitReached(f"a tenant has at most {MAX_PER_TENANT} webhooks")
    result = conn.execute(insert(webhooks).values(tenant_id=tenant_id, url=url, events=list(events),
                                                  secret_enc=secret_enc, created_at=now))
    return result.inserted_primary_key[0]


def listing(conn: Connection, tenant_id: int) -> list[Row]:
    return conn.execute(select(webhooks).where(webhooks.c.tenant_id == tenant_id).order_by(webhooks.c.id)).all()


def get(conn: Connection, tenant_id: int, webhook_id: int) -> Row | None:
    return conn.execute(select(webhooks).where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id)).first()


def remove(conn: Connection, tenant_id: int, webhook_id: int) -> bool:
    """Delete the webhook and its deliveries (an attempt in flight records nothing after)."""
    if get(conn, tenant_id, webhook_id) is None:
        return False
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    return True


def hooks(conn: Connection, tenant_id: int) -> list[Hook]:
    """The tenant's webhooks as the fan-out matches them."""
    rows = conn.execute(select(webhooks.c.id, webhooks.c.url, webhooks.c.events)
                        .where(webhooks.c.tenant_id == tenant_id).order_by(webhooks.c.id)).all()
    return [Hook(r.id, r.url, frozenset(r.events or ())) for r in rows]


def allows_private(conn: Connection, tenant_id: int) -> bool:
    settings = conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar()
    return bool((settings or {}).get(ALLOW_PRIVATE))


def set_allows_private(conn: Connection, tenant_id: int, allowed: bool) -> None:
    settings = conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar() or {}
    conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                 .values(settings={**settings, ALLOW_PRIVATE: allowed}))
