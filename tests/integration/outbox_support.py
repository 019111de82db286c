"""A tenant with an email ticket, the API over real HTTP, and the relay + sender run in drain mode."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from support import SUPPORT, make_mail

from connectors.registry import capacity_classes
from connectors.relay import Relay
from connectors.sender import Sender
from core import keys
from core.envelope import Envelope
from core.outbound import Outgoing, Sent
from ticket_service.api import setup_api
from ticket_service.events import read_event
from ticket_service.store import admin
from ticket_service.store.outbox import StoreOutbox
from ticket_service.store.tables import outbox

SECRET = "outbound-test-secret"


@dataclass
class Platform:
    """What a channel's ``send`` does in a test: answers in order, then ``Sent``; records each call."""

    answers: list = field(default_factory=list)
    calls: list[Outgoing] = field(default_factory=list)

    async def send(self, out: Outgoing, ctx) -> Sent:
        self.calls.append(out)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return Sent(platform_id=f"p-{len(self.calls)}")


class Outbound:
    def __init__(self, system, http: TestClient, key: str, other_key: str, ticket_id: int) -> None:
        self.system, self.http, self.key, self.other_key, self.ticket_id = system, http, key, other_key, ticket_id
        self.store = StoreOutbox(system.db, system.bus, system.bus.blobs, SECRET)

    async def post(self, body, ticket_id: int | None = None, key: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        url = f"/api/v1/tickets/{ticket_id or self.ticket_id}/messages"
        kwargs = {"data": body} if isinstance(body, bytes | str) else {"json": body}
        async with self.http.post(url, headers=headers, **kwargs) as r:
            return r.status, await r.json()

    async def ticket(self) -> dict:
        async with self.http.get(f"/api/v1/tickets/{self.ticket_id}",
                                 headers={"Authorization": f"Bearer {self.key}"}) as r:
            assert r.status == 200
            return await r.json()

    async def rows(self):
        async with self.system.db.read() as conn:
            return (await conn.execute(select(outbox).order_by(outbox.c.id))).all()

    async def send_all(self, settings=None) -> None:
        """Relay what is due and drain the sender; once, like one pass of the role."""
        s = settings or self.system.settings
        await Relay(self.system.bus, s, self.store).relay_once()
        await asyncio.wait_for(Sender(self.system.bus, s, self.store).run(drain=True), 60)

    async def events(self, kind: str) -> list[dict]:
        entries = await self.system.bus.redis.xrange(keys.TICKET_EVENTS)
        found = [read_event(Envelope.unpack(f[b"e"])) for _, f in entries]
        return [e for e in found if e["type"] == kind]


@asynccontextmanager
async def outbound_world(system):
    """An email ticket from zhang.wei@example.cn; API keys of its tenant and of another."""
    system.settings = system.settings.replace(secret_key=SECRET, send_backoff_base_s=0.001,
                                              send_backoff_cap_s=0.002)
    await system.publish(make_mail(subject="Refund for order 1042")[0])
    await system.drain()
    [ticket] = await system.tickets()
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
        other = await admin.create_tenant(conn, "globex")
        await admin.add_account(conn, other, "email", "help@globex.test")
        other_key = await admin.create_api_key(conn, other)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), secret_key=SECRET, reply_limit=256 * 1024)
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        yield Outbound(system, http, key, other_key, ticket.id)
    finally:
        await http.close()


__all__ = ["SUPPORT", "Platform", "Outbound", "outbound_world"]
