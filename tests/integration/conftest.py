"""A tenant with a support mailbox on real Redis + a real database, and ways to feed it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from openapi_check import api_responses_match_the_document  # noqa: F401  (autouse)
from sqlalchemy import select
from support import SUPPORT

from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import load
from normalizer.worker import Normalizer
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import messages, tickets


class System:
    def __init__(self, settings, db, bus, tenant, account):
        self.settings, self.db, self.bus = settings, db, bus
        self.tenant, self.account = tenant, account

    async def publish(self, raw: bytes, account: int | None = None) -> Envelope:
        env = Envelope(tenant="acme", channel="email", account=str(account or self.account),
                       payload=raw, content_type="message/rfc822")
        await self.bus.publish(keys.ingest_stream("email"), env)
        return env

    async def drain(self) -> Normalizer:
        worker = Normalizer(self.bus, self.settings, self.db, self.bus.blobs)
        await asyncio.wait_for(worker.run(drain=True), 60)
        return worker

    async def tickets(self):
        async with self.db.read() as conn:
            return (await conn.execute(select(tickets).order_by(tickets.c.id))).all()

    async def messages(self):
        async with self.db.read() as conn:
            return (await conn.execute(select(messages).order_by(messages.c.id))).all()

    async def events(self) -> list[dict]:
        from ticket_service.events import read_event
        entries = await self.bus.redis.xrange(keys.TICKET_EVENTS)
        return [read_event(Envelope.unpack(f[b"e"])) for _, f in entries]


@pytest.fixture
async def system(database_url, redis_url, tmp_path):
    settings = load(env={}).replace(
        data_dir=tmp_path, redis_url=redis_url, database_url=database_url,
        visibility_timeout_ms=200, reclaim_interval_ms=50, block_ms=50, max_deliveries=2,
    )
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        account = await admin.add_account(conn, tenant, "email", SUPPORT)
    client = aioredis.Redis.from_url(redis_url)
    yield System(settings, db, Bus(client, BlobStore(settings.blob_dir), settings.blob_threshold), tenant, account)
    await client.aclose()
    await db.dispose()
