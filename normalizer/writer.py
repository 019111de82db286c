"""``Direct``: the normalizer's reads and writes one statement each, on one connection.

The per-envelope path (a batch split after a bad entry, a race retry) and the messages a
batch cannot plan ahead (``batch_writer.needs_store``) go through it. ``Batched`` offers the
same methods over a whole batch's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection, Row

from ticket_service.store import customers
from ticket_service.store import tickets as store
from ticket_service.store.customers import Customer, Identity


class Direct:
    """Each call is its statement(s), run at once: what a later call reads includes it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find_message(self, tenant_id: int, channel: str, dedup_key: str) -> Row | None:
        return store.find_message(self.conn, tenant_id, channel, dedup_key)

    def resolve_customer(self, tenant_id: int, primary: Identity, also: list[Identity], name: str,
                         now: int) -> Customer:
        return customers.resolve(self.conn, tenant_id, primary, also, name, now)

    def ticket_for_keys(self, tenant_id: int, account_id: int, keys: Iterable[str]) -> Row | None:
        return store.ticket_for_keys(self.conn, tenant_id, account_id, keys)

    def ticket_by_id(self, tenant_id: int, ticket_id: int) -> Row | None:
        return store.ticket_by_id(self.conn, tenant_id, ticket_id)

    def ticket_by_number(self, tenant_id: int, number: int) -> Row | None:
        return store.ticket_by_number(self.conn, tenant_id, number)

    def ticket_has_message(self, tenant_id: int, ticket_id: int, dedup_keys: Iterable[str]) -> bool:
        return store.ticket_has_message(self.conn, tenant_id, ticket_id, dedup_keys)

    def create_ticket(self, **values: Any) -> tuple[int, int]:
        return store.create_ticket(self.conn, **values)

    def bind_thread_keys(self, tenant_id: int, account_id: int, ticket_id: int, keys: Iterable[str], now: int,
                         repoint: bool = False) -> None:
        store.bind_thread_keys(self.conn, tenant_id, account_id, ticket_id, keys, now, repoint=repoint)

    def touch_ticket(self, ticket_id: int, now: int, reopen: bool = False, cc: list[str] | None = None) -> None:
        store.touch_ticket(self.conn, ticket_id, now, reopen=reopen, cc=cc)

    def clear_auto(self, ticket_id: int) -> None:
        store.clear_auto(self.conn, ticket_id)

    def add_message(self, **values: Any) -> int:
        return store.add_message(self.conn, **values)

    def add_attachments(self, rows: list[dict[str, Any]]) -> None:
        store.add_attachments(self.conn, rows)
