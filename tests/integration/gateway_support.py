"""The real gateway app on a real HTTP server, real Redis and a real database, for push tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.registry import capacity_classes, secret_channels
from core.blobs import BlobStore
from core.bus import Bus
from gateway.app import setup_gateway
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.history import StoredHistory


@dataclass
class Gateway:
    http: aiohttp.ClientSession
    server: TestServer
    bus: Bus
    db: Database
    tenant: int

    @property
    def redis(self) -> aioredis.Redis:
        return self.bus.redis

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def xlen(self, channel: str) -> int:
        return await self.redis.xlen(f"ingest.{channel}")

    async def add_account(self, channel: str, address: str, settings: dict) -> int:
        async with self.db.write() as conn:
            return await admin.add_account(conn, self.tenant, channel, address, settings)


@contextlib.asynccontextmanager
async def running_gateway(bus: Bus, db: Database, tenant: int, api: bool = False, secret_key: str = ""):
    """Serve ``setup_gateway`` (and the API, for reads) over real HTTP on a free port."""
    app = web.Application()
    setup_gateway(app, bus, AccountDirectory(db, ttl=30.0, secret_key=secret_key, opens=secret_channels()),
                  StoredHistory(db))
    if api:
        setup_api(app, db, bus.blobs, capacity_classes(), bus=bus)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        yield Gateway(http, server, bus, db, tenant)


@contextlib.asynccontextmanager
async def edge_gateway(sqlite_url: str, redis_url: str, tmp_path):
    """A gateway on its own SQLite database with tenant acme (edge tests: no normalizer)."""
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
    client = aioredis.Redis.from_url(redis_url)
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 256 * 1024)
    try:
        async with running_gateway(bus, db, tenant) as gw:
            yield gw
    finally:
        await client.aclose()
        await db.dispose()
