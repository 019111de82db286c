"""Bulk and machine-made mail, auto-replies and bounces, through the normalizer, the router
and the API on SQLite and PostgreSQL: every one of them is somewhere a person can find it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from auto_mail_support import (
    auto_reply,
    exchange_out_of_office,
    exim_bounce,
    incident_notification,
    newsletter,
    postfix_bounce,
    vacation_reply,
)
from prometheus_client import REGISTRY
from sqlalchemy import select
from support import make_mail, role_env

from connectors.registry import capacity_classes
from core import keys
from router.worker import Router
from ticket_service.api import setup_api
from ticket_service.store import account_settings, admin
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store.tables import agents, metadata, routing_queue

BULK_REASONS = ["auto-submitted:auto-generated", "precedence:bulk", "auto-submitted:auto-replied"]


async def _route(system) -> None:
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)


async def _online_agent(system) -> int:
    async with system.db.write() as conn:
        return await conn.run_sync(agents_store.create_agent, system.tenant, "Al", "al@acme.test", status="online",
                                        capacity={"email": 5})


async def _set_auto_mail(system, value: str) -> None:
    async with system.db.write() as conn:
        await account_settings.set_settings(conn, "email", "HELP@acme.test", {"auto_mail": value})


async def _decisions(system, ticket_id: int) -> list[tuple]:
    async with system.db.read() as conn:
        rows = await conn.run_sync(decisions_store.decisions, system.tenant, ticket_id)
    return [(r.outcome, r.agent_id, r.detail) for r in rows]


def _dropped() -> float:
    return REGISTRY.get_sample_value("switchboard_auto_mail_total", {"channel": "email", "action": "dropped"}) or 0.0


async def test_notifications_newsletters_and_vacation_replies_open_auto_tickets_the_router_skips(system):
    # An online agent with room takes the person's mail and none of the three robots'.
    agent = await _online_agent(system)
    for raw in (incident_notification(), newsletter(), vacation_reply(), make_mail(subject="Help me")[0]):
        await system.publish(raw)
    await system.drain()
    *auto, person = await system.tickets()
    assert [(t.auto, t.auto_reason, t.status) for t in auto] == [(True, r, "new") for r in BULK_REASONS]
    assert (person.auto, person.auto_reason) == (False, "")
    assert [m.ticket_id for m in await system.messages()] == [t.id for t in (*auto, person)]
    assert [e.get("auto") for e in await system.events()] == [*BULK_REASONS, None]
    await _route(system)
    assert [t.assignee_id for t in await system.tickets()] == [None, None, None, agent]
    for ticket, reason in zip(auto, BULK_REASONS, strict=True):
        assert await _decisions(system, ticket.id) == [("skipped", None, {"reason": "auto", "auto_reason": reason})]
    async with system.db.read() as conn:
        assert (await conn.execute(select(routing_queue.c.ticket_id))).all() == []
        assert (await conn.execute(select(agents.c.load_email))).scalar_one() == 1


async def test_later_notifications_of_a_thread_join_its_auto_ticket_and_a_person_makes_it_routable(system):
    agent = await _online_agent(system)
    first, root = make_mail(subject="Incident INC1", sender="example@service-now.com",
                            headers={"Auto-Submitted": "auto-generated"})
    update, _ = make_mail(subject="Incident INC1 updated", sender="example@service-now.com", refs=[root],
                          headers={"Auto-Submitted": "auto-generated"})
    await system.publish(first)
    await system.publish(update)
    await system.drain()
    [ticket] = await system.tickets()
    assert ticket.auto and [m.ticket_id for m in await system.messages()] == [ticket.id, ticket.id]
    await _route(system)
    # A colleague answers in the thread: the conversation is work now, and is routed.
    reply, _ = make_mail(subject="Re: Incident INC1", sender="example@service-now.com", refs=[root])
    await system.publish(reply)
    await system.drain()
    await _route(system)
    [after] = await system.tickets()
    assert (after.id, after.auto, after.auto_reason, after.assignee_id) == (
        ticket.id, False, "auto-submitted:auto-generated", agent)
    # The bulk mail's ticket.created alone announced nothing routed; the assignment is announced.
    assert [e["type"] for e in await system.events()] == ["ticket.created", "message.added", "ticket.assigned"]
    assert [d[0] for d in await _decisions(system, ticket.id)] == ["skipped", "assigned"]


async def test_attach_only_mailbox_keeps_bulk_mail_on_its_thread_or_without_a_ticket(system):
    await _set_auto_mail(system, "attach")
    first, root = make_mail(subject="Broken kettle")
    await system.publish(first)
    await system.drain()
    [ticket] = await system.tickets()
    on_thread, _ = make_mail(subject="Re: Broken kettle", refs=[root], headers={"Precedence": "list"})
    await system.publish(on_thread)
    await system.publish(incident_notification())
    await system.drain()
    assert [t.id for t in await system.tickets()] == [ticket.id]
    assert [(m.ticket_id, m.auto_reason) for m in await system.messages()] == [
        (ticket.id, ""), (ticket.id, "precedence:list"), (None, "auto-submitted:auto-generated")]
    assert [e["type"] for e in await system.events()] == ["ticket.created"]


async def test_dropping_mailbox_stores_no_bulk_mail_acks_it_and_counts_it(system):
    await _set_auto_mail(system, "drop")
    before = _dropped()
    for raw in (incident_notification(), newsletter(), auto_reply(), make_mail(subject="A person")[0]):
        await system.publish(raw)
    worker = await system.drain()
    # The auto-reply is no bulk mail: kept without a ticket as before; the person's mail opens one.
    [ticket] = await system.tickets()
    assert [(m.ticket_id, m.auto_reason) for m in await system.messages()] == [(None, "x-autoreply"), (ticket.id, "")]
    assert _dropped() - before == 2
    assert worker.counters["ok"] == 4
    pending = await system.bus.redis.xpending(keys.ingest_stream("email"), keys.GROUP_NORMALIZER)
    assert pending["pending"] == 0


async def test_auto_replies_open_nothing_and_never_reopen(system):
    first, root = make_mail(subject="Quotation")
    await system.publish(first)
    await system.drain()
    [ticket] = await system.tickets()
    await system.publish(auto_reply())  # to a mail we never sent
    await system.publish(exchange_out_of_office("<never-ours@contoso.example>"))
    await system.publish(exchange_out_of_office(root))
    await system.drain()
    assert [t.id for t in await system.tickets()] == [ticket.id]
    assert [m.ticket_id for m in await system.messages()] == [ticket.id, None, None, ticket.id]
    assert [e["type"] for e in await system.events()] == ["ticket.created"]


async def _api(system) -> tuple[TestServer, dict]:
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes())
    return TestServer(app), {"Authorization": f"Bearer {key}"}


async def _get(http, server, headers, path, **params) -> tuple[int, dict]:
    async with http.get(server.make_url(path), params=params, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_bounces_of_unknown_mail_are_listed_and_a_known_ones_joins_its_ticket(system):
    first, root = make_mail(subject="Your order")
    await system.publish(first)
    await system.drain()
    [ticket] = await system.tickets()
    unknown = [postfix_bounce("<forged-1@acme.test>"), exim_bounce(),
               postfix_bounce("<forged-2@acme.test>", "receiver@example.org", sender=False)]
    for raw in (*unknown, postfix_bounce(root, "zhang.wei@example.cn")):
        await system.publish(raw)
    await system.drain()
    assert [(m.ticket_id, m.auto_reason) for m in (await system.messages())[1:]] == [
        (None, "bounce"), (None, "bounce"), (None, "bounce"), (ticket.id, "bounce")]
    bounce_ids = [m.id for m in await system.messages()][1:4]
    server, headers = await _api(system)
    async with server, aiohttp.ClientSession() as http:
        status, page = await _get(http, server, headers, "/api/v1/messages", kind="bounce", limit="2")
        assert (status, page["total"], [i["id"] for i in page["items"]]) == (200, len(unknown), bounce_ids[:0:-1])
        status, rest = await _get(http, server, headers, "/api/v1/messages", kind="bounce", cursor=page["next"])
        assert (status, [i["id"] for i in rest["items"]], rest["next"]) == (200, [bounce_ids[0]], None)
        newest, exim, oldest = page["items"] + rest["items"]
        assert {k: newest[k] for k in ("from", "subject", "account", "auto_reason", "bounce")} == {
            "from": "", "subject": "Undelivered Mail Returned to Sender", "account": "help@acme.test",
            "auto_reason": "bounce", "bounce": {
                "recipient": "receiver@example.org", "action": "failed", "status": "5.1.1",
                "diagnostic": "smtp; 550 5.1.1 <receiver@example.org>: Recipient address rejected: User unknown"}}
        assert (exim["from"], exim["bounce"]) == ("mailer-daemon@relay.example", {"recipient": "compta@shop.example"})
        assert (oldest["from"], oldest["bounce"]["recipient"]) == ("mailer-daemon@mx1.example.com",
                                                                   "not_existing@example.org")
        assert newest["received_at"].endswith("Z")
        status, error = await _get(http, server, headers, "/api/v1/messages")
        assert (status, error["error"]["code"]) == (400, "invalid_parameter") and "kind" in error["error"]["message"]
        status, error = await _get(http, server, headers, "/api/v1/messages", kind="bounce", sort="id")
        assert (status, error["error"]["message"]) == (400, "parameter 'sort' is not a known parameter")


async def test_tickets_api_shows_and_filters_auto(system):
    await system.publish(make_mail(subject="A person")[0])
    await system.publish(incident_notification())
    await system.drain()
    person, robot = await system.tickets()
    server, headers = await _api(system)
    async with server, aiohttp.ClientSession() as http:
        _, listed = await _get(http, server, headers, "/api/v1/tickets")
        assert [(t["id"], t["auto"], t["auto_reason"]) for t in listed["items"]] == [
            (robot.id, True, "auto-submitted:auto-generated"), (person.id, False, None)]
        _, auto = await _get(http, server, headers, "/api/v1/tickets", auto="true")
        _, people = await _get(http, server, headers, "/api/v1/tickets", auto="false")
        assert ([t["id"] for t in auto["items"]], [t["id"] for t in people["items"]]) == ([robot.id], [person.id])
        status, one = await _get(http, server, headers, f"/api/v1/tickets/{robot.id}")
        assert (status, one["auto"], one["auto_reason"], len(one["messages"])) == (
            200, True, "auto-submitted:auto-generated", 1)
        status, error = await _get(http, server, headers, "/api/v1/tickets", auto="yes")
        assert (status, error["error"]["message"]) == (400, "parameter 'auto' must be true or false")


async def test_auto_tickets_migration_matches_the_tables(system):
    # 0004 adds exactly what tables.py declares for auto tickets, on both databases.
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    async with system.db.read() as conn:
        found = await conn.run_sync(diff)
    assert [d for d in found if any(n in repr(d) for n in ("auto", "ix_messages_tenant_auto_reason"))] == []


def _switchboard(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


async def test_account_set_changes_auto_mail_and_refuses_what_it_does_not_know(system, redis_url, tmp_path):
    env = role_env(tmp_path / "data", redis_url, system.settings.database_url)
    done = await asyncio.to_thread(_switchboard, env, "account", "set", "Help@ACME.test", "auto_mail=drop")
    assert (done.returncode, done.stdout.strip()) == (0, "email account help@acme.test: auto_mail=drop")
    for args, error in [
        (("help@acme.test", "auto_mail=never"), "auto_mail must be one of ticket|attach|drop, not 'never'"),
        (("help@acme.test", "ack=off"), "'ack' is not a setting `account set` changes (known: auto_mail, field_map, mode)"),
        (("help@acme.test", "auto_mail"), "'auto_mail' is not KEY=VALUE"),
        (("nobody@acme.test", "auto_mail=ticket"), "no email account 'nobody@acme.test'"),
        (("help@acme.test", "auto_mail=ticket", "--tenant", "globex"), "no tenant 'globex'"),
    ]:
        refused = await asyncio.to_thread(_switchboard, env, "account", "set", *args)
        assert (refused.returncode, refused.stderr.strip()) == (1, f"switchboard: {error}"), args
    async with system.db.read() as conn:
        account = await admin.get_account(conn, system.account)
    assert account.settings == {"auto_mail": "drop"}


async def test_ops_bounces_prints_the_count_and_the_newest(system, redis_url, tmp_path):
    for n in range(3):
        await system.publish(postfix_bounce(f"<forged-{n}@acme.test>", f"r{n}@example.org"))
    await system.publish(incident_notification())
    await system.drain()
    env = role_env(tmp_path / "data", redis_url, system.settings.database_url)
    done = await asyncio.to_thread(_switchboard, env, "ops", "bounces", "--limit", "2", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["count"] == 3
    assert [(b["tenant"], b["account"], b["recipient"], b["status"]) for b in shown["newest"]] == [
        ("acme", "help@acme.test", "r2@example.org", "5.1.1"), ("acme", "help@acme.test", "r1@example.org", "5.1.1")]
    text = await asyncio.to_thread(_switchboard, env, "ops", "bounces", "--tenant", "acme")
    assert text.returncode == 0 and text.stdout.splitlines()[0] == "3 bounce(s) of unknown mail"
    assert [line.split()[4] for line in text.stdout.splitlines()[2:]] == [f"r{n}@example.org" for n in (2, 1, 0)]
    missing = await asyncio.to_thread(_switchboard, env, "ops", "bounces", "--tenant", "globex")
    assert (missing.returncode, missing.stderr.strip()) == (1, "switchboard ops: no tenant 'globex'")
