"""The REST API over real HTTP on SQLite and PostgreSQL: filters, pages, detail, downloads, tenants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update

from connectors.registry import capacity_classes
from core.blobs import BlobStore
from ticket_service.api import create_app, setup_api
from ticket_service.api.auth import TenantKeys
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store import tickets as store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import api_keys, attachments, customers
from ticket_service.store.tables import tickets as tickets_table

BASE_MS = int(datetime(2026, 11, 20, 9, 30, tzinfo=UTC).timestamp() * 1000) + 123
HTML = b"<html><script>alert(document.cookie)</script></html>"
PDF = b"%PDF-1.4 fake invoice"


@dataclass
class Seeded:
    """What the fixture built: keys, ids by name, and the seven tickets of tenant A (oldest first)."""

    key_a: str = ""
    key_b: str = ""
    ids: dict[str, int] = field(default_factory=dict)
    tickets_a: list[int] = field(default_factory=list)
    pdf: int = 0
    html: int = 0
    b_ticket: int = 0
    b_attachment: int = 0


class Client:
    def __init__(self, http: aiohttp.ClientSession, server: TestServer, seeded: Seeded) -> None:
        self.http, self.server, self.seeded = http, server, seeded

    async def get(self, path: str, key: str | None = "A", **params) -> tuple[int, dict | bytes, dict]:
        """GET with tenant A's key by default; returns (status, JSON or bytes, headers)."""
        key = {"A": self.seeded.key_a, "B": self.seeded.key_b}.get(key, key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with self.http.get(self.server.make_url(path), params=params, headers=headers) as resp:
            is_json = resp.content_type == "application/json"
            body = await resp.json() if is_json else await resp.read()
            return resp.status, body, dict(resp.headers)


# Tenant A's tickets, oldest first: (channel, status, customer, assignee).
TICKETS_A = [
    ("email", "new", "zhang", None),
    ("email", "open", "zhang", "alice"),
    ("wechat", "open", "li", "bob"),
    ("email", "solved", "li", "alice"),
    ("wechat", "new", "zhang", None),
    ("email", "open", "li", None),
    ("email", "open", "zhang", "alice"),
]


async def _attach(conn, blobs, tenant, message, filename, ctype, data, inline=False) -> int:
    key = await blobs.put(data)
    await conn.run_sync(store.add_attachments, [dict(
        tenant_id=tenant, message_id=message, filename=filename, content_type=ctype, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), blob_key=key, content_id=None, inline=inline,
    )])
    return (await conn.execute(select(func.max(attachments.c.id)))).scalar_one()


async def _message(conn, tenant, account, ticket, customer, n, **values) -> int:
    row = dict(
        tenant_id=tenant, account_id=account, ticket_id=ticket, customer_id=customer, channel="email",
        dedup_key=f"<m{n}@example.cn>", envelope_id=f"{n:026d}", created_at=BASE_MS + n * 1000,
    )
    return await conn.run_sync(store.add_message, **(row | values))


async def _seed_tenant_a(conn, blobs, s: Seeded) -> None:
    tenant = await admin.create_tenant(conn, "acme")
    s.key_a = await admin.create_api_key(conn, tenant)
    email = await admin.add_account(conn, tenant, "email", "help@acme.test")
    wechat = await admin.add_account(conn, tenant, "wechat", "gh_acme")
    s.ids["alice"] = await conn.run_sync(agents_store.create_agent, tenant, "Alice", "alice@acme.test")
    s.ids["bob"] = await conn.run_sync(agents_store.create_agent, tenant, "Bob", "bob@acme.test")
    for name, address, full in (("zhang", "zw@example.cn", "Zhang Wei"), ("li", "ln@example.cn", "Li Na")):
        s.ids[name] = (await conn.run_sync(store.resolve_customer, tenant, "email", "", address, full, 1)).id
    await conn.execute(update(customers).where(customers.c.id == s.ids["zhang"]).values(vip_tier=2))
    for i, (channel, status, customer, assignee) in enumerate(TICKETS_A):
        ticket_id, _ = await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=email if channel == "email" else wechat, channel=channel,
            status=status, customer_id=s.ids[customer], assignee_id=s.ids.get(assignee),
            subject=f"Order {1040 + i}", priority=i % 3, now=BASE_MS + i,
        )
        s.tickets_a.append(ticket_id)
    last, zhang = s.tickets_a[-1], s.ids["zhang"]
    await conn.execute(update(tickets_table).where(tickets_table.c.id == last).values(tags=["vip", "refund"]))
    # Inserted out of order: the reply (later created_at) is written first.
    await _message(conn, tenant, email, last, None, 2, direction="out", sender="help@acme.test",
                   sender_name="Alice", subject="Re: Order 1046", text="Refund issued.")
    first = await _message(conn, tenant, email, last, zhang, 1, sender="zw@example.cn",
                           sender_name="Zhang Wei", subject="Order 1046", text="Broken on arrival.",
                           html="<p>Broken on arrival.</p>")
    s.pdf = await _attach(conn, blobs, tenant, first, "报价 invoice.pdf", "application/pdf", PDF)
    s.html = await _attach(conn, blobs, tenant, first, "page.html", "text/html; charset=utf-8", HTML, True)


