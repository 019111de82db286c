"""``/api/v1/triggers``, ``/api/v1/automations`` and ``/api/v1/tickets/{id}/audit``.

Mounted next to the store's API (``setup_routes``) by the roles that serve it. A bad
definition answers 400 naming the path of the fault (``then[2].template``); a tenant sees
and changes only its own.
"""

from __future__ import annotations

import functools
import json
import sys

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.ids import now_ms
from rules import definitions, field_actions
from rules.conditions import ConditionError
from rules.openapi import PATHS
from ticket_service.api import openapi
from ticket_service.api.auth import authenticated
from ticket_service.api.body import json_object
from ticket_service.api.errors import ApiError, not_found, parse_id, parse_int
from ticket_service.api.tickets import DB, PREFIX, decode_cursor, encode_cursor, iso_ms
from ticket_service.store import audit as audit_store
from ticket_service.store import triggers as store
from ticket_service.store.tables import tickets

__all__ = ["PATHS", "audit_json", "fields", "setup_routes"]
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _json(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def fields(body: dict, kind: str) -> dict:
    """The stored columns of a definition; ``ApiError`` 400 naming the path (shared with the CLI)."""
    try:
        return definitions.definition(body, kind)
    except ConditionError as exc:
        raise ApiError(400, "invalid_field", f"{exc.path}: {exc.message}") from None


def _check_fields(conn: Connection, tenant_id: int, values: dict) -> None:
    """The ``set_field`` actions against the tenant's custom fields, in the saving transaction."""
    try:
        field_actions.check(conn, tenant_id, values["actions"])
    except ConditionError as exc:
        raise ApiError(400, "invalid_field", f"{exc.path}: {exc.message}") from None


def _kind_routes(kind: str):
    plural = f"{kind}s"

    @authenticated
    async def list_all(request: web.Request, tenant_id: int) -> web.Response:
        async with request.app[DB].read() as conn:
            rows = await conn.run_sync(store.listed, kind, tenant_id)
        return _json({"items": [definitions.as_json(r, kind) for r in rows]})

    @authenticated
    async def get_one(request: web.Request, tenant_id: int) -> web.Response:
        item_id = parse_id(request.match_info["id"])
        async with request.app[DB].read() as conn:
            row = await conn.run_sync(store.get, kind, tenant_id, item_id)
        if row is None:
            raise not_found(kind, item_id)
        return _json(definitions.as_json(row, kind))

    @authenticated
    async def create(request: web.Request, tenant_id: int) -> web.Response:
        values = fields(await json_object(request), kind)
        try:
            async with request.app[DB].write() as conn:
                await conn.run_sync(_check_fields, tenant_id, values)
                item_id = await conn.run_sync(store.add, kind, tenant_id, now_ms(), definitions.LIMITS[kind],
                                              **values)
                row = await conn.run_sync(store.get, kind, tenant_id, item_id)
        except store.TooMany as exc:
            raise ApiError(409, f"too_many_{plural}", str(exc)) from None
        return _json(definitions.as_json(row, kind), status=201)

    @authenticated
    async def put(request: web.Request, tenant_id: int) -> web.Response:
        item_id = parse_id(request.match_info["id"])
        values = fields(await json_object(request), kind)
        async with request.app[DB].write() as conn:
            await conn.run_sync(_check_fields, tenant_id, values)
            if not await conn.run_sync(store.replace, kind, tenant_id, item_id, now_ms(), **values):
                raise not_found(kind, item_id)
            row = await conn.run_sync(store.get, kind, tenant_id, item_id)
        return _json(definitions.as_json(row, kind))

    @authenticated
    async def remove(request: web.Request, tenant_id: int) -> web.Response:
        item_id = parse_id(request.match_info["id"])
        async with request.app[DB].write() as conn:
            if not await conn.run_sync(store.remove, kind, tenant_id, item_id):
                raise not_found(kind, item_id)
        return web.Response(status=204)

    return plural, list_all, get_one, create, put, remove


def audit_json(row) -> dict:
    source = ({"kind": "trigger", "id": row.trigger_id} if row.trigger_id is not None
              else {"kind": "automation", "id": row.automation_id})
    return {"id": row.id, "at": iso_ms(row.created_at), **{"source": source | {"name": row.name}},
            "event": {"id": row.event_id, "type": row.event_type}, "result": row.result,
            "error": row.error or None, "actions": list(row.actions or [])}


@authenticated
async def ticket_audit(request: web.Request, tenant_id: int) -> web.Response:
    """GET /tickets/{id}/audit: the firings on the ticket, newest first, keyset-paginated."""
    ticket_id = parse_id(request.match_info["id"])
    limit = parse_int(request.query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    before = decode_cursor(request.query["cursor"]) if "cursor" in request.query else None
    async with request.app[DB].read() as conn:
        found = (await conn.execute(select(tickets.c.id).where(
            tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id))).first()
        if found is None:
            raise not_found("ticket", ticket_id)
        rows = await conn.run_sync(audit_store.page, tenant_id, ticket_id, limit + 1, before)
    page = rows[:limit]
    return _json({"items": [audit_json(r) for r in page], "routing": f"{PREFIX}/tickets/{ticket_id}/routing",
                  "next": encode_cursor(page[-1].id) if len(rows) > limit else None})


def setup_routes(app: web.Application) -> None:
    """Needs the store API's state on ``app`` (``ticket_service.api.setup_api``)."""
    openapi.describe(app, sys.modules[__name__])
    for kind in ("trigger", "automation"):
        plural, list_all, get_one, create, put, remove = _kind_routes(kind)
        app.router.add_get(f"{PREFIX}/{plural}", list_all)
        app.router.add_post(f"{PREFIX}/{plural}", create)
        app.router.add_get(f"{PREFIX}/{plural}/{{id}}", get_one)
        app.router.add_put(f"{PREFIX}/{plural}/{{id}}", put)
        app.router.add_delete(f"{PREFIX}/{plural}/{{id}}", remove)
    app.router.add_get(f"{PREFIX}/tickets/{{id}}/audit", ticket_audit)

