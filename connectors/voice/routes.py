"""``/voice/{account}/records|twilio|freeswitch``: call events in, each answered once queued.

Account settings (channel ``voice``, address = ``{account}``): ``secret`` (signed records),
``auth_token`` (Twilio), ``username``/``password`` (FreeSWITCH basic auth), ``region`` (for
numbers without a country code), ``public_url`` (the base URL Twilio calls, when behind a
proxy), ``answer``/``greeting``/``queue``/``play_url`` (TwiML), ``max_records``, ``max_body``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from connectors.contact import FieldError
from connectors.push import (
    DEFAULT_MAX_BODY,
    Gateway,
    Reject,
    account_for,
    envelope,
    publish,
    push_route,
    read_body,
    setting_int,
)
from connectors.sdk.signing import verify
from connectors.voice import freeswitch, records, twilio
from connectors.voice.parse import CHANNEL
from core import keys
from core.accounts import Account

STREAM = keys.ingest_stream(CHANNEL)
MAX_RECORDS_BODY = 4 * 1024 * 1024  # 1,000 records with transcripts
MAX_CDR_BODY = 1024 * 1024  # a CDR with its callflow and app log, URL-encoded (x3)


async def _account(request: web.Request, gw: Gateway) -> Account:
    return await account_for(gw, CHANNEL, request.match_info["account"])


def _region(account: Account) -> str:
    return str(account.settings.get("region", "CN"))


def _bad(exc: FieldError) -> Reject:
    return Reject(413 if exc.reason == "too_many_records" else 400, exc.reason, exc.message)


@push_route(CHANNEL)
async def post_records(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _account(request, gw)
    body = await read_body(request, setting_int(account, "max_body", MAX_RECORDS_BODY))
    verify(request, account, body)
    try:
        calls = records.read(body, setting_int(account, "max_records", records.MAX_RECORDS))
    except FieldError as exc:
        raise _bad(exc) from None
    env = envelope(account, CHANNEL, body, "application/json", request, source="records",
                   region=_region(account), records=str(len(calls)))
    await publish(gw, STREAM, env, CHANNEL)
    return web.json_response({"id": env.id, "status": "accepted", "records": len(calls)}, status=202)


def _public_url(request: web.Request, account: Account) -> str:
    """The URL as Twilio requested it: behind a proxy, ``public_url`` + our path and query."""
    base = str(account.settings.get("public_url", "")).rstrip("/")
    return base + request.path_qs if base else str(request.url)


@push_route(CHANNEL)
async def post_twilio(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _account(request, gw)
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    try:
        params = twilio.form(body)
    except UnicodeDecodeError:
        raise Reject(400, "malformed", "body is not UTF-8 form data") from None
    url = _public_url(request, account)
    sent = request.headers.get(twilio.SIGNATURE, "")
    if not sent:
        raise Reject(401, "missing_signature", f"{twilio.SIGNATURE} header is required")
    if not twilio.valid(account.settings, url, params, sent, request.headers.get(twilio.SIGNATURE_SETTINGS, "")):
        raise Reject(401, "bad_signature", "signature does not match the account's auth token and this URL")
    fields = dict(params)
    if not fields.get("CallSid"):
        raise Reject(400, "missing_field", "'CallSid' is required")
    event = request.query.get("event", "")
    env = envelope(account, CHANNEL, body, "application/x-www-form-urlencoded", request, source="twilio",
                   region=_region(account), event=event)
    await publish(gw, STREAM, env, CHANNEL)
    twiml = twilio.reply(account.settings, url.split("?")[0], fields, event)
    return web.Response(text=twiml, content_type="application/xml")


def _basic_auth(request: web.Request, account: Account) -> None:
    challenge = {"WWW-Authenticate": 'Basic realm="switchboard", charset="UTF-8"'}
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Reject(401, "missing_credentials", "HTTP basic auth is required", challenge)
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Reject(401, "bad_credentials", "malformed basic auth", challenge) from None
    want_user, want_password = str(account.settings.get("username", "")), str(account.settings.get("password", ""))
    ok = hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
        password.encode(), want_password.encode())
    if not (want_user and want_password and ok):
        raise Reject(401, "bad_credentials", "user name or password is wrong", challenge)


@push_route(CHANNEL)
async def post_freeswitch(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await _account(request, gw)
    _basic_auth(request, account)
    body = await read_body(request, setting_int(account, "max_body", MAX_CDR_BODY))
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    try:
        call = freeswitch.call(freeswitch.document(body, content_type))
    except FieldError as exc:
        raise _bad(exc) from None
    env = envelope(account, CHANNEL, body, content_type, request, source="freeswitch", region=_region(account))
    await publish(gw, STREAM, env, CHANNEL)
    return web.json_response({"id": env.id, "status": "accepted", "call": call.id})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/voice/{account}/records", post_records)
    app.router.add_post("/voice/{account}/twilio", post_twilio)
    app.router.add_post("/voice/{account}/freeswitch", post_freeswitch)
