"""Generated input for every push-channel parser (WeChat XML, Weibo JSON, forms, SDK JSON, SMS).

The property is the same for each: the parser returns Inbound messages or refuses with a
PermanentError (the entry is dead-lettered with the reason) — never another exception, never
a hang. ``make test`` runs a few hundred inputs per property; ``make fuzz`` many more.
"""

from __future__ import annotations

import json

from fuzzing import FUZZ, check_parse, json_values, text
from hypothesis import given
from hypothesis import strategies as st

from connectors import sdk, sms, webform, wechat, weibo
from connectors.webform.spec import FormSpec
from core.envelope import Envelope


def _env(channel: str, payload: bytes, content_type: str = "application/json", **meta: str) -> Envelope:
    return Envelope(tenant="t", channel=channel, account="1", payload=payload, content_type=content_type, meta=meta)


# -- WeChat: XML documents with the fields WeChat sends, random values, hostile XML ------------

WECHAT_FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "PicUrl", "MediaId",
                 "Format", "Recognition", "ThumbMediaId", "Location_X", "Location_Y", "Scale", "Label", "Title",
                 "Description", "Url", "Event", "EventKey", "Ticket", "UnionId"]
MSG_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "file", ""]
EVENTS = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "TEMPLATESENDJOBFINISH", "LOCATION", "x"]
BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<xml><Content>&lol2;</Content></xml>")
XXE = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "") + "]]>"


@st.composite
def wechat_xml(draw) -> bytes:
    fields = {"MsgType": draw(st.sampled_from(MSG_TYPES)), "Event": draw(st.sampled_from(EVENTS))}
    for name in draw(st.lists(st.sampled_from(WECHAT_FIELDS), max_size=10)):
        fields[name] = draw(st.one_of(text, st.integers(-5, 2**40).map(str)))
    if draw(st.booleans()):
        fields.update(FromUserName="o-fan", CreateTime=str(draw(st.integers(0, 2**33))), MsgId=str(draw(st.integers())))
    body = "".join(f"<{k}>{_cdata(v) if draw(st.booleans()) else v.replace('<', '')}</{k}>" for k, v in fields.items())
    return ("<xml>" + body + "</xml>").encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(wechat_xml(), st.binary(max_size=300), st.sampled_from([BOMB, XXE, b"<xml>" * 5000])))
def test_wechat_parser(payload):
    check_parse(wechat.parse, _env("wechat", payload, "application/xml"))


# -- Weibo: JSON pushes with the documented shape, random values -------------------------------

@st.composite
def weibojson_values(draw) -> bytes:
    doc = draw(st.dictionaries(st.sampled_from(["type", "receiver_id", "sender_id", "created_at", "text", "data", "id"]),
                               json_values, max_size=7))
    if draw(st.booleans()):
        doc.update(type=draw(st.sampled_from(["text", "image", "voice", "position", "event", "mention", "x"])),
                   receiver_id=draw(st.integers(0, 2**40)), sender_id=draw(st.integers(-1, 2**40)),
                   created_at=draw(st.sampled_from(["Mon Nov 23 10:00:00 +0800 2026", "", "yesterday"])),
                   data=draw(st.dictionaries(st.sampled_from(["subtype", "key", "longitude", "vfid"]), json_values)))
    return json.dumps(doc).encode()


@FUZZ
@given(st.one_of(weibojson_values(), st.binary(max_size=300)))
def test_weibo_parser(payload):
    check_parse(weibo.parse, _env("weibo", payload))


# -- Web forms: urlencoded, JSON and multipart bodies under the default field mapping ----------

FORM_META = FormSpec.from_settings({}).to_meta()
FORM_FIELDS = ["subject", "message", "body", "email", "phone", "name", "order_id", "ticket", "website", "_token"]


