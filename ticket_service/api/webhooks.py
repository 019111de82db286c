"""``/api/v1/webhooks``: a tenant's webhooks out, their deliveries, and replays (docs/webhooks.md).

The signing secret is shown once, in the answer that creates the webhook; it is stored
sealed with the secret key. A URL whose host resolves to a non-public address is refused
unless the tenant allows private targets (``switchboard webhook allow-private``).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Row

from core.credentials import CredentialError, seal
from core.ids import now_ms
from ticket_service.api import body as api_body
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import ApiError, invalid_parameter, not_found, parse_id, parse_int
from ticket_service.api.spec import ref
from ticket_service.api.tickets import (
    DB,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PREFIX,
    SECRET,
    decode_cursor,
    encode_cursor,
    iso_ms,
)
from ticket_service.store import deliveries
from ticket_service.store import webhooks as store
from ticket_service.webhook_url import TargetError, check_target

_FIELDS = frozenset({"url", "events", "secret"})
_EVENT = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){0,3}\Z")
MAX_EVENTS = 50
SECRET_PREFIX = "whsec_"
_SECRET = re.compile(r"[\x21-\x7e]{16,200}\Z")  # printable ASCII, no spaces
_LIST_PARAMS = frozenset({"status", "limit", "cursor"})
_json = functools.partial(web.json_response, dumps=functools.partial(json.dumps, ensure_ascii=False))


def _field(name: str, why: str) -> ApiError:
    return ApiError(400, "invalid_field", f"field {name!r} {why}")


def webhook_json(row: Row) -> dict:
    return {"id": row.id, "url": row.url, "events": list(row.events or []), "created_at": iso_ms(row.created_at)}


def delivery_json(row: Row) -> dict:
    return {
        "id": row.id, "webhook_id": row.webhook_id, "event": row.event_type, "event_id": row.event_id,
        "ticket_id": row.ticket_id, "status": row.status, "attempts": row.attempts,
        "response_code": row.response_code, "last_error": row.last_error or None,
        "created_at": iso_ms(row.created_at), "last_attempt_at": iso_ms(row.last_attempt_at),
        "next_attempt_at": iso_ms(row.next_at) if row.status in (deliveries.PENDING, deliveries.FAILED) else None,
        "delivered_at": iso_ms(row.delivered_at),
    }


def event_types(value: Any) -> list[str]:
    """The ``events`` field: event types or "*", without repeats; ApiError naming the entry."""
    if not isinstance(value, list) or not value:
        raise _field("events", 'must be a non-empty list of event types, or ["*"] for every event')
    if len(value) > MAX_EVENTS:
        raise _field("events", f"has more than {MAX_EVENTS} entries")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not (item == store.ANY or _EVENT.match(item)):
            raise _field(f"events[{i}]", 'must be an event type such as "ticket.created", or "*"')
    return list(dict.fromkeys(value))


async def _fields(request: web.Request, tenant_id: int) -> tuple[str, list[str], str]:
    doc = await api_body.json_object(request)
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise _field(unknown[0], "is not a known field")
    events = event_types(doc.get("events"))
    secret = doc.get("secret")
    if secret is None:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    elif not isinstance(secret, str) or not _SECRET.match(secret):
        raise _field("secret", "must be 16 to 200 printable ASCII characters without spaces")
    url = doc.get("url")
    db = request.app[DB]
    async with db.read() as conn:
        allow_private = await conn.run_sync(store.allows_private, tenant_id)
    try:
        await check_target(url, allow_private)
    except TargetError as exc:
        raise _field("url", str(exc)) from None
    return url, events, secret


@authenticated
async def create_webhook(request: web.Request, tenant_id: int) -> web.Response:
    """201 with the webhook and its signing secret (the one time it is shown)."""
    url, events, secret = await _fields(request, tenant_id)
    try:
        sealed = seal(request.app.get(SECRET, ""), secret)
    except CredentialError:
        raise ApiError(503, "no_secret_key", "the server has no secret key to store signing secrets with") from None
    db = request.app[DB]
    try:
        webhook_id = await db.run_write(store.create, tenant_id, url, events, sealed, now_ms())
    except store.LimitReached as exc:
        raise ApiError(409, "limit_reached", str(exc)) from None
    async with db.read() as conn:
        row = await conn.run_sync(store.get, tenant_id, webhook_id)
    return _json(webhook_json(row) | {"secret": secret}, status=201)


@authenticated
async def list_webhooks(request: web.Request, tenant_id: int) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = await conn.run_sync(store.listing, tenant_id)
    return _json({"items": [webhook_json(r) for r in rows]})


async def _webhook(request: web.Request, tenant_id: int) -> Row:
    webhook_id = parse_id(request.match_info["id"])
    async with request.app[DB].read() as conn:
        row = await conn.run_sync(store.get, tenant_id, webhook_id)
    if row is None:
        raise not_found("webhook", webhook_id)
    return row


@authenticated
async def get_webhook(request: web.Request, tenant_id: int) -> web.Response:
    return _json(webhook_json(await _webhook(request, tenant_id)))


@authenticated
async def delete_webhook(request: web.Request, tenant_id: int) -> web.Response:
    """204; its deliveries go with it, pending ones included."""
    webhook_id = parse_id(request.match_info["id"])
    if not await request.app[DB].run_write(store.remove, tenant_id, webhook_id):
        raise not_found("webhook", webhook_id)
    return web.Response(status=204)


@authenticated
async def list_deliveries(request: web.Request, tenant_id: int) -> web.Response:
    """Newest first, keyset-paginated by id; ``status`` filters."""
    query = request.query
    unknown = sorted(set(query) - _LIST_PARAMS)
    if unknown:
        raise invalid_parameter(unknown[0], "is not a known parameter")
    status = query.get("status")
    if status is not None and status not in deliveries.STATUSES:
        raise invalid_parameter("status", f"must be one of {'|'.join(deliveries.STATUSES)}")
    limit = parse_int(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    before = decode_cursor(query["cursor"]) if "cursor" in query else None
    hook = await _webhook(request, tenant_id)
    async with request.app[DB].read() as conn:
        rows = await conn.run_sync(deliveries.listing, tenant_id, hook.id, status, before, limit + 1)
    page = rows[:limit]
    following = encode_cursor(page[-1].id) if len(rows) > limit else None
    return _json({"items": [delivery_json(r) for r in page], "next": following})


@authenticated
async def replay_delivery(request: web.Request, tenant_id: int) -> web.Response:
    """202: a new attempt is due now, whatever the delivery's status, with a new retry window."""
    hook = await _webhook(request, tenant_id)
    delivery_id = parse_id(request.match_info["delivery"], "delivery")
    row = await request.app[DB].run_write(deliveries.replay, tenant_id, hook.id, delivery_id, now_ms())
    if row is None:
        raise not_found("delivery", delivery_id)
    return _json(delivery_json(row), status=202)


