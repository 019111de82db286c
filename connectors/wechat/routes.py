"""``/wechat/{account}``: URL verification (GET) and message pushes (POST) from WeChat.

WeChat waits 5 s for an answer and then resends (up to three times); the store dedups the
resends, so this route only verifies, XADDs and answers ``success``.
"""

from __future__ import annotations

from aiohttp import web

from connectors.push import (
    DEFAULT_MAX_BODY,
    Gateway,
    Reject,
    account_for,
    count,
    envelope,
    publish,
    push_route,
    read_body,
    setting_int,
)
from connectors.wechat.message import CHANNEL, EVENTS, STREAM, check_message
from connectors.wechat.verify import Keys, check_signature, decrypt
from connectors.wechat.xml import BadXml, fields


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
    keys = Keys.from_settings(account.settings)
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    if q.get("encrypt_type") == "aes":
        # Safe and compatible mode: msg_signature covers the ciphertext; we keep the plaintext,
        # since a later parse must not depend on a key the account may rotate.
        outer = _fields(body)
        encrypt = outer.get("Encrypt", "")
        if not encrypt:
            raise Reject(400, "malformed", "encrypted push without an Encrypt element")
        check_signature(keys, q.get("msg_signature", ""), timestamp, nonce, encrypt)
        payload = decrypt(keys, encrypt).encode()
        meta = {"encrypt_type": "aes", "verified": "msg_signature"}
    else:
        if keys.mode == "safe":
            raise Reject(400, "encryption_required", "this account accepts safe-mode (AES) pushes only")
        check_signature(keys, q.get("signature", ""), timestamp, nonce)
        payload, meta = body, {"encrypt_type": "raw", "verified": "signature"}
    msg = _fields(payload)
    check_message(msg)
    env = envelope(account, CHANNEL, payload, "application/xml", request, openid=msg["FromUserName"], **meta)
    if msg.get("MsgType") == "event" and not _matters(msg):
        count(CHANNEL, "ignored", msg.get("Event", "")[:32].lower())
    else:
        await publish(gw, STREAM, env, CHANNEL)
    return web.Response(text="success", content_type="text/plain")


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