async def _seed_tenant_b(conn, blobs, s: Seeded) -> None:
    tenant = await admin.create_tenant(conn, "globex")
    s.key_b = await admin.create_api_key(conn, tenant)
    account = await admin.add_account(conn, tenant, "email", "help@globex.test")
    customer = (await conn.run_sync(store.resolve_customer, tenant, "email", "", "zw@example.cn", "Zhang", 1)).id
    s.b_ticket, _ = await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=account, channel="email", status="open",
        customer_id=customer, subject="Globex order", priority=0, now=BASE_MS,
    )
    message = await _message(conn, tenant, account, s.b_ticket, customer, 9, dedup_key="<b@globex>")
    s.b_attachment = await _attach(conn, blobs, tenant, message, "b.txt", "text/plain", b"globex secret")


@pytest.fixture
async def db(database_url):
    database = Database(database_url)
    await migrate(database)
    yield database
    await database.dispose()


@pytest.fixture
async def api(db, tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    seeded = Seeded()
    async with db.write() as conn:
        await _seed_tenant_a(conn, blobs, seeded)
        await _seed_tenant_b(conn, blobs, seeded)
    async with TestServer(create_app(db, blobs, capacity_classes())) as server, aiohttp.ClientSession() as http:
        yield Client(http, server, seeded)


def _ids(body: dict) -> list[int]:
    return [t["id"] for t in body["items"]]


async def test_list_is_newest_first_with_full_ticket_shape(api):
    # Every ticket of the tenant, ordered by id desc, each with customer and assignee objects.
    status, body, _ = await api.get("/api/v1/tickets")
    s = api.seeded
    assert status == 200 and body["next"] is None
    assert _ids(body) == s.tickets_a[::-1]
    newest = body["items"][0]
    assert newest == {
        "id": s.tickets_a[6], "number": 7, "subject": "Order 1046", "status": "open", "channel": "email",
        "priority": 0, "customer": {"id": s.ids["zhang"], "name": "Zhang Wei", "vip_tier": 2},
        "assignee": {"id": s.ids["alice"], "name": "Alice"}, "tags": ["vip", "refund"],
        "auto": False, "auto_reason": None, "created_at": "2026-11-20T09:30:00.129Z", "updated_at": "2026-11-20T09:30:00.129Z",
        "fields": {},
    }
    assert body["items"][-1]["assignee"] is None and body["items"][-1]["tags"] == []


@pytest.mark.parametrize(("params", "expected"), [
    ({"status": "open"}, [1, 2, 5, 6]),
    ({"status": "new,solved"}, [0, 3, 4]),
    ({"channel": "wechat"}, [2, 4]),
    ({"assignee": "alice"}, [1, 3, 6]),
    ({"assignee": "none"}, [0, 4, 5]),
    ({"customer": "li"}, [2, 3, 5]),
    ({"status": "open", "assignee": "alice"}, [1, 6]),
    ({"status": "pending"}, []),
])
async def test_list_filters_by_status_channel_assignee_and_customer(api, params, expected):
    # Filters combine with AND; agent/customer names in the table stand for their ids.
    s = api.seeded
    query = {k: str(s.ids.get(v, v)) for k, v in params.items()}
    status, body, _ = await api.get("/api/v1/tickets", **query)
    assert status == 200
    assert _ids(body) == [s.tickets_a[i] for i in reversed(expected)]


async def test_pagination_walks_seven_tickets_in_pages_of_three_without_duplicates(api):
    # Keyset pages: 3 + 3 + 1, the last page has next = null.
    pages, cursor = [], None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        status, body, _ = await api.get("/api/v1/tickets", **params)
        assert status == 200
        pages.append(_ids(body))
        cursor = body["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor.isascii() and "=" not in cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == api.seeded.tickets_a[::-1]


async def test_pagination_keeps_filters_across_pages(api):
    # status=open (4 tickets) in pages of 2: the cursor continues within the filter.
    s = api.seeded
    _, first, _ = await api.get("/api/v1/tickets", status="open", limit="2")
    _, second, _ = await api.get("/api/v1/tickets", status="open", limit="2", cursor=first["next"])
    assert _ids(first) + _ids(second) == [s.tickets_a[i] for i in (6, 5, 2, 1)]
    assert second["next"] is None


async def test_detail_has_messages_oldest_first_with_attachment_metadata(api):
    # The reply was stored first but is newer, so it comes second.
    s = api.seeded
    status, body, _ = await api.get(f"/api/v1/tickets/{s.tickets_a[6]}")
    assert status == 200
    assert body["id"] == s.tickets_a[6] and body["customer"]["name"] == "Zhang Wei"
    first, reply = body["messages"]
    assert (first["direction"], first["sender"], first["sender_name"]) == ("in", "zw@example.cn", "Zhang Wei")
    assert (first["subject"], first["text"]) == ("Order 1046", "Broken on arrival.")
    assert first["html"] == "<p>Broken on arrival.</p>"
    assert first["channel"] == "email" and first["auto_reason"] == ""
    assert first["created_at"] == "2026-11-20T09:30:01.123Z"
    assert (reply["direction"], reply["text"], reply["attachments"]) == ("out", "Refund issued.", [])
    assert first["attachments"] == [
        {"id": s.pdf, "filename": "报价 invoice.pdf", "content_type": "application/pdf", "size": len(PDF),
         "sha256": hashlib.sha256(PDF).hexdigest(), "inline": False, "url": f"/api/v1/attachments/{s.pdf}"},
        {"id": s.html, "filename": "page.html", "content_type": "text/html; charset=utf-8",
         "size": len(HTML), "sha256": hashlib.sha256(HTML).hexdigest(), "inline": True,
         "url": f"/api/v1/attachments/{s.html}"},
    ]


async def test_detail_of_ticket_without_messages_has_empty_list(api):
    status, body, _ = await api.get(f"/api/v1/tickets/{api.seeded.tickets_a[0]}")
    assert status == 200 and body["messages"] == [] and body["status"] == "new"


async def test_attachment_download_returns_bytes_as_a_safe_download(api):
    # A PDF keeps its type; the UTF-8 name is in filename*, with an ASCII fallback.
    status, body, headers = await api.get(f"/api/v1/attachments/{api.seeded.pdf}")
    assert status == 200 and body == PDF
    assert headers["Content-Type"] == "application/pdf"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"__ invoice.pdf\"; filename*=UTF-8''%E6%8A%A5%E4%BB%B7%20invoice.pdf"
    )


async def test_html_attachment_is_served_as_octet_stream(api):
    # text/html would run its script in our origin (stored XSS), so it is never served as such.
    status, body, headers = await api.get(f"/api/v1/attachments/{api.seeded.html}")
    assert status == 200 and body == HTML
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith('attachment; filename="page.html"')


@pytest.mark.parametrize("authorization", [None, "Bearer sb_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer"])
@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/tickets/1", "/api/v1/attachments/1"])
async def test_missing_or_wrong_key_is_401_json(api, authorization, path):
    headers = {"Authorization": authorization} if authorization else {}
    async with api.http.get(api.server.make_url(path), headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_tenant_b_sees_only_its_own_tickets_and_attachments(api):
    # B's key lists only B's ticket; A's ticket and attachment are 404 for B, and vice versa.
    s = api.seeded
    status, body, _ = await api.get("/api/v1/tickets", key="B")
    assert status == 200 and _ids(body) == [s.b_ticket]
    _, body, _ = await api.get("/api/v1/tickets", key="B", customer=str(s.ids["zhang"]))
    assert body["items"] == []
    status, body, _ = await api.get(f"/api/v1/tickets/{s.tickets_a[6]}", key="B")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": f"ticket {s.tickets_a[6]} not found"}}
    status, body, _ = await api.get(f"/api/v1/attachments/{s.pdf}", key="B")
    assert status == 404 and body["error"]["message"] == f"attachment {s.pdf} not found"
    assert (await api.get(f"/api/v1/tickets/{s.b_ticket}"))[0] == 404
    assert (await api.get(f"/api/v1/attachments/{s.b_attachment}"))[0] == 404
    status, body, _ = await api.get(f"/api/v1/attachments/{s.b_attachment}", key="B")
    assert status == 200 and body == b"globex secret"


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/tickets/abc", {}, "id"),
    ("/api/v1/tickets/-1", {}, "id"),
    ("/api/v1/tickets/0", {}, "id"),
    ("/api/v1/tickets/99999999999", {}, "id"),
    ("/api/v1/attachments/1.5", {}, "id"),
    ("/api/v1/tickets", {"limit": "abc"}, "limit"),
    ("/api/v1/tickets", {"limit": "0"}, "limit"),
    ("/api/v1/tickets", {"limit": "201"}, "limit"),
    ("/api/v1/tickets", {"assignee": "alice"}, "assignee"),
    ("/api/v1/tickets", {"customer": "3x"}, "customer"),
    ("/api/v1/tickets", {"cursor": "not a cursor!"}, "cursor"),
    ("/api/v1/tickets", {"cursor": "YWJj"}, "cursor"),  # base64 of "abc"
    ("/api/v1/tickets", {"sort": "id"}, "sort"),
])
async def test_bad_ids_and_parameters_are_400_naming_the_parameter(api, path, params, parameter):
    status, body, _ = await api.get(path, **params)
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter"
    assert f"'{parameter}'" in body["error"]["message"]


