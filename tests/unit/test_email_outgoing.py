"""The relay URL forms SWITCHBOARD_SMTP_RELAY takes, and the subject and ids of a reply."""

import pytest

from connectors.email.compose import msg_id, reply_subject
from connectors.email.relay import Relay, RelayUrlError, parse_relay


@pytest.mark.parametrize(("url", "relay"), [
    ("smtp://mail.acme.test", Relay("mail.acme.test", 25)),
    ("smtp://relay.test:587?starttls=true", Relay("relay.test", 587, starttls=True)),
    ("smtp://relay.test:2525?starttls=false", Relay("relay.test", 2525, starttls=False)),
    ("smtps://relay.test", Relay("relay.test", 465, implicit_tls=True, starttls=False)),
    ("smtps://relay.test:4650", Relay("relay.test", 4650, implicit_tls=True, starttls=False)),
    # Percent-encoded userinfo (RFC 3986 §3.2.1): '@', ':' and '/' in the password.
    ("smtp://ops%40acme.test:p%40ss%3Aw%2Frd@relay.test:587?starttls=true&ca=/etc/ca.pem",
     Relay("relay.test", 587, "ops@acme.test", "p@ss:w/rd", starttls=True, ca="/etc/ca.pem")),
    ("smtp://apikey:@relay.test", Relay("relay.test", 25, "apikey", "")),
])
def test_relay_url_forms(url, relay):
    assert parse_relay(url) == relay


@pytest.mark.parametrize(("url", "problem"), [
    ("http://relay.test", "scheme must be smtp or smtps, not 'http'"),
    ("smtp://", "no host"),
    ("smtp://relay.test:99999", "port is not a number"),
    ("smtp://relay.test/inbox", "no path"),
    ("smtp://relay.test?tls=1", "unknown relay URL parameter 'tls'"),
    ("smtp://relay.test?starttls=maybe", "starttls must be true or false, not 'maybe'"),
    ("smtps://relay.test?starttls=true", "TLS from the start"),
])
def test_bad_relay_urls_name_the_problem(url, problem):
    with pytest.raises(RelayUrlError, match=problem.replace("(", r"\(").replace("?", r"\?")):
        parse_relay(url)


@pytest.mark.parametrize(("subject", "number", "expected"), [
    ("Where is my order?", 7, "Re: Where is my order? [#7]"),
    ("RE: Where is my order?", 7, "RE: Where is my order? [#7]"),
    ("Re: [#7] Where is my order?", 7, "Re: [#7] Where is my order?"),
    ("Re: about [#3]", 7, "Re: about [#3] [#7]"),
    ("订单\r\n 退款", 12, "Re: 订单 退款 [#12]"),
    ("", 4, "Re: [#4]"),
])
def test_reply_subject_has_one_re_and_the_ticket_number(subject, number, expected):
    assert reply_subject(subject, number) == expected


def test_message_ids_get_their_angle_brackets_once():
    assert msg_id("a.b@acme.test") == msg_id("<a.b@acme.test>") == "<a.b@acme.test>"
    assert msg_id("  ") == ""
