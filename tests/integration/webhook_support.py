"""Webhook tests' parts: a real HTTP receiver (aiohttp), the API over real HTTP, a running
rules worker, and an independent check of the signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from support import make_mail

from core.blobs import BlobStore
from rules.deliveries import Deliverer
from rules.webhooks import WebhookFanout
from rules.worker import RulesWorker
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store import webhooks as webhooks_store
from ticket_service.store.tables import webhook_deliveries

SECRET_KEY = "webhook-test-secret-key"
FAST = dict(secret_key=SECRET_KEY, webhook_retry_base_s=0.05, webhook_retry_cap_s=0.2,
            webhook_retry_window_s=60.0, webhook_timeout_s=5.0, webhook_poll_ms=20, webhook_cache_s=0.0)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers each POST with the next of ``statuses`` (then 200); with ``hold``, every request
    waits for it first. Records what it got."""

    def __init__(self, statuses=(), hold: asyncio.Event | None = None) -> None:
        self.statuses = list(statuses)
        self.hold = hold
        self.requests: list[Received] = []
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else f"receiver says no ({status})")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.runner is not None:
            await self.runner.cleanup()


def valid_signature(secret: str, received: Received) -> bool:
    """The receiver's check, written from the docs: t and v1 from the header, HMAC of "t.body"."""
    fields = dict(part.split("=", 1) for part in received.headers["X-Switchboard-Signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


async def wait_until(predicate, what: str, limit: float = 60.0):
    """Await ``predicate()`` (sync or async) until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Hooks:
    """The system with webhook settings, the API on a test server, and a rules worker to run."""

    def __init__(self, system, **settings) -> None:
        self.system = system
        system.settings = system.settings.replace(**{**FAST, **settings})
        self.worker: RulesWorker | None = None
        self.task: asyncio.Task | None = None

    async def start(self, allow_private: bool = True) -> Hooks:
        s = self.system
        app = web.Application()
        setup_api(app, s.db, BlobStore(s.settings.blob_dir), {"email": "email"}, secret_key=SECRET_KEY)
        self.server = TestServer(app)
        await self.server.start_server()
        self.http = aiohttp.ClientSession()
        async with s.db.write() as conn:
            self.key = await admin.create_api_key(conn, s.tenant)
        await self.allow_private(allow_private)
        return self

    async def allow_private(self, allowed: bool) -> None:
        await self.system.db.run_write(webhooks_store.set_allows_private, self.system.tenant, allowed)

    def run_rules(self) -> None:
        s = self.system
        self.worker = RulesWorker(s.bus, s.settings, [WebhookFanout(s.db, s.settings)], [Deliverer(s.db, s.settings)])
        self.task = asyncio.create_task(self.worker.run())

    async def api(self, method: str, path: str, body=None, key: str | None = None) -> tuple[int, dict | None]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        data = json.dumps(body).encode() if body is not None else None
        async with self.http.request(method, self.server.make_url(f"/api/v1{path}"), data=data,
                                     headers=headers) as resp:
            text = await resp.read()
            return resp.status, json.loads(text) if text else None

    async def add(self, url: str, events=("*",), **extra) -> dict:
        status, doc = await self.api("POST", "/webhooks", {"url": url, "events": list(events), **extra})
        assert status == 201, doc
        return doc

    async def ticket(self, subject: str = "Where is my order?") -> None:
        """A real mail through the normalizer: a ticket and its ticket.created event."""
        await self.system.publish(make_mail(subject=subject)[0])
        await self.system.drain()

    async def deliveries(self) -> list:
        async with self.system.db.read() as conn:
            return (await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))).all()

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            await asyncio.wait_for(self.task, 30)
        await self.http.close()
        await self.server.close()
