"""Webhook deliveries: one row per event and webhook (or per one-off call to a URL), through
its attempts, to ``delivered`` or ``dead``.

Statuses: ``pending`` (not tried yet, or replayed), ``failed`` (the last attempt failed, a
retry is due at ``next_at``), ``delivered`` (a 2xx answer), ``dead`` (retries ran out).

An attempt claims its row first: ``attempts + 1`` and ``next_at`` pushed past a lease, in
one transaction that skips rows another replica holds (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite has one writer at a time). A process that dies mid-attempt leaves the
row due again when the lease ends. The outcome is written only while the claim still
holds (``lease_until`` unchanged): a replay meanwhile wins over the older attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from ticket_service.store import webhooks as webhooks_store
from ticket_service.store.tables import tenants, tickets, webhook_deliveries, webhooks
from ticket_service.webhook_url import ALLOW_PRIVATE, check

PENDING, FAILED, DELIVERED, DEAD = "pending", "failed", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, FAILED, DEAD)
MAX_ERROR = 2000
_D = webhook_deliveries.c


@dataclass(frozen=True, slots=True)
class Attempt:
    """A claimed delivery: what to send where, and the claim that the outcome must match."""

    id: int
    tenant_id: int
    webhook_id: int | None
    url: str
    secret_enc: str | None  # None: a one-off call, sent unsigned
    event_type: str
    payload: dict
    attempt: int
    lease_until: int
    window_from: int
    allow_private: bool

    @property
    def target(self) -> str:
        """What the per-receiver concurrency bound counts by."""
        return f"webhook:{self.webhook_id}" if self.webhook_id is not None else self.url


def iso(ms: int) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def ticket_json(conn: Connection, tenant_id: int, ticket_id: int | None) -> dict | None:
    """The ticket as a delivery shows it, as it is now; None when there is none."""
    if ticket_id is None:
        return None
    row = conn.execute(select(tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.subject,
                              tickets.c.channel, tickets.c.priority, tickets.c.assignee_id, tickets.c.tags)
                       .where(tickets.c.id == ticket_id, tickets.c.tenant_id == tenant_id)).first()
    if row is None:
        return None
    return {"id": row.id, "number": row.number, "status": row.status, "subject": row.subject,
            "channel": row.channel, "priority": row.priority, "assignee_id": row.assignee_id,
            "tags": list(row.tags or [])}


def payload(event_type: str, created_at: int, tenant: str, ticket: dict | None, data: Mapping[str, Any]) -> dict:
    """The body of a delivery, its ``id`` aside (added when it is sent)."""
    return {"event": event_type, "created_at": iso(created_at), "tenant": tenant, "ticket": ticket,
            "data": dict(data)}


def tenant_slug(conn: Connection, tenant_id: int) -> str:
    return conn.execute(select(tenants.c.slug).where(tenants.c.id == tenant_id)).scalar_one()


def _insert(conn: Connection, rows: list[dict]) -> list[int]:
    """Insert deliveries in one statement; a (webhook, event id) that has one already adds none."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(webhook_deliveries).values(rows)
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"]).returning(_D.id))
    return list(conn.execute(stmt).scalars())


def fan_out(conn: Connection, tenant_id: int, tenant: str, hooks: list[webhooks_store.Hook], event_id: str,
            event_type: str, created_at: int, ticket_id: int | None, data: Mapping[str, Any], now: int) -> list[int]:
    """One pending delivery of the event per webhook; a repeated event id adds none."""
    body = payload(event_type, created_at, tenant, ticket_json(conn, tenant_id, ticket_id), data)
    return _insert(conn, [dict(tenant_id=tenant_id, webhook_id=hook.id, url=hook.url, event_id=event_id,
                               event_type=event_type[:64], ticket_id=ticket_id, payload=body, status=PENDING,
                               next_at=now, window_from=now, created_at=now) for hook in hooks])


def enqueue(conn: Connection, tenant_id: int, target: int | str, event_type: str, data: Mapping[str, Any], *,
            ticket_id: int | None = None, event_id: str | None = None, now: int | None = None) -> int | None:
    """Queue one delivery inside the caller's transaction; returns its id.

    ``target``: a webhook id of the tenant (signed with its secret), or a URL (a one-off
    call, unsigned; checked for its form here, for its address when sent). With an
    ``event_id``, a second call for the same webhook and event adds nothing (returns None).
    ``LookupError`` for a webhook the tenant does not have, ``ValueError`` for a bad URL.
    """
    now = now if now is not None else int(datetime.now(UTC).timestamp() * 1000)
    if isinstance(target, int) and not isinstance(target, bool):
        hook = webhooks_store.get(conn, tenant_id, target)
        if hook is None:
            raise LookupError(f"no webhook {target} of tenant {tenant_id}")
        webhook_id, url = hook.id, hook.url
    else:
        webhook_id, url = None, str(target)
        check(url)
    body = payload(event_type, now, tenant_slug(conn, tenant_id), ticket_json(conn, tenant_id, ticket_id), data)
    added = _insert(conn, [dict(tenant_id=tenant_id, webhook_id=webhook_id, url=url, event_id=event_id,
                                event_type=event_type[:64], ticket_id=ticket_id, payload=body, status=PENDING,
                                next_at=now, window_from=now, created_at=now)])
    return added[0] if added else None


