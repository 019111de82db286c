import msgpack
import pytest

from core.envelope import Envelope, pack
from core.errors import EnvelopeError


def test_round_trip_keeps_every_field_and_raw_bytes():
    # The payload must come back byte for byte so any message can be parsed again.
    env = Envelope(tenant="acme", channel="email", account="3", payload=b"\x00\xffraw",
                   content_type="message/rfc822", meta={"mail_from": "a@b.c"})
    back = Envelope.unpack(env.pack())
    assert back == env
    assert back.trace_id == env.id and len(env.id) == 26


def test_unknown_version_is_rejected():
    raw = msgpack.packb({"v": 2, "id": "x"})
    with pytest.raises(EnvelopeError, match="unknown envelope version 2"):
        Envelope.unpack(raw)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"v": 1, "id": "x"}), "lacks"),
        (msgpack.packb({"v": 1, "id": "x", "tenant": "t", "channel": "c", "account": "a",
                        "content_type": "x", "trace_id": "", "payload": "str-not-bytes",
                        "meta": {}, "received_at": 1}), "wrong type"),
        (msgpack.packb({"v": 1, "id": "x", "tenant": "t", "channel": "c", "account": "a",
                        "content_type": "x", "trace_id": "", "payload": b"",
                        "meta": {"k": 1}, "received_at": 1}), "meta"),
    ],
)
def test_malformed_envelopes_name_the_problem(raw, reason):
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.unpack(raw)


def test_pack_writes_what_packb_writes_and_survives_a_value_it_refuses():
    env = Envelope(tenant="acme", channel="wechat", account="7", payload=b"\x00\xff", meta={"k": "v"})
    value = {"type": "message.added", "ticket_id": 12, "channel": "wechat", "payload": b"raw", "none": None}
    assert pack(value) == msgpack.packb(value, use_bin_type=True)
    with pytest.raises(TypeError):
        pack({"bad": object()})
    # The kept packer starts clean after a refusal: nothing of the failed map leaks in.
    assert pack(value) == msgpack.packb(value, use_bin_type=True)
    assert Envelope.unpack(env.pack()) == env
