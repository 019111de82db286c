import json
import logging

import pytest
import structlog

from core.logging import HANDLER_NAME, configure, redact_text


@pytest.fixture(autouse=True)
def _unconfigure():
    # configure() binds the test's captured stderr; later tests in the process must not log to it.
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)


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


def test_addresses_in_any_script_are_masked():
    # RFC 6531 addresses: Chinese and German mailboxes, composed or decomposed umlauts.
    assert redact_text("from 李伟@例子.中国 to jörg@bücher.de") == "from 李***@例子.中国 to j***@bücher.de"
    assert redact_text("jo\u0308rg@bu\u0308cher.de") == "j***@bu\u0308cher.de"
    assert redact_text("mail_from=Zhang.Wei@Example.CN;") == "mail_from=Z***@Example.CN;"
    assert redact_text('"王芳" <wang.fang@邮件.公司>') == '"王芳" <w***@邮件.公司>'


def test_unicode_address_in_a_structlog_field_is_masked(capsys):
    configure("info", "json")
    structlog.get_logger().info("smtp.rejected", rcpt="李伟@例子.中国", note="cc jörg@bücher.de")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["rcpt"], line["note"]) == ("李***@例子.中国", "cc j***@bücher.de")


def test_stdlib_logger_records_come_out_masked_as_json(capsys):
    # aiosmtpd logs on "mail.log" with %-args; the record goes through the same redaction.
    configure("info", "json")
    logging.getLogger("mail.log").warning("%r rejected sender %s", ("10.0.0.9", 4242), "zhang.wei@example.cn")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "('10.0.0.9', 4242) rejected sender z***@example.cn"
    assert (line["level"], line["logger"]) == ("warning", "mail.log") and "timestamp" in line


def test_stdlib_tracebacks_are_masked(capsys):
    # aiohttp.server logs a handler's exception with its traceback: the text is masked too.
    configure("info", "json")
    try:
        raise ValueError("cannot deliver to jörg@bücher.de, call +86 138 0013 8000")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "Error handling request" and line["logger"] == "aiohttp.server"
    assert "ValueError: cannot deliver to j***@bücher.de, call ***00" in line["exception"]
    assert "jörg" not in json.dumps(line, ensure_ascii=False) and "0013" not in line["exception"]


def test_stdlib_info_chatter_stays_below_the_threshold(capsys):
    # aiosmtpd logs every peer and command at info: not printed, as before.
    configure("info", "json")
    logging.getLogger("mail.log").info("Peer: %r", ("10.0.0.9", 4242))
    assert capsys.readouterr().err == ""


def test_bound_sets_the_envelope_fields_and_restores_the_outer_context(capsys):
    from core.envelope import Envelope
    from core.worker import bound

    configure("info", "json")
    env = Envelope(tenant="acme", channel="wechat", account="7", payload=b"<xml/>", trace_id="T9")
    log = structlog.get_logger()
    with structlog.contextvars.bound_contextvars(trace_id="OUTER", tenant="outer"):
        with bound(env):
            log.info("message.appended")
        log.info("worker.batch")
        with pytest.raises(RuntimeError), bound(env):
            raise RuntimeError("parse failed")
        log.info("worker.after_failure")
    log.info("worker.idle")
    inner, outer, after_failure, idle = (json.loads(x) for x in capsys.readouterr().err.strip().splitlines()[-4:])
    assert (inner["trace_id"], inner["tenant"], inner["channel"], inner["envelope_id"]) == ("T9", "acme", "wechat", env.id)
    assert (outer["trace_id"], outer["tenant"]) == ("OUTER", "outer")
    assert "channel" not in outer and "envelope_id" not in outer
    assert (after_failure["trace_id"], after_failure["tenant"]) == ("OUTER", "outer")
    assert "envelope_id" not in after_failure
    assert "trace_id" not in idle and "tenant" not in idle
