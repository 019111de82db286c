"""The database goes away under a running normalizer: nothing is acked, nothing is lost.

While PostgreSQL is down the worker's handler fails, so entries stay pending (unacked) and
the loop backs off instead of spinning; when the database returns the same worker catches
up and every message is stored exactly once.
"""

import asyncio

import pytest
import redis.asyncio as aioredis
from pg import Cluster
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from support import SUPPORT, make_mail

from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import load
from normalizer.worker import Normalizer
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import messages


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test alone, so stopping it disturbs nobody."""
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.remove()


async def _publish(bus: Bus, account: int, first: int, count: int) -> None:
    for i in range(first, first + count):
        raw, _ = make_mail(subject=f"case {i}", msgid=f"<outage-{i}@example.cn>")
        await bus.publish(keys.ingest_stream("email"),
                          Envelope(tenant="acme", channel="email", account=str(account), payload=raw))


async def _stored(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            return (await conn.execute(select(func.count(messages.c.id)))).scalar_one()
    finally:
        await db.dispose()


async def _until(predicate) -> None:
    async with asyncio.timeout(60):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_normalizer_holds_entries_while_the_database_is_down_and_catches_up(own_postgres, redis_url, tmp_path):
    url = own_postgres.create_database("outage")
    db = Database(url)
    await migrate(db)
    async with db.write() as conn:
        account = await admin.add_account(conn, await admin.create_tenant(conn, "acme"), "email", SUPPORT)
    client = aioredis.Redis.from_url(redis_url)
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 1 << 20)
    # max_deliveries=1: any delivery spent on a plain failure would dead-letter the entry.
    settings = load(env={}).replace(data_dir=tmp_path, block_ms=50, visibility_timeout_ms=500,
                                    reclaim_interval_ms=100, max_deliveries=1)
    worker = Normalizer(bus, settings, db, bus.blobs)
    running = asyncio.create_task(worker.run())
    try:
        await _publish(bus, account, 0, 10)
        await _until(lambda: _count_is(url, 10))

        own_postgres.stop()
        await _publish(bus, account, 10, 20)
        await asyncio.sleep(3)
        # Failed handlers leave entries pending: not acked, not dead-lettered, not lost.
        pending = (await client.xpending("ingest.email", "normalizer"))["pending"]
        assert pending >= 1
        assert await client.xlen("dead.ingest.email") == 0
        # The outage is told apart from bad input: the batch stops at the first failure and
        # the loop backs off (0.1 s doubling to 5 s): a handful of attempts in 3 s.
        assert 1 <= worker.counters["outage"] <= 8, worker.counters
        assert worker.counters["failed"] == 0

        own_postgres.start()
        await _until(lambda: _count_is(url, 30))
        await _until(lambda: _pending_is(client, 0))
        assert await client.xlen("dead.ingest.email") == 0
    finally:
        worker.stop()
        await running
        await client.aclose()
        await db.dispose()
    assert await _stored(url) == 30


async def _count_is(url: str, n: int) -> bool:
    try:
        return await _stored(url) == n
    except (OSError, SQLAlchemyError):
        return False


async def _pending_is(client, n: int) -> bool:
    return (await client.xpending("ingest.email", "normalizer"))["pending"] == n
