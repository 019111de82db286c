import json

import structlog

from core.logging import configure, redact_text


def test_redaction_masks_emails_phones_and_secrets(capsys):
    configure("info", "json")
    structlog.get_logger().info(
        "smtp.rejected", rcpt="zhang.wei@example.cn", phone="+86 138 0013 8000",
        api_key="sb_secret", note="call 13800138000 or mail li@corp.com", entry_id="1732345678901-0",
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["rcpt"] == "z***@example.cn"
    assert line["phone"] == "***00"
    assert line["api_key"] == "[redacted]"
    assert line["note"] == "call ***00 or mail l***@corp.com"
    assert line["entry_id"] == "1732345678901-0"  # our own ids are not personal data
    assert "13800138000" not in json.dumps(line)


def test_context_is_bound_per_message(capsys):
    configure("info", "json")
    with structlog.contextvars.bound_contextvars(trace_id="T1", tenant="acme", channel="email", envelope_id="E1"):
        structlog.get_logger().info("message.created")
    structlog.get_logger().info("worker.idle")
    first, second = (json.loads(x) for x in capsys.readouterr().err.strip().splitlines()[-2:])
    assert (first["trace_id"], first["tenant"], first["channel"], first["envelope_id"]) == ("T1", "acme", "email", "E1")
    assert "trace_id" not in second


def test_redact_text_leaves_ticket_numbers_alone():
    assert redact_text("ticket [#1234] for bob@x.org") == "ticket [#1234] for b***@x.org"


def test_ip_addresses_are_not_taken_for_phone_numbers():
    assert redact_text("listening on 127.0.0.1:2525, peer 10.20.30.40") == "listening on 127.0.0.1:2525, peer 10.20.30.40"
    assert redact_text("tel 010.6552.9988") == "tel ***88"
