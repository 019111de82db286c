"""Poison pills on the push streams: a bad entry between good ones goes to dead letters."""

from __future__ import annotations

import pytest

from core import keys
from core.envelope import Envelope
from ticket_service.store import admin

GOOD = {
    "wechat": (b"<xml><FromUserName>o-1</FromUserName><CreateTime>1700000000</CreateTime><MsgType>text</MsgType>"
               b"<Content>hi</Content><MsgId>1</MsgId></xml>", "application/xml", {}),
    "weibo": (b'{"type":"text","receiver_id":1,"sender_id":2,"created_at":"Mon Jul 16 18:09:20 +0800 2012",'
              b'"text":"hi","data":{}}', "application/json", {}),
    "webform": (b"message=hi", "application/x-www-form-urlencoded",
                {"form": '{"fields": {"body": "message"}, "custom": [], "required": ["body"], "honeypot": "",'
                         ' "token_field": "submission_id", "region": "CN"}'}),
    "sdk": (b'{"id":"3f1c9a52-8d7e-4c1b-9a57-2b0f5e7d9c11","conversation":"c","user":{"id":"u"},"text":"hi"}',
            "application/json", {}),
}
BAD = {"wechat": b"<xml><Content>no sender</Content>", "weibo": b"[1, 2]", "webform": b"message=%ff%fe",
       "sdk": b'{"id": "not-a-uuid"}'}


@pytest.mark.parametrize("channel", sorted(GOOD))
async def test_bad_entry_between_good_ones_is_dead_lettered(system, channel):
    async with system.db.write() as conn:
        account = await admin.add_account(conn, system.tenant, channel, f"acme-{channel}", {})
    payload, ctype, meta = GOOD[channel]
    stream = keys.ingest_stream(channel)
    for body in (payload, BAD[channel], payload.replace(b"hi", b"again").replace(b">1<", b">2<")
                 .replace(b"9c11", b"9c12").replace(b"18:09:20", b"18:09:21")):
        env = Envelope(tenant="acme", channel=channel, account=str(account), payload=body, content_type=ctype,
                       meta=dict(meta))
        await system.bus.publish(stream, Envelope.unpack(env.pack()))  # round-trip the wire format
    await system.drain()
    assert [m.text for m in await system.messages()] == ["hi", "again"]
    [(_, dead)] = await system.bus.redis.xrange(keys.dead_stream(stream))
    assert dead[b"error"].startswith(b"PermanentError: not a") or b"PermanentError" in dead[b"error"]
