"""``POST``/``DELETE /api/v1/tickets/{id}/portal-link``: a fresh status-page link, or revoke them all."""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime

from aiohttp import web

from ticket_service.api.auth import authenticated
from ticket_service.api.errors import ApiError, not_found, parse_id
from ticket_service.api.tickets import DB, PREFIX
from ticket_service.portal_links import PortalLinks
from ticket_service.store import portal as store

LINKS = web.AppKey("api_portal_links", PortalLinks)
_dumps = functools.partial(json.dumps, ensure_ascii=False)

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
_ERRORS = {
    status: {"description": why, "content": {"application/json": {"schema": _ERROR}}}
    for status, why in (("400", "the id is not an integer id"), ("401", "missing or invalid API key"),
                        ("404", "no such ticket for this tenant"),
                        ("503", "not_configured: links need SWITCHBOARD_SECRET_KEY"))
}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
_LINK = {"type": "object", "required": ["ticket_id", "url", "expires_at"], "properties": {
    "ticket_id": {"type": "integer"},
    "url": {"type": "string", "format": "uri", "description": "the signed status-page link"},
    "expires_at": {"type": "string", "format": "date-time"}}}
_REVOKED = {"type": "object", "required": ["ticket_id", "revoked"], "properties": {
    "ticket_id": {"type": "integer"}, "revoked": {"const": True}}}

PATHS: dict = {
    "/tickets/{id}/portal-link": {
        "parameters": _ID,
        "post": {
            "summary": "A fresh signed link to the ticket's customer status page",
            "description": "Valid for `portal_link_ttl_s`, until revoked. Links issued before stay valid.",
            "security": [{"bearer": []}],
            "responses": {"201": {"description": "the link",
                                  "content": {"application/json": {"schema": _LINK}}}, **_ERRORS},
        },
        "delete": {
            "summary": "Revoke every status-page link issued for the ticket so far",
            "description": "The page answers 'not found' to them; links issued afterwards work.",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "revoked",
                                  "content": {"application/json": {"schema": _REVOKED}}}, **_ERRORS},
        },
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
    return web.json_response(body, status=201, dumps=_dumps)


@authenticated
async def revoke_links(request: web.Request, tenant_id: int) -> web.Response:
    """DELETE: every link issued so far stops opening the page."""
    ticket_id = parse_id(request.match_info["id"])
    async with request.app[DB].write() as conn:
        generation = await store.revoke(conn, tenant_id, ticket_id)
    if generation is None:
        raise not_found("ticket", ticket_id)
    return web.json_response({"ticket_id": ticket_id, "revoked": True}, dumps=_dumps)


def setup_routes(app: web.Application, links: PortalLinks | None) -> None:
    if links is not None:
        app[LINKS] = links
    app.router.add_post(f"{PREFIX}/tickets/{{id}}/portal-link", issue_link)
    app.router.add_delete(f"{PREFIX}/tickets/{{id}}/portal-link", revoke_links)
