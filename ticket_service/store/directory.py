"""``Accounts`` (core.accounts) over the database, with a short-lived in-process cache."""

from __future__ import annotations

import time
from collections.abc import Collection

import structlog

from core.accounts import Account, ImapMailbox
from core.credentials import CredentialError
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.mailboxes import imap_mailboxes

MISS_TTL = 5.0  # a just-added account is found within seconds
log = structlog.get_logger()


class AccountDirectory:
    """Accounts by address or id, cached; sealed channel secrets opened with ``secret_key``.

    ``opens`` names the channels whose sealed secrets are settings their requests are verified
    with (``Channel.account_secrets``); only those are opened, and only when asked for. Without
    the key an account's sealed secrets stay closed, so its signatures cannot verify and its
    requests are refused (401) rather than accepted unchecked.
    """

    def __init__(self, db: Database, ttl: float = 30.0, secret_key: str = "", opens: Collection[str] = ()) -> None:
        self.db = db
        self.ttl = ttl
        self.secret_key = secret_key
        self.opens = frozenset(opens)
        # key -> (expires, account as stored, account with its secrets opened once asked for)
        self._entries: dict[tuple, list] = {}

    def _open(self, account: Account) -> Account:
        try:
            return admin.open_secrets(account, self.secret_key)
        except CredentialError as exc:
            log.error("account.secrets_closed", account=account.id, channel=account.channel, error=str(exc))
            return account

    async def _cached(self, key: tuple, load, secrets: bool) -> Account | None:
        now = time.monotonic()
        hit = self._entries.get(key)
        if not hit or hit[0] <= now:
            async with self.db.read() as conn:
                account = await load(conn)
            hit = self._entries[key] = [now + (self.ttl if account else MISS_TTL), account, None]
        account = hit[1]
        if not secrets or account is None or not account.sealed or account.channel not in self.opens:
            return account
        if hit[2] is None:
            hit[2] = self._open(account)
        return hit[2]

    async def by_address(self, channel: str, address: str, *, secrets: bool = True) -> Account | None:
        return await self._cached(("addr", channel, address),
                                  lambda c: admin.find_account(c, channel, address), secrets)

    async def by_id(self, account_id: int, *, secrets: bool = True) -> Account | None:
        return await self._cached(("id", account_id), lambda c: admin.get_account(c, account_id), secrets)

    async def imap_mailboxes(self) -> list[ImapMailbox]:
        """Every active email account with IMAP settings (not cached: the poller refreshes it)."""
        async with self.db.read() as conn:
            return await imap_mailboxes(conn)
