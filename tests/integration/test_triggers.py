"""Triggers run by the rules worker on real events: the acknowledgement mail delivered to a
real SMTP relay, loops that stop, failures that stay with their trigger, exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from outbox_support import Outbound
from rules_support import rules_world
from sqlalchemy import update
from support import free_port, make_mail, wait_for
from test_outbound_roundtrip import _accepts

from connectors.registry import capacity_classes
from ops import roles
from portal import setup_portal
from rules import components
from rules.worker import RulesWorker
from ticket_service.store.tables import triggers

SINK = Path(__file__).resolve().parents[1] / "smtp_sink.py"
ACK = {"name": "acknowledge", "on": ["ticket.created"], "if": {"all": [{"field": "channel", "op": "is",
                                                                     "value": "email"}]},
       "then": [{"type": "reply", "template": "Dear {{ customer.name }}, we have your request as ticket "
                                              "#{{ ticket.number }} ({{ ticket.subject }})."}]}


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        yield world


@pytest.fixture
def sink(tmp_path):
    folder, port = tmp_path / "sink", free_port()
    proc = subprocess.Popen([sys.executable, str(SINK), "--port", str(port), "--folder", str(folder)])
    wait_for(lambda: _accepts(port), what="the SMTP sink")
    yield port, folder
    proc.terminate()
    proc.wait(10)


async def _ticket(system, subject="Refund for order 1042"):
    await system.publish(make_mail(subject=subject, sender="Zhang Wei <zhang.wei@example.cn>")[0])
    await system.drain()
    return (await system.tickets())[-1]


async def test_the_acknowledgement_carries_the_ticket_number_to_the_relay(rules, sink):
    # ticket.created -> the trigger's reply in the outbox -> the sender -> the real SMTP relay.
    port, folder = sink
    system = rules.system
    system.settings = system.settings.replace(smtp_relay=f"smtp://127.0.0.1:{port}")
    trigger = await rules.add("trigger", ACK)
    ticket = await _ticket(system)
    await rules.run_triggers()
    [row] = await rules.outbox()
    assert (row.ticket_id, row.recipient, row.status) == (ticket.id, "zhang.wei@example.cn", "queued")
    await Outbound(system, rules.http, rules.key, "", ticket.id).send_all(system.settings)
    wait_for(lambda: list(folder.glob("*.json")), what="the acknowledgement at the relay")
    [eml] = folder.glob("*.eml")
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    envelope = json.loads(eml.with_suffix(".json").read_text())
    assert envelope["rcpt_tos"] == ["zhang.wei@example.cn"]
    assert mail.get_content().strip() == (f"Dear Zhang Wei, we have your request as ticket #{ticket.number} "
                                          "(Refund for order 1042).")
    assert f"[#{ticket.number}]" in mail["Subject"]
    status, page = await rules.call("GET", f"/tickets/{ticket.id}/audit")
    [firing] = page["items"]
    assert status == 200 and page["next"] is None
    assert (firing["source"], firing["event"]["type"], firing["result"], firing["error"]) == (
        {"kind": "trigger", "id": trigger["id"], "name": "acknowledge"}, "ticket.created", "applied", None)
    assert firing["actions"] == [{"type": "reply", "message_id": row.message_id}]


async def test_an_acknowledgement_asking_auto_absent_answers_people_and_not_bulk_mail(rules):
    # RFC 3834 §2: a newsletter opens an auto ticket (kept for people to see) and gets no answer.
    system = rules.system
    await rules.add("trigger", {**ACK, "if": {"all": [*ACK["if"]["all"], {"field": "auto", "op": "absent"}]}})
    await system.publish(make_mail(subject="Weekly deals", sender="news@shop.example",
                                   headers={"Precedence": "bulk", "List-Id": "<deals.shop.example>"})[0])
    await system.publish(make_mail(subject="Refund for order 1042", sender="zhang.wei@example.cn")[0])
    await system.drain()
    await rules.run_triggers()
    bulk, person = await system.tickets()
    assert (bulk.auto, bulk.auto_reason, person.auto) == (True, "precedence:bulk", False)
    assert [(row.ticket_id, row.recipient) for row in await rules.outbox()] == [(person.id, "zhang.wei@example.cn")]
    # The trigger looked at both; on the bulk one its condition did not hold (no firing recorded).
    assert [(a.ticket_id, a.error) for a in await rules.audit()] == [(person.id, "")]


async def test_two_triggers_undoing_each_other_stop_after_one_round(rules):
    # A sets pending on a status change, B sets open: their own events start no trigger.
    system = rules.system
    a = await rules.add("trigger", {"name": "A", "on": ["ticket.status_changed"],
                                    "then": [{"type": "set_status", "status": "pending"}]})
    b = await rules.add("trigger", {"name": "B", "on": ["ticket.status_changed"],
                                    "then": [{"type": "set_status", "status": "open"}]})
    ticket = await _ticket(system)
    status, _ = await rules.call("PATCH", f"/tickets/{ticket.id}", {"status": "open"})
    assert status == 200
    for _ in range(3):  # the events the triggers published are all on the stream by now
        await rules.run_triggers()
    firings = await rules.audit()
    assert [(f.trigger_id, f.result) for f in firings] == [(a["id"], "applied"), (b["id"], "applied")]
    assert [f.actions for f in firings] == [[{"type": "set_status", "status": "pending", "from": "open"}],
                                            [{"type": "set_status", "status": "open", "from": "pending"}]]
    changes = [(e["from"], e["to"], e.get("origin", "")) for e in await system.events()
               if e["type"] == "ticket.status_changed"]
    assert changes == [("new", "open", ""), ("open", "pending", "trigger"), ("pending", "open", "trigger")]
    assert (await system.tickets())[-1].status == "open"


async def test_a_failing_trigger_is_recorded_and_the_next_one_still_runs(rules):
    # A template that fails to render, a row spoilt in the database: errors in audit; the tag goes on.
    system = rules.system
    bad = await rules.add("trigger", {**ACK, "name": "divides", "then": [
        {"type": "add_tags", "tags": ["never"]}, {"type": "reply", "template": "{{ ticket.number / 0 }}"}]})
    spoilt = await rules.add("trigger", {**ACK, "name": "spoilt"})
    good = await rules.add("trigger", {**ACK, "name": "tags", "then": [{"type": "add_tags", "tags": ["seen"]}]})
    async with system.db.write() as conn:
        await conn.execute(update(triggers).where(triggers.c.id == spoilt["id"]).values(
            conditions={"all": [{"field": "status", "op": "explode"}]}))
    theirs = await rules.add("trigger", {**ACK, "then": [{"type": "add_tags", "tags": ["globex"]}]},
                             key=rules.other_key)
    ticket = await _ticket(system)
    await rules.run_triggers()
    firings = {f.trigger_id: f for f in await rules.audit()}
    assert set(firings) == {bad["id"], spoilt["id"], good["id"]} and theirs["id"] not in firings
    assert (firings[bad["id"]].result, firings[bad["id"]].error) == ("error", "template: division by zero")
    assert firings[spoilt["id"]].error.startswith("if.all[0].op: ")
    assert (firings[good["id"]].result, firings[good["id"]].actions) == (
        "applied", [{"type": "add_tags", "tags": ["seen"]}])
    # The failed trigger's first action was rolled back with it: one transaction per firing.
    assert (await system.tickets())[-1].tags == ["seen"]
    assert await rules.outbox() == []
    status, page = await rules.call("GET", f"/tickets/{ticket.id}/audit?limit=2")
    assert [f["source"]["name"] for f in page["items"]] == ["tags", "spoilt"] and page["next"]
    status, rest = await rules.call("GET", f"/tickets/{ticket.id}/audit?limit=2&cursor={page['next']}")
    assert [f["source"]["name"] for f in rest["items"]] == ["divides"] and rest["next"] is None


class FailsAfterCommit:
    """A handler after the triggers that fails once: the entry stays pending and is reclaimed."""

    def __init__(self) -> None:
        self.failed = 0

    async def on_event(self, event) -> None:
        if event.type == "ticket.created" and not self.failed:
            self.failed += 1
            raise RuntimeError("failed after the triggers committed")


async def test_a_redelivered_event_fires_each_trigger_once(rules):
    system = rules.system
    await rules.add("trigger", ACK)
    await rules.add("trigger", {**ACK, "name": "tag", "then": [{"type": "add_tags", "tags": ["acked"]}]})
    ticket = await _ticket(system)
    late = FailsAfterCommit()
    worker = await rules.run_triggers(late)
    assert late.failed == 1 and worker.counters["retried"] >= 1
    firings = await rules.audit()
    assert [(f.ticket_id, f.event_type, f.result) for f in firings] == [(ticket.id, "ticket.created", "applied")] * 2
    assert len({f.event_id for f in firings}) == 1
    [reply] = await rules.outbox()
    assert reply.ticket_id == ticket.id
    assert (await system.tickets())[-1].tags == ["acked"]


async def test_a_trigger_notifies_the_named_agent_by_mail_from_the_mailbox(rules):
    from ticket_service.store import agents as agents_store

    system = rules.system
    async with system.db.write() as conn:
        agent = await conn.run_sync(agents_store.create_agent, system.tenant, "Li Na", "li.na@acme.test")
    await rules.add("trigger", {"name": "notify", "on": ["ticket.created"], "then": [
        {"type": "notify", "agents": [agent], "emails": ["lead@acme.test"],
         "template": "New ticket #{{ ticket.number }}: {{ ticket.subject }}"}]})
    ticket = await _ticket(system)
    await rules.run_triggers()
    rows = await rules.outbox()
    assert [(r.recipient, r.recipient_name, r.channel, r.reply_to) for r in rows] == [
        ("li.na@acme.test", "Li Na", "email", ""), ("lead@acme.test", "", "email", "")]
    body = (await Outbound(system, rules.http, rules.key, "", ticket.id).ticket())["messages"][-1]
    assert (body["kind"], body["sender"], body["text"]) == (
        "notify", "help@acme.test", f"New ticket #{ticket.number}: Refund for order 1042")


async def test_a_reply_template_links_the_customer_to_a_status_page_the_portal_opens(rules):
    # The rules role as built for `switchboard rules`: its settings sign the link the api role's portal checks.
    system = rules.system
    system.settings = system.settings.replace(public_url="https://help.acme.test")
    await rules.add("trigger", {"name": "link", "on": ["ticket.created"], "then": [
        {"type": "reply", "template": "Ticket #{{ ticket.number }}: {{ ticket.status_url }}"}]})
    ticket = await _ticket(system)
    parts = components.build(system.bus, system.settings, system.db, capacity_classes())
    await asyncio.wait_for(RulesWorker(system.bus, system.settings, parts.handlers, []).run(drain=True), 60)
    body = (await Outbound(system, rules.http, rules.key, "", ticket.id).ticket())["messages"][-1]
    prefix = f"Ticket #{ticket.number}: https://help.acme.test/portal/"
    assert body["kind"] == "reply" and body["text"].startswith(prefix)
    token = body["text"].removeprefix(prefix)
    app = web.Application()
    setup_portal(app, system.db, system.bus.blobs, system.bus, roles.portal_links(system.settings), system.settings)
    async with TestClient(TestServer(app)) as portal:
        async with portal.get(f"/portal/{token}") as resp:
            assert resp.status == 200
            assert "Refund for order 1042" in await resp.text()
        async with portal.get(f"/portal/{token[:-2]}xx") as resp:
            assert resp.status == 404  # the link is signed: a changed token opens nothing
    # Without a secret key there is nothing to sign with: the variable is empty.
    unsigned = components.build(system.bus, system.settings.replace(secret_key=""), system.db, capacity_classes())
    assert [h.links for h in unsigned.handlers if hasattr(h, "links")] == [None]


async def test_a_trigger_calls_the_tenants_webhook_only_within_business_hours(rules):
    # The rules role as built for `switchboard rules`: call_webhook queues a signed delivery to
    # the tenant's webhook in the firing's transaction; business_hours reads the tenant's calendars.
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from rules.calendar_schema import calendar
    from ticket_service.store import sla as sla_store
    from ticket_service.store.tables import webhook_deliveries

    system = rules.system
    status, hook = await rules.call("POST", "/webhooks", {"url": "https://1.1.1.1/crm", "events": ["sla.breached"]})
    assert status == 201, hook
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    holidays = [str(today + timedelta(days=n)) for n in (-1, 0, 1)]  # "never": open every day but these
    for name, off in (("default", []), ("never", holidays)):
        _, _, doc = calendar({"name": name, "timezone": "Asia/Shanghai", "extra_holidays": off,
                              "hours": {d: [["00:00", "24:00"]] for d in days}})
        await system.db.run_write(sla_store.add_calendar, system.tenant, name, doc, 0)
    await rules.add("trigger", {"name": "crm open hours", "on": ["ticket.created"],
                                "if": {"all": [{"field": "business_hours", "op": "is", "value": True}]},
                                "then": [{"action": "call_webhook", "value": hook["id"]}]})
    await rules.add("trigger", {"name": "crm when closed", "on": ["ticket.created"],
                                "if": {"all": [{"field": "business_hours", "op": "is", "value": True,
                                                "calendar": "never"}]},
                                "then": [{"action": "call_webhook", "value": "https://1.1.1.1/never"}]})
    ticket = await _ticket(system)
    parts = components.build(system.bus, system.settings, system.db, capacity_classes())
    triggers_only = [h for h in parts.handlers if type(h).__name__ == "Triggers"]
    await asyncio.wait_for(RulesWorker(system.bus, system.settings, triggers_only, []).run(drain=True), 60)
    async with system.db.read() as conn:
        rows = (await conn.execute(webhook_deliveries.select())).all()
    assert [(r.webhook_id, r.url, r.event_type, r.ticket_id, r.status) for r in rows] == [
        (hook["id"], "https://1.1.1.1/crm", "ticket.created", ticket.id, "pending")]
    assert [(a.name, a.result) for a in await rules.audit()] == [("crm open hours", "applied")]
