"""Numbers and JSON bodies the API cannot keep answer 400/413 naming the field, before anything
is written: over real HTTP, on SQLite and on PostgreSQL (whose INTEGER columns are 32-bit)."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select
from support import make_mail

from connectors.registry import capacity_classes
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store.tables import agents, routing_decisions, routing_rules, tickets

INT = "an integer from {} to 2147483647"


@pytest.fixture
async def api(system):
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
        agent = await conn.run_sync(agents_store.create_agent, system.tenant, "Al", "al@acme.test", status="online",
                                         capacity={"email": 2})
    await system.publish(make_mail()[0])
    await system.drain()
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes())
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async def call(method: str, path: str, body: dict | bytes) -> tuple[int, dict]:
            data = io.BytesIO(body) if isinstance(body, bytes) else json.dumps(body).encode()
            async with http.request(method, server.make_url(f"/api/v1{path}"), data=data, headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as resp:
                return resp.status, await resp.json()

        call.ticket, call.agent = (await system.tickets())[0].id, agent
        yield call


async def _counts(system) -> tuple[int, ...]:
    """Agents, rules, routing decisions, and tickets with an assignee."""
    async with system.db.read() as conn:
        return tuple([(await conn.execute(select(func.count()).select_from(table))).scalar()
                      for table in (agents, routing_rules, routing_decisions)]
                     + [(await conn.execute(select(func.count()).where(tickets.c.assignee_id.is_not(None)))).scalar()])


def _refused(result: tuple[int, dict], status: int, code: str, message: str) -> None:
    assert result == (status, {"error": {"code": code, "message": message}})


async def test_assignee_beyond_an_integer_column_is_400(system, api):
    before = await _counts(system)
    for assignee in (2**63, 2**31, True, 1.0, 0, "1"):
        _refused(await api("PATCH", f"/tickets/{api.ticket}", {"assignee": assignee}),
                 400, "invalid_body", f"assignee must be {INT.format(1)}")
    assert await _counts(system) == before
    status, trail = await api("PATCH", f"/tickets/{api.ticket}", {"assignee": api.agent})
    assert (status, trail["assignee_id"]) == (200, api.agent)


async def test_agent_tier_and_capacity_beyond_an_integer_column_are_400(system, api):
    before = await _counts(system)
    agent = {"name": "Bo", "email": "bo@acme.test"}
    for tier in (1e23, 10**23, 2**31, -1, False):
        _refused(await api("POST", "/agents", {**agent, "tier": tier}), 400, "invalid_body",
                 f"tier must be {INT.format(0)}")
    _refused(await api("POST", "/agents", {**agent, "capacity": {"email": 2**31}}), 400, "invalid_body",
             f"capacity.email must be {INT.format(0)}")
    _refused(await api("POST", "/agents", {**agent, "skills": {"zh": 2**40}}), 400, "invalid_body",
             "skills must map skill names to non-negative integers")
    _refused(await api("POST", "/agents", {**agent, "name": "B" * 201}), 400, "invalid_body",
             "name must be at most 200 and email at most 320 characters")
    assert await _counts(system) == before
    status, created = await api("POST", "/agents", {**agent, "tier": 2**31 - 1})
    assert (status, created["tier"]) == (201, 2**31 - 1)


async def test_rule_escalation_beyond_an_integer_column_is_400(system, api):
    before = await _counts(system)
    for seconds in (1e23, 10**23, 2**31):
        _refused(await api("POST", "/routing/rules", {"name": "r", "escalate_after_s": seconds}), 400,
                 "invalid_body", f"escalate_after_s must be {INT.format(0)}")
    assert await _counts(system) == before
    status, rule = await api("POST", "/routing/rules", {"name": "r", "escalate_after_s": 2**31 - 1})
    assert (status, rule["escalate_after_s"]) == (201, 2**31 - 1)


@pytest.mark.parametrize("method,path", [("PATCH", "/tickets/{ticket}"), ("POST", "/agents"),
                                         ("PUT", "/agents/{agent}/status"), ("POST", "/routing/rules")])
async def test_deep_or_non_standard_json_is_refused_by_every_route_with_a_body(system, api, method, path):
    path = path.format(ticket=api.ticket, agent=api.agent)
    before = await _counts(system)
    # The reported body: 100,000 "[" is over the size limit; 60,000 is under it and nests too deep.
    _refused(await api(method, path, b"[" * 100_000), 413, "body_too_large", "body is over the limit of 65536 bytes")
    _refused(await api(method, path, b"[" * 60_000), 400, "invalid_body", "body nests deeper than 8 levels")
    deep = b'{"match": ' + b'{"a": ' * 9 + b"1" + b"}" * 10
    _refused(await api(method, path, deep), 400, "invalid_body",
             "body.match.a.a.a.a.a.a.a nests deeper than 8 levels")
    _refused(await api(method, path, b'{"tier": NaN}'), 400, "invalid_body", "body is not JSON")
    _refused(await api(method, path, b'{"tier": ' + b"9" * 5000 + b"}"), 400, "invalid_body", "body is not JSON")
    _refused(await api(method, path, b"[1]"), 400, "invalid_body", "body must be a JSON object")
    assert await _counts(system) == before
