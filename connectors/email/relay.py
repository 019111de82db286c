"""Outbound mail through the operator's SMTP relay (``SWITCHBOARD_SMTP_RELAY``), with the
relay's answer mapped onto try-again-later or never."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

from core.outbound import PermanentFailure, Sent, TemporaryFailure

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_QUERY = frozenset({"starttls", "ca"})


class RelayUrlError(ValueError):
    """``SWITCHBOARD_SMTP_RELAY`` is not a relay URL this sender understands."""


@dataclass(frozen=True, slots=True)
class Relay:
    """Where and how to hand mail over: one parsed ``smtp://`` or ``smtps://`` URL."""

    host: str
    port: int
    username: str = ""
    password: str = ""
    implicit_tls: bool = False  # smtps: TLS from the first byte (RFC 8314 §3.3)
    starttls: bool | None = None  # True: required; False: never; None: when offered
    ca: str = ""  # PEM file of CAs trusted besides the system's


def parse_relay(url: str) -> Relay:
    """``smtp://user:pass@host:port``, ``smtp://host:port?starttls=true``, ``smtps://host:465``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise RelayUrlError(f"relay URL scheme must be smtp or smtps, not {parts.scheme!r}")
    if not parts.hostname:
        raise RelayUrlError("relay URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise RelayUrlError("relay URL port is not a number from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.fragment:
        raise RelayUrlError("relay URL takes no path or fragment")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY:
            raise RelayUrlError(f"unknown relay URL parameter {key!r} (known: {', '.join(sorted(_QUERY))})")
        query[key] = value
    implicit = parts.scheme == "smtps"
    starttls = _flag(query["starttls"]) if "starttls" in query else None
    if implicit and starttls:
        raise RelayUrlError("smtps is TLS from the start: starttls=true does not apply")
    return Relay(
        host=parts.hostname, port=port or (465 if implicit else 25),
        # Userinfo is percent-encoded (RFC 3986 §3.2.1): a password may hold '@' or ':'.
        username=unquote(parts.username or ""), password=unquote(parts.password or ""),
        implicit_tls=implicit, starttls=False if implicit else starttls, ca=query.get("ca", ""),
    )


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise RelayUrlError(f"starttls must be true or false, not {value!r}")


async def deliver(relay: Relay, sender: str, recipient: str, data: bytes, *, utf8: bool = False,
                  local_hostname: str = "", timeout_s: float = 60.0) -> Sent:
    """Hand one message to the relay; the relay's queue reply is the platform id."""
    client = aiosmtplib.SMTP(
        hostname=relay.host, port=relay.port, username=relay.username or None,
        password=relay.password or None, use_tls=relay.implicit_tls, start_tls=relay.starttls,
        cert_bundle=relay.ca or None, timeout=timeout_s, local_hostname=local_hostname or None,
    )
    try:
        async with client:
            # RFC 6531 §3.4: SMTPUTF8 on MAIL only when an address needs it.
            refused, reply = await client.sendmail(sender, [recipient], data,
                                                   mail_options=["SMTPUTF8"] if utf8 else None)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise _by_code(exc.recipients[0].code, exc.recipients[0].message) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise PermanentFailure("smtp_unsupported", str(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _by_code(exc.code, exc.message) from exc
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure("connect", str(exc) or type(exc).__name__) from exc
    if recipient in refused:  # sendmail reports refusals this way when others were accepted
        raise _by_code(refused[recipient].code, refused[recipient].message)
    return Sent(platform_id=reply[:200])


def _by_code(code: int, message: str) -> TemporaryFailure | PermanentFailure:
    """RFC 5321 §4.2.1: 4yz is transient, 5yz permanent; no code at all is a broken link."""
    text = f"{code} {message}".strip() if code > 0 else message
    if 500 <= code < 600:
        return PermanentFailure("smtp_5xx", text)
    if 400 <= code < 500:
        return TemporaryFailure("smtp_4xx", text)
    return TemporaryFailure("connect", text)
