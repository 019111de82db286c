"""A local stand-in for the WeChat official account API (the real one cannot run here).

It answers the endpoints a sender uses the way the official account docs describe them:
``GET /cgi-bin/token`` (access_token + expires_in; 40013 bad appid, 40125 bad secret),
``POST /cgi-bin/message/custom/send`` (41001 no token, 40001 unknown token, 42001 expired
token, 45015 outside the 48-hour window, 45009 quota, 40007 unknown media_id),
``POST /cgi-bin/media/upload`` (multipart ``media``; 40004 bad type, 41005 no media) and
``POST /cgi-bin/message/template/send`` (msgid; 40037 unknown template). Everything received
is recorded so tests assert values.

    async with start_wechat_standin(appid="wx1", secret="s") as wx:
        settings = {"appid": "wx1", "app_secret": "s", "api_base": wx.base_url}
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    json: dict | None = None
    files: list[tuple[str, str, str, bytes]] = field(default_factory=list)  # (field, filename, type, data)
    accepted: bool = False  # answered errcode 0


@dataclass
class WeChatStandin:
    appid: str
    secret: str
    expires_in: int = 7200
    token_delay_s: float = 0.0  # how long a token fetch takes: lets concurrent senders race
    templates: frozenset[str] = frozenset()
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    media: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    _expired: set[str] = field(default_factory=set)
    _silent: set[str] = field(default_factory=set)
    _limited: list[tuple[int, str | None]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(200228332))

    # -- what a test changes -------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (as after expires_in)."""
        self._expired.update(self.tokens_issued)

    def last_message_older_than_48h(self, openid: str) -> None:
        """Customer-service messages to ``openid`` now answer 45015."""
        self._silent.add(openid)

    def limit_next(self, count: int, errcode: int = 45009, msgtype: str | None = None) -> None:
        """The next ``count`` customer-service sends (of ``msgtype``, else any) answer ``errcode``
        (45009 quota, 45047 message count, -1 busy)."""
        self._limited.extend([(errcode, msgtype)] * count)

    # -- what a test reads ---------------------------------------------------------------
    def sent(self, path: str = "/cgi-bin/message/custom/send") -> list[dict]:
        """JSON bodies of accepted calls to ``path``."""
        return [r.json for r in self.requests if r.path == path and r.accepted]

    @property
    def token_fetches(self) -> int:
        return sum(1 for r in self.requests if r.path == "/cgi-bin/token")

    # -- the endpoints -------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        self.requests.append(Received("GET", request.path, dict(request.query)))
        q = request.query
        if q.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if q.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if q.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        await asyncio.sleep(self.token_delay_s)
        token = secrets.token_urlsafe(24)
        self.tokens_issued.append(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in})

    def _check_token(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if not token:
            return _error(41001, "access_token missing")
        if token in self._expired:
            return _error(42001, "access_token expired")
        if token not in self.tokens_issued:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        return None

    async def _json_call(self, request: web.Request) -> tuple[Received, web.Response | None]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        received = Received("POST", request.path, dict(request.query), body)
        self.requests.append(received)
        refused = self._check_token(request)
        if refused is None and not isinstance(body, dict):
            refused = _error(47001, "data format error")
        return received, refused

    async def custom_send(self, request: web.Request) -> web.Response:
        received, refused = await self._json_call(request)
        if refused is not None:
            return refused
        body = received.json or {}
        if body.get("touser") in self._silent:
            return _error(45015, "response out of time limit or subscription is canceled")
        limit = next((x for x in self._limited if x[1] in (None, body.get("msgtype"))), None)
        if limit is not None:
            self._limited.remove(limit)
            code = limit[0]
            return _error(code, {-1: "system error", 45047: "out of response count limit"}.get(
                code, "reach max api daily quota limit"))
        if body.get("msgtype") == "image" and body.get("image", {}).get("media_id") not in self.media:
            return _error(40007, "invalid media_id")
        received.accepted = True
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def template_send(self, request: web.Request) -> web.Response:
        received, refused = await self._json_call(request)
        if refused is not None:
            return refused
        if (received.json or {}).get("template_id") not in self.templates:
            return _error(40037, "invalid template_id")
        received.accepted = True
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def upload(self, request: web.Request) -> web.Response:
        received = Received("POST", request.path, dict(request.query))
        self.requests.append(received)
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                received.files.append((part.name or "", part.filename or "",
                                       part.headers.get("Content-Type", ""), await part.read()))
        refused = self._check_token(request)
        if refused is not None:
            return refused
        if request.query.get("type") not in ("image", "voice", "video", "thumb"):
            return _error(40004, "invalid media type")
        media = [f for f in received.files if f[0] == "media"]
        if not media:
            return _error(41005, "media data missing")
        media_id = secrets.token_urlsafe(32)
        self.media[media_id] = media[0][1:]
        received.accepted = True
        return web.json_response({"type": request.query["type"], "media_id": media_id, "created_at": 1700000000})


def _error(errcode: int, errmsg: str) -> web.Response:
    # WeChat answers API errors with HTTP 200 and the errcode in the body.
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


@asynccontextmanager
async def start_wechat_standin(appid: str = "wx5f3c1a2b9d8e7f60", secret: str = "b1946ac92492d2347c6235b4d2611184",
                               **options) -> AsyncIterator[WeChatStandin]:
    """Serve a WeChatStandin on a free loopback port for the ``async with`` block."""
    standin = WeChatStandin(appid, secret, **options)
    app = web.Application()
    app.router.add_get("/cgi-bin/token", standin.token)
    app.router.add_post("/cgi-bin/message/custom/send", standin.custom_send)
    app.router.add_post("/cgi-bin/message/template/send", standin.template_send)
    app.router.add_post("/cgi-bin/media/upload", standin.upload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    standin.base_url = f"http://{host}:{port}"
    try:
        yield standin
    finally:
        await runner.cleanup()
