"""``/forms/{form}``: a web form posts here (browser or server); 202 with a receipt id.

Per form (account settings): ``max_files``, ``max_file_size``, ``max_total_size``,
``rate_per_ip`` and ``rate_per_form`` (per minute), ``cors_origins``, plus the field
mapping of :class:`connectors.webform.spec.FormSpec`.

Parts and bytes are counted while the body arrives (``connectors.webform.parts``), so an
over-limit body is refused at its first excess part, before any MIME parse; the parse then
runs on the form's own bounded pool (``connectors.webform.decoding``).
"""

from __future__ import annotations

from aiohttp import web

from connectors.contact import FieldError
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
    receipt_token,
    setting_int,
)
from connectors.webform import parts
from connectors.webform.body import BadForm, Submission, TooMuch, UnsupportedType, read
from connectors.webform.decoding import Decoder, Saturated
from connectors.webform.parse import CHANNEL, dedup_key
from connectors.webform.spec import FormSpec, contact, is_spam
from core import keys
from core.accounts import Account

STREAM = keys.ingest_stream(CHANNEL)
MAX_FILES, MAX_FILE, MAX_TOTAL = 10, 10 * 1024 * 1024, 20 * 1024 * 1024
RATE_PER_IP, RATE_PER_FORM = 10, 600
_OVERHEAD = 64 * 1024  # text fields and multipart headers on top of the files
_FIELDS_ONLY = 1024 * 1024  # urlencoded and JSON bodies carry no files
DECODER = web.AppKey("form_decoder", Decoder)


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


def _limits(account: Account, content_type: str) -> parts.Limits:
    total = setting_int(account, "max_total_size", MAX_TOTAL) + _OVERHEAD
    if not content_type.lower().lstrip().startswith("multipart/"):
        total = min(total, _FIELDS_ONLY)
    return parts.Limits(max_files=min(setting_int(account, "max_files", MAX_FILES), parts.MAX_FILES),
                        max_fields=parts.MAX_FIELDS, max_bytes=total)


def _too_much(exc: TooMuch) -> Reject:
    return Reject(413, exc.reason, str(exc))


async def _receive(request: web.Request, content_type: str, limits: parts.Limits) -> bytes:
    """The raw body, counted as it arrives: refused at the first byte or part over ``limits``."""
    if request.content_length is not None and request.content_length > limits.max_bytes:
        raise Reject(413, "too_large", f"body of {request.content_length} bytes exceeds {limits.max_bytes}")
    try:
        intake = parts.Intake(content_type, limits)
        while chunk := await request.content.read(64 * 1024):  # what has arrived, up to n
            intake.feed(chunk)
    except TooMuch as exc:
        raise _too_much(exc) from None
    except BadForm as exc:
        raise Reject(400, "malformed", str(exc)) from None
    return intake.body


async def _decode(decoder: Decoder, content_type: str, body: bytes, limits: parts.Limits) -> Submission:
    try:
        return await decoder.run(read, content_type, body, limits)
    except Saturated:
        raise Reject(503, "busy", "too many form submissions are being read; try again shortly",
                     {"Retry-After": "2"}) from None
    except UnsupportedType as exc:
        raise Reject(415, "unsupported_type", str(exc)) from None
    except TooMuch as exc:
        raise _too_much(exc) from None
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
    content_type = request.headers.get("Content-Type", "")
    limits = _limits(account, content_type)
    body = await _receive(request, content_type, limits)
    sub = await _decode(request.app[DECODER], content_type, body, limits)
    spec = FormSpec.from_settings(account.settings)
    if is_spam(spec, sub):
        # Answer as if accepted, so a bot learns nothing; the receipt resolves to nothing.
        count(CHANNEL, "rejected", "honeypot")
        return web.json_response({"receipt": receipt_token(), "status": "accepted"}, status=202)
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
    if response.status >= 400 and not request.content.is_eof():
        await _answer_and_close(request, response)
    return response


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Answer a refused request, then close without reading the rest of its body.

    aiohttp would otherwise read and discard the whole remainder (its lingering close):
    megabytes an address may send again and again, received on the event loop that also
    serves agents. RFC 9112 §9.6: a server that does not read the whole body closes the
    connection after its answer.
    """
    response.force_close()  # Connection: close
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()


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


async def _stop_decoder(app: web.Application) -> None:
    app[DECODER].shutdown()


def setup_routes(app: web.Application) -> None:
    app[DECODER] = Decoder()
    app.on_cleanup.append(_stop_decoder)
    app.router.add_post("/forms/{form}", submit)
    app.router.add_route("OPTIONS", "/forms/{form}", preflight)
