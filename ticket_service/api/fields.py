"""Custom ticket fields of a tenant: ``/api/v1/fields``. Values are set with
``PATCH /tickets/{id} {"fields": {...}}`` (``routing.update_ticket``) and filtered with
``GET /tickets?field.NAME=...`` (``tickets.list_tickets``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from core.ids import now_ms
from core.json_http import json_response
from ticket_service import field_schema
from ticket_service.api.auth import authenticated
from ticket_service.api.body import json_object
from ticket_service.api.errors import ApiError
from ticket_service.api.spec import items_of, obj, operation, ref
from ticket_service.api.tickets import DB, PREFIX
from ticket_service.field_schema import Field, FieldError
from ticket_service.store import fields as fields_store


def api_error(exc: FieldError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def _name(request: web.Request) -> str:
    raw = request.match_info["name"]
    try:
        return field_schema.name(raw)
    except FieldError:
        raise ApiError(404, "not_found", f"field {raw[:40]!r} not found") from None


def checked_values(defs: Mapping[str, Field], raw: Any) -> dict[str, Any]:
    """``{"name": value | null}`` from a request, each value checked against its field."""
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_field", "fields must be an object mapping field names to values")
    out = {}
    for name, value in raw.items():
        field = defs.get(name)
        if field is None:
            raise ApiError(400, "invalid_field", f"fields.{name[:40]}: is not a field of this tenant")
        try:
            out[name] = None if value is None else field_schema.value(field, value)
        except FieldError as exc:
            raise api_error(exc) from None
    return out


@authenticated
async def list_fields(request: web.Request, tenant_id: int) -> web.Response:
    async with request.app[DB].read() as conn:
        defs = await conn.run_sync(fields_store.definitions, tenant_id)
    return json_response({"items": [f.to_json() for f in defs.values()]})


@authenticated
async def get_field(request: web.Request, tenant_id: int) -> web.Response:
    name = _name(request)
    async with request.app[DB].read() as conn:
        field = (await conn.run_sync(fields_store.definitions, tenant_id)).get(name)
    if field is None:
        raise ApiError(404, "not_found", f"field {name!r} not found")
    return json_response(field.to_json())


@authenticated
async def create_field(request: web.Request, tenant_id: int) -> web.Response:
    """POST /fields {"name", "type", "choices"?, "required"?, "label"?}."""
    try:
        field = field_schema.definition(await json_object(request))
        async with request.app[DB].write() as conn:
            await conn.run_sync(fields_store.add_field, tenant_id, field, now_ms())
    except FieldError as exc:
        raise api_error(exc) from None
    except IntegrityError:  # the same name added by two requests at once
        raise ApiError(409, "conflict", f"a field named {field.name} exists") from None
    return json_response(field.to_json(), status=201)


@authenticated
async def update_field(request: web.Request, tenant_id: int) -> web.Response:
    """PUT /fields/{name}: label, required, choices; name and type stay."""
    name = _name(request)
    body = await json_object(request)
    async with request.app[DB].write() as conn:
        before = (await conn.run_sync(fields_store.definitions, tenant_id)).get(name)
        if before is None:
            raise ApiError(404, "not_found", f"field {name!r} not found")
        try:
            field = field_schema.definition(body, before)
        except FieldError as exc:
            raise api_error(exc) from None
        await conn.run_sync(fields_store.update_field, tenant_id, field, now_ms())
    return json_response(field.to_json())


@authenticated
async def delete_field(request: web.Request, tenant_id: int) -> web.Response:
    """DELETE /fields/{name}: the field and every ticket's value of it."""
    name = _name(request)
    async with request.app[DB].write() as conn:
        if not await conn.run_sync(fields_store.remove_field, tenant_id, name):
            raise ApiError(404, "not_found", f"field {name!r} not found")
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/fields", list_fields)
    app.router.add_post(f"{PREFIX}/fields", create_field)
    app.router.add_get(f"{PREFIX}/fields/{{name}}", get_field)
    app.router.add_put(f"{PREFIX}/fields/{{name}}", update_field)
    app.router.add_delete(f"{PREFIX}/fields/{{name}}", delete_field)


_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"}
_CHOICES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": field_schema.MAX_CHOICE},
            "minItems": 1, "maxItems": field_schema.MAX_CHOICES}
_LABEL = {"type": "string", "maxLength": field_schema.MAX_LABEL}
SCHEMAS = {
    "Field": obj(("name", "type", "label", "required", "choices"), name=_NAME,
                 type={"enum": list(field_schema.TYPES)}, label=_LABEL, required={"type": "boolean"},
                 choices={"anyOf": [_CHOICES, {"type": "null"}]}),
    "FieldValues": {
        "type": "object", "propertyNames": _NAME,
        "description": "custom field values by field name: text, number, ISO date, choice or list of choices",
        "additionalProperties": {"type": ["string", "number", "array"], "items": {"type": "string"}},
    },
}
_PARAM = [{"name": "name", "in": "path", "required": True, "schema": _NAME}]
_NEW = obj(("name", "type"), name=_NAME, type={"enum": list(field_schema.TYPES)}, label=_LABEL,
           required={"type": "boolean"}, choices=_CHOICES)
_CHANGE = obj((), label=_LABEL, required={"type": "boolean"}, choices=_CHOICES, name=_NAME,
              type={"enum": list(field_schema.TYPES)})
PATHS = {
    "/fields": {
        "get": operation("The tenant's custom fields, oldest first", {200: ("Fields", items_of(ref("Field")))}),
        "post": operation("Add a custom field", {201: ("The field", ref("Field"))}, 400, 409, 413, body=_NEW),
    },
    "/fields/{name}": {
        "get": operation("One custom field", {200: ("The field", ref("Field"))}, 404, params=_PARAM),
        "put": operation("Change a field's label, required flag or choices (values stored stay)",
                         {200: ("The field", ref("Field"))}, 400, 404, 413, body=_CHANGE, params=_PARAM),
        "delete": operation("Remove a field and every ticket's value of it", {204: ("Removed", None)}, 404,
                            params=_PARAM),
    },
}
