"""POST /api/v1/tickets/{id}/messages on SQLite and PostgreSQL: replies, notes, idempotency, bad input."""

import base64

import pytest
from outbox_support import SECRET, Platform, outbound_world
from sqlalchemy import func, select

from connectors.senders import SENDERS
from ticket_service.store import replies, reply_tokens
from ticket_service.store.replies import Draft, store_reply
from ticket_service.store.tables import attachments, messages, outbox


@pytest.fixture
async def outbound(system):
    async with outbound_world(system) as world:
        yield world


async def test_a_reply_is_stored_queued_with_a_signed_message_id(outbound):
    # 201 with the stored message; the outbox row holds the handle and reply-to chosen once.
    status, body = await outbound.post({"text": "Your refund is on its way.", "html": "<p>On its way</p>"})
    assert status == 201, body
    assert (body["direction"], body["kind"], body["channel"], body["text"]) == (
        "out", "reply", "email", "Your refund is on its way.")
    assert body["delivery"] == {"status": "queued", "channel": "email", "attempts": 0, "error": None, "sent_at": None}
    [row] = await outbound.rows()
    assert (row.message_id, row.recipient, row.status) == (body["id"], "zhang.wei@example.cn", "queued")
    tenant = outbound.system.tenant
    assert reply_tokens.verified_ticket_ids(SECRET, tenant, [row.handle, row.reply_to]) == [outbound.ticket_id]
    assert row.reply_to.startswith("help+sb-") and row.reply_to.endswith("@acme.test")
    [customer_mail] = [m for m in await outbound.system.messages() if m.direction == "in"]
    assert row.in_reply_to == customer_mail.dedup_key and row.refs == [customer_mail.dedup_key]
    shown = (await outbound.ticket())["messages"][-1]
    assert shown["id"] == body["id"] and shown["delivery"]["status"] == "queued"


async def test_html_is_sanitized_and_attachments_go_to_the_blob_store(outbound):
    # A script never reaches the customer; the file is stored like an inbound attachment.
    data = b"%PDF-1.4 invoice" * 10_000  # 160 KB: over the 64 KiB other API bodies may have
    status, body = await outbound.post({
        "text": "Invoice attached", "html": '<p onclick="x()">Hi<script>alert(1)</script></p>',
        "attachments": [{"filename": "invoice.pdf", "content_type": "application/pdf",
                         "data": base64.b64encode(data).decode()}]})
    assert status == 201, body
    assert body["html"] == "<p>Hi</p>"
    [file] = body["attachments"]
    assert (file["filename"], file["size"]) == ("invoice.pdf", len(data))
    async with outbound.system.db.read() as conn:
        key = (await conn.execute(select(attachments.c.blob_key))).scalar_one()
    assert await outbound.system.bus.blobs.get(key) == data


async def test_a_note_is_internal_and_never_queued(outbound):
    status, body = await outbound.post({"kind": "note", "text": "Customer called twice already"})
    assert status == 201, body
    assert (body["kind"], body["direction"], body["delivery"]) == ("note", "out", None)
    assert await outbound.rows() == []


async def test_the_same_idempotency_key_twice_is_one_message_and_one_send(outbound, monkeypatch):
    platform = Platform()
    monkeypatch.setitem(SENDERS, "email", platform.send)
    first_status, first = await outbound.post({"text": "Refunded", "idempotency_key": "k-1"})
    again_status, again = await outbound.post({"text": "Refunded", "idempotency_key": "k-1"})
    assert (first_status, again_status) == (201, 200)
    assert again["id"] == first["id"]
    await outbound.send_all()
    await outbound.send_all()
    assert len(await outbound.rows()) == 1 and len(platform.calls) == 1
    assert (await outbound.ticket())["messages"][-1]["delivery"]["status"] == "sent"


async def _counts(outbound) -> tuple[int, int]:
    async with outbound.system.db.read() as conn:
        return ((await conn.execute(select(func.count()).select_from(messages))).scalar_one(),
                (await conn.execute(select(func.count()).select_from(outbox))).scalar_one())


@pytest.mark.parametrize(("body", "ticket", "status", "code", "names"), [
    ({"text": "hi"}, 424242, 404, "not_found", "ticket 424242"),
    ({"text": "   "}, None, 400, "invalid_field", "'text'"),
    ({"text": "hi", "kind": "shout"}, None, 400, "invalid_field", "'kind'"),
    ({"text": "hi", "channel": "fax"}, None, 400, "invalid_field", "'channel'"),
    ({"text": "hi", "channel": "wechat"}, None, 400, "invalid_field", "'channel'"),  # no wechat identity
    ({"text": "hi", "attachments": [{"filename": "a.txt", "content_type": "text/plain", "data": "@@@"}]},
     None, 400, "invalid_field", "'attachments[0].data'"),
    ({"text": "hi", "attachments": [{"filename": "big.bin", "content_type": "application/octet-stream",
                                     "data": base64.b64encode(b"x" * 300_000).decode()}]},
     None, 413, "body_too_large", "limit"),
    ({"text": "hi", "agent_id": 999}, None, 400, "invalid_field", "'agent_id'"),
    ({"text": "hi", "colour": "red"}, None, 400, "invalid_field", "'colour'"),
    (b"{not json", None, 400, "invalid_body", "JSON"),
])
async def test_bad_input_is_refused_naming_the_problem_and_nothing_is_queued(
        outbound, body, ticket, status, code, names):
    before = await _counts(outbound)
    got, answer = await outbound.post(body, ticket_id=ticket)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert names in answer["error"]["message"]
    assert await _counts(outbound) == before


async def test_another_tenants_ticket_is_not_found_and_untouched(outbound):
    before = await _counts(outbound)
    status, answer = await outbound.post({"text": "hijack"}, key=outbound.other_key)
    assert (status, answer["error"]["code"]) == (404, "not_found")
    assert await _counts(outbound) == before


async def test_the_reply_and_its_outbox_row_are_one_transaction(outbound):
    # A failure after both inserts (here: raised before commit) leaves neither.
    def store_then_fail(conn):
        store_reply(conn, outbound.system.tenant, outbound.ticket_id, Draft(kind="reply", text="lost"), SECRET, 1)
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 1
        raise RuntimeError("the database went away before commit")

    before = await _counts(outbound)
    with pytest.raises(RuntimeError):
        await outbound.system.db.run_write(store_then_fail)
    assert await _counts(outbound) == before


async def test_a_wechat_reply_is_refused_when_the_tenant_has_no_wechat_account(outbound):
    # The customer is known only by email: asking for another channel is a 400, not a silent email.
    status, answer = await outbound.post({"text": "hi", "channel": "sdk"})
    assert status == 400 and "sdk" in answer["error"]["message"]
    assert replies.CHANNELS >= {"email", "wechat", "weibo", "sdk", "voice", "webform"}
