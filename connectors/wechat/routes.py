"""``/wechat/{account}``: URL verification (GET) and message pushes (POST) from WeChat.

WeChat waits 5 s for an answer and then resends (up to three times); the store dedups the
resends, so this route only verifies, XADDs and answers ``success``. A push is refused when
its signed timestamp is outside ``push_max_skew_s`` of now (401 ``stale_timestamp``) or its
signed (timestamp, nonce) came before with another body (409 ``replayed``): the signatures
cover no expiry and, in plaintext mode, not the body.
"""

from __future__ import annotations

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
from connectors.wechat.message import CHANNEL, EVENTS, STREAM, check_message
from connectors.wechat.verify import Keys, check_signature, decrypt
from connectors.wechat.xml import BadXml, fields
from core.accounts import Account


@push_route(CHANNEL)
async def verify_url(request: web.Request, gw: Gateway) -> web.StreamResponse:
    """Server URL check: echo ``echostr`` when the signature over token/timestamp/nonce holds."""
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    q = request.query
    check_signature(Keys.from_settings(account.settings), q.get("signature", ""), q.get("timestamp", ""),
                    q.get("nonce", ""))
    return web.Response(text=q.get("echostr", ""), content_type="text/plain")


@push_route(CHANNEL)
async def receive(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    # The signature never expires by itself: bound its timestamp first, before reading anything.
    check_timestamp(request.query.get("timestamp", ""), gw.max_skew_s)
    if request.query.get("encrypt_type") == "aes":
        payload, meta = await _open_encrypted(request, gw, account)
    else:
        payload, meta = await _open_plaintext(request, gw, account)
    msg = _fields(payload)
    check_message(msg)
    env = envelope(account, CHANNEL, payload, "application/xml", request, openid=msg["FromUserName"], **meta)
    if msg.get("MsgType") == "event" and not _matters(msg):
        count(CHANNEL, "ignored", msg.get("Event", "")[:32].lower())
    else:
        await publish(gw, STREAM, env, CHANNEL)
    return web.Response(text="success", content_type="text/plain")


async def _open_encrypted(request: web.Request, gw: Gateway, account: Account) -> tuple[bytes, dict[str, str]]:
    """Safe and compatible mode: msg_signature covers the ciphertext; we keep the plaintext,
    since a later parse must not depend on a key the account may rotate."""
    keys, q = Keys.from_settings(account.settings), request.query
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    encrypt = _fields(body).get("Encrypt", "")
    if not encrypt:
        raise Reject(400, "malformed", "encrypted push without an Encrypt element")
    check_signature(keys, q.get("msg_signature", ""), q["timestamp"], q.get("nonce", ""), encrypt)
    await remember_nonce(gw, account, q["timestamp"], q.get("nonce", ""), body)
    return decrypt(keys, encrypt).encode(), {"encrypt_type": "aes", "verified": "msg_signature"}


async def _open_plaintext(request: web.Request, gw: Gateway, account: Account) -> tuple[bytes, dict[str, str]]:
    """Plaintext mode: the signature covers token, timestamp and nonce only, not the body, so
    it is checked before the body is read and the body is bound to its nonce once read."""
    keys, q = Keys.from_settings(account.settings), request.query
    if keys.mode == "safe":
        raise Reject(400, "encryption_required", "this account accepts safe-mode (AES) pushes only")
    check_signature(keys, q.get("signature", ""), q["timestamp"], q.get("nonce", ""))
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    await remember_nonce(gw, account, q["timestamp"], q.get("nonce", ""), body)
    return body, {"encrypt_type": "raw", "verified": "signature"}


def _fields(body: bytes) -> dict[str, str]:
    try:
        return fields(body)
    except BadXml as exc:
        raise Reject(400, "malformed", str(exc)) from None


def _matters(msg: dict[str, str]) -> bool:
    return msg.get("Event", "").lower() in EVENTS


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/wechat/{account}", verify_url)
    app.router.add_post("/wechat/{account}", receive)
