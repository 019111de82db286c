"""The OpenAPI 3.1 document: served without a key, valid, describing every /api/v1 route; the
answer checker that runs in the API tests; and JSON that carries Chinese as UTF-8 text."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from gateway_support import running_gateway
from openapi_check import ResponseCheck
from openapi_spec_validator import validate

from connectors.registry import capacity_classes
from core.blobs import BlobStore
from ticket_service.api import openapi, setup_api
from ticket_service.store import admin
from ticket_service.store import tickets as store
from ticket_service.store.db import Database, migrate

PREFIX = "/api/v1"


@pytest.fixture
async def served(sqlite_url, tmp_path):
    db = Database(sqlite_url)
    await migrate(db)
    app = web.Application()
    setup_api(app, db, BlobStore(tmp_path / "blobs"), capacity_classes())
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        yield app, server, http, db
    await db.dispose()


def _routes(app: web.Application) -> set[tuple[str, str]]:
    return {(r.method.lower(), r.resource.canonical[len(PREFIX):]) for r in app.router.routes()
            if r.resource.canonical.startswith(PREFIX + "/") and r.method != "HEAD"}


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}  # path item keys besides these:
# parameters, summary, description, servers (OAS 3.1 §4.8.9)


def _described(doc: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item if method in _METHODS}


async def test_document_describes_every_api_route_and_nothing_else(served):
    # Walks the router: a route (method + path) missing from the document fails here.
    app, *_ = served
    doc = openapi.document()
    assert _routes(app) == _described(doc)
    assert ("patch", "/tickets/{id}") in _described(doc) and ("delete", "/fields/{name}") in _described(doc)


async def test_document_is_served_without_a_key_and_is_valid_openapi_3_1(served):
    _, server, http, _ = served
    async with http.get(server.make_url(f"{PREFIX}/openapi.json")) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json; charset=utf-8"
        doc = await resp.json()
    assert doc == openapi.document()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": PREFIX}]
    validate(doc)  # openapi-spec-validator picks its 3.1 validator from the version
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in _METHODS and op.get("security") != []:
                assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, (method, path)


def test_the_answer_checker_refuses_what_the_document_does_not_describe():
    # The checker the API tests run through: a wrong shape, an unknown route or status fails.
    check = ResponseCheck(openapi.document())
    good = {"name": "order_no", "type": "text", "label": "", "required": False, "choices": None}
    assert check.validate("get", "/fields/{name}", 200, good) is None
    assert "at /type" in check.validate("get", "/fields/{name}", 200, {**good, "type": "money"})
    assert "'colour' was unexpected" in check.validate("get", "/fields/{name}", 200, {**good, "colour": 1})
    assert check.validate("get", "/fields/{name}", 404, {"error": {"code": "not_found", "message": "x"}}) is None
    assert "at /error" in check.validate("get", "/fields/{name}", 404, {"error": "not found"})
    assert "is not in the OpenAPI document" in check.validate("post", "/fields/{name}", 200, good)
    assert "does not describe" in check.validate("delete", "/fields/{name}", 204, {})


async def test_the_api_tests_run_through_the_checker(served, api_responses_match_the_document):
    # The autouse fixture's middleware sits in every app setup_api builds, and counts what it checked.
    app, server, http, _ = served
    assert api_responses_match_the_document.middleware in app.middlewares
    async with http.get(server.make_url(f"{PREFIX}/tickets")) as resp:
        assert resp.status == 401
    assert api_responses_match_the_document.checked == 1


async def test_chinese_text_is_sent_as_utf8_not_escaped(served):
    # A ticket whose subject is 订单问题: the raw bytes of the list and the detail hold it as UTF-8.
    _, server, http, db = served
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        key = await admin.create_api_key(conn, tenant)
        account = await admin.add_account(conn, tenant, "email", "help@acme.test")
        customer = (await conn.run_sync(store.resolve_customer, tenant, "email", "", "zw@example.cn", "张伟", 1)).id
        ticket, _ = await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=account, channel="email",
                                        status="open", customer_id=customer, subject="订单问题", now=1)
    headers = {"Authorization": f"Bearer {key}"}
    for path in ("/tickets", f"/tickets/{ticket}"):
        async with http.get(server.make_url(PREFIX + path), headers=headers) as resp:
            raw = await resp.read()
            assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert "订单问题".encode() in raw and "张伟".encode() in raw and b"\\u" not in raw
    async with http.patch(server.make_url(f"{PREFIX}/tickets/{ticket}"), headers=headers,
                          json={"fields": {"订单": 1}}) as resp:
        raw = await resp.read()
    assert resp.status == 400 and "fields.订单: is not a field of this tenant".encode() in raw


async def test_gateway_errors_carry_chinese_as_utf8(system):
    # A web form's refusal names the form's own field (here a Chinese one) as text.
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("webform", "contact", {"fields": {"body": "问题"}, "required": ["body"]})
        async with gw.http.post(gw.url("/forms/contact"), data={"邮箱": "a@example.cn"}) as resp:
            raw = await resp.read()
            assert (resp.status, resp.headers["Content-Type"]) == (400, "application/json; charset=utf-8")
    assert "'问题' is required".encode() in raw and b"\\u" not in raw


async def test_routes_mounted_beside_the_api_are_described_too(sqlite_url, tmp_path):
    # The rules' triggers, automations, audit, calendars and SLA policies: mounted by the roles
    # next to the API, described by their own modules, served in the same document.
    from rules import api as rules_api
    from rules import sla_api

    db = Database(sqlite_url)
    await migrate(db)
    app = web.Application()
    setup_api(app, db, BlobStore(tmp_path / "blobs"), capacity_classes())
    rules_api.setup_routes(app)
    sla_api.setup_routes(app)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url(f"{PREFIX}/openapi.json")) as resp:
            served = await resp.json()
    await db.dispose()
    assert _routes(app) == _described(served)
    assert {("post", "/triggers"), ("get", "/tickets/{id}/audit"), ("put", "/sla-policies/{name}"),
            ("delete", "/calendars/{name}")} <= _described(served)
    validate(served)
