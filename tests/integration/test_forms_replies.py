"""Replies to web-form tickets: by email to the address the form collected, from the tenant's
first mailbox; with no address the reply is kept, fails with ``no_reply_channel`` and the
ticket says so. Real gateway, normalizer, API over HTTP, sender writing the outbox Maildir."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import running_gateway
from outbox_support import SECRET, Outbound
from sqlalchemy import update
from support import SUPPORT

from connectors.registry import capacity_classes
from core import keys
from ticket_service.api import setup_api
from ticket_service.store import admin, reply_tokens
from ticket_service.store.tables import channel_accounts

FORM = {"fields": {"body": "question", "email": "mail", "phone": "tel"}, "required": ["body"]}


@pytest.fixture
async def forms(system):
    """A contact form; the tenant's mailboxes are help@ (first) and sales@; the API over HTTP."""
    system.settings = system.settings.replace(secret_key=SECRET, smtp_relay="")
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("webform", "contact", FORM)
        await gw.add_account("email", "sales@acme.test", {})
        async with system.db.write() as conn:
            key = await admin.create_api_key(conn, system.tenant)
        app = web.Application()
        setup_api(app, system.db, system.bus.blobs, capacity_classes(), secret_key=SECRET, reply_limit=256 * 1024)
        http = TestClient(TestServer(app))
        await http.start_server()
        try:
            gw.system, gw.key, gw.http_api = system, key, http
            yield gw
        finally:
            await http.close()


async def _ticket_from(forms, **fields) -> Outbound:
    async with forms.http.post(forms.url("/forms/contact"), data={"question": "退货怎么办？", **fields}) as resp:
        assert resp.status == 202
    await forms.system.drain()
    [ticket] = await forms.system.tickets()
    return Outbound(forms.system, forms.http_api, forms.key, "", ticket.id)


async def test_a_reply_goes_by_email_to_the_collected_address_from_the_first_mailbox(forms, tmp_path):
    world = await _ticket_from(forms, mail="Li.Na@Example.cn", tel="138 0013 8000")
    status, body = await world.post({"text": "请在订单页点击退货。"})
    assert status == 201
    await world.send_all()
    [row] = await world.rows()
    assert (row.channel, row.recipient, row.status) == ("email", "li.na@example.cn", "sent")
    [mail_file] = (tmp_path / "outbox" / "new").iterdir()
    mail = message_from_bytes(mail_file.read_bytes(), policy=policy.default)
    assert getaddresses([mail["From"]])[0][1] == SUPPORT
    assert getaddresses([mail["To"]])[0][1] == "li.na@example.cn"
    token = reply_tokens.make_token(SECRET, world.system.tenant, world.ticket_id)
    assert mail["Message-ID"] == row.handle and mail["Reply-To"] == f"help+{token}@acme.test"
    assert "In-Reply-To" not in mail  # a form has no Message-ID to answer
    assert mail.get_content().strip() == "请在订单页点击退货。"
    ticket = await world.ticket()
    delivery = ticket["messages"][-1]["delivery"]
    assert (delivery["status"], delivery["channel"], delivery["error"]) == ("sent", "email", None)
    assert "no_reply_channel" not in ticket["tags"]


async def test_without_an_address_the_reply_is_kept_failed_and_the_ticket_tagged(forms):
    # Only a phone number: the form channel has no way back of its own, and email has no address.
    world = await _ticket_from(forms, tel="138 0013 8000")
    status, body = await world.post({"text": "请在订单页点击退货。"})
    assert status == 201
    await world.send_all()
    ticket = await world.ticket()
    reply = ticket["messages"][-1]
    assert (reply["id"], reply["text"]) == (body["id"], "请在订单页点击退货。")
    assert (reply["delivery"]["status"], reply["delivery"]["error"]["code"]) == ("failed", "no_reply_channel")
    assert "no_reply_channel" in ticket["tags"]
    assert await world.system.bus.redis.xlen(keys.outbound_stream("email")) == 0


async def test_a_tenant_without_a_mailbox_cannot_answer_a_form_by_email_either(forms):
    async with forms.system.db.write() as conn:
        await conn.execute(update(channel_accounts).where(channel_accounts.c.channel == "email").values(active=False))
    world = await _ticket_from(forms, mail="li.na@example.cn")
    status, _ = await world.post({"text": "请在订单页点击退货。"})
    assert status == 201
    await world.send_all()
    ticket = await world.ticket()
    assert ticket["messages"][-1]["delivery"]["error"]["code"] == "no_reply_channel"
    assert "no_reply_channel" in ticket["tags"]
    assert [r.status for r in await world.rows()] == ["failed"]
