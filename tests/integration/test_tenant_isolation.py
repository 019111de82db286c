"""Every API route, called with tenant A's key on tenant B's objects: B stays invisible and untouched.

The route table below must list every route under /api/v1; a new route fails this test until
it is added here with what isolation means for it.
"""

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from auto_mail_support import postfix_bounce
from support import make_mail

from connectors.registry import capacity_classes
from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import load
from normalizer.worker import Normalizer
from ticket_service.api import setup_api
from ticket_service.portal_links import PortalLinks
from ticket_service.store import admin, deliveries
from ticket_service.store.db import Database, migrate

PREFIX = "/api/v1"
# (method, route) -> kind: "list" answers only the caller's items; "item" answers 404 on another
# tenant's id; "create" makes an object of the caller's tenant only; "report" sums up the
# caller's tenant only.
ROUTES = {
    ("GET", "/tickets"): "list",
    ("GET", "/tickets/{id}"): "item",
    ("PATCH", "/tickets/{id}"): "item",
    ("GET", "/tickets/{id}/routing"): "item",
    ("GET", "/tickets/{id}/reply-address"): "item",
    ("POST", "/tickets/{id}/messages"): "item",
    ("POST", "/tickets/{id}/portal-link"): "item",
    ("DELETE", "/tickets/{id}/portal-link"): "item",
    ("GET", "/attachments/{id}"): "item",
    ("GET", "/messages"): "list",
    ("GET", "/agents"): "list",
    ("POST", "/agents"): "create",
    ("PUT", "/agents/{id}/status"): "item",
    ("GET", "/routing/rules"): "list",
    ("POST", "/routing/rules"): "create",
    ("DELETE", "/routing/rules/{id}"): "item",
    ("GET", "/reports/queue"): "report",
    ("GET", "/reports/kpis"): "report",
    ("GET", "/fields"): "list",
    ("POST", "/fields"): "create",
    ("GET", "/fields/{name}"): "item",
    ("PUT", "/fields/{name}"): "item",
    ("DELETE", "/fields/{name}"): "item",
    ("GET", "/openapi.json"): "public",
    ("GET", "/webhooks"): "list",
    ("POST", "/webhooks"): "create",
    ("GET", "/webhooks/{id}"): "item",
    ("DELETE", "/webhooks/{id}"): "item",
    ("GET", "/webhooks/{id}/deliveries"): "item",
    ("POST", "/webhooks/{id}/deliveries/{delivery}/replay"): "item",
}
QUERIES = {("GET", "/messages"): "?kind=bounce"}
BODIES = {
    ("PATCH", "/tickets/{id}"): {"status": "closed"},
    ("PUT", "/agents/{id}/status"): {"status": "offline"},
    ("POST", "/tickets/{id}/messages"): {"text": "a reply into another tenant's ticket"},
    ("POST", "/agents"): {"name": "Mallory", "email": "mallory@acme.test", "status": "online",
                          "capacity": {"email": 1}},
    ("POST", "/routing/rules"): {"name": "steal", "required": {"refunds": 1}},
    ("POST", "/fields"): {"name": "globex_only", "type": "text"},  # the other tenant's name: still mine
    ("PUT", "/fields/{name}"): {"required": True},
    ("POST", "/webhooks"): {"url": "https://1.1.1.1/steal", "events": ["*"]},
}


