"""``/weibo/{account}``: URL verification (GET) and JSON pushes (POST) from Weibo's fan service.

Both carry ``signature`` = sha1 of the sorted app secret, timestamp and nonce. Weibo waits
5 s and retries three times; an empty 200 answer means "received, no reply". The signature
covers neither the body nor an expiry, so a push is refused when its timestamp (milliseconds,
as in the access guide's sample ``1397022061823``) is outside ``push_max_skew_s`` of now
(401 ``stale_timestamp``) or its (timestamp, nonce) came before with another body (409
``replayed``).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from connectors.push import (
    DEFAULT_MAX_BODY,
    Gateway,
    Reject,
    account_for,
    check_timestamp,
    count,
    envelope,
    publish,
    push_route,
    read_body,
    remember_nonce,
    setting_int,
)
from connectors.weibo.message import CHANNEL, STREAM, NotAPush, kept, read
from core.accounts import Account


def sign(app_secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((app_secret, timestamp, nonce))).encode()).hexdigest()


def _verify(request: web.Request, account: Account) -> None:
    q = request.query
    secret = str(account.settings.get("app_secret", ""))
    expected = sign(secret, q.get("timestamp", ""), q.get("nonce", ""))
    if not secret or not hmac.compare_digest(expected, q.get("signature", "")):
        raise Reject(401, "bad_signature", "signature does not match the account's app secret")


@push_route(CHANNEL)
async def verify_url(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    _verify(request, account)
    return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")


@push_route(CHANNEL)
async def receive(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    q = request.query
    check_timestamp(q.get("timestamp", ""), gw.max_skew_s, per_second=1000)
    _verify(request, account)
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    await remember_nonce(gw, account, q["timestamp"], q.get("nonce", ""), body)
    try:
        doc = read(body)
    except NotAPush as exc:
        raise Reject(400, "malformed", str(exc)) from None
    uid = str(account.settings.get("uid", ""))
    if uid and doc["receiver_id"] != uid:
        raise Reject(400, "wrong_receiver", f"push is for uid {doc['receiver_id']}, not this account's")
    if kept(doc):
        env = envelope(account, CHANNEL, body, "application/json", request, uid=doc["sender_id"],
                       verified="signature")
        await publish(gw, STREAM, env, CHANNEL)
    else:
        count(CHANNEL, "ignored", str(doc["type"])[:32])
    return web.Response(text="", content_type="text/plain")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/weibo/{account}", verify_url)
    app.router.add_post("/weibo/{account}", receive)
