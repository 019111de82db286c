"""Loop and bounce detection: the header rules of the best helpdesks, and what a bounce returns."""

import pytest

from connectors.email import parse
from core.envelope import Envelope


def _parse(raw: bytes, **meta: str):
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw, meta=meta))
    return inbound


def _mail(*headers: str, body: bytes = b"Hello.\r\n") -> bytes:
    return "\r\n".join(("Message-ID: <m1@example.com>", *headers)).encode() + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "headers, expected",
    [
        (["From: a@example.com", "X-Precedence: bulk"], "precedence:bulk"),
        (["From: a@example.com", "X-Precedence: auto_reply"], "precedence:auto_reply"),
        (["From: a@example.com", "X-Failed-Recipients: gone@example.net"], "bounce"),
        (["From: Mail Delivery System <Mailer-Daemon@mx.example.com>",
          "Return-Path: <bounces@mx.example.com>"], "bounce"),
        (["From: a@example.com", "Return-Path: <>"], "null-sender"),
        # An out-of-office is named as such even though it also comes with a null sender.
        (["From: a@example.com", "Return-Path: <>", "Auto-Submitted: auto-replied"],
         "auto-submitted:auto-replied"),
        (["From: a@example.com", "Return-Path: <a@example.com>"], ""),
    ],
)
def test_loop_and_bounce_header_rules(headers, expected):
    assert _parse(_mail(*headers)).auto_reason == expected


def _dsn(original: bytes, part_type: str) -> bytes:
    return _mail(
        "From: MAILER-DAEMON@mx.example.com", "Return-Path: <>", "Subject: Undelivered Mail Returned to Sender",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        body=(b"--b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.com.\r\n"
              b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
              b"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              b"--b\r\nContent-Type: " + part_type.encode() + b"\r\n\r\n" + original + b"\r\n--b--\r\n"),
    )


ORIGINAL = b"From: help@acme.test\r\nTo: gone@example.net\r\nMessage-ID: <out-7@acme.test>\r\nSubject: Re: x\r\n\r\nHi\r\n"


@pytest.mark.parametrize("part_type", ["message/rfc822", "text/rfc822-headers"])
def test_postfix_dsn_refers_to_the_bounced_original(part_type):
    # RFC 3464: the original (or its headers) rides in the report; its id leads the refs.
    got = _parse(_dsn(ORIGINAL, part_type))
    assert got.auto_reason == "bounce"
    assert got.thread_refs[0] == "out-7@acme.test"


def test_exim_bounce_quoting_the_original_inline_refers_to_it():
    # Exim is not multipart/report: it pastes the original's headers into the text.
    raw = _mail(
        "From: Mail Delivery System <Mailer-Daemon@mail.example.org>", "X-Failed-Recipients: gone@example.net",
        "Subject: Mail delivery failed: returning message to sender",
        body=(b"This message was created automatically by mail delivery software.\r\n\r\n"
              b"A message that you sent could not be delivered to one or more of its recipients.\r\n\r\n"
              b"  gone@example.net\r\n    Unrouteable address\r\n\r\n"
              b"------ This is a copy of the message, including all the headers. ------\r\n\r\n"
              b"Message-ID: <out-9@acme.test>\r\nSubject: Re: x\r\n\r\nHi\r\n"),
    )
    got = _parse(raw)
    assert (got.auto_reason, got.thread_refs) == ("bounce", ["out-9@acme.test"])


def test_out_of_office_is_not_a_bounce_and_keeps_its_own_refs():
    raw = _mail("From: a@example.com", "Auto-Submitted: auto-replied", "In-Reply-To: <out-3@acme.test>",
                body=b"I am away until Monday.\r\nMessage-ID: <not-this@example.com>\r\n")
    got = _parse(raw)
    assert (got.auto_reason, got.thread_refs) == ("auto-submitted:auto-replied", ["out-3@acme.test"])
