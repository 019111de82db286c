"""``History`` (core.history) over the database: receipt and conversation reads for the edge."""

from __future__ import annotations

from core.history import ReceiptState, StoredFile, StoredMessage
from ticket_service.store.conversations import conversation
from ticket_service.store.db import Database
from ticket_service.store.receipts import message_ticket


class StoredHistory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def message_ticket(self, tenant_id: int, channel: str, dedup_key: str) -> ReceiptState | None:
        async with self.db.read() as conn:
            row = await message_ticket(conn, tenant_id, channel, dedup_key)
        return None if row is None else ReceiptState(row.message_id, row.ticket_id, row.number, row.status)

    async def conversation(self, tenant_id: int, account_id: int, thread_key: str,
                           identity: tuple[str, str, str]) -> list[StoredMessage]:
        async with self.db.read() as conn:
            rows, files = await conversation(conn, tenant_id, account_id, thread_key, identity)
        return [
            StoredMessage(r.id, r.direction, r.text, r.sender_name, r.headers or {}, r.created_at,
                          tuple(StoredFile(a.id, a.filename, a.content_type, a.size) for a in files.get(r.id, [])))
            for r in rows
        ]
