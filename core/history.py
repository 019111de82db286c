"""What the edge may read of stored messages: a receipt's ticket, an app user's conversation.

The store implements ``History`` (``ticket_service.store.history``); the role runner hands it
to the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReceiptState:
    """The message stored under a receipt's dedup key and its ticket, if it has one yet."""

    message_id: int
    ticket_id: int | None
    number: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation as the app shows it, with its attachments."""

    id: int
    direction: str  # in | out
    text: str
    sender_name: str
    headers: dict
    created_at: int  # ms
    files: tuple[StoredFile, ...] = ()


class History(Protocol):
    async def message_ticket(self, tenant_id: int, channel: str, dedup_key: str) -> ReceiptState | None: ...

    async def conversation(self, tenant_id: int, account_id: int, thread_key: str,
                           identity: tuple[str, str, str]) -> list[StoredMessage]:
        """The conversation's messages, oldest first; empty unless ``identity`` owns it."""
        ...
