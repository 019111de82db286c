"""SMS through the normalizer: one customer per number across channels, threading, media, batches."""

from __future__ import annotations

import pytest
from gateway_support import running_gateway
from sms_support import NUMBER, PIC, SETTINGS, Provider, twilio_sms, uplink
from sqlalchemy import select, update
from voice_support import SECRET, Callcenter, record

from core import keys
from core.envelope import Envelope
from ticket_service.store.tables import attachments, identities, tickets


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        gw.sms_id = await gw.add_account("sms", "acme-sms", SETTINGS)
        await gw.add_account("voice", "acme-cc", {"secret": SECRET, "region": "CN"})
        await gw.add_account("webform", "contact", {})
        gw.sms, gw.cc, gw.system = Provider(gw), Callcenter(gw), system
        yield gw


async def test_a_text_a_call_and_a_web_form_from_one_number_are_one_customer(flow):
    assert (await flow.sms.twilio(twilio_sms("SM" + "1" * 32, "快递三天没动了")))[0] == 200
    assert (await flow.cc.records(record("call-1", "completed", frm="138 0013 8000")))[0] == 202
    form = {"message": "还是没到", "phone": "13800138000"}
    async with flow.http.post(flow.url("/forms/contact"), data=form) as resp:
        assert resp.status == 202
    await flow.system.drain()
    by_channel = {m.channel: m for m in await flow.system.messages()}
    text, call, web = by_channel["sms"], by_channel["voice"], by_channel["webform"]
    assert text.customer_id == call.customer_id == web.customer_id
    assert (text.sender, call.sender, web.sender) == (NUMBER, NUMBER, NUMBER)
    async with flow.system.db.read() as conn:
        ids = (await conn.execute(select(identities.c.kind, identities.c.scope, identities.c.value))).all()
    assert [tuple(i) for i in ids] == [("phone", "", NUMBER)]


async def test_texts_within_the_session_window_are_one_ticket_and_a_later_one_opens_another(flow):
    await flow.sms.twilio(twilio_sms("SM" + "1" * 32, "我的快递到哪了？"))
    await flow.system.drain()
    await flow.sms.aliyun([uplink(7001, "单号 SF1234567890")])  # the same number, via Aliyun, local format
    await flow.system.drain()
    async with flow.system.db.write() as conn:  # the conversation goes quiet past the session window
        await conn.execute(update(tickets).values(updated_at=1))
    await flow.sms.twilio(twilio_sms("SM" + "2" * 32, "又有新问题"))
    await flow.system.drain()
    first, later = await flow.system.tickets()
    assert [m.ticket_id for m in await flow.system.messages()] == [first.id, first.id, later.id]
    assert (first.channel, first.subject, later.subject) == ("sms", "我的快递到哪了？", "又有新问题")
    created = [e for e in await flow.system.events() if e["type"] == "ticket.created"]
    assert len(created) == 2


async def test_another_number_is_another_ticket(flow):
    await flow.sms.twilio(twilio_sms("SM" + "1" * 32, "a"))
    await flow.sms.twilio(twilio_sms("SM" + "2" * 32, "b", frm="+8613900139000"))
    await flow.system.drain()
    one, two = await flow.system.messages()
    assert one.ticket_id != two.ticket_id and one.customer_id != two.customer_id


async def test_mms_media_links_and_types_are_kept_with_the_message_not_fetched(flow):
    params = twilio_sms("MM" + "3" * 32, "包裹破了", NumMedia="3", MediaUrl0=PIC, MediaContentType0="image/jpeg",
                        MediaUrl1=PIC + "2", MediaContentType1="video/mp4",
                        MediaUrl2="javascript:alert(1)", MediaContentType2="text/html")
    await flow.sms.twilio(params)
    await flow.system.drain()
    [msg] = await flow.system.messages()
    assert msg.headers["sms"]["media"] == [{"url": PIC, "content_type": "image/jpeg"},
                                           {"url": PIC + "2", "content_type": "video/mp4"}]
    assert msg.text == f"包裹破了\n[media image/jpeg] {PIC}\n[media video/mp4] {PIC}2"
    assert (msg.headers["sms"]["provider"], msg.headers["sms"]["to"], msg.headers["sms"]["id"]) == (
        "twilio", "+8610690000", "MM" + "3" * 32)
    async with flow.system.db.read() as conn:
        assert (await conn.execute(select(attachments))).all() == []


