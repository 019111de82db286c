"""Each threading rule stores its rule and trail with the message; the API and the CLI show them.

Real gateway, Redis, normalizer in drain mode and store, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from gateway_support import running_gateway
from sqlalchemy import inspect, update
from support import SUPPORT, make_mail, role_env
from test_forms import CONTACT, post
from test_sdk import App, message
from wechat_support import TOKEN, WeChat, text_message

from connectors.registry import capacity_classes
from core.ids import now_ms
from router.worker import Router
from ticket_service.store import admin, reply_tokens
from ticket_service.store import agents as agents_store
from ticket_service.store.tables import metadata, tickets

SECRET = "reply-token-secret"
SDK_SECRET = "app-secret-7f3a9c"  # test_sdk's App signs with it
CHAT_MISSES = [("reply_token", False, "no reply token"), ("reference", False, "no known key"),
               ("ticket_number", False, "no ticket number")]


@pytest.fixture
async def flow(system):
    system.settings = system.settings.replace(secret_key=SECRET)  # reply tokens honoured
    async with running_gateway(system.bus, system.db, system.tenant, api=True) as gw:
        await gw.add_account("wechat", "acme-plain", {"token": TOKEN, "mode": "plaintext"})
        await gw.add_account("sdk", "acme-ios", {"secret": SDK_SECRET})
        await gw.add_account("webform", "contact", CONTACT)
        async with system.db.write() as conn:
            gw.key = await admin.create_api_key(conn, system.tenant)
        gw.wechat, gw.app, gw.system = WeChat(gw, "acme-plain"), App(gw), system
        yield gw


async def _mail(flow, raw: bytes) -> None:
    await flow.system.publish(raw)
    await flow.system.drain()


async def _threading(flow, ticket_id: int) -> list[tuple[str, list[tuple]]]:
    """Each message's (rule, [(rule, hit, why), ...]) as GET /api/v1/tickets/{id} shows it."""
    async with flow.http.get(flow.url(f"/api/v1/tickets/{ticket_id}"),
                             headers={"Authorization": f"Bearer {flow.key}"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    return [(m["threading"]["rule"], [(s["rule"], s["hit"], s["why"]) for s in m["threading"]["trail"]])
            for m in body["messages"]]


def _no_email_rule(before: str) -> list[tuple]:
    """The misses of a plain new mail, up to the rule named ``before``."""
    misses = [("session", False, "not a chat message"), ("reply_token", False, "no reply token"),
              ("reference", False, "no known key"), ("ticket_number", False, "no ticket number")]
    return misses[:[m[0] for m in misses].index(before)] if before else misses


async def test_email_rules_each_store_their_rule_and_trail_and_the_api_shows_them(flow):
    # New ticket, then In-Reply-To/References, a signed reply token, the customer's [#1].
    first, root = make_mail(subject="Refund for order 1042")
    await _mail(flow, first)
    [ticket] = await flow.system.tickets()
    issued = reply_tokens.issue(SECRET, flow.system.tenant, ticket.id, SUPPORT)
    await _mail(flow, make_mail(subject="Re: Refund", refs=[root])[0])
    await _mail(flow, make_mail(subject="another question", to=issued.reply_to)[0])
    await _mail(flow, make_mail(subject="[#1] one more thing")[0])
    assert await _threading(flow, ticket.id) == [
        ("new_ticket", [*_no_email_rule(""), ("placed", True, "new ticket 1")]),
        ("reference", [*_no_email_rule("reference"), ("reference", True, f"{root.strip('<>')} held by ticket 1"),
                       ("placed", True, "appended to ticket 1")]),
        ("reply_token", [*_no_email_rule("reply_token"), ("reply_token", True, "signed reply token of ticket 1"),
                         ("placed", True, "appended to ticket 1")]),
        ("ticket_number", [*_no_email_rule("ticket_number"), ("ticket_number", True, "ticket 1 of this customer"),
                           ("placed", True, "appended to ticket 1")]),
    ]


async def test_a_cc_colleague_quoting_the_number_joins_and_a_stranger_gets_a_ticket(flow):
    # The Cc of the first mail and of a later one count; the customer's own address is not kept.
    first, root = make_mail(headers={"Cc": "Li Na <Li.Na@Example.CN>, zhang.wei@example.cn"})
    await _mail(flow, first)
    await _mail(flow, make_mail(subject="Re: order", refs=[root], headers={"Cc": "wang.fang@example.cn"})[0])
    [ticket] = await flow.system.tickets()
    assert ticket.cc == ["li.na@example.cn", "wang.fang@example.cn"]
    await _mail(flow, make_mail(subject="[#1] I am his colleague", sender="LI.NA@example.cn")[0])
    await _mail(flow, make_mail(subject="Re: [#1] and me", sender="Wang Fang <wang.fang@example.cn>")[0])
    await _mail(flow, make_mail(subject="[#1] let me in", sender="eve@evil.test")[0])
    one, other = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [one.id] * 4 + [other.id]
    joined = [*_no_email_rule("ticket_number"), ("ticket_number", True, "sender on the Cc of ticket 1"),
              ("placed", True, "appended to ticket 1")]
    assert (await _threading(flow, one.id))[2:] == [("ticket_number", joined), ("ticket_number", joined)]
    assert await _threading(flow, other.id) == [("new_ticket", [
        *_no_email_rule("ticket_number"),
        ("ticket_number", False, "sender is neither the customer of ticket 1 nor on its Cc"),
        ("placed", True, "new ticket 2"),
    ])]


async def test_another_sender_joins_by_answering_a_stored_message_not_by_a_shared_root(flow):
    # The customer answers a newsletter: the ticket holds the newsletter's id as a key only.
    newsletter = "<spring-sale@news.example.com>"
    first, root = make_mail(subject="Re: spring sale", refs=[newsletter])
    await _mail(flow, first)
    # Another subscriber answers the same newsletter; a colleague answers the customer's mail.
    await _mail(flow, make_mail(subject="Re: spring sale", refs=[newsletter], sender="li.na@example.cn")[0])
    await _mail(flow, make_mail(subject="Re: spring sale", refs=[newsletter, root],
                                sender="wang.fang@example.cn")[0])
    one, other = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [one.id, other.id, one.id]
    refused = ("reference", False, "ticket 1 holds only a shared root and belongs to another customer")
    assert await _threading(flow, other.id) == [("new_ticket", [
        *_no_email_rule("reference"), refused, ("ticket_number", False, "no ticket number"),
        ("placed", True, "new ticket 2")])]
    assert (await _threading(flow, one.id))[1] == ("reference", [
        *_no_email_rule("reference"), ("reference", True, f"{root.strip('<>')} held by ticket 1"),
        ("placed", True, "appended to ticket 1")])


async def test_after_a_hit_the_trail_says_auto_attached_reopened_or_followed_up(flow):
    # The rule that hit stays the reference; where the message went is the trail's last entry.
    first, root = make_mail()
    await _mail(flow, first)
    async with flow.system.db.write() as conn:
        await conn.execute(update(tickets).values(status="solved", closed_at=now_ms()))
    await _mail(flow, make_mail(subject="Out of office", refs=[root], headers={"Auto-Submitted": "auto-replied"})[0])
    await _mail(flow, make_mail(subject="Re: order", refs=[root])[0])
    async with flow.system.db.write() as conn:
        await conn.execute(update(tickets).values(status="closed", closed_at=1))
    await _mail(flow, make_mail(subject="Re: order, months later", refs=[root])[0])
    old, new = await flow.system.tickets()
    ooo = (await flow.system.messages())[1]
    placed = [(rule, trail[-1]) for rule, trail in await _threading(flow, old.id)]
    assert placed[1:] == [
        ("reference", ("placed", True, f"attached to ticket 1 without reopening it: sent by a program ({ooo.auto_reason})")),
        ("reference", ("placed", True, "reopened ticket 1: closed within the reopen window")),
    ]
    assert [(rule, trail[-1]) for rule, trail in await _threading(flow, new.id)] == [
        ("reference", ("placed", True, "new ticket 2: ticket 1 was closed past the reopen window"))]


async def test_wechat_session_joins_within_the_window_and_opens_a_new_ticket_past_it(flow):
    for text in ("我的订单还没到", "还在等"):
        assert await flow.wechat.post(text_message(text)) == (200, "success")
        await flow.system.drain()
    async with flow.system.db.write() as conn:  # two days without a word
        await conn.execute(update(tickets).values(updated_at=now_ms() - 2 * 86_400_000))
    assert await flow.wechat.post(text_message("又来了")) == (200, "success")
    await flow.system.drain()
    one, two = await flow.system.tickets()
    [(rule1, trail1), (rule2, trail2)] = await _threading(flow, one.id)
    assert (rule1, trail1) == ("new_ticket", [("session", False, "no session"), *CHAT_MISSES,
                                              ("placed", True, "new ticket 1")])
    assert (rule2, trail2[1:]) == ("session", [("placed", True, "appended to ticket 1")])
    assert trail2[0][:2] == ("session", True) and re.fullmatch(r"session on ticket 1, idle \d+s", trail2[0][2])
    [(rule3, trail3)] = await _threading(flow, two.id)
    assert (rule3, trail3[1:]) == ("new_ticket", [*CHAT_MISSES, ("placed", True, "new ticket 2")])
    idle = re.fullmatch(r"session of ticket 1 idle (\d+)s, past the window", trail3[0][2])
    assert trail3[0][:2] == ("session", False) and int(idle.group(1)) >= 2 * 86_400


async def test_sdk_conversation_id_and_form_reference_store_their_rules(flow):
    for doc in (message("应用里怎么退款？"), message("还有一个问题")):
        assert (await flow.app.send(doc))[0] == 202
    await flow.system.drain()
    await post(flow, "contact", data={"question": "first", "mail": "a@example.cn"})
    await flow.system.drain()
    await post(flow, "contact", data={"question": "more", "mail": "a@example.cn", "ref": "#2"})
    await post(flow, "contact", data={"question": "stranger", "mail": "b@example.cn", "ref": "2"})
    await flow.system.drain()
    app, form, stranger = await flow.system.tickets()
    no_chat = ("session", False, "not a chat message")
    assert await _threading(flow, app.id) == [
        ("new_ticket", [no_chat, *CHAT_MISSES[:2], ("ticket_number", False, "no ticket number"),
                        ("placed", True, "new ticket 1")]),
        ("reference", [no_chat, CHAT_MISSES[0], ("reference", True, "sdk:conv:conv-1 held by ticket 1"),
                       ("placed", True, "appended to ticket 1")]),
    ]
    assert [t for t in await _threading(flow, form.id)][1] == ("ticket_number", [
        no_chat, *CHAT_MISSES[:2], ("ticket_number", True, "ticket 2 of this customer"),
        ("placed", True, "appended to ticket 2")])
    assert await _threading(flow, stranger.id) == [("new_ticket", [
        no_chat, *CHAT_MISSES[:2], ("ticket_number", False, "sender is neither the customer of ticket 2 nor on its Cc"),
        ("placed", True, "new ticket 3")])]


def _switchboard(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


async def test_ticket_explain_prints_each_messages_threading_and_the_routing(flow, redis_url, tmp_path):
    first, root = make_mail(subject="Refund", headers={"Cc": "li.na@example.cn"})
    await _mail(flow, first)
    await _mail(flow, make_mail(subject="[#1] colleague here", sender="li.na@example.cn")[0])
    async with flow.system.db.write() as conn:
        await conn.run_sync(agents_store.create_agent, flow.system.tenant, "Li", "li@acme.test", status="online",
                            capacity={"email": 5})
    router = Router(flow.system.bus, flow.system.settings, flow.system.db, capacity_classes())
    await asyncio.wait_for(router.run(drain=True), 60)
    env = role_env(tmp_path / "data", redis_url, flow.system.settings.database_url)
    done = await asyncio.to_thread(_switchboard, env, "ticket", "explain", "1", "--number", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "ticket 1 (#1) new, email: Refund"
    assert lines[1].startswith("message 1  ") and lines[1].endswith("  in  zhang.wei@example.cn")
    assert lines[2:8] == ["  threaded by new_ticket", "  session: miss (not a chat message)",
                          "  reply_token: miss (no reply token)", "  reference: miss (no known key)",
                          "  ticket_number: miss (no ticket number)", "  placed: new ticket 1"]
    assert lines[8].endswith("  in  li.na@example.cn")
    assert lines[9] == "  threaded by ticket_number"
    assert lines[13:15] == ["  ticket_number: hit (sender on the Cc of ticket 1)", "  placed: appended to ticket 1"]
    routing = lines.index("routing:")
    assert lines[routing + 1].startswith("ticket 1 (#1) new") and " assigned -> agent 1 " in lines[routing + 2]
    done = await asyncio.to_thread(_switchboard, env, "ticket", "explain", "1", "--tenant", "acme", "--json")
    found = json.loads(done.stdout)
    assert [m["threading"]["rule"] for m in found["messages"]] == ["new_ticket", "ticket_number"]
    assert found["routing"]["decisions"][0]["outcome"] == "assigned"
    done = await asyncio.to_thread(_switchboard, env, "ticket", "explain", "99", "--tenant", "acme")
    assert (done.returncode, done.stderr.strip()) == (1, "switchboard: no ticket 99")
    done = await asyncio.to_thread(_switchboard, env, "ticket", "explain", "1", "--tenant", "nope")
    assert (done.returncode, done.stderr.strip()) == (1, "switchboard: no tenant 'nope'")


async def test_threading_migration_matches_the_tables(system):
    # 0005 adds exactly what tables.py declares for threading, on both databases.
    def diff(conn):
        found = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        inspector = inspect(conn)
        columns = {(t, c["name"]) for t in ("messages", "tickets") for c in inspector.get_columns(t)}
        return found, columns

    async with system.db.read() as conn:
        found, columns = await conn.run_sync(diff)
    assert {("messages", "thread_rule"), ("messages", "thread_trail"), ("tickets", "cc")} <= columns
    assert [d for d in found if any(n in repr(d) for n in ("thread_rule", "thread_trail", "'cc'"))] == []
