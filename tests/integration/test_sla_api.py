"""/api/v1/calendars and /api/v1/sla-policies over real HTTP, and a ticket's "sla" in its detail."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert

from connectors.registry import capacity_classes
from core.blobs import BlobStore
from rules import sla_api
from ticket_service.api import create_app
from ticket_service.store import admin
from ticket_service.store.tables import metadata, sla_clocks

CN = {"name": "cn-support", "timezone": "Asia/Shanghai", "country": "CN",
      "hours": {d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
      "extra_holidays": ["2026-12-24"], "workdays": ["2026-02-14", {"date": "2026-02-28", "as": "fri"}]}
VIP = {"name": "vip", "if": {"all": [{"field": "vip_tier", "op": "gte", "value": 1}]},
       "targets": {"first_reply_s": 3600, "resolution_s": 86400}, "calendar": "cn-support",
       "pause_in": ["pending"]}


class Api:
    def __init__(self, http, server, keys):
        self.http, self.server, self.keys = http, server, keys

    async def call(self, method: str, path: str, body=None, tenant: str = "a") -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        async with self.http.request(method, self.server.make_url(f"/api/v1{path}"), json=body,
                                     headers=headers) as resp:
            return resp.status, (await resp.json() if resp.content_type == "application/json" else None)


@pytest.fixture
async def api(system, tmp_path):
    async with system.db.write() as conn:
        other = await admin.create_tenant(conn, "other")
        keys = {"a": await admin.create_api_key(conn, system.tenant, "t"),
                "b": await admin.create_api_key(conn, other, "t")}
    app = create_app(system.db, BlobStore(tmp_path / "blobs"), capacity_classes())
    sla_api.setup_routes(app)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        yield Api(http, server, keys)


async def test_calendars_are_stored_listed_replaced_and_removed_per_tenant(api):
    status, body = await api.call("POST", "/calendars", CN)
    assert status == 201
    assert body["hours"]["mon"] == [["09:00", "12:00"], ["13:30", "18:00"]] and body["hours"]["sat"] == []
    assert body["workdays"] == [{"date": "2026-02-14", "as": "mon"}, {"date": "2026-02-28", "as": "fri"}]
    assert (await api.call("POST", "/calendars", CN))[0] == 409
    assert await api.call("GET", "/calendars/cn-support") == (200, body)
    assert await api.call("GET", "/calendars", tenant="b") == (200, {"items": []})
    assert (await api.call("GET", "/calendars/cn-support", tenant="b"))[0] == 404
    assert (await api.call("DELETE", "/calendars/cn-support", tenant="b"))[0] == 404
    status, body = await api.call("PUT", "/calendars/cn-support", {**CN, "timezone": "Europe/London"})
    assert (status, body["timezone"]) == (200, "Europe/London")
    assert (await api.call("GET", "/calendars"))[1]["items"] == [body]
    assert (await api.call("DELETE", "/calendars/cn-support"))[0] == 204
    assert (await api.call("GET", "/calendars/cn-support"))[0] == 404


@pytest.mark.parametrize("doc, field", [
    ({**CN, "timezone": "Asia/Beijing"}, "timezone"),
    ({**CN, "hours": {"mon": [["13:00", "12:00"]]}}, "hours.mon[0]"),
    ({**CN, "workdays": ["14/02/2026"]}, "workdays[0]"),
    ({**CN, "country": "ZZ"}, "country"),
])
async def test_a_bad_calendar_is_refused_naming_the_field(api, doc, field):
    status, body = await api.call("POST", "/calendars", doc)
    assert status == 400
    assert body["error"]["code"] == "invalid_field"
    assert body["error"]["message"].startswith(f"field '{field}':")
    assert (await api.call("GET", "/calendars"))[1] == {"items": []}


@pytest.mark.parametrize("doc, field", [
    ({**VIP, "targets": {}}, "targets"),
    ({**VIP, "targets": {"first_reply_s": 0}}, "targets.first_reply_s"),
    ({**VIP, "targets": {"reply_s": 60}}, "targets.reply_s"),
    ({**VIP, "if": {"all": [{"field": "vip_tier", "op": "gte", "value": "high"}]}}, "if.all[0].value"),
    ({**VIP, "pause_in": ["solved"]}, "pause_in[0]"),
    ({**VIP, "warn_before_s": -1}, "warn_before_s"),
    ({**VIP, "calendar": "nowhere"}, "calendar"),
])
async def test_a_bad_policy_is_refused_naming_the_path(api, doc, field):
    await api.call("POST", "/calendars", CN)
    status, body = await api.call("POST", "/sla-policies", doc)
    assert (status, body["error"]["code"]) == (400, "invalid_field")
    assert body["error"]["message"].startswith(f"field '{field}':")
    assert (await api.call("GET", "/sla-policies"))[1] == {"items": []}


async def test_policies_keep_their_order_and_a_used_calendar_stays(api):
    await api.call("POST", "/calendars", CN)
    status, vip = await api.call("POST", "/sla-policies", VIP)
    assert (status, vip) == (201, {**VIP, "position": 1, "warn_before_s": 900,
                                   "targets": {"first_reply_s": 3600, "resolution_s": 86400}})
    await api.call("POST", "/sla-policies", {"name": "standard", "targets": {"resolution_s": 172800}})
    status, first = await api.call("POST", "/sla-policies", {"name": "urgent", "position": 1,
                                                             "targets": {"first_reply_s": 600}})
    assert [p["name"] for p in (await api.call("GET", "/sla-policies"))[1]["items"]] == ["urgent", "vip", "standard"]
    status, body = await api.call("DELETE", "/calendars/cn-support")
    assert (status, body["error"]["code"]) == (409, "in_use")
    status, body = await api.call("PUT", "/sla-policies/urgent", {"targets": {"first_reply_s": 300}, "position": 3})
    assert (status, body["targets"], body["position"]) == (200, {"first_reply_s": 300}, 3)
    assert [p["name"] for p in (await api.call("GET", "/sla-policies"))[1]["items"]] == ["vip", "standard", "urgent"]
    assert (await api.call("GET", "/sla-policies", tenant="b"))[1] == {"items": []}
    assert (await api.call("DELETE", "/sla-policies/vip", tenant="b"))[0] == 404
    assert (await api.call("DELETE", "/sla-policies/vip"))[0] == 204
    assert (await api.call("GET", "/sla-policies/vip"))[0] == 404


async def test_a_ticket_shows_its_clocks_or_null(api, system):
    from support import make_mail
    await system.publish(make_mail()[0])
    await system.drain()
    [ticket] = await system.tickets()
    assert (await api.call("GET", f"/tickets/{ticket.id}"))[1]["sla"] is None
    due = 1_790_000_000_000
    async with system.db.write() as conn:
        row = {"tenant_id": system.tenant, "ticket_id": ticket.id, "policy": "vip", "target_ms": 3_600_000,
               "started_at": due - 3_600_000, "updated_at": due}
        await conn.execute(insert(sla_clocks), [
            {**row, "metric": "first_reply", "state": "met", "met_at": due - 60_000, "due_at": due, "used_ms": 0},
            {**row, "metric": "resolution", "state": "paused", "used_ms": 600_000, "met_at": None,
             "due_at": None}])
    status, body = await api.call("GET", f"/tickets/{ticket.id}")
    assert body["sla"] == {
        "policy": "vip",
        "first_reply": {"state": "met", "due_at": "2026-09-21T14:13:20.000Z", "met_at": "2026-09-21T14:12:20.000Z",
                        "breached_at": None},
        "resolution": {"state": "paused", "due_at": None, "met_at": None, "breached_at": None,
                       "remaining_s": 3000.0},
    }
    assert (await api.call("GET", f"/tickets/{ticket.id}", tenant="b"))[0] == 404


async def test_the_sla_migration_matches_the_tables(system):
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    async with system.db.read() as conn:
        found = await conn.run_sync(diff)
    assert [d for d in found if any(n in repr(d) for n in ("calendars", "sla_"))] == []


def test_every_route_is_described():
    described = {(m.upper(), p) for p, item in sla_api.PATHS.items() for m in item if m != "parameters"}
    assert described == {(m, f"/{c}") for c in ("calendars", "sla-policies") for m in ("GET", "POST")} | {
        (m, f"/{c}/{{name}}") for c in ("calendars", "sla-policies") for m in ("GET", "PUT", "DELETE")}
