"""DATABASE_READ_URL: the API's lists and ticket views read a real PostgreSQL streaming replica,
and a request that writes reads its result back from the primary."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pg import Cluster
from pg_replica import Replica
from sqlalchemy import text

from connectors.registry import capacity_classes
from core.blobs import BlobStore
from core.ids import now_ms
from ticket_service.api import create_app
from ticket_service.store import admin
from ticket_service.store import tickets as store
from ticket_service.store.db import Database, migrate


@pytest.fixture(scope="module")
def replicated():
    """A primary and its hot standby; yields (replica, primary URL, replica URL) of one database."""
    primary = Cluster()
    replica = Replica(primary)
    try:
        primary.start()
        url = primary.create_database("sb")
        replica.start()
        yield replica, url, replica.url("sb")
    finally:
        replica.remove()
        primary.remove()


class Api:
    def __init__(self, db: Database, replica: Replica, http: aiohttp.ClientSession, server: TestServer) -> None:
        self.db, self.replica, self.http, self.server = db, replica, http, server

    async def setup(self) -> Api:
        async with self.db.write() as conn:
            self.tenant = await admin.create_tenant(conn, f"t{uuid.uuid4().hex[:8]}")
            self.key = await admin.create_api_key(conn, self.tenant)
            self.account = await admin.add_account(conn, self.tenant, "email", f"help@{self.tenant}.test")
            self.customer = (await conn.run_sync(store.resolve_customer, self.tenant, "email", "",
                                                 "zw@example.cn", "Zhang Wei", 1)).id
        self.replica.wait_caught_up()
        return self

    async def new_ticket(self, subject: str) -> int:
        async with self.db.write() as conn:
            ticket_id, _ = await conn.run_sync(store.create_ticket, tenant_id=self.tenant, account_id=self.account,
                                               channel="email", status="open", customer_id=self.customer,
                                               subject=subject, priority=0, now=now_ms())
        return ticket_id

    async def call(self, method: str, path: str, **kw) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.request(method, self.server.make_url(path), headers=headers, **kw) as resp:
            return resp.status, await resp.json()

    async def listed(self) -> list[str]:
        status, body = await self.call("GET", "/api/v1/tickets")
        assert status == 200
        return [t["subject"] for t in body["items"]]


@pytest.fixture
async def api(replicated, tmp_path):
    replica, url, read_url = replicated
    db = Database(url, read_url=read_url)
    await migrate(db)
    server = TestServer(create_app(db, BlobStore(tmp_path / "blobs"), capacity_classes()))
    async with server, aiohttp.ClientSession() as http:
        yield await Api(db, replica, http, server).setup()
    replica.resume()
    await db.dispose()


async def test_lagging_reads_run_on_the_standby_and_plain_reads_on_the_primary(api):
    async with api.db.read_may_lag() as conn:
        assert (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar_one() is True
    async with api.db.read() as conn:
        assert (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar_one() is False


async def test_a_ticket_is_listed_once_replicated_and_a_paused_replica_shows_its_lag(api):
    first = await api.new_ticket("Order 1042 late")
    api.replica.wait_caught_up()
    assert await api.listed() == ["Order 1042 late"]

    api.replica.pause()  # from here on the standby holds still: reads from it cannot see new rows
    second = await api.new_ticket("Refund for 1043")
    assert await api.listed() == ["Order 1042 late"]
    assert (await api.call("GET", f"/api/v1/tickets/{second}"))[0] == 404

    # A write and the read of its result in one request: the read is the primary's.
    status, note = await api.call("POST", f"/api/v1/tickets/{first}/messages",
                                  json={"kind": "note", "text": "customer called, sent the label"})
    assert (status, note["ticket_id"], note["text"]) == (201, first, "customer called, sent the label")
    status, detail = await api.call("GET", f"/api/v1/tickets/{first}")
    assert (status, detail["messages"]) == (200, [])  # the plain view still reads the paused standby

    api.replica.resume()
    api.replica.wait_caught_up()
    assert await api.listed() == ["Refund for 1043", "Order 1042 late"]
    status, detail = await api.call("GET", f"/api/v1/tickets/{first}")
    assert [m["text"] for m in detail["messages"]] == ["customer called, sent the label"]
