"""Who may see a page: the signed link checked against the ticket, and the form's CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Row

from core.blobs import BlobStore
from core.bus import Bus
from core.settings import Settings
from ticket_service import portal_links
from ticket_service.portal_links import PortalLinks
from ticket_service.store import portal as store
from ticket_service.store.db import Database

CSRF_COOKIE = "sb_portal_csrf"
_CSRF = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9a-f]{64})")
SUBMISSION = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass(frozen=True, slots=True)
class Portal:
    """What the page's handlers share (one per application)."""

    db: Database
    blobs: BlobStore
    bus: Bus
    links: PortalLinks
    settings: Settings

    def csrf_key(self) -> bytes:
        # Its own key derived from the secret: a CSRF token says nothing about link MACs.
        return hmac.new(self.links.secret_key.encode(), b"switchboard/portal-csrf", hashlib.sha256).digest()


async def open_ticket(portal: Portal, token: str) -> Row | None:
    """The ticket ``token`` opens, or None: malformed, forged, of another ticket, expired or revoked
    all look the same to the caller (and to the customer)."""
    claim = portal_links.read(token)
    if claim is None:
        return None
    async with portal.db.read() as conn:
        ticket = await store.link_ticket(conn, claim.tenant_id, claim.ticket_id)
    if ticket is None:
        return None
    return ticket if portal.links.verify(claim, ticket.portal_generation) else None


def _csrf_mac(portal: Portal, token: str, nonce: str) -> str:
    return hmac.new(portal.csrf_key(), f"{token}\x00{nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(portal: Portal, token: str, value: str | None) -> bool:
    """Whether ``value`` is a CSRF token made for this link."""
    m = _CSRF.fullmatch(value or "")
    return bool(m) and hmac.compare_digest(m[2], _csrf_mac(portal, token, m[1]))


def csrf_token(portal: Portal, token: str, cookie: str | None) -> str:
    """The cookie's token when it is one for this link (several open tabs share it), else a new one."""
    if cookie and csrf_valid(portal, token, cookie):
        return cookie
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_csrf_mac(portal, token, nonce)}"


def csrf_passes(portal: Portal, token: str, field: str | None, cookie: str | None) -> bool:
    """Double submit: the form's hidden field equals the cookie, and both were made for this link.
    The cookie is SameSite=Strict and scoped to the link's path, so another site cannot send it."""
    if not field or not cookie or not csrf_valid(portal, token, field):
        return False
    return hmac.compare_digest(field.encode(), cookie.encode())


def new_submission() -> str:
    """The id of one rendered form: the same form sent twice is one message."""
    return secrets.token_urlsafe(16)
