"""The supervisor's dashboard over real HTTP, signed in through the console's form: the queue,
agents' load and KPIs of a seeded tenant as numbers and SVG charts, the CSV files, roles,
another tenant's data absent; the SLA block from the tenant's clocks."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime

import aiohttp
from aiohttp.test_utils import TestServer
from console_support import console_app, person, signed_in
from sqlalchemy import insert, select, update
from support import make_mail

from connectors.registry import capacity_classes
from console import i18n
from core.envelope import Envelope
from core.ids import now_ms
from router.worker import Router
from ticket_service.api import setup_api
from ticket_service.store import admin, reports
from ticket_service.store.tables import messages, sla_clocks, tenants, tickets

ZONE = "Asia/Shanghai"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, i18n.zone(ZONE)).date().isoformat()


def _svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<figure class="chart" id="{chart_id}">(.*?)</figure>', html, re.S)
    assert match, chart_id
    return match.group(1)


def _bar_titles(svg: str) -> list[str]:
    return re.findall(r"<rect class=\"bar [^\"]+\"[^>]*><title>([^<]*)</title>", svg)


async def _seed(system) -> dict:
    """acme (Shanghai time): 3 mails, one routed to 王芳 who replies after 90 s and solves it after
    an hour; two wait in the queue. globex: one mail of its own and a supervisor."""
    async with system.db.write() as conn:
        await conn.execute(update(tenants).where(tenants.c.id == system.tenant).values(settings={"timezone": ZONE}))
        globex = await admin.create_tenant(conn, "globex")
        await conn.execute(update(tenants).where(tenants.c.id == globex).values(settings={"timezone": ZONE}))
        globex_box = await admin.add_account(conn, globex, "email", "help@globex.test")
    await person(system, system.tenant, "wang@acme.test", "agent", "王芳", capacity={"email": 1}, status="online")
    await person(system, system.tenant, "boss@acme.test", "supervisor", "Lead <b>Li</b>")
    await person(system, system.tenant, "root@acme.test", "admin", "Acme Admin")
    await person(system, globex, "boss@globex.test", "supervisor", "Globex Boss")
    await person(system, globex, "gina@globex.test", "agent", "Gina Globex", capacity={"email": 3}, status="online")
    for i in range(3):
        await system.publish(make_mail(subject=f"order {i}", sender=f"c{i}@example.com")[0])
    await system.bus.publish("ingest.email", Envelope(
        tenant="globex", channel="email", account=str(globex_box), content_type="message/rfc822",
        payload=make_mail(subject="globex secret", to="help@globex.test")[0]))
    await system.drain()
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)
    return {"globex": globex}


async def test_dashboard_shows_the_tenant_numbers_as_charts_and_the_same_csv_as_the_api(system):
    seeded = await _seed(system)
    app = console_app(system)
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), bus=system.bus)
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
    async with TestServer(app) as server:
        acme = [t for t in await system.tickets() if t.tenant_id == system.tenant]
        [mine] = [t for t in acme if t.assignee_id is not None]
        async with signed_in(server, "wang@acme.test") as agent:
            status, headers, _ = await agent.post(f"/tickets/{mine.number}/messages",
                                                  {"kind": "reply", "text": "shipped today"},
                                                  csrf_from=f"/tickets/{mine.number}")
            assert status == 303 and headers["Location"].endswith("done=ticket.sent")
            status, _, _ = await agent.post(f"/tickets/{mine.number}/status", {"status": "solved"},
                                            csrf_from=f"/tickets/{mine.number}")
            assert status == 303
            # An agent is not shown the dashboard, its files or the ops page: the page does not exist for them.
            for path in ("/dashboard", "/dashboard/kpis.csv?by=agent", "/dashboard/queue.csv", "/ops"):
                status, _, body = await agent.get(path)
                assert status == 404, path
                assert b"Not found." in body
            assert 'href="/dashboard"' not in await agent.page("/")
        async with system.db.write() as conn:
            await conn.execute(update(messages).where(messages.c.ticket_id == mine.id, messages.c.direction == "out")
                               .values(created_at=mine.created_at + 90_000))
            await conn.execute(update(tickets).where(tickets.c.id == mine.id)
                               .values(closed_at=mine.created_at + 3_600_000))
        day = _day(mine.created_at)
        period = f"from={day}&to={day}"

        async with signed_in(server, "boss@acme.test") as boss:
            html = await boss.page(f"/dashboard?{period}")
            assert 'id="waiting-total">2<' in html
            assert 'id="oldest-wait">' in html and 'id="oldest-wait">—<' not in html
            assert _bar_titles(_svg(html, "chart-queue")) == ["VIP 0 · Email · waiting: 2"]
            agents_table = re.search(r'<table class="tickets agents".*?</table>', html, re.S).group(0)
            assert "王芳" in agents_table and '<title>0 / 1</title>' in agents_table
            assert "Gina Globex" not in html and "globex secret" not in html  # another tenant's
            assert "Lead &lt;b&gt;Li&lt;/b&gt;" in html and "<b>Li</b>" not in html  # escaped in the header
            assert _bar_titles(_svg(html, "chart-volume-day")) == [f"{day} · Tickets: 3"]
            assert _bar_titles(_svg(html, "chart-volume-agent")) == ["unassigned · Tickets: 2", "王芳 · Tickets: 1"]
            reply = _svg(html, "chart-reply-agent")
            assert _bar_titles(reply) == ["王芳 · median (p50): 1.5 min", "王芳 · p90: 1.5 min"]
            assert _bar_titles(_svg(html, "chart-resolution-channel")) == [
                "Email · median (p50): 60 min", "Email · p90: 60 min"]
            line = _svg(html, "chart-reply-day")
            assert "<polyline" in line and f"<title>{day} · median (p50): 1.5 min</title>" in line
            kpi_agent = re.search(r'id="kpi-table-agent".*?</table>', html, re.S).group(0)
            assert re.search(r"<td>王芳</td><td>1</td><td>1</td><td>1</td>\s*<td>1 min 30 s</td><td>1 min 30 s</td>"
                             r"\s*<td>1 h</td><td>1 h</td>", kpi_agent)
            assert 'id="sla-breached">0<' in html and 'id="sla-at-risk">0<' in html  # no clocks: no policy
            assert f'href="/dashboard/kpis.csv?by=agent&amp;{period.replace("&", "&amp;")}"' in html
            assert 'data-live="/events" data-every="30"' in html

            status, _, _ = await boss.get("/lang?to=zh&next=/dashboard")
            assert status == 303
            zh = await boss.page(f"/dashboard?{period}")
            assert "主管看板" in zh and "按客服" in zh
            assert "王芳 · 中位数 (p50): 1.5 分钟" in zh

            status, headers, body = await boss.get(f"/dashboard/kpis.csv?by=agent&{period}")
            assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
            assert headers["Content-Disposition"] == f'attachment; filename="kpis-agent-{day}-{day}.csv"'
            async with aiohttp.ClientSession() as http, http.get(
                    server.make_url(f"/api/v1/reports/kpis?by=agent&format=csv&{period}"),
                    headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status == 200
                assert await resp.read() == body  # the very file the reports API writes
            table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
            assert table == [list(reports.KPI_COLUMNS), ["(unassigned)", "2", "0", "0", "", "", "", ""],
                             ["王芳", "1", "1", "1", "90.0", "90.0", "3600.0", "3600.0"]]
            await boss.get("/lang?to=en&next=/dashboard")
            _, _, body = await boss.get("/dashboard/queue.csv")
            rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
            assert [r[:3] for r in rows] == [["vip_tier", "channel", "waiting"], ["0", "email", "2"]]
            _, _, body = await boss.get("/dashboard/agents.csv")
            rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
            assert [r[:5] for r in rows[1:]] == [["Acme Admin", "root@acme.test", "offline", "0", "0"],
                                                 ["Lead <b>Li</b>", "boss@acme.test", "offline", "0", "0"],
                                                 ["王芳", "wang@acme.test", "online", "0", "1"]]
            status, _, _ = await boss.get("/dashboard/kpis.csv?by=week")
            assert status == 404
            status, _, body = await boss.get("/dashboard/sla.csv?by=day")
            assert status == 200 and body.decode("utf-8-sig").splitlines() == ["key,met,breached,attainment_pct"]
            status, _, body = await boss.get("/ops")
            assert status == 404  # admins only

        async with signed_in(server, "boss@globex.test") as other:
            html = await other.page(f"/dashboard?{period}")
            assert 'id="waiting-total">0<' in html
            assert "王芳" not in html and "order 1" not in html
            assert _bar_titles(_svg(html, "chart-volume-day")) == [f"{day} · Tickets: 1"]
            _, _, body = await other.get(f"/dashboard/kpis.csv?by=agent&{period}")
            assert "王芳" not in body.decode("utf-8-sig")
        assert seeded["globex"] != system.tenant

        # Signed out: the dashboard sends the browser to sign in, its files are refused.
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/dashboard"), allow_redirects=False) as resp:
                assert (resp.status, resp.headers["Location"]) == (303, "/login?next=/dashboard")


async def test_the_sla_block_counts_the_tenants_clocks_only(system):
    await _seed(system)
    sla = sla_clocks
    rows = await system.tickets()
    acme = [t for t in rows if t.tenant_id == system.tenant]
    [theirs] = [t for t in rows if t.tenant_id != system.tenant]
    now = acme[0].created_at + 60_000
    clocks = [  # met, breached, running past due (breached), running due soon (at risk), paused, and globex's
        (acme[0], "first_reply", "met", now - 1000), (acme[0], "resolution", "breached", now - 500),
        (acme[1], "first_reply", "running", 1_000), (acme[2], "first_reply", "running", 10**14),
        (acme[2], "resolution", "paused", 10**14), (theirs, "first_reply", "breached", now)]
    async with system.db.write() as conn:
        for t, metric, state, due in clocks:
            await conn.execute(insert(sla).values(ticket_id=t.id, tenant_id=t.tenant_id, metric=metric, state=state,
                                                  due_at=due, policy="standard", target_ms=3_600_000,
                                                  started_at=t.created_at, updated_at=t.created_at))
        # The third ticket's first reply is due in half an hour from the real now.
        await conn.execute(update(sla).where(sla.c.due_at == 10**14, sla.c.state == "running")
                           .values(due_at=now_ms() + 1_800_000))
        assert (await conn.execute(select(sla.c.id))).all()
    day = _day(acme[0].created_at)
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@acme.test") as boss:
        html = await boss.page(f"/dashboard?from={day}&to={day}")
        assert 'id="sla-breached">2<' in html  # the breached clock and the running one past due
        assert 'id="sla-at-risk">1<' in html
        table = re.search(r'id="sla-table".*?</table>', html, re.S).group(0)
        assert f"#{acme[1].number}" in table and f"#{acme[2].number}" in table
        assert "globex secret" not in html  # globex's breached clock is not listed
        # Soonest due first: the running clock long past due, the breached one, the one due in half an hour.
        assert re.findall(r">#(\d+)</a>", table) == [str(t.number) for t in (acme[1], acme[0], acme[2])]
        assert _bar_titles(_svg(html, "chart-sla-day")) == [f"{day} · SLA attainment: 50 %"]
        status, _, body = await boss.get(f"/dashboard/sla.csv?by=channel&from={day}&to={day}")
        assert status == 200
        assert list(csv.reader(io.StringIO(body.decode("utf-8-sig")))) == [
            ["key", "met", "breached", "attainment_pct"], ["email", "1", "1", "50.0"]]
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@globex.test") as other:
        html = await other.page(f"/dashboard?from={day}&to={day}")
        assert 'id="sla-breached">1<' in html and 'id="sla-at-risk">0<' in html
