"""The supervisor's reports over real HTTP: queue depth, agents' load, KPIs as JSON and CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update
from support import make_mail

from connectors.registry import capacity_classes
from router.worker import Router
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store.tables import customers, messages, tenants, tickets


async def _call(http, server, key, path):
    async with http.get(server.make_url(f"/api/v1{path}"), headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_queue_agents_and_kpis_of_one_tenant(system):
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
        other = await admin.create_tenant(conn, "globex")
        other_key = await admin.create_api_key(conn, other)
        await conn.execute(update(tenants).where(tenants.c.id == system.tenant)
                           .values(settings={"timezone": "Asia/Shanghai"}))
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), bus=system.bus)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.post(server.make_url("/api/v1/agents"), headers={"Authorization": f"Bearer {key}"},
                             json={"name": "王芳", "email": "wang@acme.test", "capacity": {"email": 1},
                                   "status": "online"}) as resp:
            agent = await resp.json()
        for i in range(3):
            await system.publish(make_mail(subject=f"order {i}", body="where is it?", sender=f"c{i}@example.com")[0])
        await system.drain()
        await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
        rows = await system.tickets()
        assert [r.assignee_id for r in rows].count(agent["id"]) == 1
        # A VIP customer's ticket waits as well: tier 1 is its own queue.
        async with system.db.write() as conn:
            await conn.execute(update(customers).where(customers.c.id == rows[2].customer_id).values(vip_tier=1))
        status, _, body = await _call(http, server, key, "/reports/queue")
        assert status == 200
        queue = json.loads(body)
        assert queue["waiting"] == 2
        assert {(q["vip_tier"], q["channel"], q["waiting"]) for q in queue["queues"]} == {(0, "email", 2)}
        assert queue["oldest_waiting_s"] >= 0
        assert [(a["name"], a["status"], a["load"]["email"]) for a in queue["agents"]] == [
            ("王芳", "online", {"load": 1, "capacity": 1})]
        assert "王芳".encode() in body  # Chinese as text, not \u escapes

        # The assigned ticket: replied 90 s after it came, solved an hour after it came.
        mine = next(r for r in rows if r.assignee_id == agent["id"])
        async with http.post(server.make_url(f"/api/v1/tickets/{mine.id}/messages"),
                             headers={"Authorization": f"Bearer {key}"},
                             json={"kind": "reply", "text": "on its way"}) as resp:
            assert resp.status == 201, await resp.text()
        async with system.db.write() as conn:
            await conn.execute(update(messages).where(messages.c.ticket_id == mine.id, messages.c.direction == "out")
                               .values(created_at=mine.created_at + 90_000))
            await conn.execute(update(tickets).where(tickets.c.id == mine.id)
                               .values(status="solved", closed_at=mine.created_at + 3_600_000))

        day = datetime.fromtimestamp(mine.created_at / 1000, UTC).astimezone().date().isoformat()
        status, _, body = await _call(http, server, key, "/reports/kpis?by=agent")
        assert status == 200
        report = json.loads(body)
        assert report["timezone"] == "Asia/Shanghai"
        by_agent = {r["key"]: r for r in report["rows"]}
        assert by_agent["王芳"] == {
            "key": "王芳", "volume": 1, "replied": 1, "solved": 1, "first_reply_p50_s": 90.0,
            "first_reply_p90_s": 90.0, "resolution_p50_s": 3600.0, "resolution_p90_s": 3600.0}
        assert by_agent["(unassigned)"]["volume"] == 2
        assert by_agent["(unassigned)"]["first_reply_p50_s"] is None

        _, _, body = await _call(http, server, key, "/reports/kpis?by=channel")
        assert [(r["key"], r["volume"]) for r in json.loads(body)["rows"]] == [("email", 3)]

        status, headers, body = await _call(http, server, key, "/reports/kpis?by=agent&format=csv")
        assert status == 200
        assert headers["Content-Type"] == "text/csv; charset=utf-8"
        assert "attachment" in headers["Content-Disposition"]
        table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert table[0][:3] == ["key", "volume", "replied"]
        assert ["王芳", "1", "1", "1", "90.0", "90.0", "3600.0", "3600.0"] in table

        # Another tenant sees none of it.
        _, _, body = await _call(http, server, other_key, f"/reports/kpis?by=day&from={day}&to={day}")
        assert json.loads(body)["rows"] == []
        _, _, body = await _call(http, server, other_key, "/reports/queue")
        assert json.loads(body)["waiting"] == 0

        for path, name in (("/reports/kpis?by=week", "by"), ("/reports/kpis?from=yesterday", "from"),
                           ("/reports/kpis?from=2026-02-01&to=2026-01-01", "from"),
                           ("/reports/kpis?from=2020-01-01&to=2026-01-01", "from"),
                           ("/reports/kpis?format=xml", "format"), ("/reports/kpis?colour=red", "colour")):
            status, _, body = await _call(http, server, key, path)
            assert status == 400, path
            assert name in json.loads(body)["error"]["message"], path


def test_a_csv_cell_that_a_spreadsheet_would_run_is_quoted():
    from ticket_service.api.reports import kpi_csv
    text = kpi_csv([{"key": "=HYPERLINK(\"x\")", "volume": 1, "replied": 0, "solved": 0, "first_reply_p50_s": None,
                     "first_reply_p90_s": None, "resolution_p50_s": None, "resolution_p90_s": None}])
    assert next(csv.reader(io.StringIO(text.splitlines()[1])))[0] == "'=HYPERLINK(\"x\")"
