"""A short-lived in-process cache of channel accounts, to keep ingress off the database."""

from __future__ import annotations

import time

import structlog

from core.credentials import CredentialError
from ticket_service.store import admin
from ticket_service.store.admin import Account
from ticket_service.store.db import Database

_MISS_TTL = 5.0  # a just-added account is found within seconds
log = structlog.get_logger()


class AccountDirectory:
    """Accounts by address or id; sealed channel secrets opened with ``secret_key``.

    Without the key an account's sealed secrets stay closed, so its signatures cannot verify
    and its requests are refused (401) rather than accepted unchecked.
    """

    def __init__(self, db: Database, ttl: float = 30.0, secret_key: str = "") -> None:
        self.db = db
        self.ttl = ttl
        self.secret_key = secret_key
        self._entries: dict[tuple, tuple[float, Account | None]] = {}

    def _open(self, account: Account | None) -> Account | None:
        if account is None or not account.sealed or account.channel == "email":
            return account
        try:
            return admin.open_secrets(account, self.secret_key)
        except CredentialError as exc:
            log.error("account.secrets_closed", account=account.id, channel=account.channel, error=str(exc))
            return account

    async def _cached(self, key: tuple, load) -> Account | None:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit and hit[0] > now:
            return hit[1]
        async with self.db.read() as conn:
            account = self._open(await load(conn))
        self._entries[key] = (now + (self.ttl if account else _MISS_TTL), account)
        return account

    async def by_address(self, channel: str, address: str) -> Account | None:
        return await self._cached(("addr", channel, address), lambda c: admin.find_account(c, channel, address))

    async def by_id(self, account_id: int) -> Account | None:
        return await self._cached(("id", account_id), lambda c: admin.get_account(c, account_id))
