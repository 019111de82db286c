"""``/api/v1/calendars`` and ``/api/v1/sla-policies``: a tenant's business calendars and SLA policies.

Mounted beside the ticket API (``setup_routes``) by the process that serves it. A bad
document answers 400 ``invalid_field`` naming the path at fault; a name taken 409.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.ids import now_ms
from rules import calendar_schema, sla_schema
from rules.calendar_schema import InvalidField
from ticket_service.api import openapi
from ticket_service.api.auth import authenticated
from ticket_service.api.body import json_object
from ticket_service.api.errors import ApiError
from ticket_service.api.tickets import DB, PREFIX
from ticket_service.store import sla as store

_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def invalid(exc: InvalidField) -> ApiError:
    return ApiError(400, "invalid_field", f"field '{exc.path}': {exc.message}")


def check_calendar(doc: Any) -> tuple[str, dict]:
    """(name, stored document), or ApiError 400 naming the field (shared with the CLI)."""
    try:
        cal_name, _, spec = calendar_schema.calendar(doc)
    except InvalidField as exc:
        raise invalid(exc) from None
    return cal_name, spec


def check_policy(conn: Connection, tenant_id: int, doc: Any) -> dict:
    """A policy's columns, its calendar known to the tenant; ApiError 400 otherwise."""
    try:
        values = sla_schema.policy(doc)
    except InvalidField as exc:
        raise invalid(exc) from None
    if values["calendar"] is not None and store.get_calendar(conn, tenant_id, values["calendar"]) is None:
        raise invalid(InvalidField("calendar", f"the tenant has no calendar {values['calendar']!r}"))
    return values


def _conflict(what: str, name: str) -> ApiError:
    return ApiError(409, "conflict", f"a {what} named {name!r} exists")


def _not_found(what: str, name: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} {name!r} not found")


def add_calendar(conn: Connection, tenant_id: int, doc: Any, now: int) -> dict:
    cal_name, spec = check_calendar(doc)
    try:
        store.add_calendar(conn, tenant_id, cal_name, spec, now)
    except IntegrityError:
        raise _conflict("calendar", cal_name) from None
    except store.Full as exc:
        raise ApiError(400, "too_many", str(exc)) from None
    return spec


def replace_calendar(conn: Connection, tenant_id: int, name: str, doc: Any, now: int) -> dict:
    if isinstance(doc, dict):
        doc = {"name": name, **doc}
    cal_name, spec = check_calendar(doc)
    if cal_name != name:
        raise invalid(InvalidField("name", "must be the name in the path"))
    if not store.replace_calendar(conn, tenant_id, name, spec, now):
        raise _not_found("calendar", name)
    return spec


def remove_calendar(conn: Connection, tenant_id: int, name: str) -> None:
    users = store.policies_using(conn, tenant_id, name)
    if users:
        raise ApiError(409, "in_use", f"calendar {name!r} is used by SLA policies {', '.join(users)}")
    if not store.remove_calendar(conn, tenant_id, name):
        raise _not_found("calendar", name)


def add_policy(conn: Connection, tenant_id: int, doc: Any, now: int) -> dict:
    values = check_policy(conn, tenant_id, doc)
    try:
        store.add_policy(conn, tenant_id, values, now)
    except IntegrityError:
        raise _conflict("policy", values["name"]) from None
    except store.Full as exc:
        raise ApiError(400, "too_many", str(exc)) from None
    return sla_schema.to_json(store.get_policy(conn, tenant_id, values["name"]))


def replace_policy(conn: Connection, tenant_id: int, name: str, doc: Any, now: int) -> dict:
    if isinstance(doc, dict):
        doc = {"name": name, **doc}
    values = check_policy(conn, tenant_id, doc)
    if values["name"] != name:
        raise invalid(InvalidField("name", "must be the name in the path"))
    if not store.replace_policy(conn, tenant_id, name, values, now):
        raise _not_found("policy", name)
    return sla_schema.to_json(store.get_policy(conn, tenant_id, name))


def remove_policy(conn: Connection, tenant_id: int, name: str) -> None:
    if not store.remove_policy(conn, tenant_id, name):
        raise _not_found("policy", name)


def show_calendar(conn: Connection, tenant_id: int, name: str) -> dict:
    row = store.get_calendar(conn, tenant_id, name)
    if row is None:
        raise _not_found("calendar", name)
    return row.spec


def show_policy(conn: Connection, tenant_id: int, name: str) -> dict:
    row = store.get_policy(conn, tenant_id, name)
    if row is None:
        raise _not_found("policy", name)
    return sla_schema.to_json(row)


def list_calendars(conn: Connection, tenant_id: int) -> list[dict]:
    return [r.spec for r in store.list_calendars(conn, tenant_id)]


def list_policies(conn: Connection, tenant_id: int) -> list[dict]:
    return [sla_schema.to_json(r) for r in store.list_policies(conn, tenant_id)]


# -- routes ----------------------------------------------------------------------------------

