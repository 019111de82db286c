"""Webhooks out, the pure parts: which addresses a webhook may reach, the URL's form, the
backoff between attempts and the signature's format."""

import hashlib
import hmac

import pytest

from rules.deliveries import backoff_ms
from rules.webhook_http import sign
from ticket_service.webhook_url import TargetError, check, refusal


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("::1", "::1 is a loopback address"),
    ("10.0.0.8", "10.0.0.8 is a private address"),
    ("172.16.5.4", "172.16.5.4 is a private address"),
    ("192.168.1.1", "192.168.1.1 is a private address"),
    ("fd00::1", "fd00::1 is a private address"),
    ("169.254.169.254", "169.254.169.254 is a link-local address"),
    ("fe80::1", "fe80::1 is a link-local address"),
    ("239.255.255.250", "239.255.255.250 is a multicast address"),
    ("ff02::1", "ff02::1 is a multicast address"),
    ("0.0.0.0", "0.0.0.0 is an unspecified address"),
    ("240.0.0.1", "240.0.0.1 is a private address"),
    ("100.64.0.1", "100.64.0.1 is not a public address"),
    ("::ffff:10.0.0.1", "::ffff:10.0.0.1 is a private address"),
])
def test_non_public_addresses_are_refused_saying_what_they_are(address, why):
    assert refusal(address) == why


@pytest.mark.parametrize("address", ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert refusal(address) is None


@pytest.mark.parametrize("url, why", [
    ("", "must be an http or https URL"),
    ("javascript:alert(1)", "must be an http or https URL"),
    ("https://a:b@example.com/", "must not carry credentials"),
    ("https://example.com/a b", "must not contain spaces"),
    ("https:///path", "has no host"),
    ("https://example.com:99999/", "is not a valid URL"),
    ("https://example.com/#frag", "must not have a fragment"),
])
def test_url_forms_a_webhook_may_not_have(url, why):
    with pytest.raises(TargetError) as caught:
        check(url)
    assert why in str(caught.value)


def test_backoff_starts_within_the_base_doubles_and_stops_at_the_cap():
    for _ in range(200):
        assert 5_000 <= backoff_ms(1, 10.0, 3600.0) <= 10_000
        assert 10_000 <= backoff_ms(2, 10.0, 3600.0) <= 20_000
        assert 40_000 <= backoff_ms(4, 10.0, 3600.0) <= 80_000
        assert 1_800_000 <= backoff_ms(60, 10.0, 3600.0) <= 3_600_000


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body():
    body = b'{"id":1,"event":"ticket.created"}'
    header = sign("whsec_abc", 1_800_000_000, body)
    mac = hmac.new(b"whsec_abc", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={mac}"
