"""IMAP mailboxes: which email accounts a poller fetches from, with sealed credentials."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.accounts import ImapMailbox
from ticket_service.store import admin
from ticket_service.store.tables import channel_accounts, tenants

# Implicit TLS (RFC 8314, port 993), STARTTLS (RFC 3501 §6.2.1, port 143) or plain text,
# e.g. on a private network; never plain text unless asked for.
SECURITY = ("ssl", "starttls", "none")
AFTER = ("leave", "seen", "move")
START = ("all", "new")


def default_security(port: int | None) -> str:
    """What a mailbox speaks when not told: TLS from the start on 993 (or no port), else STARTTLS."""
    return "ssl" if port in (None, 993) else "starttls"


def imap_settings(host: str, port: int, user: str, folder: str = "INBOX", security: str | None = None,
                  after: str = "leave", move_to: str = "", start: str = "all", tls_verify: bool = True) -> dict:
    security = security or default_security(port)
    if security not in SECURITY:
        raise ValueError(f"security must be one of {SECURITY}")
    if after not in AFTER or (after == "move") != bool(move_to):
        raise ValueError("after is leave, seen, or move with a folder to move to")
    if start not in START:
        raise ValueError(f"start must be one of {START}")
    return {"host": host, "port": int(port), "user": user, "folder": folder, "security": security,
            "tls_verify": bool(tls_verify), "after": after, "move_to": move_to, "start": start}


async def set_imap(conn: AsyncConnection, tenant: int, address: str, imap: dict, secret_enc: str) -> int:
    """Attach IMAP fetching to the tenant's email account ``address`` (created if missing)."""
    address = address.strip().lower()
    found = (await conn.execute(
        select(channel_accounts.c.id, channel_accounts.c.tenant_id, channel_accounts.c.settings).where(
            channel_accounts.c.channel == "email", channel_accounts.c.address == address)
    )).first()
    if found is None:
        account_id, settings = await admin.add_account(conn, tenant, "email", address), {}
    elif found.tenant_id != tenant:
        raise admin.NotFound(f"{address} belongs to another tenant")
    else:
        account_id, settings = found.id, found.settings or {}
    await conn.execute(update(channel_accounts).where(channel_accounts.c.id == account_id).values(
        settings={**settings, "imap": imap}, secret_enc=secret_enc))
    return account_id


async def imap_mailboxes(conn: AsyncConnection) -> list[ImapMailbox]:
    """Every active email account with IMAP settings, in a stable order."""
    rows = (await conn.execute(
        select(channel_accounts.c.id, tenants.c.slug, channel_accounts.c.address,
               channel_accounts.c.settings, channel_accounts.c.secret_enc)
        .join(tenants, tenants.c.id == channel_accounts.c.tenant_id)
        .where(channel_accounts.c.channel == "email", channel_accounts.c.active)
        .order_by(channel_accounts.c.id)
    )).all()
    out = []
    for account_id, slug, address, settings, secret_enc in rows:
        imap = (settings or {}).get("imap")
        if not imap:
            continue
        out.append(ImapMailbox(
            account_id=account_id, tenant_slug=slug, address=address, host=imap["host"],
            port=int(imap["port"]), user=imap["user"], secret_enc=secret_enc or "",
            folder=imap.get("folder", "INBOX"), security=imap.get("security", "ssl"),
            tls_verify=imap.get("tls_verify", True),
            after=imap.get("after", "leave"), move_to=imap.get("move_to", ""),
            start=imap.get("start", "all"),
        ))
    return out