async def test_unknown_ticket_is_404_json(api):
    status, body, _ = await api.get("/api/v1/tickets/424242")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "ticket 424242 not found"}}


async def test_limit_200_is_allowed(api):
    status, body, _ = await api.get("/api/v1/tickets", limit="200")
    assert status == 200 and len(body["items"]) == 7


async def test_api_merged_into_another_app_leaves_its_routes_open(db, tmp_path):
    # setup_api adds routes with per-route auth: the host app's /healthz needs no key.
    async def healthz(_request):
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    setup_api(app, db, BlobStore(tmp_path / "blobs"), capacity_classes())
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/healthz")) as resp:
            assert resp.status == 200 and await resp.json() == {"status": "ok"}
        async with http.get(server.make_url("/api/v1/tickets")) as resp:
            assert resp.status == 401


async def test_key_lookup_caches_hits_but_never_misses(db):
    # A revoked key stays valid for the cache TTL; with no TTL the revocation is seen at once.
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        key = await admin.create_api_key(conn, tenant)
    cached, uncached = TenantKeys(db, ttl=3600), TenantKeys(db, ttl=0)
    assert await cached.tenant("sb_unknown") is None
    assert await cached.tenant(key) == tenant and await uncached.tenant(key) == tenant
    async with db.write() as conn:
        await conn.execute(update(api_keys).values(revoked_at=1))
    assert await cached.tenant(key) == tenant
    assert await uncached.tenant(key) is None
    async with db.write() as conn:
        fresh = await admin.create_api_key(conn, tenant)
    assert await cached.tenant(fresh) == tenant  # a miss a moment ago is not remembered


async def _post_agent(api, data: bytes, key: str | None = "A") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {api.seeded.key_a}"
    async with api.http.post(api.server.make_url("/api/v1/agents"), data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_routing_body_over_64_kib_is_413(api):
    status, body = await _post_agent(api, b'{"name": "' + b"x" * 70_000 + b'"}')
    assert (status, body["error"]["code"]) == (413, "body_too_large")


async def test_deeply_nested_routing_body_is_400(api):
    status, body = await _post_agent(api, b'{"name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    assert (status, body["error"]["code"]) == (400, "invalid_body")
    assert body["error"]["message"] == "body nests deeper than 8 levels"


async def test_routing_body_without_a_key_is_401_unread(api):
    status, body = await _post_agent(api, b"[" * 1_000_000, key=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