def claim(conn: Connection, now: int, lease_ms: int, limit: int, per_target: int,
          busy: Mapping[str, int]) -> list[Attempt]:
    """Claim up to ``limit`` due deliveries, at most ``per_target`` in flight per receiver
    counting the ``busy`` ones this process has already."""
    full = [int(key.split(":", 1)[1]) for key, n in busy.items() if n >= per_target and key.startswith("webhook:")]
    stmt = select(_D.id, _D.webhook_id, _D.url).where(_D.next_at <= now)
    if full:
        stmt = stmt.where(or_(_D.webhook_id.is_(None), _D.webhook_id.not_in(full)))
    stmt = stmt.order_by(_D.next_at, _D.id).limit(limit * 4).with_for_update(skip_locked=True)
    taken: dict[str, int] = dict(busy)
    chosen: list[int] = []
    for row in conn.execute(stmt):
        key = f"webhook:{row.webhook_id}" if row.webhook_id is not None else row.url
        if taken.get(key, 0) < per_target:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(row.id)
            if len(chosen) == limit:
                break
    if not chosen:
        return []
    lease = now + lease_ms
    conn.execute(update(webhook_deliveries).where(_D.id.in_(chosen))
                 .values(attempts=_D.attempts + 1, next_at=lease, lease_until=lease, last_attempt_at=now))
    rows = conn.execute(
        select(webhook_deliveries, webhooks.c.secret_enc, tenants.c.settings)
        .join(tenants, tenants.c.id == _D.tenant_id)
        .outerjoin(webhooks, webhooks.c.id == _D.webhook_id)
        .where(_D.id.in_(chosen)).order_by(_D.next_at, _D.id)
    ).all()
    return [Attempt(r.id, r.tenant_id, r.webhook_id, r.url, r.secret_enc, r.event_type, dict(r.payload),
                    r.attempts, r.lease_until, r.window_from, bool((r.settings or {}).get(ALLOW_PRIVATE)))
            for r in rows]


def _held(attempt: Attempt):
    return and_(_D.id == attempt.id, _D.lease_until == attempt.lease_until)


def record_delivered(conn: Connection, attempt: Attempt, code: int, now: int) -> bool:
    return bool(conn.execute(update(webhook_deliveries).where(_held(attempt)).values(
        status=DELIVERED, next_at=None, lease_until=0, response_code=code, last_error="", delivered_at=now,
    )).rowcount)


def record_failed(conn: Connection, attempt: Attempt, code: int | None, error: str, next_at: int | None) -> bool:
    """A failed attempt: retried at ``next_at``, or ``dead`` when it is None."""
    return bool(conn.execute(update(webhook_deliveries).where(_held(attempt)).values(
        status=FAILED if next_at is not None else DEAD, next_at=next_at, lease_until=0, response_code=code,
        last_error=error[:MAX_ERROR],
    )).rowcount)


def listing(conn: Connection, tenant_id: int, webhook_id: int, status: str | None, before: int | None,
            limit: int) -> list[Row]:
    """Newest first; ``before``: the last id of the previous page."""
    stmt = select(webhook_deliveries).where(_D.tenant_id == tenant_id, _D.webhook_id == webhook_id)
    if status:
        stmt = stmt.where(_D.status == status)
    if before is not None:
        stmt = stmt.where(_D.id < before)
    return conn.execute(stmt.order_by(_D.id.desc()).limit(limit)).all()


def get(conn: Connection, tenant_id: int, delivery_id: int) -> Row | None:
    return conn.execute(select(webhook_deliveries).where(_D.tenant_id == tenant_id, _D.id == delivery_id)).first()


def replay(conn: Connection, tenant_id: int, webhook_id: int, delivery_id: int, now: int) -> Row | None:
    """Due now, with a new retry window, whatever its status; an attempt in flight records nothing."""
    changed = conn.execute(update(webhook_deliveries).where(
        _D.tenant_id == tenant_id, _D.webhook_id == webhook_id, _D.id == delivery_id,
    ).values(status=PENDING, next_at=now, lease_until=0, window_from=now)).rowcount
    return get(conn, tenant_id, delivery_id) if changed else None
