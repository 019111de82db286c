"""Tenants, channel accounts and API keys: the records admins create (agents: ``agents``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.accounts import Account
from core.credentials import seal, unseal
from core.ids import now_ms
from ticket_service.store.tables import api_keys, channel_accounts, tenants

KEY_PREFIX = "sb_"


class NotFound(LookupError):
    pass


def hash_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is a safe verifier for them.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_tenant(conn: AsyncConnection, slug: str, name: str = "") -> int:
    result = await conn.execute(
        insert(tenants).values(slug=slug, name=name or slug, settings={}, created_at=now_ms())
    )
    return result.inserted_primary_key[0]


async def tenant_id(conn: AsyncConnection, slug: str) -> int:
    found = (await conn.execute(select(tenants.c.id).where(tenants.c.slug == slug))).scalar()
    if found is None:
        raise NotFound(f"no tenant {slug!r}")
    return found


# Channel settings that are secrets: with a secret key they are sealed into ``secret_enc``
# and never stored in the readable ``settings`` column.
SECRET_SETTINGS = frozenset({"token", "aes_key", "app_secret", "secret", "auth_token", "shared_key", "password",
                             "dkim_private_key", "access_token"})
# An email account's ``secret_enc`` holds its IMAP password (mailboxes.py): its other
# secrets (the DKIM key) are sealed into this one setting instead.
EMAIL_SEALED = "sealed"
# A new WeChat account is safe mode unless asked otherwise: only there does the signature
# (msg_signature) cover the message; plaintext and compatible mode sign no body (docs/security.md).
NEW_ACCOUNT_DEFAULTS = {"wechat": {"mode": "safe"}}


async def add_account(
    conn: AsyncConnection, tenant: int, channel: str, address: str, settings: dict | None = None,
    secret_key: str = "",
) -> int:
    """Register ``address`` (already in its channel's normal form) for the tenant; with a
    ``secret_key`` the secret settings are sealed, which the caller asks for only on channels
    whose requests are verified with them (``Channel.account_secrets``)."""
    settings = {**NEW_ACCOUNT_DEFAULTS.get(channel, {}), **(settings or {})}
    sealed = None
    hidden = {k: settings.pop(k) for k in sorted(SECRET_SETTINGS & set(settings))} if secret_key else {}
    if hidden:
        sealed = seal(secret_key, json.dumps(hidden))
    if channel == "email":
        address = address.strip().lower()  # email's secret_enc holds an IMAP password (mailboxes.py)
        settings, sealed = ({**settings, EMAIL_SEALED: sealed} if sealed else settings), None
    result = await conn.execute(
        insert(channel_accounts).values(
            tenant_id=tenant, channel=channel, address=address, name=address,
            settings=settings, secret_enc=sealed, active=True, created_at=now_ms(),
        )
    )
    return result.inserted_primary_key[0]


def open_secrets(account: Account, secret_key: str) -> Account:
    """The account with its sealed channel secrets merged back into its settings."""
    if account.channel == "email":
        settings = dict(account.settings)
        sealed = settings.pop(EMAIL_SEALED, None)
        if not sealed:
            return account
        return dataclasses.replace(account, settings={**settings, **json.loads(unseal(secret_key, sealed))})
    if not account.sealed:
        return account
    return dataclasses.replace(account, settings={**account.settings, **json.loads(unseal(secret_key, account.sealed))})


def _account_query():
    return select(
        channel_accounts.c.id, channel_accounts.c.tenant_id, tenants.c.slug,
        channel_accounts.c.channel, channel_accounts.c.address, channel_accounts.c.settings,
        channel_accounts.c.secret_enc,
    ).join(tenants, tenants.c.id == channel_accounts.c.tenant_id).where(channel_accounts.c.active)


async def find_account(conn: AsyncConnection, channel: str, address: str) -> Account | None:
    row = (
        await conn.execute(
            _account_query().where(channel_accounts.c.channel == channel, channel_accounts.c.address == address)
        )
    ).first()
    return Account(*row) if row else None


async def get_account(conn: AsyncConnection, account_id: int) -> Account | None:
    row = (await conn.execute(_account_query().where(channel_accounts.c.id == account_id))).first()
    return Account(*row) if row else None


async def create_api_key(conn: AsyncConnection, tenant: int, name: str = "default") -> str:
    """Create a key and return it; only its hash is stored, so this is the one chance to see it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        insert(api_keys).values(
            tenant_id=tenant, name=name, prefix=key[:8], key_hash=hash_key(key), created_at=now_ms()
        )
    )
    return key


async def tenant_for_key(conn: AsyncConnection, key: str) -> int | None:
    return (
        await conn.execute(
            select(api_keys.c.tenant_id).where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
        )
    ).scalar()

