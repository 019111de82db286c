"""``/sdk/v1/apps/{app}/...``: messages (idempotent by client uuid), uploads, conversation reads.

App settings (channel account ``sdk``, address = the app key): ``secret``, ``clock_skew_s``,
``max_upload_size``, ``rate_uploads`` (signed uploads per minute per app),
``rate_uploads_per_ip`` (upload attempts per minute per address, counted before the body is
read), ``region`` (for phone numbers without a country code).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import unquote

from aiohttp import web

from connectors.contact import FieldError
from connectors.filenames import safe_filename
from connectors.push import (
    DEFAULT_MAX_BODY,
    Gateway,
    Reject,
    account_for,
    envelope,
    issue_receipt,
    publish,
    push_route,
    rate_limit,
    read_body,
    setting_int,
)
from connectors.sdk.message import read
from connectors.sdk.parse import CHANNEL, conversation_key, dedup_key
from connectors.sdk.signing import verify
from core import keys
from core.accounts import Account
from core.ids import new_id

STREAM = keys.ingest_stream(CHANNEL)
PREFIX = "/sdk/v1/apps/{app}"
MAX_UPLOAD = 10 * 1024 * 1024
IDEMPOTENCY_TTL_S = 7 * 24 * 3600
UPLOAD_TTL_S = 24 * 3600  # an upload not sent in a message within a day is forgotten
RATE_UPLOADS, RATE_UPLOADS_PER_IP = 120, 60  # per minute


async def _app(request: web.Request, gw: Gateway) -> Account:
    return await account_for(gw, CHANNEL, request.match_info["app"])


@push_route(CHANNEL)
async def post_message(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _app(request, gw)
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    verify(request, account, body)
    region = str(account.settings.get("region", "CN"))
    try:
        msg = read(body, region)
    except FieldError as exc:
        raise Reject(400, exc.reason, exc.message) from None
    seen_key = keys.sdk_message_key(account.id, msg.client_id)
    if first := await gw.redis.get(seen_key):
        return web.json_response({"receipt": first.decode(), "status": "accepted"}, status=200)
    uploads = [await _upload(gw, account, u) for u in msg.uploads]
    env = envelope(account, CHANNEL, body, "application/json", request, region=region,
                   uploads=json.dumps(uploads), client_id=msg.client_id)
    receipt = await issue_receipt(gw, env, account, dedup_key(env.account, msg.client_id))
    await publish(gw, STREAM, env, CHANNEL)
    if not await gw.redis.set(seen_key, receipt, nx=True, ex=IDEMPOTENCY_TTL_S):
        # A concurrent retry won: answer its receipt (the store dedups our twin entry).
        receipt = (await gw.redis.get(seen_key) or receipt.encode()).decode()
        return web.json_response({"receipt": receipt, "status": "accepted"}, status=200)
    return web.json_response({"receipt": receipt, "status": "accepted"}, status=202)


async def _upload(gw: Gateway, account: Account, upload_id: str) -> dict:
    raw = await gw.redis.get(keys.sdk_upload_key(account.id, upload_id))
    if raw is None:
        raise Reject(400, "unknown_upload", f"no upload {upload_id!r} for this app (or it has expired)")
    return json.loads(raw)


@push_route(CHANNEL)
async def post_upload(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _app(request, gw)
    # Before the body is read: an address without the secret gets its own bounded share.
    await rate_limit(gw, f"sdk:{account.id}:upload-ip:{request.remote}",
                     setting_int(account, "rate_uploads_per_ip", RATE_UPLOADS_PER_IP), "from one address")
    body = await read_body(request, setting_int(account, "max_upload_size", MAX_UPLOAD))
    verify(request, account, body)
    # After the signature: only the app's own uploads count against its limit.
    await rate_limit(gw, f"sdk:{account.id}:uploads", setting_int(account, "rate_uploads", RATE_UPLOADS),
                     "to this app")
    if not body:
        raise Reject(400, "empty_upload", "an upload needs a body")
    filename = safe_filename(unquote(request.headers.get("X-SB-Filename", "")))
    content_type = request.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()[:255]
    blob_key = await gw.blobs.put(body)
    upload_id = new_id()
    doc = {"blob_key": blob_key, "filename": filename, "content_type": content_type, "size": len(body)}
    await gw.redis.set(keys.sdk_upload_key(account.id, upload_id), json.dumps(doc), ex=UPLOAD_TTL_S)
    return web.json_response({"upload": upload_id, "size": len(body)}, status=201)


@push_route(CHANNEL)
async def get_messages(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _app(request, gw)
    verify(request, account, request.raw_path.encode())
    conv, user = request.match_info["id"], request.query.get("user", "")
    if not user:
        raise Reject(400, "missing_field", "query parameter 'user' (the app user id) is required")
    rows = await gw.history.conversation(account.tenant_id, account.id, conversation_key(conv),
                                         ("sdk", str(account.id), user))
    return web.json_response({"conversation": conv, "messages": [
        {
            "id": r.id,
            "from": "user" if r.direction == "in" else "agent",
            "client_id": r.headers.get("sdk", {}).get("client_id"),
            "text": r.text,
            "name": r.sender_name if r.direction != "in" else "",
            "created_at": datetime.fromtimestamp(r.created_at / 1000, UTC).isoformat(timespec="milliseconds"),
            "attachments": [
                {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in r.files
            ],
        }
        for r in rows
    ]})


def setup_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/messages", post_message)
    app.router.add_post(f"{PREFIX}/uploads", post_upload)
    app.router.add_get(f"{PREFIX}/conversations/{{id}}/messages", get_messages)
