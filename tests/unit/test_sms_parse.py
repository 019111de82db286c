"""SMS parse: numbers to E.164 with the account's region, status callbacks, Aliyun times, routing class."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from connectors import sms
from connectors.registry import capacity_classes
from connectors.sms.message import number
from core.envelope import Envelope
from core.errors import PermanentError


def _env(provider: str, payload: bytes, region: str = "CN") -> Envelope:
    return Envelope(tenant="t", channel="sms", account="7", payload=payload, content_type="", meta={
        "provider": provider, "region": region})


@pytest.mark.parametrize(("raw", "region", "want"), [
    ("13800138000", "CN", "+8613800138000"), ("+86 138-0013-8000", "US", "+8613800138000"),
    ("(415) 555-2671", "US", "+14155552671"), ("10690000", "CN", ""), ("ACME", "CN", ""),
    ("whatsapp:+8613800138000", "CN", ""), ("", "CN", ""),
])
def test_numbers_become_e164_with_the_region_else_nothing(raw, region, want):
    assert number(raw, region) == want


def test_a_us_account_reads_local_numbers_as_us_ones():
    batch = json.dumps([{"phone_number": "4155552671", "content": "hi", "sequence_id": 9}]).encode()
    [msg] = sms.parse(_env("aliyun", batch, region="US"))
    assert (msg.sender.kind, msg.sender.value, msg.session_key, msg.dedup_key) == (
        "phone", "+14155552671", "sms:+14155552671", "sms:7:aliyun:9")


def test_a_status_callback_parses_to_nothing():
    form = urlencode({"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}).encode()
    assert sms.parse(_env("twilio", form)) == []


def test_sequence_ids_as_number_or_string_are_one_key():
    batch = json.dumps([{"phone_number": "13800138000", "content": "a", "sequence_id": 42},
                        {"phone_number": "13800138000", "content": "a", "sequence_id": "0042"}]).encode()
    assert [m.dedup_key for m in sms.parse(_env("aliyun", batch))] == ["sms:7:aliyun:42"] * 2


def test_an_unknown_provider_is_a_permanent_error_naming_it():
    with pytest.raises(PermanentError, match="carrier-pigeon"):
        sms.parse(_env("carrier-pigeon", b"[]"))


def test_sms_is_routed_on_chat_capacity():
    # Texts are short asynchronous conversations an agent handles several of at once, like WeChat.
    assert capacity_classes()["sms"] == "chat"
