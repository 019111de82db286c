"""``/forms/{form}``: a web form posts here (browser or server); 202 with a receipt id.

Per form (account settings): ``max_files``, ``max_file_size``, ``max_total_size``,
``rate_per_ip`` and ``rate_per_form`` (per minute), ``cors_origins``, plus the field
mapping of :class:`connectors.forms.spec.FormSpec`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from connectors.contact import FieldError
from connectors.forms.body import BadForm, Submission, UnsupportedType, read
from connectors.forms.parse import CHANNEL, dedup_key
from connectors.forms.spec import FormSpec, contact, is_spam
from connectors.push import (
    GATEWAY,
    Gateway,
    Reject,
    account_for,
    count,
    envelope,
    issue_receipt,
    publish,
    push_route,
    rate_limit,
    read_body,
    setting_int,
)
from core import keys
from core.ids import new_id
from ticket_service.store.admin import Account

STREAM = keys.ingest_stream(CHANNEL)
MAX_FILES, MAX_FILE, MAX_TOTAL = 10, 10 * 1024 * 1024, 20 * 1024 * 1024
RATE_PER_IP, RATE_PER_FORM = 10, 600
_OVERHEAD = 64 * 1024  # text fields and multipart headers on top of the files
_OFF_LOOP = 256 * 1024  # bodies larger than this are decoded in a thread


def _origin(request: web.Request, account: Account) -> str:
    """The caller's Origin when it is one of the business's own; 403 for any other (if set)."""
    origin = request.headers.get("Origin", "")
    allowed = account.settings.get("cors_origins", [])
    if not origin or origin in allowed:
        return origin
    if allowed:
        raise Reject(403, "origin_not_allowed", f"origin {origin!r} may not post to this form")
    return ""  # no list: server-side or same-origin posts; browsers keep the answer from others


def _check_files(account: Account, sub: Submission) -> None:
    max_files = setting_int(account, "max_files", MAX_FILES)
    max_file = setting_int(account, "max_file_size", MAX_FILE)
    if len(sub.files) > max_files:
        raise Reject(413, "too_many_files", f"{len(sub.files)} files, at most {max_files} allowed")
    for f in sub.files:
        if len(f.data) > max_file:
            raise Reject(413, "file_too_large", f"file {f.filename!r} is over {max_file} bytes")
    total = sum(len(f.data) for f in sub.files)
    if total > setting_int(account, "max_total_size", MAX_TOTAL):
        raise Reject(413, "too_large", f"files total {total} bytes, over the form's limit")


async def _decode(content_type: str, body: bytes) -> Submission:
    try:
        if len(body) > _OFF_LOOP:
            return await asyncio.to_thread(read, content_type, body)
        return read(content_type, body)
    except UnsupportedType as exc:
        raise Reject(415, "unsupported_type", str(exc)) from None
    except BadForm as exc:
        raise Reject(400, "malformed", str(exc)) from None


@push_route(CHANNEL)
async def _submit(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["form"])
    origin = _origin(request, account)
    await rate_limit(gw, f"webform:{account.id}:ip:{request.remote}",
                     setting_int(account, "rate_per_ip", RATE_PER_IP), "from one address")
    await rate_limit(gw, f"webform:{account.id}:all", setting_int(account, "rate_per_form", RATE_PER_FORM),
                     "to this form")
    body = await read_body(request, setting_int(account, "max_total_size", MAX_TOTAL) + _OVERHEAD)
    content_type = request.headers.get("Content-Type", "")
    sub = await _decode(content_type, body)
    spec = FormSpec.from_settings(account.settings)
    if is_spam(spec, sub):
        # Answer as if accepted, so a bot learns nothing; the receipt resolves to nothing.
        count(CHANNEL, "rejected", "honeypot")
        return web.json_response({"receipt": new_id(), "status": "accepted"}, status=202)
    _check_files(account, sub)
    try:
        c = contact(spec, sub)
    except FieldError as exc:
        raise Reject(400, exc.reason, exc.message) from None
    env = envelope(account, CHANNEL, body, content_type, request, form=spec.to_meta(), origin=origin,
                   user_agent=request.headers.get("User-Agent", "")[:200])
    receipt = await issue_receipt(gw, env, account, dedup_key(env.account, c.token, body))
    await publish(gw, STREAM, env, CHANNEL)
    return web.json_response({"receipt": receipt, "status": "accepted"}, status=202)


async def submit(request: web.Request) -> web.StreamResponse:
    """``_submit``, and every answer to an allowed origin readable by its script (errors too)."""
    response = await _submit(request)
    origin = request.headers.get("Origin", "")
    if origin and response.status != 404:
        account = await request.app[GATEWAY].accounts.by_address(CHANNEL, request.match_info["form"])
        if account is not None and origin in account.settings.get("cors_origins", []):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
    return response


@push_route(CHANNEL)
async def preflight(request: web.Request, gw: Gateway) -> web.StreamResponse:
    """CORS preflight (Fetch standard): only the form's own origins may post from a browser."""
    account = await account_for(gw, CHANNEL, request.match_info["form"])
    origin = request.headers.get("Origin", "")
    if not origin or origin not in account.settings.get("cors_origins", []):
        raise Reject(403, "origin_not_allowed", f"origin {origin!r} may not post to this form")
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": origin, "Vary": "Origin",
        "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
    })


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/forms/{form}", submit)
    app.router.add_route("OPTIONS", "/forms/{form}", preflight)
