"""A local stand-in for Weibo's fan service reply API (the real one cannot run here).

``POST /2/messages/reply.json`` (form-encoded) answers as the fan service docs describe:
success with the message, or ``{"error", "error_code", "request"}`` — 10016 missing parameter,
21332 unknown token, 21327 expired token, 10023 user rate limit, 20003 unknown receiver.
Every request is recorded with its form and the decoded ``data`` JSON.

    async with start_weibo_standin() as wb:
        settings = {"access_token": wb.token, "api_base": wb.base_url}
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

REQUIRED = ("access_token", "type", "data", "receiver_id")


@dataclass
class Reply:
    form: dict[str, str]
    data: dict | None
    accepted: bool = False


@dataclass
class WeiboStandin:
    token: str = "2.00Ab3CdEfGhIjK_standin"
    sender_id: int = 5175429989
    fans: frozenset[str] = frozenset({"1905739501"})
    base_url: str = ""
    replies: list[Reply] = field(default_factory=list)
    _expired: bool = False
    _limited: int = 0
    _skip: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(4013001000000001))

    def expire_token(self) -> None:
        """The account's token now answers 21327 expired_token."""
        self._expired = True

    def limit_next(self, count: int, after: int = 0) -> None:
        """Once ``after`` more replies were accepted, the next ``count`` answer 10023 (user rate limit)."""
        self._limited, self._skip = count, after

    def accepted(self) -> list[dict]:
        return [r.data for r in self.replies if r.accepted]

    async def reply(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            data = json.loads(form.get("data", ""))
        except ValueError:
            data = None
        received = Reply(form, data)
        self.replies.append(received)
        missing = [k for k in REQUIRED if not form.get(k)]
        if missing:
            return _error(400, 10016, f"miss required parameter ({missing[0]}), see doc for more info.")
        if form["access_token"] != self.token:
            return _error(401, 21332, "invalid_access_token")
        if self._expired:
            return _error(401, 21327, "expired_token")
        if self._limited and self._skip <= 0:
            self._limited -= 1
            return _error(403, 10023, "User requests out of rate limit!")
        if form["receiver_id"] not in self.fans:
            return _error(400, 20003, "User does not exists!")
        if form["type"] != "text" or not isinstance(data, dict) or not data.get("text"):
            return _error(400, 10008, "param error, see doc for more info.")
        received.accepted = True
        self._skip -= 1
        msg_id = next(self._ids)
        return web.json_response({"id": msg_id, "idstr": str(msg_id), "type": "text", "sender_id": self.sender_id,
                                  "receiver_id": int(form["receiver_id"]), "text": data["text"]})


def _error(status: int, code: int, words: str) -> web.Response:
    return web.json_response({"error": words, "error_code": code, "request": "/2/messages/reply.json"},
                             status=status)


@asynccontextmanager
async def start_weibo_standin(**options) -> AsyncIterator[WeiboStandin]:
    """Serve a WeiboStandin on a free loopback port for the ``async with`` block."""
    standin = WeiboStandin(**options)
    app = web.Application()
    app.router.add_post("/2/messages/reply.json", standin.reply)
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
