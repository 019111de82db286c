"""DKIM signatures on outgoing mail (RFC 6376), per mailbox, with dkimpy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dkim

# RFC 6376 §5.4.1: the headers a verifier must see unchanged. Reply-To carries our reply
# token; listing a header the mail lacks still signs that it is absent.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to",
                  b"references", b"reply-to", b"mime-version", b"content-type")


class DkimKeyError(ValueError):
    """The mailbox's DKIM settings cannot sign (no selector, unreadable key)."""


def wants_signing(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("dkim_private_key") or settings.get("dkim_selector"))


def sign(data: bytes, settings: Mapping[str, Any], from_domain: str) -> bytes:
    """``data`` with a DKIM-Signature header in front; unchanged when the mailbox has no key."""
    if not wants_signing(settings):
        return data
    selector, key = str(settings.get("dkim_selector") or ""), str(settings.get("dkim_private_key") or "")
    if not (selector and key):
        raise DkimKeyError("DKIM needs both dkim_selector and dkim_private_key")
    domain = str(settings.get("dkim_domain") or from_domain)
    try:
        # relaxed/relaxed: survives relays that refold headers or change trailing whitespace.
        header = dkim.sign(data, selector.encode(), domain.encode(), key.encode(),
                           canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
    except dkim.DKIMException as exc:
        raise DkimKeyError(f"DKIM signing failed: {exc}") from exc
    return header + data
