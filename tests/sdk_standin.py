"""A local stand-in for an app's server receiving Switchboard's SDK reply pushes.

Each push is checked with the SDK's own verifier (connectors.sdk.signing.verify) against the
app's secret; the stand-in answers ``answer_status`` (200 unless a test changes it) and records
the headers, the parsed body and the verification outcome.

    async with start_app_server(secret="s") as app:
        settings = {"secret": "s", "push_url": app.push_url}
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from connectors.push import Reject
from connectors.sdk.signing import verify
from core.accounts import Account


@dataclass
class Push:
    headers: dict[str, str]
    raw: bytes
    body: dict | None
    verified: str  # "ok" or the verifier's refusal reason


@dataclass
class AppServer:
    secret: str
    answer_status: int = 200
    answer_body: str = '{"ok": true}'
    push_url: str = ""
    pushes: list[Push] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        account = Account(1, 1, "acme", "sdk", "shop-ios", {"secret": self.secret})
        try:
            verify(request, account, raw)
            verified = "ok"
        except Reject as exc:
            verified = exc.reason
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.pushes.append(Push(dict(request.headers), raw, body, verified))
        status = self.answer_status if verified == "ok" else 401
        return web.Response(status=status, text=self.answer_body, content_type="application/json")


@asynccontextmanager
async def start_app_server(secret: str = "9f2c61d1c5a04e3b8e7d", **options) -> AsyncIterator[AppServer]:
    """Serve an AppServer on a free loopback port for the ``async with`` block."""
    server = AppServer(secret, **options)
    app = web.Application()
    app.router.add_post("/switchboard/replies", server.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.push_url = f"http://{host}:{port}/switchboard/replies"
    try:
        yield server
    finally:
        await runner.cleanup()
