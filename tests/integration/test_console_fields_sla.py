"""The console's inbox filtered by SLA state and custom fields, its SLA badges, and the ticket
page's SLA panel and fields form, over real HTTP signed in through the form, on the test's
PostgreSQL/SQLite store."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp.test_utils import TestServer
from console_support import console_app, person, signed_in
from sqlalchemy import insert, select, update
from support import make_mail

from console.i18n import local_time
from core.ids import now_ms
from ticket_service import field_schema
from ticket_service.store import fields as fields_store
from ticket_service.store.tables import sla_clocks, tenants, ticket_field_values, tickets

ZONE = "Asia/Shanghai"
HOUR = 3_600_000


async def _tickets(system, n: int) -> list:
    async with system.db.write() as conn:
        await conn.execute(update(tenants).where(tenants.c.id == system.tenant).values(settings={"timezone": ZONE}))
    for i in range(n):
        await system.publish(make_mail(subject=f"order {i}", sender=f"c{i}@example.com")[0])
    await system.drain()
    await person(system, system.tenant, "boss@acme.test", "supervisor", "Boss")
    return sorted(await system.tickets(), key=lambda t: t.number)


async def _clock(system, ticket, metric: str, state: str, due_at: int | None, **more) -> None:
    async with system.db.write() as conn:
        await conn.execute(insert(sla_clocks).values(
            tenant_id=ticket.tenant_id, ticket_id=ticket.id, metric=metric, policy="vip", state=state,
            target_ms=HOUR, started_at=ticket.created_at, due_at=due_at, updated_at=ticket.created_at, **more))


async def _fields(system, *definitions: dict) -> None:
    async with system.db.write() as conn:
        for body in definitions:
            await conn.run_sync(fields_store.add_field, system.tenant, field_schema.definition(body), now_ms())


def _listed(html: str) -> list[int]:
    return sorted(int(n) for n in re.findall(r'<tr class="ticket [^"]*" data-number="(\d+)"', html))


async def test_the_sla_filter_lists_tickets_with_a_clock_in_that_state_and_rows_show_the_most_urgent(system):
    # Five tickets: breached (marked), running past due, at risk, running with time, met; a paused one.
    t = await _tickets(system, 6)
    now = now_ms()
    await _clock(system, t[0], "first_reply", "breached", now - HOUR, breached_at=now - HOUR)
    await _clock(system, t[1], "resolution", "running", now - 60_000)
    await _clock(system, t[2], "first_reply", "running", now + 20 * 60_000)
    await _clock(system, t[2], "resolution", "running", now + 30 * HOUR)
    await _clock(system, t[3], "first_reply", "running", now + 5 * HOUR)
    await _clock(system, t[4], "first_reply", "met", now + HOUR, met_at=now - 1000)
    await _clock(system, t[5], "resolution", "paused", None, used_ms=HOUR // 4)
    numbers = [x.number for x in t]
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@acme.test") as boss:
        listed = {state: _listed(await boss.page(f"/?tab=all&sla={state}"))
                  for state in ("breached", "at_risk", "running", "met")}
        assert listed == {"breached": numbers[0:2], "at_risk": [numbers[2]], "running": numbers[2:4],
                          "met": [numbers[4]]}
        html = await boss.page("/?tab=all")
        assert _listed(html) == numbers  # no SLA filter: every ticket
        rows = dict(re.findall(r'data-number="(\d+)">(.*?)</tr>', html, re.S))
        assert ">breached<" in rows[str(numbers[0])] and ">breached<" in rows[str(numbers[1])]
        due = re.search(r'sla-at_risk".*?<time>([^<]+)</time>', rows[str(numbers[2])], re.S)
        assert due and due.group(1) == local_time(now + 20 * 60_000, ZONE)  # the more urgent of its two
        assert 'class="sla sla-running"' in rows[str(numbers[3])]
        assert 'class="sla' not in rows[str(numbers[4])] and 'class="sla' not in rows[str(numbers[5])]
        boss.http.cookie_jar.update_cookies({"sb_lang": "zh"})
        zh = await boss.page("/?tab=all&sla=breached")
        assert "已超时" in zh and '<option value="at_risk" >即将超时</option>' in zh
        # A state the inbox does not know is no filter, not an error.
        assert _listed(await boss.page("/?tab=all&sla=nonsense")) == numbers


async def test_field_filters_use_the_api_lookups_and_a_bad_value_is_named_not_applied(system):
    t = await _tickets(system, 4)
    await _fields(system, {"name": "product", "type": "choice", "choices": ["router", "modem"]},
                  {"name": "order_no", "type": "text"}, {"name": "amount", "type": "number"},
                  {"name": "topics", "type": "multi_choice", "choices": ["billing", "shipping"]})
    values = [{"product": "router", "amount": 12.5, "topics": ["billing", "shipping"]},
              {"product": "modem", "order_no": "A-1", "amount": 300},
              {"product": "router", "amount": 99, "topics": ["shipping"]}, {}]
    async with system.db.write() as conn:
        defs = await conn.run_sync(fields_store.definitions, system.tenant)
        for ticket, vals in zip(t, values, strict=True):
            if vals:
                await conn.run_sync(fields_store.set_values, system.tenant, ticket.id, vals, defs)
    n = [x.number for x in t]
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@acme.test") as boss:
        async def listed(**query) -> list[int]:
            return _listed(await boss.page("/?" + urlencode({"tab": "all", **query})))

        assert await listed(**{"field.product": "router"}) == [n[0], n[2]]
        assert await listed(**{"field.order_no": "A-1"}) == [n[1]]
        assert await listed(**{"field.amount.gte": "50"}) == [n[1], n[2]]
        assert await listed(**{"field.amount.gte": "10", "field.amount.lte": "99"}) == [n[0], n[2]]
        assert await listed(**{"field.topics": "billing"}) == [n[0]]
        assert await listed(**{"field.product": "router", "field.topics": "shipping"}) == [n[0], n[2]]
        assert await listed(**{"field.product": ""}) == n  # "any"
        html = await boss.page("/?" + urlencode({"tab": "all", "field.amount.gte": "lots", "field.product": "modem"}))
        assert _listed(html) == [n[1]]  # the good filter still applies
        assert "This filter was left out: parameter &#39;field.amount&#39; must be a number" in html
        # The controls: a select of the choices, from/to for numbers, the chosen values kept.
        assert '<option value="modem" selected>modem</option>' in html
        assert 'name="field.amount.gte" id="filter-amount-gte" value="lots"' in html
        # The tab counts follow the same filters.
        assert re.search(r'id="tab-all"[^>]*>[^<]*<span class="count">1<', html)


async def test_fields_form_saves_through_the_api_checks_and_a_required_field_blocks_solving(system):
    [ticket] = await _tickets(system, 1)
    await _fields(system, {"name": "product", "type": "choice", "choices": ["router", "modem"], "required": True,
                           "label": "Product"},
                  {"name": "amount", "type": "number"}, {"name": "due", "type": "date"},
                  {"name": "topics", "type": "multi_choice", "choices": ["billing", "shipping"]})
    page = f"/tickets/{ticket.number}"
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@acme.test") as boss:
        html = await boss.page(page)
        assert 'id="fields-form"' in html and "* required" in html and "No SLA policy applies." in html
        # Solving with the required field empty is refused with the message; the status stays.
        status, _, body = await boss.post(f"{page}/status", {"status": "solved"}, csrf_from=page)
        assert status == 400
        assert "Fill in “Product” before solving or closing the ticket." in body
        assert (await system.tickets())[0].status == ticket.status
        # A bad value is refused with the API's words; nothing is stored.
        status, _, body = await boss.post(f"{page}/fields", {"f.product": "router", "f.amount": "twelve"},
                                          csrf_from=page)
        assert status == 400
        assert "Not saved: fields.amount: must be a number" in body
        assert 'value="twelve"' in body  # what was typed stays in the form
        async with system.db.read() as conn:
            assert (await conn.execute(select(tickets.c.fields).where(tickets.c.id == ticket.id))).scalar() is None
        # Good values are stored in the ticket and the filters' side table.
        form = [("f.product", "router"), ("f.amount", "12.5"), ("f.due", "2026-03-01"), ("f.topics", "billing"),
                ("f.topics", "shipping")]
        status, headers, _ = await boss.post(f"{page}/fields", dict(form) | {"f.topics": "billing"}, csrf_from=page)
        assert (status, headers["Location"]) == (303, f"{page}?done=ticket.saved")
        async with system.db.read() as conn:
            stored = (await conn.execute(select(tickets.c.fields).where(tickets.c.id == ticket.id))).scalar()
            side = (await conn.execute(select(ticket_field_values.c.name, ticket_field_values.c.value_text)
                                       .where(ticket_field_values.c.ticket_id == ticket.id)
                                       .order_by(ticket_field_values.c.name))).all()
        assert stored == {"product": "router", "amount": 12.5, "due": "2026-03-01", "topics": ["billing"]}
        assert [tuple(r) for r in side] == [("amount", "12.5"), ("due", "2026-03-01"), ("product", "router"),
                                            ("topics", "billing")]
        html = await boss.page(page)
        assert '<option value="router" selected>router</option>' in html and 'value="12.5"' in html
        # Now solving goes through.
        status, headers, _ = await boss.post(f"{page}/status", {"status": "solved"}, csrf_from=page)
        assert (status, headers["Location"]) == (303, f"{page}?done=ticket.saved")
        assert (await system.tickets())[0].status == "solved"


async def test_the_sla_panel_shows_the_policy_and_each_clock_translated(system):
    [ticket] = await _tickets(system, 1)
    now = now_ms()
    await _clock(system, ticket, "first_reply", "met", now - HOUR, met_at=now - 2 * HOUR)
    await _clock(system, ticket, "resolution", "paused", None, used_ms=HOUR - 1_800_000)
    await _clock(system, ticket, "next_reply", "running", now + 30 * 60_000)
    async with TestServer(console_app(system)) as server, signed_in(server, "boss@acme.test") as boss:
        html = await boss.page(f"/tickets/{ticket.number}")
        panel = re.search(r'id="sla-panel">(.*?)</section>', html, re.S).group(1)
        assert 'id="sla-policy">vip<' in panel
        items = re.findall(r'<li id="sla-(\w+)">(.*?)</li>', panel, re.S)
        assert [m for m, _ in items] == ["first_reply", "next_reply", "resolution"]
        text = {m: " ".join(re.sub(r"<[^>]+>", " ", body).split()) for m, body in items}
        assert text == {"first_reply": f"first reply: met · {local_time(now - 2 * HOUR, ZONE)}",
                        "next_reply": f"next reply: at risk · Due {local_time(now + 30 * 60_000, ZONE)}",
                        "resolution": "resolution: paused · time left 30 min"}
        boss.http.cookie_jar.update_cookies({"sb_lang": "zh"})
        zh = await boss.page(f"/tickets/{ticket.number}")
        assert "剩余时间 30 分钟" in zh and "即将超时" in zh and "策略" in zh