@pytest.fixture
async def world(sqlite_url, redis_url, tmp_path):
    """Two tenants, each with a ticket carrying an attachment, an online agent and a rule."""
    db = Database(sqlite_url)
    await migrate(db)
    client = aioredis.Redis.from_url(redis_url)
    blobs = BlobStore(tmp_path / "blobs")
    bus = Bus(client, blobs, 1 << 20)
    tenants = {}
    async with db.write() as conn:
        for slug in ("acme", "globex"):
            tid = await admin.create_tenant(conn, slug)
            account = await admin.add_account(conn, tid, "email", f"help@{slug}.test")
            tenants[slug] = {"id": tid, "account": account, "key": await admin.create_api_key(conn, tid, "t")}
    for slug, t in tenants.items():
        raw, _ = make_mail(subject=f"{slug} secret", to=f"help@{slug}.test", sender=f"boss@{slug}.test",
                           attachments=[(f"{slug}.pdf", "application/pdf", f"{slug} plans".encode())])
        await bus.publish(keys.ingest_stream("email"),
                          Envelope(tenant=slug, channel="email", account=str(t["account"]), payload=raw))
        # A bounce of mail the tenant never sent: listed by GET /messages?kind=bounce.
        bounce = postfix_bounce(f"<forged@{slug}.test>", f"nobody@{slug}.example")
        await bus.publish(keys.ingest_stream("email"),
                          Envelope(tenant=slug, channel="email", account=str(t["account"]), payload=bounce))
    settings = load(env={}).replace(data_dir=tmp_path, block_ms=50)
    await asyncio.wait_for(Normalizer(bus, settings, db, blobs).run(drain=True), 60)

    app = web.Application()
    setup_api(app, db, blobs, capacity_classes(), bus=bus, secret_key="isolation-test-key",
              links=PortalLinks("isolation-secret", "http://127.0.0.1:8080"))
    http = TestClient(TestServer(app))
    await http.start_server()
    for slug, t in tenants.items():
        h = {"Authorization": f"Bearer {t['key']}"}
        async with http.get(f"{PREFIX}/tickets", headers=h) as r:
            [ticket] = (await r.json())["items"]
        async with http.get(f"{PREFIX}/tickets/{ticket['id']}", headers=h) as r:
            [message] = (await r.json())["messages"]
        async with http.get(f"{PREFIX}/messages?kind=bounce", headers=h) as r:
            [bounce] = (await r.json())["items"]
        async with http.post(f"{PREFIX}/agents", headers=h, json={
                "name": slug, "email": f"agent@{slug}.test", "status": "online", "capacity": {"email": 5}}) as r:
            assert r.status == 201, await r.text()
            agent = await r.json()
        async with http.post(f"{PREFIX}/routing/rules", headers=h, json={"name": f"{slug} rule"}) as r:
            assert r.status == 201, await r.text()
            rule = await r.json()
        async with http.post(f"{PREFIX}/fields", headers=h, json={"name": f"{slug}_only", "type": "number"}) as r:
            assert r.status == 201, await r.text()
        async with http.patch(f"{PREFIX}/tickets/{ticket['id']}", headers=h, json={"fields": {f"{slug}_only": 7}}) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{PREFIX}/webhooks", headers=h, json={"url": f"https://1.1.1.1/{slug}",
                                                                    "events": ["*"]}) as r:
            assert r.status == 201, await r.text()
            webhook = await r.json()
        t.update(headers=h, ids={"/tickets": ticket["id"], "/attachments": message["attachments"][0]["id"],
                                 "/agents": agent["id"], "/routing/rules": rule["id"], "/messages": bounce["id"],
                                 "/fields": f"{slug}_only", "/webhooks": webhook["id"],
                                 "{delivery}": await db.run_write(deliveries.enqueue, t["id"], webhook["id"],
                                                                  "ticket.created", {})})
    yield http, tenants, app
    await http.close()
    await client.aclose()
    await db.dispose()


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical
        if path.startswith(PREFIX) and route.method != "HEAD":
            found.add((route.method, path[len(PREFIX):]))
    return found


def _fill(path: str, ids: dict) -> str:
    """Put the other tenant's id of the resource the path names into {id}."""
    resource = next(r for r in sorted(ids, key=len, reverse=True) if path.startswith(r + "/"))
    return (path.replace("{id}", str(ids[resource])).replace("{name}", str(ids[resource]))
            .replace("{delivery}", str(ids.get("{delivery}"))))


async def _snapshot(http, tenant) -> dict:
    """What the tenant itself sees of its objects."""
    out = {}
    for path in ("/tickets", "/agents", "/routing/rules", "/messages", "/fields", "/webhooks"):
        async with http.get(PREFIX + path + QUERIES.get(("GET", path), ""), headers=tenant["headers"]) as r:
            out[path] = await r.json()
    async with http.get(f"{PREFIX}/attachments/{tenant['ids']['/attachments']}", headers=tenant["headers"]) as r:
        out["attachment"] = await r.read()
    return out


async def test_every_api_route_is_covered(world):
    _, _, app = world
    assert _api_routes(app) == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_a_key_of_one_tenant_sees_and_changes_nothing_of_another(world, method, path):
    http, tenants, _ = world
    me, other = tenants["acme"], tenants["globex"]
    before = await _snapshot(http, other)
    kind = ROUTES[(method, path)]
    url = PREFIX + (_fill(path, other["ids"]) if "{" in path else path) + QUERIES.get((method, path), "")
    async with http.request(method, url, headers=me["headers"], json=BODIES.get((method, path))) as r:
        status, body = r.status, await r.read()
    if kind == "item":
        assert status == 404, (method, url, body)
        assert b'"not_found"' in body
    elif kind == "list":
        assert status == 200
        items = json.loads(body)["items"]
        mine = {me["ids"][path]} if path in me["ids"] else set()
        assert {i.get("id", i.get("name")) for i in items} == mine, (path, items)
        assert b"globex" not in body
    elif kind == "report":
        assert status == 200, body
        report = json.loads(body)
        if "rows" in report:  # KPIs: the caller's one ticket
            assert sum(row["volume"] for row in report["rows"]) == 1, report
        else:  # the queue report: the caller's own agent only
            assert [a["name"] for a in report["agents"]] == ["acme"], report
        assert b"globex" not in body
    elif kind == "public":  # no key needed, and nothing of any tenant in it
        assert status == 200 and b"globex" not in body and b"acme" not in body
    else:
        assert status == 201, body
    assert await _snapshot(http, other) == before, f"{method} {path} changed the other tenant"
