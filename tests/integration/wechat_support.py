"""WeChat's side of a push, for the WeChat tests: signed queries, safe-mode bodies, accounts.

Pushes are built the way WeChat builds them, with wechatpy's own crypto as the client.
"""

from __future__ import annotations

import itertools
import time

from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from core.envelope import Envelope

TOKEN = "wx-token-acme"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
APPID = "wxb11529c136998cb6"
OPENID = "oFWmSwFGLk8pc-a6SwsmfA-6a2fY"
_msgids = itertools.count(6200000000000000001)
_nonces = itertools.count(1320562132)


def xml(**fields) -> str:
    body = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
    )
    return f"<xml>{body}</xml>"


def text_message(content="我的订单还没到", openid=OPENID, msgid=None, **extra) -> str:
    return xml(ToUserName="gh_acme", FromUserName=openid, CreateTime=int(time.time()), MsgType="text",
               Content=content, MsgId=msgid or next(_msgids), **extra)


def event(name, openid=OPENID, created=None, **extra) -> str:
    return xml(ToUserName="gh_acme", FromUserName=openid, CreateTime=created or int(time.time()),
               MsgType="event", Event=name, **extra)


def signature(*parts: str, token=TOKEN) -> str:
    signer = WeChatSigner()
    signer.add_data(token, *parts)
    return signer.signature


class WeChat:
    """What WeChat's servers send to an account's URL."""

    def __init__(self, gw, account: str, token=TOKEN, aes_key=AES_KEY, appid=APPID):
        self.gw, self.account = gw, account
        self.token = token
        self.crypto = WeChatCrypto(token, aes_key, appid)

    def query(self, ts: int | None = None, nonce: str | None = None, **extra) -> dict:
        """A fresh signed triple: now (or ``ts``) and a nonce never used before (or ``nonce``)."""
        ts_, nonce = str(int(time.time()) if ts is None else ts), nonce or str(next(_nonces))
        return {"signature": signature(ts_, nonce, token=self.token), "timestamp": ts_, "nonce": nonce,
                "openid": OPENID, **extra}

    async def post(self, body: str | bytes, query: dict | None = None):
        async with self.gw.http.post(self.gw.url(f"/wechat/{self.account}"), params=query or self.query(),
                                     data=body, headers={"Content-Type": "text/xml"}) as resp:
            is_json = resp.content_type == "application/json"
            return resp.status, await (resp.json() if is_json else resp.text())

    def encrypted(self, plaintext: str, compatible: bool = False, **query) -> tuple[str, dict]:
        """(body, query) of a safe-mode push; compatible mode also carries the plaintext fields."""
        q = self.query(encrypt_type="aes", **query)
        wrapped = self.crypto.encrypt_message(plaintext, q["nonce"], q["timestamp"])
        encrypt = wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        q["msg_signature"] = wrapped.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        inner = plaintext[len("<xml>"):-len("</xml>")] if compatible else "<ToUserName><![CDATA[gh_acme]]></ToUserName>"
        return f"<xml>{inner}<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>", q

    async def post_safe(self, plaintext: str, compatible: bool = False):
        body, q = self.encrypted(plaintext, compatible)
        return await self.post(body, q)


async def _accounts(gw) -> dict[str, WeChat]:
    await gw.add_account("wechat", "acme-plain", {"token": TOKEN, "mode": "plaintext"})
    await gw.add_account("wechat", "acme-compat", {"token": TOKEN, "mode": "compatible", "aes_key": AES_KEY, "appid": APPID})
    await gw.add_account("wechat", "acme-safe", {"token": TOKEN, "mode": "safe", "aes_key": AES_KEY, "appid": APPID})
    return {name: WeChat(gw, f"acme-{name}") for name in ("plain", "compat", "safe")}


async def _entries(gw) -> list[Envelope]:
    return [Envelope.unpack(f[b"e"]) for _, f in await gw.redis.xrange("ingest.wechat")]


async def _refused(edge, status: int, code: str, result) -> None:
    got_status, body = result
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert await edge.xlen("wechat") == 0
