"""A channel defined here, registered for the test only, is served, parsed, stored and routed
by the real gateway, normalizer and router with no other change to the code."""

from __future__ import annotations

import asyncio
import hmac
import json

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from connectors.inbound import Inbound, Sender
from connectors.push import Gateway, Reject, account_for, envelope, publish, push_route, read_body
from connectors.registry import DEFAULT, capacity_classes, registry, secret_channels
from core import keys
from core.channel import Channel
from core.envelope import Envelope
from gateway.app import setup_gateway
from normalizer.worker import Normalizer
from router.worker import Router
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.history import StoredHistory
from ticket_service.store.tables import messages, tickets

NAME, KEY, SECRET = "pager", "deployment-secret-key", "pager-shared-secret"


@push_route(NAME)
async def _post(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, NAME, request.match_info["account"])
    if not hmac.compare_digest(request.headers.get("X-Pager-Secret", ""), account.settings.get("secret", "")):
        raise Reject(401, "bad_secret", "X-Pager-Secret does not match")
    body = await read_body(request, 4096)
    env = envelope(account, NAME, body, "application/json", request)
    await publish(gw, keys.ingest_stream(NAME), env, NAME)
    return web.json_response({"id": env.id}, status=202)


def _routes(app: web.Application) -> None:
    app.router.add_post("/pager/{account}", _post)


def _parse(env: Envelope) -> list[Inbound]:
    doc = json.loads(env.payload)
    return [Inbound(dedup_key=f"pager:{doc['id']}", sender=Sender("pager", doc["from"], scope=env.account),
                    subject=doc["text"][:40], text=doc["text"])]


PAGER = Channel(name=NAME, capacity_class="chat", parse=_parse, routes=_routes)


async def test_a_registered_channel_is_served_parsed_stored_and_routed(system):
    channels = registry([*DEFAULT, PAGER])
    async with system.db.write() as conn:
        await admin.add_account(conn, system.tenant, NAME, "desk", {"secret": SECRET}, secret_key=KEY)
        chat_agent = await conn.run_sync(agents_store.create_agent, system.tenant, "Chen", "chen@acme.test",
                                         status="online", capacity={"email": 0, "chat": 1, "voice": 0})
    app = web.Application()
    setup_gateway(app, system.bus, AccountDirectory(system.db, secret_key=KEY, opens=secret_channels(channels)),
                  StoredHistory(system.db), channels=channels)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        url = str(server.make_url("/pager/desk"))
        body = json.dumps({"id": "p-1", "from": "+8613800138000", "text": "The printer is on fire"})
        async with http.post(url, data=body, headers={"X-Pager-Secret": "wrong"}) as bad:
            assert bad.status == 401 and (await bad.json())["error"]["code"] == "bad_secret"
        async with http.post(url, data=body, headers={"X-Pager-Secret": SECRET}) as ok:
            assert ok.status == 202
    [(_, fields)] = await system.bus.redis.xrange(keys.ingest_stream(NAME))
    assert Envelope.unpack(fields[b"e"]).payload == body.encode()

    normalizer = Normalizer(system.bus, system.settings, system.db, system.bus.blobs, channels=channels)
    await asyncio.wait_for(normalizer.run(drain=True), 60)
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes(channels)).run(drain=True),
                           60)
    async with system.db.read() as conn:
        [msg] = (await conn.execute(select(messages).where(messages.c.channel == NAME))).all()
        [ticket] = (await conn.execute(select(tickets).where(tickets.c.channel == NAME))).all()
    assert (msg.dedup_key, msg.sender, msg.text) == ("pager:p-1", "+8613800138000", "The printer is on fire")
    assert (ticket.id, ticket.assignee_id, ticket.subject) == (msg.ticket_id, chat_agent, "The printer is on fire")
