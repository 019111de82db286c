"""An email ticket, the api role's real HTTP application over real HTTP, and ways to act on it."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from support import make_mail

from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from ops import roles
from ops.runtime import Runtime
from ticket_service.store import admin
from ticket_service.store.agents import create_agent
from ticket_service.store.replies import Draft, store_reply
from ticket_service.store.tables import tickets

SECRET = "portal-test-secret"
CUSTOMER_TEXT = "我的订单 1042 还没有到，能帮忙查一下吗？"
NOTE_TEXT = "internal: customer is on the watch list"
REPLY_TEXT = "您好，包裹已在派送途中。"


class World:
    """The tenant ``acme`` with one email ticket from Zhang Wei, and the api role's app on HTTP."""

    def __init__(self, system, rt: Runtime, http: TestClient) -> None:
        self.system, self.rt, self.http = system, rt, http
        self.links = roles.portal_links(rt.settings)
        self.key = ""
        self.ticket = None

    @property
    def tenant(self) -> int:
        return self.system.tenant

    async def make_ticket(self, subject: str = "订单 1042 未送达", sender="Zhang Wei <zhang.wei@example.cn>"):
        raw, _ = make_mail(subject=subject, body=CUSTOMER_TEXT, sender=sender)
        await self.system.publish(raw)
        await self.system.drain()
        return (await self.system.tickets())[-1]

    async def ticket_row(self, ticket_id: int | None = None):
        async with self.system.db.read() as conn:
            return (await conn.execute(select(tickets).where(
                tickets.c.id == (ticket_id or self.ticket.id)))).one()

    async def link(self, ticket_id: int | None = None, issued_at: float | None = None) -> str:
        """A link as replies carry it, for the ticket as it is now."""
        return self.links.portal_link(self.tenant, await self.ticket_row(ticket_id), issued_at=issued_at)

    @staticmethod
    def path(link: str) -> str:
        return urlsplit(link).path

    async def agent(self, name: str, email: str) -> int:
        return await self.system.db.run_write(create_agent, self.tenant, name, email)

    async def write(self, kind: str, text: str, author_id: int | None = None) -> int:
        draft = Draft(kind=kind, text=text, author_id=author_id)
        message_id, _ = await self.system.db.run_write(store_reply, self.tenant, self.ticket.id, draft, SECRET,
                                                       now_ms())
        return message_id

    async def get(self, path: str, lang: str = "en", **kwargs) -> tuple[int, str, dict]:
        headers = {"Accept-Language": lang, **kwargs.pop("headers", {})}
        async with self.http.get(path, headers=headers, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), dict(r.headers)

    async def form(self, link: str) -> dict[str, str]:
        """The hidden fields of the page's form (the CSRF cookie stays in the client's jar)."""
        status, html, _ = await self.get(self.path(link))
        assert status == 200
        return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))

    async def post(self, link: str, fields: dict, file: tuple[str, str, bytes] | None = None):
        import aiohttp

        data = aiohttp.FormData()
        for name, value in fields.items():
            data.add_field(name, value)
        if file:
            data.add_field("attachment", file[2], filename=file[0], content_type=file[1])
        async with self.http.post(self.path(link) + "/messages", data=data, allow_redirects=False) as r:
            return r.status, await r.text(), dict(r.headers)

    async def portal_entries(self) -> list[Envelope]:
        entries = await self.system.bus.redis.xrange(keys.ingest_stream("portal"))
        return [Envelope.unpack(f[b"e"]) for _, f in entries]

    async def api(self, method: str, path: str) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.request(method, f"/api/v1{path}", headers=headers) as r:
            return r.status, await r.json()


@asynccontextmanager
async def running_world(system, **settings):
    """``system`` (real Redis, real database) with the api role's application on a real socket."""
    system.settings = system.settings.replace(secret_key=SECRET, smtp_relay="", **settings)
    rt = await Runtime(system.settings).start()
    http = TestClient(TestServer(roles.http_app(rt, api=True, gateway=False)))
    await http.start_server()
    world = World(system, rt, http)
    try:
        async with system.db.write() as conn:
            world.key = await admin.create_api_key(conn, system.tenant)
        world.ticket = await world.make_ticket()
        yield world
    finally:
        await http.close()
        await rt.close()


async def send_replies(world: World) -> None:
    """One pass of the sender role as ``switchboard sender`` runs it (relay, then send)."""
    await asyncio.wait_for(roles.sender(world.rt, asyncio.Event(), drain=True), 60)


def expired(world: World) -> float:
    """An issue time whose links have just run out."""
    return time.time() - world.rt.settings.portal_link_ttl_s - 5