# OpenAPI 3.1 path items of these routes (gathered by the API's OpenAPI document).
_ERROR = ref("Error")
_TIME = {"type": ["string", "null"], "format": "date-time"}
_WEBHOOK = {"type": "object", "required": ["id", "url", "events", "created_at"], "properties": {
    "id": {"type": "integer"}, "url": {"type": "string", "format": "uri"},
    "events": {"type": "array", "items": {"type": "string"}}, "created_at": _TIME}}
_DELIVERY = {"type": "object", "properties": {
    "id": {"type": "integer"}, "webhook_id": {"type": "integer"}, "event": {"type": "string"},
    "event_id": {"type": ["string", "null"]}, "ticket_id": {"type": ["integer", "null"]},
    "status": {"enum": list(deliveries.STATUSES)}, "attempts": {"type": "integer"},
    "response_code": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
    "created_at": _TIME, "last_attempt_at": _TIME, "next_attempt_at": _TIME, "delivered_at": _TIME}}


def _answer(description: str, schema: dict | None = None) -> dict:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    words = {400: "bad request (names the parameter or field)", 401: "missing or invalid API key",
             404: "no such webhook or delivery", 409: "the tenant has the most webhooks it may have",
             413: "body too large", 503: "the server has no secret key"}
    return {**{str(s): _answer(words[s], _ERROR) for s in statuses}, "default": _answer("Any other error", _ERROR)}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_SECURITY = [{"apiKey": []}]
