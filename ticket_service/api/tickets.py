"""Read API over tickets, messages and attachments; every query is filtered by tenant."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy import Select, select
from sqlalchemy.engine import Row

from core.blobs import BlobStore
from core.json_http import json_response
from ticket_service.api import field_filters
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import ApiError, invalid_parameter, not_found, parse_id, parse_int
from ticket_service.api.schemas import SCHEMAS  # noqa: F401  (collected by openapi)
from ticket_service.api.spec import ID_PARAM, obj, operation, page_of, ref
from ticket_service.store import fields as fields_store
from ticket_service.store import reply_tokens
from ticket_service.store import sla as sla_store
from ticket_service.store.db import Database
from ticket_service.store.tables import (
    agents,
    attachments,
    channel_accounts,
    customers,
    messages,
    outbox,
    tickets,
)

DB = web.AppKey("api_db", Database)
BLOBS = web.AppKey("api_blobs", BlobStore)
SECRET = web.AppKey("api_secret", str)

PREFIX = "/api/v1"
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_LIST_PARAMS = frozenset({"status", "channel", "assignee", "customer", "auto", "limit", "cursor"})
_BOOLEANS = {"true": True, "false": False}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MESSAGE_COLS = (
    messages.c.id, messages.c.direction, messages.c.channel, messages.c.sender, messages.c.sender_name,
    messages.c.subject, messages.c.text, messages.c.html, messages.c.auto_reason, messages.c.created_at,
    messages.c.kind, messages.c.author_id, messages.c.ticket_id, messages.c.thread_rule, messages.c.thread_trail,
)
_DELIVERY_COLS = (
    outbox.c.message_id, outbox.c.status, outbox.c.mode, outbox.c.channel, outbox.c.recipient, outbox.c.attempts,
    outbox.c.last_error_code, outbox.c.last_error, outbox.c.sent_at, outbox.c.next_attempt_at,
)
_ATTACHMENT_COLS = (
    attachments.c.id, attachments.c.message_id, attachments.c.filename, attachments.c.content_type,
    attachments.c.size, attachments.c.sha256, attachments.c.inline,
)


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds: ``2026-11-20T09:30:00.123Z``."""
    if ms is None:
        return None
    t = _EPOCH + timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The last id a page ended on; 400 for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
        return parse_int(raw, "cursor")
    except (binascii.Error, UnicodeDecodeError, ValueError, ApiError):
        raise invalid_parameter("cursor", "is not a cursor this API returned") from None


def _ticket_select(tenant_id: int) -> Select:
    return (
        select(
            tickets.c.id, tickets.c.number, tickets.c.subject, tickets.c.status, tickets.c.channel,
            tickets.c.priority, tickets.c.tags, tickets.c.created_at, tickets.c.updated_at,
            tickets.c.auto, tickets.c.auto_reason, tickets.c.fields, customers.c.id.label("customer_id"), customers.c.name.label("customer_name"),
            customers.c.vip_tier, agents.c.id.label("assignee_id"), agents.c.name.label("assignee_name"),
        )
        .select_from(
            tickets.join(customers, customers.c.id == tickets.c.customer_id)
            .outerjoin(agents, agents.c.id == tickets.c.assignee_id)
        )
        .where(tickets.c.tenant_id == tenant_id)
    )


def _listed(query: MultiMapping[str], name: str) -> list[str]:
    """Values of a filter given as ``a,b`` or repeated (``?status=a&status=b``)."""
    return [v for raw in query.getall(name, []) for v in raw.split(",") if v]