async def test_an_mms_without_text_is_named_by_its_media(flow):
    await flow.sms.twilio(twilio_sms("MM" + "4" * 32, "", NumMedia="1", MediaUrl0=PIC, MediaContentType0="image/png"))
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    assert ticket.subject == "[MMS] 1 media"


async def test_an_aliyun_batch_of_three_is_three_messages(flow):
    batch = [uplink(1001, "退订"), uplink(1002, "查询订单", phone="+86 139 0013 9000"), uplink("1003", "谢谢")]
    await flow.sms.aliyun(batch)
    await flow.system.drain()
    msgs = await flow.system.messages()
    assert [(m.sender, m.text) for m in msgs] == [(NUMBER, "退订"), ("+8613900139000", "查询订单"), (NUMBER, "谢谢")]
    assert [m.sent_at for m in msgs] == [1795397400000] * 3  # 2026-11-23 09:30:00 in China (UTC+8)
    assert {k: msgs[0].headers["sms"][k] for k in ("id", "provider", "to", "extra")} == {
        "id": "1001", "provider": "aliyun", "to": "1234",
        "extra": {"sign_name": "顺丰客服", "send_time": "2026-11-23 09:30:00"}}
    assert len(await flow.system.tickets()) == 2


async def test_a_resent_batch_and_a_resent_webhook_add_nothing(flow):
    batch = [uplink(i, f"第{i}条") for i in (1, 2, 3)]
    await flow.sms.aliyun(batch)
    await flow.sms.aliyun(batch)  # Aliyun did not see our answer in time and pushed again
    await flow.sms.aliyun([batch[2], uplink(4, "第4条")])  # overlapping with the first
    await flow.sms.aliyun([uplink(1, "第1条", phone="13900139000")])  # sequence ids are Aliyun's, per account
    await flow.sms.twilio(twilio_sms("SM" + "5" * 32, "同一条"))
    await flow.sms.twilio(twilio_sms("SM" + "5" * 32, "同一条"))
    await flow.system.drain()
    assert [m.text for m in await flow.system.messages()] == ["第1条", "第2条", "第3条", "第4条", "同一条"]


async def test_a_short_code_sender_is_its_own_customer_within_the_account(flow):
    await flow.sms.aliyun([uplink(1, "余额提醒", phone="10690000"), uplink(2, "再次提醒", phone="10690000")])
    await flow.system.drain()
    one, two = await flow.system.messages()
    assert (one.sender, one.ticket_id, one.customer_id) == ("10690000", two.ticket_id, two.customer_id)
    async with flow.system.db.read() as conn:
        ids = (await conn.execute(select(identities.c.kind, identities.c.scope, identities.c.value))).all()
    assert [tuple(i) for i in ids] == [("sms", str(flow.sms_id), "10690000")]


async def test_an_sms_entry_that_cannot_be_parsed_goes_to_dead_letters_between_good_ones(flow):
    # Poison pill: an SMS entry of an unknown provider, between two good pushes.
    await flow.sms.aliyun([uplink(1, "good-1")])
    env = Envelope(tenant="acme", channel="sms", account=str(flow.sms_id), payload=b"[]",
                   content_type="application/json", meta={"provider": "carrier-pigeon"})
    await flow.system.bus.publish(keys.ingest_stream("sms"), env)
    await flow.sms.aliyun([uplink(2, "good-2")])
    await flow.system.drain()
    assert [m.text for m in await flow.system.messages()] == ["good-1", "good-2"]
    [(_, fields)] = await flow.system.bus.redis.xrange(keys.dead_stream(keys.ingest_stream("sms")))
    assert Envelope.unpack(fields[b"e"]).id == env.id