@st.composite
def form_body(draw) -> tuple[str, bytes]:
    values = draw(st.dictionaries(st.sampled_from(FORM_FIELDS), text, max_size=8))
    kind = draw(st.sampled_from(["urlencoded", "json", "multipart", "garbage"]))
    if kind == "urlencoded":
        from urllib.parse import urlencode
        return "application/x-www-form-urlencoded", urlencode(values).encode()
    if kind == "json":
        return "application/json", json.dumps(draw(st.one_of(st.just(values), json_values))).encode()
    if kind == "multipart":
        parts = b"".join(b'--b\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n'
                         + v.encode("utf-8", "surrogatepass") + b"\r\n" for k, v in values.items())
        closing = draw(st.sampled_from([b"--b--\r\n", b"", b"--b"]))
        return draw(st.sampled_from(["multipart/form-data; boundary=b", "multipart/form-data"])), parts + closing
    return draw(st.sampled_from(["text/plain", "", "application/x-www-form-urlencoded"])), draw(st.binary(max_size=200))


@FUZZ
@given(form_body())
def test_form_parser(body):
    content_type, payload = body
    check_parse(webform.parse, _env("webform", payload, content_type, form=FORM_META))


# -- Mobile SDK: message JSON --------------------------------------------------------------------

@st.composite
def sdkjson_values(draw) -> bytes:
    doc = draw(st.dictionaries(st.sampled_from(["id", "conversation", "user", "text", "attachments", "sent_at"]),
                               json_values, max_size=6))
    if draw(st.booleans()):
        doc.update(id=draw(st.sampled_from(["5f0c3e2a-7d1b-4c1e-9a2b-3c4d5e6f7a8b", "x", ""])),
                   conversation=draw(text), text=draw(text),
                   user=draw(st.dictionaries(st.sampled_from(["id", "email", "phone", "name"]), json_values)))
    return json.dumps(doc).encode()


@FUZZ
@given(st.one_of(sdkjson_values(), st.binary(max_size=300)), st.sampled_from(["[]", "not json", '[{"id": 1}]']))
def test_sdk_parser(payload, uploads):
    check_parse(sdk.parse, _env("sdk", payload, region="CN", uploads=uploads))


# -- SMS: Twilio webhook forms and Aliyun SmsUp batches, documented fields with random values ---

TWILIO_FIELDS = ["MessageSid", "SmsMessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0",
                 "MediaUrl1", "MediaContentType1", "MessageStatus", "SmsStatus", "NumSegments", "FromCountry"]
ALIYUN_FIELDS = ["phone_number", "send_time", "content", "sign_name", "dest_code", "sequence_id"]


@st.composite
def twilio_form(draw) -> bytes:
    from urllib.parse import urlencode
    values = draw(st.dictionaries(st.sampled_from(TWILIO_FIELDS), text, max_size=10))
    if draw(st.booleans()):
        values.update(MessageSid="SM" + "a" * 32, From=draw(st.sampled_from(["+8613800138000", "10690000", "whatsapp:+1",
                                                                              "", "ACME"])),
                      NumMedia=draw(st.sampled_from(["0", "2", "11", "-1", "x"])), Body=draw(text))
    return urlencode(values).encode("utf-8", "surrogatepass")


@st.composite
def aliyun_batch(draw) -> bytes:
    items = draw(st.lists(st.one_of(json_values, st.dictionaries(st.sampled_from(ALIYUN_FIELDS), json_values)), max_size=4))
    if draw(st.booleans()):
        items.append({"phone_number": draw(st.sampled_from(["13800138000", "+86 139 0013 9000", "10690000", "+"])),
                      "content": draw(text), "sequence_id": draw(st.one_of(st.integers(-1, 2**64), text)),
                      "send_time": draw(st.sampled_from(["2026-11-23 09:30:00", "2026-13-01 00:00:00", ""]))})
    return json.dumps(draw(st.one_of(st.just(items), json_values))).encode()


@FUZZ
@given(st.one_of(twilio_form().map(lambda b: ("twilio", b)), aliyun_batch().map(lambda b: ("aliyun", b)),
                 st.tuples(st.sampled_from(["twilio", "aliyun", ""]), st.binary(max_size=300))))
def test_sms_parser(pushed):
    provider, payload = pushed
    check_parse(sms.parse, _env("sms", payload, region="CN", provider=provider))