def _filtered(stmt: Select, query: MultiMapping[str]) -> Select:
    for name, column in (("status", tickets.c.status), ("channel", tickets.c.channel)):
        if values := _listed(query, name):
            stmt = stmt.where(column.in_(values))
    assignee = query.get("assignee")
    if assignee == "none":
        stmt = stmt.where(tickets.c.assignee_id.is_(None))
    elif assignee is not None:
        stmt = stmt.where(tickets.c.assignee_id == parse_id(assignee, "assignee"))
    if "customer" in query:
        stmt = stmt.where(tickets.c.customer_id == parse_id(query["customer"], "customer"))
    if "auto" in query:
        if query["auto"] not in _BOOLEANS:
            raise invalid_parameter("auto", "must be true or false")
        stmt = stmt.where(tickets.c.auto.is_(_BOOLEANS[query["auto"]]))
    if "cursor" in query:
        stmt = stmt.where(tickets.c.id < decode_cursor(query["cursor"]))
    return stmt


def ticket_json(row: Row) -> dict:
    assignee = {"id": row.assignee_id, "name": row.assignee_name} if row.assignee_id is not None else None
    return {
        "id": row.id, "number": row.number, "subject": row.subject, "status": row.status,
        "channel": row.channel, "priority": row.priority,
        "customer": {"id": row.customer_id, "name": row.customer_name, "vip_tier": row.vip_tier},
        "assignee": assignee, "tags": list(row.tags or []),
        "auto": bool(row.auto), "auto_reason": row.auto_reason or None,
        "created_at": iso_ms(row.created_at), "updated_at": iso_ms(row.updated_at),
        "fields": dict(row.fields or {}),
    }


def sla_json(clocks: list[Row]) -> dict | None:
    """The ticket's SLA clocks by metric (null without a policy); a paused clock has no due
    time but the business time it has left."""
    if not clocks:
        return None
    body: dict = {"policy": clocks[0].policy}
    for c in clocks:
        body[c.metric] = {"state": c.state, "due_at": iso_ms(c.due_at), "met_at": iso_ms(c.met_at),
                          "breached_at": iso_ms(c.breached_at)}
        if c.state == "paused":
            body[c.metric]["remaining_s"] = max(0, c.target_ms - c.used_ms) / 1000
    return body


def attachment_json(row: Row) -> dict:
    return {
        "id": row.id, "filename": row.filename, "content_type": row.content_type, "size": row.size,
        "sha256": row.sha256, "inline": bool(row.inline), "url": f"{PREFIX}/attachments/{row.id}",
    }


def threading_json(row: Row) -> dict | None:
    """How the normalizer threaded a message: the rule that placed it and every rule tried.
    None for messages it did not thread (agents' replies)."""
    if not row.thread_rule:
        return None
    trail = [{"rule": rule, "hit": hit, "why": why} for rule, hit, why in row.thread_trail or []]
    return {"rule": row.thread_rule, "trail": trail}


def delivery_json(row: Row | None) -> dict | None:
    """How an outgoing reply's sending went: queued | sent | delivered | failed, attempts, the error."""
    if row is None:
        return None
    error = {"code": row.last_error_code, "message": row.last_error} if row.last_error_code else None
    body = {"status": row.status, "channel": row.channel, "attempts": row.attempts, "error": error,
            "sent_at": iso_ms(row.sent_at)}
    if row.mode == "callback":
        body["callback"] = {"number": row.recipient}  # a phone ticket's reply is a call to make
    elif row.status == "queued" and row.attempts:
        body["next_attempt_at"] = iso_ms(row.next_attempt_at)
    return body


def message_json(row: Row, files: list[Row], delivery: Row | None = None) -> dict:
    body = {name: getattr(row, name) for name in (
        "id", "direction", "channel", "sender", "sender_name", "subject", "text", "html", "auto_reason",
    )}
    if row.direction == "out":
        body |= {"kind": row.kind, "author_id": row.author_id, "delivery": delivery_json(delivery)}
    return body | {"attachments": [attachment_json(f) for f in files], "created_at": iso_ms(row.created_at),
                   "threading": threading_json(row)}


