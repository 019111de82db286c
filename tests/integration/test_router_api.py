"""The routing API over real HTTP: agents, rules, the routing trail, solving and reassigning."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update
from support import make_mail

from connectors.registry import capacity_classes
from router.worker import Router
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store.tables import customers

ZH = "您好，我的退款申请已经两周了还没有处理，请尽快帮我查一下。"


class Api:
    def __init__(self, http, server, key):
        self.http, self.server, self.key = http, server, key

    async def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.request(method, self.server.make_url(f"/api/v1{path}"), json=body,
                                     headers=headers) as resp:
            return resp.status, (await resp.json() if resp.status != 204 else {})


async def _route(system) -> None:
    await system.drain()
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)


async def test_demo_two_agents_a_vip_and_three_messages(system):
    # The README demo: who got what, and why, through the API alone.
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), bus=system.bus)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        api = Api(http, server, key)
        status, li = await api.call("POST", "/agents", {
            "name": "Li", "email": "li@acme.test", "skills": {"chinese": 5, "refunds": 2},
            "capacity": {"email": 2}, "status": "online"})
        assert status == 201 and li["capacity"] == {"email": 2, "chat": 0, "voice": 0}
        _, sam = await api.call("POST", "/agents", {
            "name": "Sam", "email": "sam@acme.test", "skills": {"refunds": 3}, "tier": 2,
            "capacity": {"email": 1}, "status": "online"})
        status, _ = await api.call("POST", "/routing/rules", {
            "name": "chinese", "match": {"languages": ["zh"]}, "required": {"chinese": 3}})
        assert status == 201
        await api.call("POST", "/routing/rules", {
            "name": "vip", "match": {"min_customer_tier": 1}, "min_tier": 2})
        _, rules = await api.call("GET", "/routing/rules")
        assert [(r["position"], r["name"]) for r in rules["items"]] == [(1, "chinese"), (2, "vip")]

        await system.publish(make_mail(subject="退款", body=ZH, sender="wei@example.cn")[0])
        await system.publish(make_mail(subject="Order", body="Where is it?", sender="vip@example.com")[0])
        await _route(system)
        # The VIP customer is known before the third message: their next ticket needs tier 2.
        tickets = await system.tickets()
        async with system.db.write() as conn:
            await conn.execute(update(customers).where(customers.c.id == tickets[1].customer_id).values(vip_tier=1))
        await system.publish(make_mail(subject="Another order", body="And this one?", sender="vip@example.com")[0])
        await _route(system)

        trails = [(await api.call("GET", f"/tickets/{t.id}/routing"))[1] for t in await system.tickets()]
        # Chinese -> Li (rule); English -> Sam (load 0/1 beats Li's 1/2); VIP needs tier 2 and
        # Sam, the only tier-2 agent, is full: it waits.
        assert [t["assignee_id"] for t in trails] == [li["id"], sam["id"], None]
        zh = trails[0]["decisions"][0]
        assert (trails[0]["language"], zh["outcome"], zh["rules"][0]["hit"]) == ("zh", "assigned", True)
        assert zh["excluded"] == [{"agent_id": sam["id"], "agent": "Sam", "reasons": ["skill chinese 0 < 3"]}]
        second = trails[1]["decisions"][0]
        assert [(c["agent"], c["score"]["load_ratio"]) for c in second["candidates"]] == [("Sam", 0.0), ("Li", 0.5)]
        vip = trails[2]
        assert vip["waiting"] is not None and vip["decisions"][0]["outcome"] == "queued"
        assert vip["decisions"][0]["requirements"]["min_tier"] == 2
        assert {x["agent"]: x["reasons"] for x in vip["decisions"][0]["excluded"]} == {
            "Li": ["tier 0 < 2"], "Sam": ["email load 1/1"]}

        # Sam solves the English ticket: his freed capacity pulls the waiting VIP ticket.
        status, solved = await api.call("PATCH", f"/tickets/{trails[1]['ticket_id']}", {"status": "solved"})
        assert status == 200 and solved["status"] == "solved"
        await _route(system)
        _, vip = await api.call("GET", f"/tickets/{vip['ticket_id']}/routing")
        assert vip["assignee_id"] == sam["id"] and vip["waiting"] is None
        assert [(d["outcome"], d["via"]) for d in vip["decisions"]] == [("queued", "event"), ("assigned", "pull")]

        status, err = await api.call("PATCH", f"/tickets/{trails[0]['ticket_id']}", {"assignee": sam["id"]})
        assert status == 409 and err["error"]["code"] == "no_capacity"
        status, moved = await api.call("PATCH", f"/tickets/{vip['ticket_id']}", {"assignee": li["id"]})
        assert status == 200 and moved["assignee_id"] == li["id"]
        _, listed = await api.call("GET", "/agents")
        assert {a["name"]: a["load"]["email"] for a in listed["items"]} == {"Li": 2, "Sam": 0}

        status, away = await api.call("PUT", f"/agents/{sam['id']}/status", {"status": "away"})
        assert status == 200 and away["status"] == "away"
        status, err = await api.call("PUT", "/agents/999/status", {"status": "online"})
        assert status == 404
        status, err = await api.call("PUT", f"/agents/{sam['id']}/status", {"status": "asleep"})
        assert status == 400 and err["error"]["code"] == "invalid_body"
