"""Inbound messages no ticket holds: bounces of mail we do not know, auto-replies to it.

They are kept so that nothing accepted is invisible; the API (``GET /messages?kind=``) and
``switchboard ops bounces`` list them.
"""

from __future__ import annotations

from sqlalchemy import Select, func, select

from ticket_service.store.tables import channel_accounts, messages, tenants

KINDS = ("bounce", "auto")  # bounce: bounces only; auto: every automatic message (bounces too)


def _where(kind: str, tenant_id: int | None) -> list:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {'|'.join(KINDS)}")
    found = [messages.c.ticket_id.is_(None), messages.c.direction == "in"]
    found.append(messages.c.auto_reason == "bounce" if kind == "bounce" else messages.c.auto_reason != "")
    if tenant_id is not None:
        found.append(messages.c.tenant_id == tenant_id)
    return found


def listing(kind: str, tenant_id: int | None = None) -> Select:
    """Newest first; each row with its account's address and its tenant's slug."""
    return (
        select(messages.c.id, messages.c.created_at, messages.c.sender, messages.c.sender_name,
               messages.c.subject, messages.c.auto_reason, messages.c.headers, messages.c.channel,
               channel_accounts.c.address.label("account"), tenants.c.slug.label("tenant"))
        .join(channel_accounts, channel_accounts.c.id == messages.c.account_id)
        .join(tenants, tenants.c.id == messages.c.tenant_id)
        .where(*_where(kind, tenant_id))
        .order_by(messages.c.id.desc())
    )


def count(kind: str, tenant_id: int | None = None) -> Select:
    return select(func.count()).select_from(messages).where(*_where(kind, tenant_id))


def report(headers: dict | None) -> dict | None:
    """The parsed delivery report of a bounce (recipient, action, status, diagnostic), if any."""
    found = (headers or {}).get("bounce")
    return dict(found) if isinstance(found, dict) and found else None
