"""The REST API's routes under ``/api/v1``, addable to any aiohttp application."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from core.blobs import BlobStore
from core.bus import Bus
from ticket_service.api import (
    fields,
    messages,
    openapi,
    portal_links,
    replies,
    reports,
    routing,
    tickets,
    webhooks,
)
from ticket_service.api.auth import TENANT_KEYS, TenantKeys
from ticket_service.portal_links import PortalLinks
from ticket_service.store.db import Database


def setup_api(app: web.Application, db: Database, blobs: BlobStore, classes: Mapping[str, str],
              key_ttl: float = 30.0, bus: Bus | None = None, secret_key: str = "",
              reply_limit: int = replies.DEFAULT_LIMIT, links: PortalLinks | None = None) -> None:
    """Add the API routes and their state to ``app``; auth is per route, so other routes stay open.

    ``classes`` is each channel's capacity class (manual assignment takes capacity of it).

    With a ``bus``, changes to agents and tickets are announced on ``ticket.events`` for the router.
    With ``links``, ``POST /tickets/{id}/portal-link`` issues status-page links (else it answers 503).
    """
    app[tickets.DB] = db
    app[tickets.BLOBS] = blobs
    app[tickets.SECRET] = secret_key
    app[TENANT_KEYS] = TenantKeys(db, ttl=key_ttl)
    prefix = tickets.PREFIX
    app.router.add_get(f"{prefix}/tickets", tickets.list_tickets)
    app.router.add_get(f"{prefix}/tickets/{{id}}", tickets.get_ticket)
    app.router.add_get(f"{prefix}/tickets/{{id}}/reply-address", tickets.get_reply_address)
    app.router.add_get(f"{prefix}/attachments/{{id}}", tickets.get_attachment)
    messages.setup_routes(app)
    replies.setup_routes(app, reply_limit)
    routing.setup_routes(app, bus, classes)
    reports.setup_routes(app)
    portal_links.setup_routes(app, links)
    fields.setup_routes(app)
    openapi.setup_routes(app)
    webhooks.setup_routes(app)


def create_app(db: Database, blobs: BlobStore, classes: Mapping[str, str]) -> web.Application:
    """A standalone application serving only the API."""
    app = web.Application()
    setup_api(app, db, blobs, classes)
    return app
