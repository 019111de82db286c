"""Signed reply tokens: a ticket reference a customer's mail client carries back to us.

Each ticket's outbound mail gets a Message-ID and a reply-to plus-address holding
``sb-<ticket id hex>-<HMAC>``; the HMAC key is derived per tenant from ``secret_key``, so
a token neither forges, nor crosses tenants, nor outlives a key change (as osTicket's
signed ``Message-ID`` tokens). A reply is threaded by the token alone, without a lookup
of stored Message-IDs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

_MAC_CHARS = 16  # base32: 80 bits
TOKEN = re.compile(r"\bsb-([0-9a-f]{1,12})-([a-z2-7]{16})\b")


@dataclass(frozen=True, slots=True)
class ReplyAddresses:
    """What an outbound mail for a ticket carries so the answer finds its way back."""

    token: str
    message_id: str  # with <>, unique per outbound mail
    reply_to: str  # support+<token>@domain
    marker: str  # for the body, survives clients that drop headers


def _tenant_key(secret_key: str, tenant_id: int) -> bytes:
    return hmac.new(secret_key.encode(), b"switchboard/reply-token\x00%d" % tenant_id, hashlib.sha256).digest()


def _mac(secret_key: str, tenant_id: int, ticket_id: int) -> str:
    digest = hmac.new(_tenant_key(secret_key, tenant_id), b"ticket:%d" % ticket_id, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:_MAC_CHARS]


def make_token(secret_key: str, tenant_id: int, ticket_id: int) -> str:
    return f"sb-{ticket_id:x}-{_mac(secret_key, tenant_id, ticket_id)}"


def issue(secret_key: str, tenant_id: int, ticket_id: int, support_address: str) -> ReplyAddresses:
    """The Message-ID, reply-to and body marker for one outbound mail of a ticket."""
    if not secret_key:
        raise ValueError("reply tokens need secret_key")
    token = make_token(secret_key, tenant_id, ticket_id)
    local, _, domain = support_address.partition("@")
    return ReplyAddresses(
        token=token,
        message_id=f"<{token}.{secrets.token_hex(6)}@{domain}>",
        reply_to=f"{local}+{token}@{domain}",  # RFC 5233 subaddress
        marker=f"[ref:{token}]",
    )


def is_signed(secret_key: str, tenant_id: int, text: str) -> bool:
    """Whether ``text`` (say, a Message-ID) carries one of this tenant's valid tokens."""
    return bool(verified_ticket_ids(secret_key, tenant_id, [text]))


def verified_ticket_ids(secret_key: str, tenant_id: int, texts: Iterable[str]) -> list[int]:
    """Ticket ids of the tokens in ``texts`` whose signature holds for this tenant, in order."""
    found: list[int] = []
    for text in texts:
        for hex_id, mac in TOKEN.findall(text.lower()):
            ticket_id = int(hex_id, 16)
            if hmac.compare_digest(mac, _mac(secret_key, tenant_id, ticket_id)) and ticket_id not in found:
                found.append(ticket_id)
    return found
