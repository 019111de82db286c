"""Triggers and automations over the real API, with the rules worker run in drain mode."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from connectors.registry import capacity_classes
from rules import api as rules_api
from rules.automations import Automations
from rules.triggers import Triggers
from rules.worker import RulesWorker
from ticket_service.api import setup_api
from ticket_service.store import admin
from ticket_service.store.tables import audit, outbox

SECRET = "rules-test-secret"


class Rules:
    def __init__(self, system, http: TestClient, key: str, other_key: str) -> None:
        self.system, self.http, self.key, self.other_key = system, http, key, other_key

    async def call(self, method: str, path: str, body=None, key: str | None = None) -> tuple[int, dict | None]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        async with self.http.request(method, f"/api/v1{path}", json=body, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else None)

    async def add(self, kind: str, body: dict, key: str | None = None) -> dict:
        status, created = await self.call("POST", f"/{kind}s", body, key)
        assert status == 201, created
        return created

    def triggers(self) -> Triggers:
        return Triggers(self.system.db, self.system.bus, SECRET, capacity_classes())

    def automations(self, **kwargs) -> Automations:
        return Automations(self.system.db, self.system.bus, SECRET, capacity_classes(), **kwargs)

    async def run_triggers(self, *more_handlers) -> RulesWorker:
        worker = RulesWorker(self.system.bus, self.system.settings, [self.triggers(), *more_handlers])
        await asyncio.wait_for(worker.run(drain=True), 60)
        return worker

    async def audit(self):
        async with self.system.db.read() as conn:
            return (await conn.execute(select(audit).order_by(audit.c.id))).all()

    async def outbox(self):
        async with self.system.db.read() as conn:
            return (await conn.execute(select(outbox).order_by(outbox.c.id))).all()


@asynccontextmanager
async def rules_world(system):
    """The tenant acme (mailbox help@acme.test) and globex, an API key each, the API served."""
    system.settings = system.settings.replace(secret_key=SECRET)
    async with system.db.write() as conn:
        key = await admin.create_api_key(conn, system.tenant)
        other = await admin.create_tenant(conn, "globex")
        await admin.add_account(conn, other, "email", "help@globex.test")
        other_key = await admin.create_api_key(conn, other)
    app = web.Application()
    setup_api(app, system.db, system.bus.blobs, capacity_classes(), bus=system.bus, secret_key=SECRET)
    rules_api.setup_routes(app)
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        yield Rules(system, http, key, other_key)
    finally:
        await http.close()
