"""Signed status-page links: ``/portal/{token}`` opens one ticket's public conversation.

A token is ``<tenant hex>.<ticket hex>.<expiry hex>.<MAC>``; the MAC is HMAC-SHA256 over the
tenant, ticket, expiry and the ticket's ``portal_generation`` with a key derived per tenant
from ``secret_key`` (as reply tokens are). The generation is not in the token: raising it on
the ticket revokes every link issued before, and a token of one ticket never opens another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from html import escape
from typing import Protocol

TOKEN = re.compile(r"([0-9a-f]{1,8})\.([0-9a-f]{1,8})\.([0-9a-f]{1,10})\.([A-Za-z0-9_-]{43})")
DEFAULT_TTL_S = 30 * 24 * 3600


class LinkedTicket(Protocol):
    """What a link is made for: a ticket row with its id and revocation generation."""

    id: int
    portal_generation: int


@dataclass(frozen=True, slots=True)
class Claim:
    """What a well-formed token says; nothing is verified until ``PortalLinks.verify``."""

    tenant_id: int
    ticket_id: int
    expires: int  # epoch seconds
    mac: str


def _tenant_key(secret_key: str, tenant_id: int) -> bytes:
    return hmac.new(secret_key.encode(), b"switchboard/portal-link\x00%d" % tenant_id, hashlib.sha256).digest()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def read(token: str) -> Claim | None:
    """The token's fields, or None when it is not shaped like one."""
    m = TOKEN.fullmatch(token)
    if m is None:
        return None
    return Claim(int(m[1], 16), int(m[2], 16), int(m[3], 16), m[4])


class PortalLinks:
    """Makes and checks status-page links for one deployment's ``secret_key`` and public URL."""

    def __init__(self, secret_key: str, public_url: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        if not secret_key:
            raise ValueError("status-page links need secret_key")
        self.secret_key, self.ttl_s = secret_key, ttl_s
        self.base = public_url.rstrip("/")

    def _mac(self, tenant_id: int, ticket_id: int, expires: int, generation: int) -> str:
        message = b"portal:%d:%d:%d:%d" % (tenant_id, ticket_id, expires, generation)
        return _b64(hmac.new(_tenant_key(self.secret_key, tenant_id), message, hashlib.sha256).digest())

    def token(self, tenant_id: int, ticket_id: int, generation: int, expires: int) -> str:
        mac = self._mac(tenant_id, ticket_id, expires, generation)
        return f"{tenant_id:x}.{ticket_id:x}.{expires:x}.{mac}"

    def url(self, token: str) -> str:
        return f"{self.base}/portal/{token}"

    def portal_link(self, tenant: int, ticket: LinkedTicket, issued_at: float | None = None) -> str:
        """The status-page URL of ``ticket`` (tenant id, ticket row), valid ``ttl_s`` from ``issued_at``."""
        expires = int(time.time() if issued_at is None else issued_at) + self.ttl_s
        return self.url(self.token(tenant, ticket.id, ticket.portal_generation, expires))

    def verify(self, claim: Claim, generation: int, now: float | None = None) -> bool:
        """Whether the claim's MAC holds for the ticket's current generation and it has not expired."""
        expected = self._mac(claim.tenant_id, claim.ticket_id, claim.expires, generation)
        # Constant-time: the MAC is compared whatever the expiry says.
        good = hmac.compare_digest(claim.mac.encode("ascii"), expected.encode("ascii"))
        return good and claim.expires > (time.time() if now is None else now)


# One line under a reply, in the ticket's language (the router detects it), English otherwise.
LABEL = {"en": "Follow this request or add to it:", "zh": "查看处理进度或补充信息："}


def footer(url: str, language: str | None) -> str:
    """The link line: ``<label> <url>``."""
    return f"{LABEL[_lang(language)]} {url}"


def _lang(language: str | None) -> str:
    return "zh" if (language or "").lower().startswith("zh") else "en"


def with_link(channel: str, text: str, html: str, url: str, language: str | None) -> tuple[str, str]:
    """A reply's text and HTML with the status link under them.

    Email puts it below a signature separator ("-- ", RFC 3676 §4.3) so mail clients fold
    it away when quoting; chat channels get it as one short line after a blank one.
    """
    sep = "\n\n-- \n" if channel == "email" else "\n\n"
    text = f"{text.rstrip()}{sep}{footer(url, language)}"
    if html:
        html = f'{html}\n<p>{escape(LABEL[_lang(language)])} <a href="{escape(url)}">{escape(url)}</a></p>'
    return text, html
