"""Voice ingress (docs/voice.md) through the real gateway: signed records, Twilio, FreeSWITCH."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from gateway_support import edge_gateway
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from voice_support import SECRET, TOKEN, Callcenter, cdr, record

from connectors.voice import twilio
from core.envelope import Envelope

SETTINGS = {"secret": SECRET, "auth_token": TOKEN, "username": "freeswitch", "password": "fs-pass-9",
            "max_records": 1000, "greeting": "您好，请留言"}


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        await gw.add_account("voice", "acme-cc", SETTINGS)
        await gw.add_account("voice", "tiny", {**SETTINGS, "max_body": 2048, "answer": "enqueue", "queue": "sales"})
        gw.cc = Callcenter(gw)
        yield gw


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.voice")]


# --- accepted --------------------------------------------------------------------------------


async def test_one_signed_record_is_queued_byte_for_byte(edge):
    doc = record("call-1", "completed", duration=95)
    status, body = await edge.cc.records(doc)
    assert (status, body["status"], body["records"]) == (202, "accepted", 1)
    [env] = await _entries(edge)
    assert (env.id, env.channel, env.meta["source"], env.meta["records"]) == (body["id"], "voice", "records", "1")
    assert json.loads(env.payload) == doc


async def test_a_bulk_post_of_1000_records_is_one_entry(edge):
    batch = [record(f"bulk-{i}", "completed", frm=f"+86138{i:08d}") for i in range(1000)]
    status, body = await edge.cc.records({"records": batch})
    assert (status, body["records"]) == (202, 1000)
    [env] = await _entries(edge)
    assert env.meta["records"] == "1000" and len(json.loads(env.payload)["records"]) == 1000


async def test_twilio_incoming_call_is_answered_with_voicemail_twiml(edge):
    status, ctype, twiml = await edge.cc.twilio(edge.cc.twilio_call("CA1", "ringing"))
    assert (status, ctype) == (200, "application/xml")
    url = edge.url("/voice/acme-cc/twilio")
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>您好，请留言</Say>'
        f'<Record action="{url}?event=voicemail" maxLength="120" playBeep="true" transcribe="true"'
        f' transcribeCallback="{url}?event=transcript" recordingStatusCallback="{url}?event=recording"/></Response>')
    [env] = await _entries(edge)
    assert (env.meta["source"], env.meta["event"]) == ("twilio", "")
    assert dict(p.split("=") for p in env.payload.decode().split("&"))["CallSid"] == "CA1"


async def test_twilio_enqueue_mode_and_status_callbacks_answer_an_empty_response(edge):
    _, _, twiml = await edge.cc.twilio(edge.cc.twilio_call("CA2", "ringing"), account="tiny")
    url = edge.url("/voice/tiny/twilio")
    assert twiml == f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>您好，请留言</Say><Enqueue action="{url}?event=queue">sales</Enqueue></Response>'
    _, _, twiml = await edge.cc.twilio(edge.cc.twilio_call("CA2", "completed", CallDuration="30"), account="tiny")
    assert twiml == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert await edge.xlen("voice") == 2


async def test_twilio_signature_over_a_query_string_is_checked_with_it(edge):
    params = {"CallSid": "CA3", "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingSid": "RE1",
              "AccountSid": "AC1"}
    status, _, twiml = await edge.cc.twilio(params, query="event=voicemail")
    assert (status, twiml) == (200, '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>')
    [env] = await _entries(edge)
    assert env.meta["event"] == "voicemail"


async def test_freeswitch_cdr_as_raw_json_with_basic_auth(edge):
    doc = cdr("6f1c7c9e-0c1a-4f5e-9a51-3d0b8f0e2a11")
    status, body = await edge.cc.freeswitch(json.dumps(doc).encode(), "application/json")
    assert (status, body["status"], body["call"]) == (200, "accepted", "6f1c7c9e-0c1a-4f5e-9a51-3d0b8f0e2a11")
    [env] = await _entries(edge)
    assert (env.meta["source"], env.content_type) == ("freeswitch", "application/json")


async def test_freeswitch_cdr_url_encoded_and_base64_forms(edge):
    text = json.dumps(cdr("uuid-form-1"))
    assert (await edge.cc.freeswitch(f"cdr={quote(text)}".encode(), "application/x-www-form-urlencoded"))[0] == 200
    b64 = base64.b64encode(json.dumps(cdr("uuid-form-2")).encode()).decode()
    assert (await edge.cc.freeswitch(f"cdr={b64}".encode(), "application/x-www-form-base64-encoded"))[0] == 200
    assert [e.content_type for e in await _entries(edge)] == [
        "application/x-www-form-urlencoded", "application/x-www-form-base64-encoded"]


# --- bad input: status, a body naming the problem, nothing queued ----------------------------


async def _refused(gw, status: int, code: str, result) -> dict:
    got, body = result[0], result[-1]
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await gw.xlen("voice") == 0
    return body


async def test_records_for_an_unknown_account_are_404(edge):
    await _refused(edge, 404, "unknown_account", await edge.cc.records(record("c", "ringing"), account="nope"))


async def test_unsigned_records_are_401(edge):
    await _refused(edge, 401, "missing_signature", await edge.cc.records(record("c", "ringing"), headers={}))


async def test_records_signed_with_another_secret_are_401(edge):
    await _refused(edge, 401, "bad_signature", await edge.cc.records(record("c", "ringing"), secret="other"))


async def test_replayed_records_are_401(edge):
    await _refused(edge, 401, "stale_timestamp", await edge.cc.records(record("c", "ringing"), skew=-900))


async def test_records_over_the_body_limit_are_413(edge):
    doc = record("c", "completed", transcript="x" * 4000)
    await _refused(edge, 413, "too_large", await edge.cc.records(doc, account="tiny"))


async def test_more_records_than_allowed_are_413(edge):
    batch = [record(f"c{i}", "completed") for i in range(1001)]
    body = await _refused(edge, 413, "too_many_records", await edge.cc.records({"records": batch}))
    assert "1001" in body["error"]["message"]


async def test_malformed_records_json_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.cc.records(b'{"records": ['))


async def test_one_bad_record_refuses_the_whole_batch_naming_it(edge):
    batch = [record("good-1", "completed"), {**record("bad", "completed"), "id": ""}]
    body = await _refused(edge, 400, "missing_field", await edge.cc.records({"records": batch}))
    assert body["error"]["message"].startswith("records[1].'id'")


@pytest.mark.parametrize(("field", "value"), [
    ("status", "exploded"), ("direction", "sideways"), ("started_at", "yesterday"), ("duration", -5),
    ("recording_url", "file:///etc/passwd"), ("ivr_path", "1>2"), ("from", 42),
])
async def test_a_record_with_a_bad_field_is_400_naming_it(edge, field, value):
    body = await _refused(edge, 400, "invalid_field", await edge.cc.records({**record("c", "ringing"), field: value}))
    assert f"'{field}'" in body["error"]["message"]


async def test_twilio_webhook_without_signature_is_401(edge):
    await _refused(edge, 401, "missing_signature", await edge.cc.twilio(edge.cc.twilio_call("CA9", "ringing"), sign=False))


async def test_twilio_webhook_signed_with_another_token_is_401(edge):
    await _refused(edge, 401, "bad_signature", await edge.cc.twilio(edge.cc.twilio_call("CA9", "ringing"), token="0" * 32))


async def test_twilio_webhook_with_a_tampered_parameter_is_401(edge):
    params = edge.cc.twilio_call("CA9", "completed", CallDuration="10")
    signature = RequestValidator(TOKEN).compute_signature(edge.url("/voice/acme-cc/twilio"), params)
    tampered = {**params, "CallDuration": "9999"}
    await _refused(edge, 401, "bad_signature", await edge.cc.twilio(tampered, signature=signature))


async def test_twilio_webhook_without_call_sid_is_400(edge):
    params = edge.cc.twilio_call("CA9", "ringing")
    del params["CallSid"]
    await _refused(edge, 400, "missing_field", await edge.cc.twilio(params))


async def test_twilio_webhook_over_the_limit_is_413(edge):
    params = edge.cc.twilio_call("CA9", "completed", TranscriptionText="字" * 2000)
    await _refused(edge, 413, "too_large", await edge.cc.twilio(params, account="tiny"))


async def test_freeswitch_post_without_credentials_is_401_with_a_challenge(edge):
    async with edge.http.post(edge.url("/voice/acme-cc/freeswitch"), data=json.dumps(cdr("u1"))) as resp:
        assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        await _refused(edge, 401, "missing_credentials", (resp.status, await resp.json()))


async def test_freeswitch_post_with_a_wrong_password_is_401(edge):
    result = await edge.cc.freeswitch(json.dumps(cdr("u1")).encode(), "application/json", password="guess")
    await _refused(edge, 401, "bad_credentials", result)


@pytest.mark.parametrize(("body", "ctype", "code"), [
    (b"{not json", "application/json", "malformed"),
    (b'{"channel_data": {}}', "application/json", "malformed"),
    (b"other=1", "application/x-www-form-urlencoded", "malformed"),
    (json.dumps({"variables": {"caller_id_number": "1000"}}).encode(), "application/json", "missing_field"),
])
async def test_freeswitch_cdr_that_is_not_one_is_400(edge, body, ctype, code):
    await _refused(edge, 400, code, await edge.cc.freeswitch(body, ctype))


async def test_freeswitch_cdr_over_the_limit_is_413(edge):
    doc = cdr("u-big")
    doc["app_log"] = {"application": [{"app_name": "log", "app_data": "x" * 4000}]}
    await _refused(edge, 413, "too_large", await edge.cc.freeswitch(json.dumps(doc).encode(), "application/json",
                                                                    account="tiny"))


def test_twilio_signature_matches_twilios_own_validator():
    # Repeated parameters (Gather digits) sort by value, as Twilio's own validator does.
    params = [("CallSid", "CA1"), ("From", "+8613800138000"), ("Digits", "2"), ("Digits", "1")]
    url = "https://support.example.cn/voice/acme-cc/twilio?event=queue"
    theirs = RequestValidator(TOKEN).compute_signature(url, MultiDict(params))
    assert twilio.signature(TOKEN, url, params) == theirs
    # Twilio may sign with or without the default port: both are accepted.
    with_port = RequestValidator(TOKEN).compute_signature(url.replace(".cn/", ".cn:443/"), MultiDict(params))
    assert twilio.valid({"auth_token": TOKEN}, url, params, with_port, "")
    assert not twilio.valid({"auth_token": TOKEN}, url, params[:3], theirs, "")
