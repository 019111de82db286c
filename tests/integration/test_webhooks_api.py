"""``/api/v1/webhooks`` over real HTTP on SQLite and PostgreSQL: create, list, get, delete, the
URL checks, deliveries with their filter and pages, replay, and other tenants kept out."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from webhook_support import SECRET_KEY, Hooks

from core.credentials import unseal
from core.ids import now_ms
from ticket_service.api.webhooks import PATHS
from ticket_service.store import admin, deliveries
from ticket_service.store.tables import metadata, webhooks


@pytest.fixture
async def api(system):
    h = await Hooks(system).start(allow_private=False)
    yield h
    await h.close()


async def test_create_returns_the_secret_once_and_stores_it_sealed(api):
    status, doc = await api.api("POST", "/webhooks", {"url": "https://1.1.1.1/hooks/sb", "events": ["ticket.created"]})
    assert status == 201
    assert (doc["url"], doc["events"]) == ("https://1.1.1.1/hooks/sb", ["ticket.created"])
    assert doc["secret"].startswith("whsec_") and len(doc["secret"]) > 40
    async with api.system.db.read() as conn:
        sealed = (await conn.execute(select(webhooks.c.secret_enc))).scalar_one()
    assert doc["secret"] not in sealed and unseal(SECRET_KEY, sealed) == doc["secret"]
    status, one = await api.api("GET", f"/webhooks/{doc['id']}")
    assert status == 200 and "secret" not in one and one["id"] == doc["id"]
    status, listed = await api.api("GET", "/webhooks")
    assert status == 200 and listed["items"] == [one]
    # A secret of the tenant's own choosing is kept as given.
    status, mine = await api.api("POST", "/webhooks", {"url": "http://8.8.8.8/x", "events": ["*"],
                                                       "secret": "my-own-secret-0123456789"})
    assert status == 201 and mine["secret"] == "my-own-secret-0123456789"


@pytest.mark.parametrize("url, why", [
    ("ftp://example.com/x", "must be an http or https URL"),
    ("https://user:pw@1.1.1.1/x", "must not carry credentials"),
    ("https://1.1.1.1/" + "a" * 2048, "is longer than 2048 characters"),
    ("http://127.0.0.1:8080/hook", "resolves to 127.0.0.1 is a loopback address"),
    ("http://localhost:8080/hook", "is a loopback address"),
    ("http://10.1.2.3/hook", "resolves to 10.1.2.3 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "is a link-local address"),
    ("http://[::ffff:127.0.0.1]/hook", "is a loopback address"),
    ("http://224.0.0.1/hook", "is a multicast address"),
    ("http://0.0.0.0/hook", "is an unspecified address"),
    ("http://100.64.0.1/hook", "is not a public address"),
])
async def test_a_bad_or_private_url_is_refused_naming_url(api, url, why):
    status, doc = await api.api("POST", "/webhooks", {"url": url, "events": ["*"]})
    assert status == 400 and doc["error"]["code"] == "invalid_field"
    assert doc["error"]["message"].startswith("field 'url' ") and why in doc["error"]["message"]
    assert (await api.api("GET", "/webhooks"))[1]["items"] == []


async def test_a_private_url_is_allowed_when_the_tenant_allows_it(api):
    await api.allow_private(True)
    status, doc = await api.api("POST", "/webhooks", {"url": "http://127.0.0.1:8080/hook", "events": ["*"]})
    assert status == 201 and doc["url"] == "http://127.0.0.1:8080/hook"


@pytest.mark.parametrize("body, field", [
    ({"url": "http://8.8.8.8/", "events": []}, "events"),
    ({"url": "http://8.8.8.8/", "events": "ticket.created"}, "events"),
    ({"url": "http://8.8.8.8/", "events": ["Ticket Created"]}, "events[0]"),
    ({"url": "http://8.8.8.8/", "events": ["*"], "secret": "short"}, "secret"),
    ({"url": "http://8.8.8.8/", "events": ["*"], "colour": "red"}, "colour"),
    ({"events": ["*"]}, "url"),
])
async def test_bad_fields_are_refused_naming_the_field(api, body, field):
    status, doc = await api.api("POST", "/webhooks", body)
    assert status == 400 and doc["error"]["message"].startswith(f"field {field!r} ")


async def test_delete_removes_the_webhook_and_its_deliveries(api):
    _, doc = await api.api("POST", "/webhooks", {"url": "http://8.8.8.8/x", "events": ["*"]})
    await _deliveries(api, doc["id"], 2)
    status, _ = await api.api("DELETE", f"/webhooks/{doc['id']}")
    assert status == 204
    assert (await api.api("GET", f"/webhooks/{doc['id']}"))[0] == 404
    assert (await api.api("DELETE", f"/webhooks/{doc['id']}"))[0] == 404
    assert await api.deliveries() == []


async def _deliveries(api, webhook_id: int, count: int) -> list[int]:
    def add(conn):
        return [deliveries.enqueue(conn, api.system.tenant, webhook_id, "ticket.created", {"n": n}, event_id=f"E{n}")
                for n in range(count)]
    return await api.system.db.run_write(add)


async def test_deliveries_are_listed_newest_first_in_pages_and_filtered_by_status(api):
    _, doc = await api.api("POST", "/webhooks", {"url": "http://8.8.8.8/x", "events": ["*"]})
    ids = await _deliveries(api, doc["id"], 5)

    def fail_two(conn):
        claimed = {a.id: a for a in deliveries.claim(conn, now_ms(), 60_000, 5, 5, {})}
        assert sorted(claimed) == ids
        for n in (1, 3):
            deliveries.record_failed(conn, claimed[ids[n]], 500, "HTTP 500: boom", None)
    await api.system.db.run_write(fail_two)
    path = f"/webhooks/{doc['id']}/deliveries"
    status, page = await api.api("GET", f"{path}?limit=2")
    assert status == 200 and [d["id"] for d in page["items"]] == ids[:-3:-1]
    _, rest = await api.api("GET", f"{path}?limit=10&cursor={page['next']}")
    assert [d["id"] for d in rest["items"]] == ids[2::-1] and rest["next"] is None
    _, dead = await api.api("GET", f"{path}?status=dead")
    assert [d["id"] for d in dead["items"]] == [ids[3], ids[1]]
    first = dead["items"][0]
    assert (first["status"], first["attempts"], first["response_code"], first["last_error"]) == (
        "dead", 1, 500, "HTTP 500: boom")
    assert first["last_attempt_at"].endswith("Z") and first["next_attempt_at"] is None
    status, bad = await api.api("GET", f"{path}?status=lost")
    assert status == 400 and "pending|delivered|failed|dead" in bad["error"]["message"]


async def test_another_tenants_webhooks_and_deliveries_are_not_found(api):
    _, doc = await api.api("POST", "/webhooks", {"url": "http://8.8.8.8/x", "events": ["*"]})
    [delivery] = await _deliveries(api, doc["id"], 1)
    async with api.system.db.write() as conn:
        other = await admin.create_tenant(conn, "globex")
        key = await admin.create_api_key(conn, other)
    for method, path in (("GET", f"/webhooks/{doc['id']}"), ("DELETE", f"/webhooks/{doc['id']}"),
                         ("GET", f"/webhooks/{doc['id']}/deliveries"),
                         ("POST", f"/webhooks/{doc['id']}/deliveries/{delivery}/replay")):
        status, body = await api.api(method, path, key=key)
        assert status == 404 and body["error"]["code"] == "not_found", (method, path)
    assert (await api.api("GET", "/webhooks", key=key))[1] == {"items": []}
    assert (await api.api("GET", "/webhooks", key="sb_wrong"))[0] == 401


async def test_replay_of_an_unknown_delivery_is_not_found(api):
    _, doc = await api.api("POST", "/webhooks", {"url": "http://8.8.8.8/x", "events": ["*"]})
    status, body = await api.api("POST", f"/webhooks/{doc['id']}/deliveries/999/replay")
    assert status == 404 and body["error"]["message"] == "delivery 999 not found"


async def test_every_route_is_described_with_its_error_shape():
    routes = {"/webhooks": {"get", "post"}, "/webhooks/{id}": {"get", "delete"},
              "/webhooks/{id}/deliveries": {"get"}, "/webhooks/{id}/deliveries/{delivery}/replay": {"post"}}
    assert {p: set(item) - {"parameters"} for p, item in PATHS.items()} == routes
    for item in PATHS.values():
        for method in set(item) - {"parameters"}:
            for code, answer in item[method]["responses"].items():
                if code.startswith("4") or code == "default":
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    json.dumps(PATHS)


async def test_webhook_migration_matches_the_tables(system):
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    async with system.db.read() as conn:
        found = await conn.run_sync(diff)
    assert [d for d in found if "webhook" in repr(d)] == []