PATHS: dict = {
    "/webhooks": {
        "post": {
            "summary": "Create a webhook; the answer holds its signing secret, shown this once",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["url", "events"], "additionalProperties": False,
                "properties": {
                    "url": {"type": "string", "format": "uri", "maxLength": 2048,
                            "description": "http or https, no credentials; a non-public address is "
                                           "refused unless the tenant allows private targets"},
                    "events": {"type": "array", "minItems": 1, "maxItems": MAX_EVENTS,
                               "items": {"type": "string"}, "description": 'event types, or "*"'},
                    "secret": {"type": "string", "minLength": 16, "maxLength": 200,
                               "description": "signing secret; generated when absent"}}}}}},
            "responses": {"201": _answer("the webhook, with its secret", {"allOf": [_WEBHOOK, {
                "type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}}]}),
                **_errors(400, 401, 409, 413, 503)},
        },
        "get": {
            "summary": "The tenant's webhooks (without secrets)",
            "security": _SECURITY,
            "responses": {"200": _answer("webhooks", {"type": "object", "properties": {
                "items": {"type": "array", "items": _WEBHOOK}}}), **_errors(401)},
        },
    },
    "/webhooks/{id}": {
        "parameters": [_ID],
        "get": {"summary": "One webhook", "security": _SECURITY,
                "responses": {"200": _answer("the webhook", _WEBHOOK), **_errors(400, 401, 404)}},
        "delete": {"summary": "Delete a webhook and its deliveries", "security": _SECURITY,
                   "responses": {"204": _answer("deleted"), **_errors(400, 401, 404)}},
    },
    "/webhooks/{id}/deliveries": {
        "parameters": [_ID],
        "get": {
            "summary": "The webhook's deliveries, newest first",
            "security": _SECURITY,
            "parameters": [
                {"name": "status", "in": "query", "schema": {"enum": list(deliveries.STATUSES)}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "the `next` of the previous page"}],
            "responses": {"200": _answer("a page of deliveries", {"type": "object", "properties": {
                "items": {"type": "array", "items": _DELIVERY}, "next": {"type": ["string", "null"]}}}),
                **_errors(400, 401, 404)},
        },
    },
    "/webhooks/{id}/deliveries/{delivery}/replay": {
        "parameters": [_ID, {"name": "delivery", "in": "path", "required": True,
                             "schema": {"type": "integer", "minimum": 1}}],
        "post": {
            "summary": "Attempt a delivery again now (also a delivered or dead one), with a new retry window",
            "security": _SECURITY,
            "responses": {"202": _answer("the delivery, due now", _DELIVERY), **_errors(400, 401, 404)},
        },
    },
}


def setup_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/webhooks", create_webhook)
    app.router.add_get(f"{PREFIX}/webhooks", list_webhooks)
    app.router.add_get(f"{PREFIX}/webhooks/{{id}}", get_webhook)
    app.router.add_delete(f"{PREFIX}/webhooks/{{id}}", delete_webhook)
    app.router.add_get(f"{PREFIX}/webhooks/{{id}}/deliveries", list_deliveries)
    app.router.add_post(f"{PREFIX}/webhooks/{{id}}/deliveries/{{delivery}}/replay", replay_delivery)
