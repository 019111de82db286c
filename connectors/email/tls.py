"""TLS for the email channel: the SMTP server's STARTTLS context and the IMAP client's."""

from __future__ import annotations

import ssl

from core.settings import SettingsError


def server_context(cert: str, key: str, *, required: bool = False) -> ssl.SSLContext | None:
    """The context aiosmtpd offers STARTTLS with (RFC 3207); None when no certificate is set."""
    if not cert and not key:
        if required:
            raise SettingsError("setting smtp_require_tls needs smtp_tls_cert and smtp_tls_key")
        return None
    if not (cert and key):
        raise SettingsError("settings smtp_tls_cert and smtp_tls_key go together: set both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"settings smtp_tls_cert={cert} smtp_tls_key={key}: cannot load them: {exc}") from None
    return context


def client_context(ca_file: str = "", *, verify: bool = True) -> ssl.SSLContext:
    """The context the IMAP poller checks servers with: the system's CAs plus ``ca_file``.

    ``verify=False`` is for a mailbox on a self-signed server: still encrypted, but anyone
    on the path could pose as the server and read the password.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"setting imap_tls_ca={ca_file}: cannot load it: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
