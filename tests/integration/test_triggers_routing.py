"""Done when: a trigger tags VIP WeChat messages and requires a skill, and routing honours it.
A real signed WeChat push -> gateway -> normalizer -> rules worker -> router, all real."""

from __future__ import annotations

import asyncio

import pytest
from gateway_support import running_gateway
from rules_support import SECRET, rules_world
from sqlalchemy import update
from wechat_support import AES_KEY, APPID, TOKEN, WeChat, text_message

from connectors.registry import capacity_classes
from router.worker import Router
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.tables import customers

VIP_WECHAT = {"name": "VIP WeChat", "on": ["ticket.created"],
              "if": {"all": [{"field": "channel", "op": "is", "value": "wechat"},
                             {"field": "vip_tier", "op": "gte", "value": 1}]},
              "then": [{"type": "add_tags", "tags": ["vip"]}, {"type": "require_skills", "skills": {"mandarin": 3}}]}


@pytest.fixture
async def chat(system):
    """Two online agents, Ann (first in line, no Mandarin) and Bo (Mandarin 4); a VIP follower's push."""
    async with rules_world(system) as rules, \
            running_gateway(system.bus, system.db, system.tenant, secret_key=SECRET) as gw:
        async with system.db.write() as conn:
            await admin.add_account(conn, system.tenant, "wechat", "acme-service", {
                "token": TOKEN, "mode": "safe", "aes_key": AES_KEY, "appid": APPID}, secret_key=SECRET)
            rules.ann = await conn.run_sync(agents_store.create_agent, system.tenant, "Ann", "ann@acme.test",
                                            status="online", capacity={"chat": 5})
            rules.bo = await conn.run_sync(agents_store.create_agent, system.tenant, "Bo", "bo@acme.test",
                                           status="online", capacity={"chat": 5}, skills={"mandarin": 4})
        await rules.add("trigger", VIP_WECHAT)
        assert await WeChat(gw, "acme-service").post_safe(text_message("我的订单还没到")) == (200, "success")
        await system.drain()
        async with system.db.write() as conn:  # a VIP customer, as the CRM says
            await conn.execute(update(customers).where(customers.c.tenant_id == system.tenant).values(vip_tier=2))
        [rules.ticket] = await system.tickets()
        yield rules


async def _route(system) -> Router:
    router = Router(system.bus, system.settings, system.db, capacity_classes())
    await asyncio.wait_for(router.run(drain=True), 60)
    return router


async def test_the_trigger_tags_the_vip_chat_and_only_a_mandarin_agent_gets_it(chat):
    system = chat.system
    await chat.run_triggers()
    await _route(system)
    [ticket] = await system.tickets()
    assert (ticket.channel, ticket.tags, ticket.requirements) == ("wechat", ["vip"], {"required": {"mandarin": 3}})
    assert ticket.assignee_id == chat.bo
    status, trail = await chat.call("GET", f"/tickets/{ticket.id}/routing")
    [decision] = trail["decisions"]
    assert (status, decision["outcome"], decision["agent_id"]) == (200, "assigned", chat.bo)
    assert decision["requirements"]["required"] == {"mandarin": 3}
    assert decision["ticket_requirements"] == {"required": {"mandarin": 3}}
    assert [(x["agent_id"], x["reasons"]) for x in decision["excluded"]] == [(chat.ann, ["skill mandarin 0 < 3"])]
    [firing] = (await chat.call("GET", f"/tickets/{ticket.id}/audit"))[1]["items"]
    assert firing["actions"] == [{"type": "add_tags", "tags": ["vip"]},
                                 {"type": "require_skills", "required": {"mandarin": 3}}]
    assigned = [e for e in await system.events() if e["type"] == "ticket.assigned"]
    assert [(e["ticket_id"], e["agent_id"], e["via"]) for e in assigned] == [(ticket.id, chat.bo, "event")]


async def test_a_ticket_routed_before_the_trigger_ran_is_handed_to_a_mandarin_agent(chat):
    # The router was first (Ann took it); the trigger hands it back, the router routes it again.
    system = chat.system
    await _route(system)
    assert (await system.tickets())[0].assignee_id == chat.ann
    await chat.run_triggers()
    await _route(system)
    [ticket] = await system.tickets()
    assert ticket.assignee_id == chat.bo
    trail = (await chat.call("GET", f"/tickets/{ticket.id}/routing"))[1]
    assert [(d["outcome"], d["agent_id"]) for d in trail["decisions"]] == [
        ("assigned", chat.ann), ("requeued", chat.ann), ("assigned", chat.bo)]
    assert trail["decisions"][1]["reason"] == "the trigger requires skills the agent lacks"
    async with system.db.read() as conn:
        ann = await conn.run_sync(agents_store.get_agent, system.tenant, chat.ann)
    assert ann.load_chat == 0
