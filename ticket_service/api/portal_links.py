"""``POST``/``DELETE /api/v1/tickets/{id}/portal-link``: a fresh status-page link, or revoke them all."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from core.json_http import json_response
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import ApiError, not_found, parse_id
from ticket_service.api.spec import ID_PARAM, obj, operation
from ticket_service.api.tickets import DB, PREFIX
from ticket_service.portal_links import PortalLinks
from ticket_service.store import portal as store

LINKS = web.AppKey("api_portal_links", PortalLinks)

_LINK = obj(("ticket_id", "url", "expires_at"), ticket_id={"type": "integer"},
            url={"type": "string", "format": "uri", "description": "the signed status-page link"},
            expires_at={"type": "string", "format": "date-time"})
_REVOKED = obj(("ticket_id", "revoked"), ticket_id={"type": "integer"}, revoked={"const": True})
PATHS: dict = {
    "/tickets/{id}/portal-link": {
        "post": operation("A fresh signed link to the ticket's customer status page, valid for "
                          "portal_link_ttl_s until revoked", {201: ("The link", _LINK)}, 400, 404, 503,
                          params=[ID_PARAM]),
        "delete": operation("Revoke every status-page link issued for the ticket so far (the page answers "
                            "'not found' to them; links issued afterwards work)", {200: ("Revoked", _REVOKED)},
                            400, 404, 503, params=[ID_PARAM]),
    },
}


def _links(request: web.Request) -> PortalLinks:
    links = request.app.get(LINKS)
    if links is None:
        raise ApiError(503, "not_configured", "status-page links need SWITCHBOARD_SECRET_KEY")
    return links


@authenticated
async def issue_link(request: web.Request, tenant_id: int) -> web.Response:
    """POST: a new link from now, for the ticket's current generation."""
    links, ticket_id = _links(request), parse_id(request.match_info["id"])
    async with request.app[DB].read() as conn:
        ticket = await store.link_ticket(conn, tenant_id, ticket_id)
    if ticket is None:
        raise not_found("ticket", ticket_id)
    issued = int(time.time())
    expires = datetime.fromtimestamp(issued + links.ttl_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"ticket_id": ticket.id, "url": links.portal_link(tenant_id, ticket, issued_at=issued),
            "expires_at": expires}
    return json_response(body, status=201)


@authenticated
async def revoke_links(request: web.Request, tenant_id: int) -> web.Response:
    """DELETE: every link issued so far stops opening the page."""
    ticket_id = parse_id(request.match_info["id"])
    async with request.app[DB].write() as conn:
        generation = await store.revoke(conn, tenant_id, ticket_id)
    if generation is None:
        raise not_found("ticket", ticket_id)
    return json_response({"ticket_id": ticket_id, "revoked": True})


def setup_routes(app: web.Application, links: PortalLinks | None) -> None:
    if links is not None:
        app[LINKS] = links
    app.router.add_post(f"{PREFIX}/tickets/{{id}}/portal-link", issue_link)
    app.router.add_delete(f"{PREFIX}/tickets/{{id}}/portal-link", revoke_links)