async def message_rows(conn, tenant_id: int, where) -> tuple[list[Row], dict[int, list[Row]], dict[int, Row]]:
    """Messages matching ``where`` (oldest first), their files and their outbox rows, by message id."""
    msgs = (await conn.execute(
        select(*_MESSAGE_COLS).where(messages.c.tenant_id == tenant_id, where)
        .order_by(messages.c.created_at, messages.c.id)
    )).all()
    ids = [m.id for m in msgs]
    files = (await conn.execute(
        select(*_ATTACHMENT_COLS).where(attachments.c.tenant_id == tenant_id, attachments.c.message_id.in_(ids))
        .order_by(attachments.c.id)
    )).all() if ids else []
    out_ids = [m.id for m in msgs if m.direction == "out"]
    sent = (await conn.execute(select(*_DELIVERY_COLS).where(
        outbox.c.tenant_id == tenant_id, outbox.c.message_id.in_(out_ids)))).all() if out_ids else []
    by_message: dict[int, list[Row]] = defaultdict(list)
    for f in files:
        by_message[f.message_id].append(f)
    return msgs, by_message, {d.message_id: d for d in sent}


@authenticated
async def list_tickets(request: web.Request, tenant_id: int) -> web.Response:
    """GET /api/v1/tickets: newest first, filtered, keyset-paginated by id."""
    query = request.query
    unknown = sorted(set(query) - _LIST_PARAMS - set(field_filters.names(query)))
    if unknown:
        raise invalid_parameter(unknown[0][:60], "is not a known parameter")
    limit = parse_int(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    stmt = _filtered(_ticket_select(tenant_id), query).order_by(tickets.c.id.desc()).limit(limit + 1)
    async with request.app[DB].read_may_lag() as conn:
        if field_filters.names(query):
            defs = await conn.run_sync(fields_store.definitions, tenant_id)
            stmt = stmt.where(*field_filters.conditions(query, tenant_id, defs))
        rows = (await conn.execute(stmt)).all()
    page = rows[:limit]
    following = encode_cursor(page[-1].id) if len(rows) > limit else None
    return json_response({"items": [ticket_json(r) for r in page], "next": following})


@authenticated
async def get_ticket(request: web.Request, tenant_id: int) -> web.Response:
    """GET /api/v1/tickets/{id}: the ticket with its messages, oldest first."""
    ticket_id = parse_id(request.match_info["id"])
    async with request.app[DB].read_may_lag() as conn:
        row = (await conn.execute(_ticket_select(tenant_id).where(tickets.c.id == ticket_id))).first()
        if row is None:
            raise not_found("ticket", ticket_id)
        msgs, files, sent = await message_rows(conn, tenant_id, messages.c.ticket_id == ticket_id)
        clocks = await conn.run_sync(sla_store.ticket_clocks, tenant_id, ticket_id)
    body = ticket_json(row) | {"messages": [message_json(m, files[m.id], sent.get(m.id)) for m in msgs],
                               "sla": sla_json(clocks)}
    return json_response(body)


# Types a browser would run or render as a document in our origin (stored XSS).
_ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript",
    "text/ecmascript", "application/ecmascript", "text/xml", "application/xml", "text/xsl",
})
_MIME = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
OCTET_STREAM = "application/octet-stream"


def safe_content_type(stored: str) -> str:
    """The stored type without parameters, or octet-stream for active or malformed types."""
    ctype = stored.split(";", 1)[0].strip().lower()
    if (not _MIME.fullmatch(ctype) or ctype in _ACTIVE_TYPES or ctype.endswith("+xml")
            or "script" in ctype or "html" in ctype or ctype.startswith("multipart/")):
        return OCTET_STREAM
    return ctype


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` fallback and the real name in ``filename*`` (RFC 6266)."""
    name = re.sub(r"[/\\\x00-\x1f\x7f]", "_", filename).strip() or "attachment"
    # "café" -> "cafe", "报价" -> "__": accents dropped, other non-ASCII replaced below.
    ascii_name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    fallback = re.sub(r"[^A-Za-z0-9 !#$&'()+,\-.;=@\[\]^_`{}~]", "_", ascii_name).strip() or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@authenticated
