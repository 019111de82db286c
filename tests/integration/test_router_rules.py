"""Routing rules are checked where they come in and again where the router reads them: one
tenant's bad rule cannot stop escalation or pulls for anybody else, and a large rule is not
copied into every decision. Real HTTP, real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select, update
from support import make_mail

from connectors.registry import capacity_classes
from core.ids import now_ms
from core.settings import load
from ops import routingcli as routercli
from ops.cli import parser
from router.worker import Router
from ticket_service.api import setup_api
from ticket_service.rule_schema import MAX_RULES
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import rules as rules_store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import (
    customers,
    routing_decisions,
    routing_queue,
    routing_rules,
    tickets,
)

ZH = "您好，我的退款申请已经两周了还没有处理，请尽快帮我查一下。"
ATTACK = {"name": "poison", "escalate_after_s": 1, "widen": {"required": "zz"}}


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: TestServer, key: str) -> None:
        self.http, self.server, self.key = http, server, key

    async def post(self, path: str, body: dict | bytes) -> tuple[int, dict]:
        data = io.BytesIO(body) if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        async with self.http.post(self.server.make_url(f"/api/v1{path}"), data=data, headers=headers) as resp:
            return resp.status, await resp.json()


@asynccontextmanager
async def _api(system):
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes())
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        yield Api(http, server, key)


async def _rule_count(system) -> int:
    async with system.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(routing_rules))).scalar()


def _errors(kind: str) -> float:
    return REGISTRY.get_sample_value("switchboard_router_errors_total", {"kind": kind}) or 0.0


async def test_the_reported_rule_body_is_400_naming_widen_required_and_nothing_is_stored(system):
    async with _api(system) as api:
        status, body = await api.post("/routing/rules", ATTACK)
    assert status == 400
    assert body == {"error": {"code": "invalid_body",
                              "message": "widen.required must map skill names to non-negative integers"}}
    assert await _rule_count(system) == 0


async def test_every_rule_field_is_checked_and_named(system):
    cases = [
        ({"match": {"keywords": "refund"}}, "match.keywords must be a list"),
        ({"match": {"tags": [{"a": 1}]}}, "match.tags entry must be a non-empty string"),
        ({"match": {"accounts": ["1"]}}, "match.accounts entry must be an integer from 1 to 2147483647"),
        ({"match": {"min_customer_tier": "zz"}}, "match.min_customer_tier must be an integer from 0 to 2147483647"),
        ({"match": {"colour": ["red"]}}, "match has an unknown field 'colour' (known: channels, accounts, tags, "
                                         "languages, keywords, min_customer_tier)"),
        ({"widen": {"min_tier": True}}, "widen.min_tier must be an integer from 0 to 2147483647"),
        ({"widen": {"required": {"zh": -1}}}, "widen.required must map skill names to non-negative integers"),
        ({"required": {"zh": 1.5}}, "required must map skill names to non-negative integers"),
        ({"escalate_after_s": 1e23}, "escalate_after_s must be an integer from 0 to 2147483647"),
        ({"escalate_after_s": 10**23}, "escalate_after_s must be an integer from 0 to 2147483647"),
        ({"priority": 2**31}, "priority must be an integer from 0 to 2147483647"),
        ({"name": "x" * 201}, "name is over 200 characters"),
    ]
    async with _api(system) as api:
        for fields, message in cases:
            status, body = await api.post("/routing/rules", {"name": "r", **fields})
            assert (status, body["error"]) == (400, {"code": "invalid_body", "message": message}), fields
    assert await _rule_count(system) == 0


async def test_oversized_rules_are_refused_naming_the_limit(system):
    async with _api(system) as api:
        # The reported 20 MB rule: refused while it is read.
        huge = json.dumps({"name": "big", "match": {"keywords": ["k" * 1000] * 20_000}}).encode()
        status, body = await api.post("/routing/rules", huge)
        assert (status, body["error"]) == (413, {"code": "body_too_large",
                                                 "message": "body is over the limit of 65536 bytes"})
        status, body = await api.post("/routing/rules", {"name": "r", "match": {"keywords": ["k"] * 101}})
        assert (status, body["error"]["message"]) == (400, "match.keywords has over 100 entries")
        status, body = await api.post("/routing/rules", {"name": "r", "match": {"keywords": ["k" * 101]}})
        assert (status, body["error"]["message"]) == (400, "match.keywords entry is over 100 characters")
        # Each list within its limits, the rule as a whole over 16 KiB.
        long = [f"{i:03d}" + "k" * 97 for i in range(100)]
        status, body = await api.post("/routing/rules", {"name": "r", "match": {"keywords": long, "tags": long}})
        assert status == 413 and body["error"]["code"] == "rule_too_large"
        assert body["error"]["message"].endswith("bytes as JSON, over the limit of 16384")
        assert await _rule_count(system) == 0
        async with system.db.write() as conn:
            for i in range(MAX_RULES):
                await conn.run_sync(rules_store.add_rule, system.tenant, now_ms(), name=f"r{i}")
        status, body = await api.post("/routing/rules", {"name": "one too many"})
        assert (status, body["error"]) == (400, {"code": "too_many_rules",
                                                 "message": f"a tenant has at most {MAX_RULES} routing rules"})
    assert await _rule_count(system) == MAX_RULES


async def test_a_decision_stores_a_bounded_trace_of_large_allowed_rules(system):
    # 30 rules of 100 keywords of 100 characters each (~300 KB of rules) miss a ticket.
    keywords = [f"{i:03d}" + "q" * 97 for i in range(100)]
    skills = {f"skill-{i:02d}-" + "s" * 55: 1 for i in range(20)}
    async with _api(system) as api:
        for i in range(30):
            status, _ = await api.post("/routing/rules", {"name": f"big {i}", "match": {"keywords": keywords},
                                                          "required": skills})
            assert status == 201
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.create_agent, system.tenant, "Al", "al@acme.test", status="online", capacity={"email": 1})
    await system.publish(make_mail(subject="Hello", body="Where is my order?")[0])
    await system.drain()
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
    async with system.db.read() as conn:
        [decision] = (await conn.execute(select(routing_decisions))).all()
    detail = decision.detail
    assert decision.outcome == "assigned"
    assert len(json.dumps(detail, ensure_ascii=False).encode()) < 8 * 1024
    assert len(detail["rules"]) == 21 and detail["rules"][20] == {"rules_not_listed": 10}
    assert detail["rules"][0]["misses"] == [
        f"none of the keywords ['000{'q' * 37}…', '001{'q' * 37}…', '002{'q' * 37}…'] and 97 more"]


async def _queued(system, ticket_id: int):
    async with system.db.read() as conn:
        return (await conn.execute(select(routing_queue).where(routing_queue.c.ticket_id == ticket_id))).first()


async def test_a_poisoned_rule_of_one_tenant_does_not_stop_another_tenants_escalation(system):
    # Tenant "evil" has a rule and a waiting ticket stored before rules were checked; acme's VIP
    # ticket is due to widen to an agent who can take it. One pass of the real router does both.
    async with system.db.write() as conn:
        evil = await admin.create_tenant(conn, "evil")
        evil_account = await admin.add_account(conn, evil, "email", "help@evil.test")
        evil_agent = await conn.run_sync(agents_store.create_agent, evil, "Eve", "eve@evil.test", status="offline",
                                              capacity={"email": 2})
        poison = (await conn.execute(insert(routing_rules).values(
            tenant_id=evil, position=1, name="poison", match={"keywords": "zz"}, created_at=now_ms(),
            policy={"required": {}, "preferred": {}, "priority": 0, "min_tier": 0, "escalate_after_s": 1,
                    "widen": {"required": "zz"}},
        ))).inserted_primary_key[0]
        await conn.run_sync(rules_store.add_rule, evil, now_ms(), name="orders", match={"keywords": ["order"]})
        junior = await conn.run_sync(agents_store.create_agent, system.tenant, "Jun", "jun@acme.test", status="online",
                                          skills={"chinese": 2}, capacity={"email": 1})
        await conn.run_sync(rules_store.add_rule, system.tenant, now_ms(), name="vip", match={"min_customer_tier": 1},
                            required={"chinese": 4}, escalate_after_s=60, widen={"required": {"chinese": 2}})
    await system.publish(make_mail(subject="退款", body=ZH, sender="vip@example.cn")[0])
    await system.publish(make_mail(subject="Order", body="Where is my order?", sender="x@example.com",
                                   to="help@evil.test")[0], account=evil_account)
    await system.drain()
    vip_ticket, evil_ticket = await system.tickets()
    async with system.db.write() as conn:
        await conn.execute(update(customers).where(customers.c.id == vip_ticket.customer_id).values(vip_tier=1))
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
    assert (await _queued(system, vip_ticket.id)).stage == 0
    # As stored before rules were checked: the poisoned rule's requirements, due first.
    poisoned = {"required": {}, "preferred": {}, "min_tier": 0, "priority": 0, "rule_id": poison, "rule": "poison",
                "escalate_after_s": 1, "widen": {"required": "zz"}, "stage": 0}
    now = now_ms()
    async with system.db.write() as conn:
        await conn.execute(update(routing_queue).where(routing_queue.c.ticket_id == evil_ticket.id).values(
            requirements=poisoned, rule_id=poison, stage=1, queued_at=now - 600_000, next_stage_at=now - 599_000))
        await conn.execute(update(routing_queue).where(routing_queue.c.ticket_id == vip_ticket.id).values(
            queued_at=routing_queue.c.queued_at - 121_000, next_stage_at=routing_queue.c.next_stage_at - 121_000))
        await conn.run_sync(agents_store.set_agent_status, evil, evil_agent, "online", now_ms())
    bad_rules, bad_requirements = _errors("bad_rule"), _errors("bad_requirements")

    await Router(system.bus, system.settings, system.db, capacity_classes()).tick()

    assignees = {t.id: (t.assignee_id, t.tags) for t in await system.tickets()}
    assert assignees[vip_ticket.id] == (junior, ["escalated"])
    # The evil ticket was routed again by the rules that can be read: "orders" hit.
    assert assignees[evil_ticket.id][0] == evil_agent
    async with system.db.read() as conn:
        vip_trail = await conn.run_sync(decisions_store.decisions, system.tenant, vip_ticket.id)
        evil_trail = await conn.run_sync(decisions_store.decisions, evil, evil_ticket.id)
        left = (await conn.execute(select(func.count()).select_from(routing_queue))).scalar()
    assert [d.outcome for d in vip_trail] == ["queued", "escalated", "assigned"]
    assert vip_trail[1].detail["requirements"]["required"] == {"chinese": 2}
    assert [(d.outcome, d.detail["via"]) for d in evil_trail] == [("queued", "event"), ("assigned", "repair")]
    assert [(r["rule"], r["hit"]) for r in evil_trail[1].detail["rules"]] == [("orders", True)]
    assert left == 0
    assert _errors("bad_rule") > bad_rules and _errors("bad_requirements") > bad_requirements


async def test_a_waiting_ticket_with_unusable_requirements_is_passed_over_by_pulls(system):
    # The bad entry ranks first; the agent pulls the good one behind it instead of failing.
    async with system.db.write() as conn:
        agent = await conn.run_sync(agents_store.create_agent, system.tenant, "Al", "al@acme.test", status="offline",
                                         capacity={"email": 2})
    for who in ("a", "b"):
        await system.publish(make_mail(sender=f"{who}@example.com")[0])
    await system.drain()
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
    first, second = await system.tickets()
    async with system.db.write() as conn:
        await conn.execute(update(routing_queue).where(routing_queue.c.ticket_id == first.id).values(
            requirements={"required": ["zz"]}, next_stage_at=None))
        await conn.run_sync(agents_store.set_agent_status, system.tenant, agent, "online", now_ms())
    await Router(system.bus, system.settings, system.db, capacity_classes()).tick()
    async with system.db.read() as conn:
        held = dict((await conn.execute(select(tickets.c.id, tickets.c.assignee_id))).all())
    assert held == {first.id: None, second.id: agent}
    assert (await _queued(system, first.id)).requirements == {"required": ["zz"]}


def test_the_command_line_checks_rules_as_the_api_does(sqlite_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))

    async def tenant() -> None:
        db = Database(sqlite_url)
        await migrate(db)
        async with db.write() as conn:
            await admin.create_tenant(conn, "acme")
        await db.dispose()

    asyncio.run(tenant())
    refused = [
        (["--escalate-after", "1", "--widen-require", "zh=-1"],
         "widen.required must map skill names to non-negative integers"),
        (["--escalate-after", str(10**23)], "escalate_after_s must be an integer from 0 to 2147483647"),
        (["--keywords", ",".join(f"k{i}" for i in range(101))], "match.keywords has over 100 entries"),
        (["--position", "-1"], "position must be an integer from 0 to 2147483647"),
    ]
    for options, message in refused:
        args = parser().parse_args(["rule", "add", "r", "--tenant", "acme", *options])
        assert routercli.main(load(), args) == 2
        assert capsys.readouterr().err == f"switchboard: {message}\n"
    args = parser().parse_args(["rule", "list", "--tenant", "acme"])
    assert routercli.main(load(), args) == 0 and json.loads(capsys.readouterr().out) == []
