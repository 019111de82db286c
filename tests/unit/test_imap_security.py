"""How an IMAP mailbox speaks TLS when registered: by port unless told, plain text only when asked."""

import ssl

import pytest

from connectors.email.imap.client import ImapSession
from connectors.email.tls import client_context
from ticket_service.store.mailboxes import imap_settings


@pytest.mark.parametrize(("port", "security", "expected"), [
    (993, None, "ssl"),  # RFC 8314: implicit TLS on the IMAPS port
    (143, None, "starttls"),  # RFC 3501 §6.2.1 on the plain port
    (1143, None, "starttls"),
    (143, "none", "none"),
    (993, "starttls", "starttls"),
])
def test_security_defaults_by_port_and_is_plain_only_when_asked(port, security, expected):
    assert imap_settings("imap.example.cn", port, "u", security=security)["security"] == expected


def test_unknown_security_is_refused():
    with pytest.raises(ValueError, match="security must be one of"):
        imap_settings("imap.example.cn", 143, "u", security="tls")


def test_certificates_are_checked_unless_the_mailbox_opts_out():
    assert imap_settings("h", 993, "u")["tls_verify"] is True
    assert imap_settings("h", 993, "u", tls_verify=False)["tls_verify"] is False
    checked, unchecked = client_context(), client_context(verify=False)
    assert (checked.verify_mode, checked.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert (unchecked.verify_mode, unchecked.check_hostname) == (ssl.CERT_NONE, False)


def test_a_tls_mode_without_a_context_is_a_programming_error():
    with pytest.raises(ValueError, match="security=starttls needs a TLS context"):
        ImapSession("h", 143, security="starttls", tls=None, timeout=1.0)
