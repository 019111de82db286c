"""``POST /api/v1/tickets/{id}/messages``: an agent's reply (sent on the customer's channel) or note.

Everything is checked before anything is stored: a bad field answers 400 naming it, a body
over ``reply_max_body`` 413, and nothing is queued. The reply and its outbox row are one
transaction (``store.replies``); the sender role sends it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import nh3
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from core.blobs import BlobStore
from core.ids import now_ms
from core.json_http import json_response
from ticket_service.api import body as api_body
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import ApiError, parse_id
from ticket_service.api.schemas import MESSAGE_PROPS, MESSAGE_REQUIRED
from ticket_service.api.spec import ID_PARAM, obj, operation
from ticket_service.api.tickets import BLOBS, DB, PREFIX, SECRET, message_json, message_rows
from ticket_service.store.db import Database
from ticket_service.store.replies import CHANNELS, Draft, ReplyError, existing, store_reply
from ticket_service.store.tables import messages

REPLY_LIMIT = web.AppKey("api_reply_limit", int)
DEFAULT_LIMIT = 10 * 1024 * 1024
MAX_TEXT = 200_000
MAX_FILES = 20
_FIELDS = frozenset({"kind", "text", "html", "attachments", "channel", "idempotency_key", "agent_id"})


def _field(name: str, why: str, status: int = 400) -> ApiError:
    return ApiError(status, "invalid_field", f"field {name!r} {why}")


def _string(doc: dict, name: str, limit: int, required: bool = False) -> str:
    value = doc.get(name, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _field(name, f"must be a string of at most {limit} characters")
    if required and not value.strip():
        raise _field(name, "must not be empty")
    return value


def _files(doc: dict, limit: int) -> list[tuple[str, str, bytes]]:
    files = doc.get("attachments") or []
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise _field("attachments", f"must be a list of at most {MAX_FILES} files")
    out = []
    for i, f in enumerate(files):
        where = f"attachments[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("data"), str):
            raise _field(where, "must be an object with filename, content_type and data (base64)")
        name, ctype = f.get("filename"), f.get("content_type", "application/octet-stream")
        if not isinstance(name, str) or not name.strip() or len(name) > 255 or "/" in name or "\x00" in name:
            raise _field(f"{where}.filename", "must be a file name of at most 255 characters")
        if not isinstance(ctype, str) or "/" not in ctype or len(ctype) > 255:
            raise _field(f"{where}.content_type", "must be a MIME type such as application/pdf")
        try:
            data = base64.b64decode(f["data"], validate=True)
        except (binascii.Error, ValueError):
            raise _field(f"{where}.data", "is not base64") from None
        out.append((name.strip(), ctype.strip().lower(), data))
    if sum(len(d) for _, _, d in out) > limit:
        raise ApiError(413, "attachments_too_large", f"attachments are over the limit of {limit} bytes")
    return out


def draft_fields(doc: dict, limit: int) -> tuple[Draft, list[tuple[str, str, bytes]]]:
    """The validated request, files still as bytes; ApiError naming the first bad field."""
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise _field(unknown[0], "is not a known field")
    kind = doc.get("kind", "reply")
    if kind not in ("reply", "note"):
        raise _field("kind", "must be reply or note")
    text = _string(doc, "text", MAX_TEXT, required=True)
    html = _string(doc, "html", MAX_TEXT * 5)
    channel = _string(doc, "channel", 32)
    if channel and channel not in CHANNELS:
        raise _field("channel", f"must be one of {', '.join(sorted(CHANNELS))}")
    idem = _string(doc, "idempotency_key", 200)
    agent = doc.get("agent_id")
    if agent is not None:
        agent = api_body.integer(agent, "agent_id", 1)
    files = _files(doc, limit)
    # The same cleaning as inbound mail's HTML (connectors/email/body.py): no scripts, no handlers.
    clean = nh3.clean(html, clean_content_tags={"script", "style"}) if html else ""
    return Draft(kind=kind, text=text, html=clean, channel=channel, idempotency_key=idem, author_id=agent), files


async def _store_files(blobs: BlobStore, files: list[tuple[str, str, bytes]]) -> list[dict]:
    rows = []
    for name, ctype, data in files:
        rows.append({"filename": name, "content_type": ctype, "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest(), "blob_key": await blobs.put(data),
                     "content_id": None, "inline": False})
    return rows


async def ticket_message(db: Database, tenant_id: int, message_id: int) -> dict:
    """One stored message as ``GET /tickets/{id}`` shows it, with its delivery."""
    async with db.read() as conn:
        [row], files, sent = await message_rows(conn, tenant_id, messages.c.id == message_id)
    return message_json(row, files[row.id], sent.get(row.id)) | {"ticket_id": row.ticket_id}


@authenticated
async def post_message(request: web.Request, tenant_id: int) -> web.Response:
    """201 with the stored message; 200 with the first one for a repeated idempotency_key."""
    ticket_id = parse_id(request.match_info["id"])
    limit = request.app.get(REPLY_LIMIT, DEFAULT_LIMIT)
    doc = await api_body.json_object(request, limit)
    draft, files = draft_fields(doc, limit)
    db = request.app[DB]
    if draft.idempotency_key:
        async with db.read() as conn:
            seen = await conn.run_sync(existing, tenant_id, draft.idempotency_key)
        if seen is not None and seen.ticket_id == ticket_id:
            return json_response(await ticket_message(db, tenant_id, seen.id), status=200)
    rows = await _store_files(request.app[BLOBS], files)
    draft = Draft(**{**{k: getattr(draft, k) for k in draft.__slots__}, "files": rows})
    try:
        message_id, created = await db.run_write(
            store_reply, tenant_id, ticket_id, draft, request.app.get(SECRET, ""), now_ms())
    except ReplyError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except IntegrityError:
        # The same idempotency_key in two requests at once: the other one stored it first.
        async with db.read() as conn:
            seen = await conn.run_sync(existing, tenant_id, draft.idempotency_key) if draft.idempotency_key else None
        if seen is None:
            raise
        message_id, created = seen.id, False
    return json_response(await ticket_message(db, tenant_id, message_id), status=201 if created else 200)


def setup_routes(app: web.Application, limit: int = DEFAULT_LIMIT) -> None:
    app[REPLY_LIMIT] = limit
    app.router.add_post(f"{PREFIX}/tickets/{{id}}/messages", post_message)


_FILE = obj(("filename", "data"), filename={"type": "string", "maxLength": 255},
            content_type={"type": "string"}, data={"type": "string", "contentEncoding": "base64"})
_DRAFT = obj(("text",), kind={"enum": ["reply", "note"]}, text={"type": "string", "maxLength": MAX_TEXT},
             html={"type": ["string", "null"]}, channel={"type": ["string", "null"]},
             idempotency_key={"type": ["string", "null"], "maxLength": 200},
             agent_id={"type": ["integer", "null"], "minimum": 1},
             attachments={"type": ["array", "null"], "items": _FILE, "maxItems": MAX_FILES})
_STORED = obj((*MESSAGE_REQUIRED, "ticket_id"), **MESSAGE_PROPS, ticket_id={"type": "integer"})
PATHS = {
    "/tickets/{id}/messages": {"post": operation(
        "An agent's reply (sent on the customer's channel) or internal note",
        {201: ("Stored (a reply is queued for sending)", _STORED),
         200: ("The message stored before under the same idempotency_key", _STORED)},
        400, 404, 409, 413, body=_DRAFT, params=[ID_PARAM])},
}
