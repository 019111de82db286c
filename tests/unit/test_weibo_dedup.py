"""Weibo's dedup key is what ARCHITECTURE.md says: the message id when present, else sender uid
+ created_at + type + content hash."""

import json

from connectors.weibo.parse import parse
from core.envelope import Envelope

CREATED = "Mon Jul 16 18:09:20 +0800 2012"
CREATED_MS = 1342433360000


def _key(**doc) -> str:
    body = {"type": "text", "receiver_id": 1902538057, "sender_id": 2489518277, "created_at": CREATED,
            "text": "我的快递丢了", "data": {}} | doc
    env = Envelope(tenant="acme", channel="weibo", account="acme", payload=json.dumps(body).encode(),
                   content_type="application/json")
    [inbound] = parse(env)
    return inbound.dedup_key


def test_a_message_id_when_present_is_the_key():
    assert _key(id="4358934418985562") == "weibo:acme:4358934418985562"


def test_without_an_id_the_key_is_sender_time_type_and_content():
    key = _key()
    uid, created, kind, subtype, content = key.removeprefix("weibo:acme:").split(":")
    assert (uid, int(created), kind, subtype, len(content)) == ("2489518277", CREATED_MS, "text", "", 16)
    assert _key() == key  # a retry of the same push
    assert _key(text="还有一件事") != key  # another message in the same second
    assert _key(sender_id=1111111111) != key and _key(type="image") != key
