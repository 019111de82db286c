"""SMS ingress (docs/sms.md) through the real gateway: Twilio webhooks and Aliyun SmsUp pushes."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import pytest
from gateway_support import edge_gateway
from sms_support import PIC, PUSH_TOKEN, SETTINGS, TOKEN, Provider, twilio_sms, uplink
from twilio.request_validator import RequestValidator

from core.envelope import Envelope

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("sms", "acme-sms", SETTINGS)
        await gw.add_account("sms", "tiny", {**SETTINGS, "max_body": 1024, "max_batch": 2})
        await gw.add_account("sms", "proxied", {**SETTINGS, "public_url": "https://sms.example.cn/"})
        await gw.add_account("sms", "weak", {**SETTINGS, "token": "short"})
        gw.sms = Provider(gw)
        yield gw


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.sms")]


# --- accepted --------------------------------------------------------------------------------


async def test_twilio_sms_is_queued_byte_for_byte_and_answered_with_empty_twiml(edge):
    params = twilio_sms("SM" + "a" * 32, "我的快递到哪了？")
    status, ctype, body = await edge.sms.twilio(params)
    assert (status, ctype, body) == (200, "text/xml", EMPTY_TWIML)
    [env] = await _entries(edge)
    assert (env.channel, env.content_type) == ("sms", "application/x-www-form-urlencoded")
    assert (env.meta["provider"], env.meta["region"], env.meta["verified"]) == ("twilio", "CN", "X-Twilio-Signature")
    assert env.payload == urlencode(params).encode()


async def test_twilio_mms_with_media_is_queued(edge):
    params = twilio_sms("MM" + "b" * 32, "", NumMedia="2", MediaUrl0=PIC, MediaContentType0="image/jpeg",
                        MediaUrl1=PIC + "2", MediaContentType1="video/mp4")
    assert (await edge.sms.twilio(params))[0] == 200
    [env] = await _entries(edge)
    assert dict(parse_qsl(env.payload.decode(), keep_blank_values=True))["MediaUrl1"] == PIC + "2"


async def test_twilio_status_callback_is_acknowledged_and_not_queued(edge):
    # An outbound message's delivery report: no Body, a MessageStatus past "received".
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered", "SmsStatus": "delivered",
              "AccountSid": "AC" + "0" * 32, "From": "+8610690000", "To": "+8613800138000", "ApiVersion": "2010-04-01"}
    assert await edge.sms.twilio(params) == (200, "text/xml", EMPTY_TWIML)
    assert await edge.xlen("sms") == 0


async def test_twilio_signature_over_the_public_url_behind_a_proxy(edge):
    params = twilio_sms("SM" + "d" * 32, "hi")
    public = "https://sms.example.cn/sms/proxied/twilio"
    assert (await edge.sms.twilio(params, account="proxied", url=public))[0] == 200
    # Signed for the address the gateway sees, not the one Twilio was given: refused.
    assert (await edge.sms.twilio(params, account="proxied"))[0] == 401
    assert await edge.xlen("sms") == 1


async def test_aliyun_batch_is_one_entry_answered_as_aliyun_expects(edge):
    batch = [uplink(1001, "退订"), uplink(1002, "查询订单", phone="13900139000"), uplink("1003", "谢谢")]
    status, body = await edge.sms.aliyun(batch)
    assert (status, body) == (200, {"code": 0, "msg": "接收成功"})
    [env] = await _entries(edge)
    assert (env.meta["provider"], env.meta["messages"], env.meta["verified"]) == ("aliyun", "3", "token")
    assert json.loads(env.payload) == batch


async def test_an_empty_aliyun_batch_is_answered_and_queues_nothing(edge):
    assert await edge.sms.aliyun([]) == (200, {"code": 0, "msg": "接收成功"})
    assert await edge.xlen("sms") == 0


# --- bad input: status, a body naming the problem, nothing queued ----------------------------


async def _refused(gw, status: int, code: str, result) -> dict:
    got, body = result[0], result[-1]
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await gw.xlen("sms") == 0
    return body


async def test_twilio_webhook_for_an_unknown_account_is_404(edge):
    await _refused(edge, 404, "unknown_account", await edge.sms.twilio(twilio_sms("SM1", "x"), account="nope"))


async def test_twilio_webhook_without_signature_is_401(edge):
    await _refused(edge, 401, "missing_signature", await edge.sms.twilio(twilio_sms("SM1", "x"), sign=False))


async def test_twilio_webhook_signed_with_another_token_is_401(edge):
    await _refused(edge, 401, "bad_signature", await edge.sms.twilio(twilio_sms("SM1", "x"), token="0" * 32))


async def test_twilio_webhook_with_a_tampered_body_is_401(edge):
    params = twilio_sms("SM1", "退款 100 元")
    signature = RequestValidator(TOKEN).compute_signature(edge.url("/sms/acme-sms/twilio"), params)
    result = await edge.sms.twilio({**params, "Body": "退款 9999 元"}, signature=signature)
    await _refused(edge, 401, "bad_signature", result)


async def test_a_status_callback_with_a_bad_signature_is_still_401(edge):
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    await _refused(edge, 401, "bad_signature", await edge.sms.twilio(params, token="0" * 32))


@pytest.mark.parametrize(("drop", "code", "named"), [
    ("MessageSid", "missing_field", "'MessageSid'"), ("From", "missing_field", "'From'"),
    ("Body", "missing_field", "'Body'"),
])
async def test_twilio_message_without_a_required_field_is_400_naming_it(edge, drop, code, named):
    params = twilio_sms("SM" + "e" * 32, "x")
    del params[drop]
    if drop == "MessageSid":
        del params["SmsMessageSid"]
    body = await _refused(edge, 400, code, await edge.sms.twilio(params))
    assert named in body["error"]["message"]


@pytest.mark.parametrize(("name", "value"), [("NumMedia", "11"), ("NumMedia", "two"), ("MessageSid", "SM/../x")])
async def test_twilio_message_with_a_bad_field_is_400_naming_it(edge, name, value):
    body = await _refused(edge, 400, "invalid_field", await edge.sms.twilio({**twilio_sms("SM1", "x"), name: value}))
    assert f"'{name}'" in body["error"]["message"]


async def test_twilio_body_that_is_not_utf8_is_400(edge):
    async with edge.http.post(edge.url("/sms/acme-sms/twilio"), data=b"Body=\xff\xfe&From=%2B86",
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "X-Twilio-Signature": "x"}) as resp:
        await _refused(edge, 400, "malformed", (resp.status, await resp.json()))


async def test_twilio_webhook_over_the_limit_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.sms.twilio(twilio_sms("SM1", "字" * 400), account="tiny"))


async def test_aliyun_push_for_an_unknown_account_is_404(edge):
    await _refused(edge, 404, "unknown_account", await edge.sms.aliyun([uplink(1, "x")], account="nope"))


@pytest.mark.parametrize(("token", "code"), [(None, "missing_token"), ("", "missing_token"),
                                             (PUSH_TOKEN + "x", "bad_token"), ("guess", "bad_token")])
async def test_aliyun_push_without_the_accounts_token_is_401(edge, token, code):
    await _refused(edge, 401, code, await edge.sms.aliyun([uplink(1, "x")], token=token))


async def test_an_account_with_a_short_token_accepts_no_aliyun_push(edge):
    await _refused(edge, 401, "token_not_configured", await edge.sms.aliyun([uplink(1, "x")], account="weak",
                                                                             token="short"))


async def test_aliyun_push_over_the_body_limit_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.sms.aliyun([uplink(1, "字" * 500)], account="tiny"))


async def test_aliyun_push_with_more_messages_than_allowed_is_413(edge):
    body = await _refused(edge, 413, "too_many_messages",
                          await edge.sms.aliyun([uplink(i, "x") for i in range(3)], account="tiny"))
    assert "3 messages" in body["error"]["message"]


@pytest.mark.parametrize("body", [b"[{", b'{"phone_number": "13800138000"}', b"[1]", b"\xff[]"])
async def test_aliyun_push_that_is_not_a_json_array_of_objects_is_400(edge, body):
    await _refused(edge, 400, "malformed", await edge.sms.aliyun(body))


@pytest.mark.parametrize(("field", "value", "code"), [
    ("sequence_id", None, "missing_field"), ("sequence_id", "12a", "invalid_field"), ("sequence_id", -1, "invalid_field"),
    ("sequence_id", True, "invalid_field"), ("phone_number", "", "missing_field"), ("phone_number", "tel:1", "invalid_field"),
    ("content", 42, "invalid_field"), ("send_time", "yesterday", "invalid_field"),
])
async def test_one_bad_aliyun_item_refuses_the_whole_push_naming_it(edge, field, value, code):
    bad = {**uplink(2, "x"), field: value}
    body = await _refused(edge, 400, code, await edge.sms.aliyun([uplink(1, "fine"), bad]))
    assert body["error"]["message"].startswith(f"[1].'{field}'")


async def test_aliyun_item_without_content_is_400(edge):
    item = uplink(1, "x")
    del item["content"]
    body = await _refused(edge, 400, "missing_field", await edge.sms.aliyun([item]))
    assert body["error"]["message"] == "[0].'content' is required"
