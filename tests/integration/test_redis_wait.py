"""``redis_wait_replicas`` on one Redis server: ingress says yes only once a replica has the entry."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import smtplib
import subprocess

import pytest
import redis
import redis.asyncio as aioredis
from gateway_support import running_gateway
from support import SUPPORT, free_port, make_mail, wait_for

from connectors.email import smtp
from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory

FORM = {"fields": {"body": "question", "email": "mail"}, "required": ["body", "email"]}


def _server(folder, port: int, *extra: str) -> subprocess.Popen:
    folder.mkdir()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(folder), "--save", "", "--appendonly", "yes",
                             "--repl-diskless-sync-delay", "0", "--loglevel", "warning", *extra],
                            stdout=subprocess.DEVNULL)
    return proc


@pytest.fixture
def replicated_redis(tmp_path):
    """A primary with one replica in sync; yields the primary's URL."""
    primary, replica = free_port(), free_port()
    procs = [_server(tmp_path / "primary", primary),
             _server(tmp_path / "replica", replica, "--replicaof", "127.0.0.1", str(primary))]

    def synced() -> bool:
        try:
            with redis.Redis(port=primary) as client:
                info = client.info("replication")
            return info["connected_slaves"] == 1 and info["slave0"]["state"] == "online"
        except redis.ConnectionError:
            return False

    wait_for(synced, what="replica in sync")
    yield f"redis://127.0.0.1:{primary}"
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@contextlib.asynccontextmanager
async def edges(url: str, sqlite_url: str, tmp_path, wait_timeout_ms: int = 100):
    """The gateway (web form "contact") and SMTP on a bus that WAITs for one replica."""
    db = Database(sqlite_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        await admin.add_account(conn, tenant, "email", SUPPORT)
        await admin.add_account(conn, tenant, "webform", "contact", FORM)
    client = aioredis.Redis.from_url(url)
    bus = Bus(client, BlobStore(tmp_path / "blobs"), 1 << 20, wait_replicas=1, wait_timeout_ms=wait_timeout_ms)
    port = free_port()
    server = await smtp.serve(bus, AccountDirectory(db), "127.0.0.1", port, max_size=1 << 20, hostname="mx.test")
    try:
        async with running_gateway(bus, db, tenant) as gw:
            yield gw, port
    finally:
        server.close()
        await server.wait_closed()
        await client.aclose()
        await db.dispose()


def _send(port: int, raw: bytes) -> tuple[int, str]:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("zhang.wei@example.cn", [SUPPORT], raw)
        return 250, ""
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode()


async def _post(gw) -> tuple[int, dict]:
    async with gw.http.post(gw.url("/forms/contact"), data={"question": "退货", "mail": "a@example.cn"}) as resp:
        return resp.status, await resp.json()


async def test_without_a_replica_ingress_refuses_though_the_entry_was_written(redis_url, sqlite_url, tmp_path):
    async with edges(redis_url, sqlite_url, tmp_path) as (gw, port):
        status, body = await _post(gw)
        assert (status, body["error"]["code"]) == (503, "unavailable")
        assert await asyncio.to_thread(_send, port, make_mail()[0]) == (
            451, "4.3.0 Queue unavailable, try again later")
        # Written on the master all the same: a retry is deduplicated by the store.
        assert await gw.redis.xlen(keys.ingest_stream("webform")) == 1
        assert await gw.redis.xlen(keys.ingest_stream("email")) == 1


async def test_with_a_replica_in_sync_ingress_accepts(replicated_redis, sqlite_url, tmp_path):
    # A second for the replica's acknowledgement: on a loaded machine it may miss 100 ms, and
    # this test is about a replica that does answer (the one above, about one that never does).
    async with edges(replicated_redis, sqlite_url, tmp_path, wait_timeout_ms=1000) as (gw, port):
        status, body = await _post(gw)
        assert (status, body["status"]) == (202, "accepted")
        assert await asyncio.to_thread(_send, port, make_mail()[0]) == (250, "")
        assert await gw.redis.xlen(keys.ingest_stream("webform")) == 1
        assert await gw.redis.xlen(keys.ingest_stream("email")) == 1
