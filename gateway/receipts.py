"""``GET /receipts/{id}``: the submitter of a form (or SDK message) learns its ticket reference.

Unauthenticated: a receipt is an unguessable id, and it tells only a ticket number and state.
"""

from __future__ import annotations

import json
import re

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from connectors.push import GATEWAY, Gateway, Reject, error_body
from core import keys
from core.json_http import json_response
from core.redis import REDIS_ERRORS

log = structlog.get_logger()
_RECEIPT = re.compile(r"^[A-Za-z0-9_-]{32}$")  # connectors.push.receipt_token: 24 random bytes


async def get_receipt(request: web.Request) -> web.StreamResponse:
    try:
        return await _receipt(request, request.app[GATEWAY])
    except Reject as exc:
        return json_response(error_body(exc.reason, exc.message), status=exc.status)
    except (*REDIS_ERRORS, SQLAlchemyError, OSError):
        log.error("receipt.lookup_failed", exc_info=True)
        return json_response(error_body("unavailable", "try again later"), status=503,
                                 headers={"Retry-After": "5"})


async def _receipt(request: web.Request, gw: Gateway) -> web.StreamResponse:
    receipt = request.match_info["id"]
    raw = await gw.redis.get(keys.receipt_key(receipt)) if _RECEIPT.match(receipt) else None
    if raw is None:
        raise Reject(404, "unknown_receipt", f"no receipt {receipt!r} (or it has expired)")
    doc = json.loads(raw)
    row = await gw.history.message_ticket(doc["tenant_id"], doc["channel"], doc["dedup_key"])
    body: dict = {"receipt": receipt, "status": "queued", "ticket": None}
    if row is not None:
        body["status"] = "received"
        if row.ticket_id is not None:
            body.update(status="ticket", ticket={"number": row.number, "status": row.status})
    return json_response(body, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/receipts/{id}", get_receipt)