async def get_attachment(request: web.Request, tenant_id: int) -> web.Response:
    """GET /api/v1/attachments/{id}: the bytes, always as a download, never rendered."""
    attachment_id = parse_id(request.match_info["id"])
    async with request.app[DB].read() as conn:
        row = (await conn.execute(
            select(attachments.c.filename, attachments.c.content_type, attachments.c.blob_key)
            .where(attachments.c.tenant_id == tenant_id, attachments.c.id == attachment_id)
        )).first()
    if row is None:
        raise not_found("attachment", attachment_id)
    data = await request.app[BLOBS].get(row.blob_key)
    headers = {
        "Content-Disposition": content_disposition(row.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
    }
    return web.Response(body=data, content_type=safe_content_type(row.content_type), headers=headers)


@authenticated
async def get_reply_address(request: web.Request, tenant_id: int) -> web.Response:
    """GET /api/v1/tickets/{id}/reply-address: what one outbound mail of an email ticket carries.

    A reply to that Message-ID, to the reply-to plus-address, or quoting the body marker
    threads back to this ticket by its signed token, without a header lookup.
    """
    ticket_id = parse_id(request.match_info["id"])
    async with request.app[DB].read() as conn:
        row = (await conn.execute(
            select(tickets.c.id, tickets.c.channel, channel_accounts.c.address)
            .join(channel_accounts, channel_accounts.c.id == tickets.c.account_id)
            .where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
        )).first()
    if row is None:
        raise not_found("ticket", ticket_id)
    if row.channel != "email":
        raise ApiError(409, "not_email", f"ticket {ticket_id} is a {row.channel} ticket; replies go by its channel")
    secret = request.app.get(SECRET, "")
    if not secret:
        raise ApiError(503, "not_configured", "reply tokens need SWITCHBOARD_SECRET_KEY")
    issued = reply_tokens.issue(secret, tenant_id, row.id, row.address)
    return json_response({"ticket_id": row.id, "message_id": issued.message_id,
                              "reply_to": issued.reply_to, "marker": issued.marker})


_TEXT = {"type": "string"}


def _query(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_LIST_DOC = [
    _query("status", "new, open, pending, solved, closed; comma separated or repeated"),
    _query("channel", "channel names; comma separated or repeated"),
    _query("assignee", "an agent id, or none"),
    _query("customer", "a customer id", type="integer", minimum=1),
    _query("auto", "true: only tickets opened by bulk mail", enum=["true", "false"]),
    _query("limit", f"page size, 1 to {MAX_LIMIT}", type="integer", minimum=1, maximum=MAX_LIMIT),
    _query("cursor", "the next value of the previous page"),
]
PATHS = {
    "/tickets": {"get": operation("Tickets, newest first, filtered, keyset-paginated. Custom fields filter as "
                                  "field.NAME=VALUE (multi-choice: the list contains VALUE; repeated: each "
                                  "holds) and field.NAME.gte / field.NAME.lte on number and date fields",
                                  {200: ("A page of tickets", page_of(ref("Ticket")))}, 400, params=_LIST_DOC)},
    "/tickets/{id}": {"get": operation("A ticket with its messages, oldest first",
                                       {200: ("The ticket", ref("TicketDetail"))}, 400, 404, params=[ID_PARAM])},
    "/tickets/{id}/reply-address": {"get": operation(
        "What one outbound mail of an email ticket carries (signed reply token)",
        {200: ("Message-ID, reply-to and body marker", obj(("ticket_id", "message_id", "reply_to", "marker"),
                                                           ticket_id={"type": "integer"}, message_id=_TEXT,
                                                           reply_to=_TEXT, marker=_TEXT))},
        400, 404, 409, 503, params=[ID_PARAM])},
    "/attachments/{id}": {"get": {
        **operation("An attachment's bytes, always as a download", {}, 400, 404, params=[ID_PARAM]),
    }},
}
PATHS["/attachments/{id}"]["get"]["responses"]["200"] = {
    "description": "The bytes (active types as application/octet-stream)",
    "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}},
}