def _collection(listing: Callable, adding: Callable):
    @authenticated
    async def get(request: web.Request, tenant_id: int) -> web.Response:
        return _json({"items": await request.app[DB].run_read(listing, tenant_id)})

    @authenticated
    async def post(request: web.Request, tenant_id: int) -> web.Response:
        doc = await json_object(request)
        return _json(await request.app[DB].run_write(adding, tenant_id, doc, now_ms()), status=201)
    return get, post


def _item(showing: Callable, replacing: Callable, removing: Callable):
    @authenticated
    async def get(request: web.Request, tenant_id: int) -> web.Response:
        return _json(await request.app[DB].run_read(showing, tenant_id, request.match_info["name"]))

    @authenticated
    async def put(request: web.Request, tenant_id: int) -> web.Response:
        doc = await json_object(request)
        name = request.match_info["name"]
        return _json(await request.app[DB].run_write(replacing, tenant_id, name, doc, now_ms()))

    @authenticated
    async def remove(request: web.Request, tenant_id: int) -> web.Response:
        await request.app[DB].run_write(removing, tenant_id, request.match_info["name"])
        return web.Response(status=204)
    return get, put, remove


def setup_routes(app: web.Application) -> None:
    """Needs the ticket API's state (``ticket_service.api.setup_api``) on ``app``."""
    openapi.describe(app, sys.modules[__name__])
    for path, collection, item in (
        ("calendars", (list_calendars, add_calendar), (show_calendar, replace_calendar, remove_calendar)),
        ("sla-policies", (list_policies, add_policy), (show_policy, replace_policy, remove_policy)),
    ):
        get, post = _collection(*collection)
        app.router.add_get(f"{PREFIX}/{path}", get)
        app.router.add_post(f"{PREFIX}/{path}", post)
        one, put, remove = _item(*item)
        app.router.add_get(f"{PREFIX}/{path}/{{name}}", one)
        app.router.add_put(f"{PREFIX}/{path}/{{name}}", put)
        app.router.add_delete(f"{PREFIX}/{path}/{{name}}", remove)


_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
_ERRORS = {str(s): {"description": d, "content": {"application/json": {"schema": _ERROR}}}
           for s, d in ((400, "a field at fault, named in the message"), (401, "no valid API key"),
                        (404, "no such name"), (409, "the name is taken, or the calendar is in use"))}
_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-4]):[0-5][0-9]$"}
CALENDAR_SCHEMA = {"type": "object", "required": ["name", "timezone", "hours"], "properties": {
    "name": {"type": "string", "maxLength": 100}, "timezone": {"type": "string", "description": "IANA zone"},
    "hours": {"type": "object", "additionalProperties": {"type": "array", "items": {
        "type": "array", "items": _HHMM, "minItems": 2, "maxItems": 2}}},
    "country": {"type": ["string", "null"]}, "subdivision": {"type": ["string", "null"]},
    "extra_holidays": {"type": "array", "items": {"type": "string", "format": "date"}},
    "workdays": {"type": "array", "items": {"oneOf": [
        {"type": "string", "format": "date"},
        {"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                          "as": {"enum": list(calendar_schema.WEEKDAYS)}}}]}}}}
POLICY_SCHEMA = {"type": "object", "required": ["name", "targets"], "properties": {
    "name": {"type": "string", "maxLength": 100}, "if": {"type": "object"},
    "targets": {"type": "object", "minProperties": 1, "properties": {
        k: {"type": "integer", "minimum": 1} for k in sla_schema.TARGET_KEYS}},
    "calendar": {"type": ["string", "null"]}, "warn_before_s": {"type": "integer", "minimum": 0},
    "pause_in": {"type": "array", "items": {"enum": list(sla_schema.PAUSABLE)}},
    "position": {"type": "integer", "minimum": 1}}}


def _paths(path: str, schema: dict, what: str) -> dict:
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    one = {"content": {"application/json": {"schema": schema}}}
    many = {"content": {"application/json": {"schema": {"type": "object", "properties": {
        "items": {"type": "array", "items": schema}}}}}}
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        f"/{path}": {
            "get": {"summary": f"list the tenant's {what}s", "responses": {"200": {"description": "ok", **many},
                                                                          **_ERRORS}},
            "post": {"summary": f"add a {what}", "requestBody": body,
                     "responses": {"201": {"description": "stored", **one}, **_ERRORS}}},
        f"/{path}/{{name}}": {
            "parameters": name,
            "get": {"summary": f"one {what}", "responses": {"200": {"description": "ok", **one}, **_ERRORS}},
            "put": {"summary": f"replace a {what}", "requestBody": body,
                    "responses": {"200": {"description": "stored", **one}, **_ERRORS}},
            "delete": {"summary": f"remove a {what}", "responses": {"204": {"description": "removed"}, **_ERRORS}}},
    }


PATHS: dict = {**_paths("calendars", CALENDAR_SCHEMA, "business calendar"),
               **_paths("sla-policies", POLICY_SCHEMA, "SLA policy")}
