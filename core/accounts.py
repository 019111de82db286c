"""The edge's view of channel accounts: frozen records and the lookup the store implements.

Connectors and the gateway name only these; the role runner hands them the store's
implementation (``ticket_service.store.directory.AccountDirectory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    tenant_id: int
    tenant_slug: str
    channel: str
    address: str
    settings: dict
    sealed: str | None = None  # secret_enc: sealed channel secrets (opened by the lookup when asked)


@dataclass(frozen=True, slots=True)
class ImapMailbox:
    """One folder of one email account, as a poller needs it (the password still sealed)."""

    account_id: int
    tenant_slug: str
    address: str
    host: str
    port: int
    user: str
    secret_enc: str
    folder: str = "INBOX"
    security: str = "ssl"
    tls_verify: bool = True  # False: accept a self-signed certificate (encrypted, not authenticated)
    after: str = "leave"  # leave | seen | move
    move_to: str = ""
    start: str = "all"  # all: take in what the folder already holds; new: only what arrives later

    @property
    def name(self) -> str:
        """The lease and checkpoint scope: one account's one folder."""
        return f"{self.account_id}:{self.folder}"


class Accounts(Protocol):
    """Active accounts by address or id, and the IMAP mailboxes to poll.

    ``secrets=True`` (where a request is verified) opens the account's sealed secrets into its
    settings; ``secrets=False`` gives the account with its secrets still sealed.
    """

    async def by_address(self, channel: str, address: str, *, secrets: bool = True) -> Account | None: ...

    async def by_id(self, account_id: int, *, secrets: bool = True) -> Account | None: ...

    async def imap_mailboxes(self) -> list[ImapMailbox]: ...
