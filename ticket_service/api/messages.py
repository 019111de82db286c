"""``GET /api/v1/messages?kind=bounce``: inbound messages no ticket holds, for people to see.

A bounce of mail we know joins that mail's ticket; one of mail we do not know (a forged
sender, a message sent from elsewhere) has nowhere to go, so it is listed here.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import Row

from core.json_http import json_response
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import invalid_parameter, parse_int
from ticket_service.api.spec import TIME, obj, operation, page_of
from ticket_service.api.tickets import (
    DB,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PREFIX,
    decode_cursor,
    encode_cursor,
    iso_ms,
)
from ticket_service.store import unplaced
from ticket_service.store.tables import messages

_PARAMS = frozenset({"kind", "limit", "cursor"})


def item_json(row: Row) -> dict:
    return {
        "id": row.id, "received_at": iso_ms(row.created_at), "from": row.sender, "from_name": row.sender_name,
        "subject": row.subject, "channel": row.channel, "account": row.account, "auto_reason": row.auto_reason,
        "bounce": unplaced.report(row.headers),
    }


@authenticated
async def list_messages(request: web.Request, tenant_id: int) -> web.Response:
    """Newest first, keyset-paginated by id as ``GET /tickets`` is; ``total`` counts them all."""
    query = request.query
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise invalid_parameter(unknown[0], "is not a known parameter")
    kind = query.get("kind")
    if kind not in unplaced.KINDS:
        raise invalid_parameter("kind", f"must be one of {'|'.join(unplaced.KINDS)}")
    limit = parse_int(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    stmt = unplaced.listing(kind, tenant_id)
    if "cursor" in query:
        stmt = stmt.where(messages.c.id < decode_cursor(query["cursor"]))
    async with request.app[DB].read_may_lag() as conn:
        rows = (await conn.execute(stmt.limit(limit + 1))).all()
        total = (await conn.execute(unplaced.count(kind, tenant_id))).scalar_one()
    page = rows[:limit]
    following = encode_cursor(page[-1].id) if len(rows) > limit else None
    return json_response({"items": [item_json(r) for r in page], "total": total, "next": following})


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/messages", list_messages)


_ITEM = obj(("id", "received_at", "from", "from_name", "subject", "channel", "account", "auto_reason", "bounce"),
            id={"type": "integer"}, received_at=TIME, **{"from": {"type": "string"}}, from_name={"type": "string"},
            subject={"type": "string"}, channel={"type": "string"}, account={"type": "string"},
            auto_reason={"type": "string"}, bounce={"type": ["object", "null"]})
PATHS = {
    "/messages": {"get": operation(
        "Inbound messages no ticket holds (kind=bounce: bounces of mail we do not know)",
        {200: ("A page of messages", page_of(_ITEM, total={"type": "integer"}))}, 400,
        params=[{"name": "kind", "in": "query", "required": True, "schema": {"enum": list(unplaced.KINDS)}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}}])},
}
