"""Which stored blobs attachments still point at (for the orphan blob collector)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.store.tables import attachments

_CHUNK = 500  # bound parameters per query (SQLite allows 32766, PostgreSQL 65535)


async def blob_keys_in_use(conn: AsyncConnection, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` that any tenant's attachment refers to."""
    wanted, used = list(keys), set()
    for i in range(0, len(wanted), _CHUNK):
        rows = await conn.execute(select(attachments.c.blob_key).distinct()
                                  .where(attachments.c.blob_key.in_(wanted[i:i + _CHUNK])))
        used.update(rows.scalars())
    return used
