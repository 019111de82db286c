"""One tenant wired to a real Redis Cluster (redis+cluster://) and a real database, with its edges.

Mail comes in over real SMTP, WeChat pushes and web forms over the real gateway; the
normalizer and the router run in drain mode on the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from dataclasses import dataclass

from gateway_support import Gateway, running_gateway
from redis.asyncio.cluster import RedisCluster
from sqlalchemy import select
from support import SUPPORT, free_port
from wechat_support import TOKEN, WeChat

from connectors.email import smtp
from connectors.registry import capacity_classes
from core.blobs import BlobStore
from core.bus import Bus
from core.redis import connect
from core.settings import Settings, load
from normalizer.worker import Normalizer
from router.worker import Router
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.db import Database, migrate
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.tables import messages, tickets

FORM = {"fields": {"body": "question", "email": "mail"}, "required": ["body", "email"],
        "rate_per_ip": 100_000, "rate_per_form": 100_000}


@dataclass
class ClusterSystem:
    settings: Settings
    bus: Bus
    db: Database
    gw: Gateway
    smtp_port: int
    agent: int

    @property
    def redis(self) -> RedisCluster:
        return self.bus.redis

    def send_mail(self, raw: bytes) -> dict:
        """One mail over real SMTP; raises ``smtplib.SMTPResponseException`` on a 4xx/5xx."""
        wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            return client.sendmail("zhang.wei@example.cn", [SUPPORT], wire)

    def wechat(self) -> WeChat:
        return WeChat(self.gw, "acme-plain")

    async def post_form(self, question: str, submission_id: str) -> tuple[int, dict]:
        """A form post carrying its client token: a retry of it is the same submission."""
        data = {"question": question, "mail": "li.na@example.cn", "submission_id": submission_id}
        async with self.gw.http.post(self.gw.url("/forms/contact"), data=data) as resp:
            return resp.status, await resp.json()

    async def drain(self) -> None:
        await asyncio.wait_for(Normalizer(self.bus, self.settings, self.db, self.bus.blobs).run(drain=True), 60)
        await asyncio.wait_for(Router(self.bus, self.settings, self.db, capacity_classes()).run(drain=True), 60)

    async def tickets(self) -> list:
        async with self.db.read() as conn:
            return (await conn.execute(select(tickets).order_by(tickets.c.id))).all()

    async def messages(self) -> list:
        async with self.db.read() as conn:
            return (await conn.execute(select(messages).order_by(messages.c.id))).all()


@contextlib.asynccontextmanager
async def cluster_system(url: str, database_url: str, tmp_path, **settings):
    """Everything of one process on the cluster at ``url``, emptied first."""
    s = load(env={}).replace(data_dir=tmp_path, redis_url=url, database_url=database_url,
                             visibility_timeout_ms=500, reclaim_interval_ms=50, block_ms=50, max_deliveries=3,
                             **settings)
    client = connect(url)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        await admin.add_account(conn, tenant, "email", SUPPORT)
        await admin.add_account(conn, tenant, "wechat", "acme-plain", {"token": TOKEN, "mode": "plaintext"})
        await admin.add_account(conn, tenant, "webform", "contact", FORM)
        agent = await conn.run_sync(agents_store.create_agent, tenant, "Li", "li@acme.test", status="online",
                                    capacity={"email": 500, "chat": 500})
    bus = Bus(client, BlobStore(s.blob_dir), s.blob_threshold, s.redis_wait_replicas, s.redis_wait_timeout_ms)
    port = free_port()
    server = await smtp.serve(bus, AccountDirectory(db), "127.0.0.1", port, max_size=1 << 20, hostname="mx.test")
    try:
        async with running_gateway(bus, db, tenant, api=True) as gw:
            yield ClusterSystem(s, bus, db, gw, port, agent)
    finally:
        server.close()
        await server.wait_closed()
        await bus.aclose()
        await client.aclose()
        await db.dispose()
