"""Custom ticket fields over real HTTP on SQLite and PostgreSQL: definitions, values on tickets,
required fields before solving, and filters."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from connectors.registry import capacity_classes
from core.blobs import BlobStore
from ticket_service.api import create_app
from ticket_service.field_schema import MAX_FIELDS
from ticket_service.store import admin
from ticket_service.store import tickets as store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import metadata, ticket_field_values

FIELDS = [
    {"name": "order_no", "type": "text", "label": "Order"},
    {"name": "amount", "type": "number", "required": True},
    {"name": "due", "type": "date"},
    {"name": "source", "type": "choice", "choices": ["web", "shop", "phone"]},
    {"name": "topics", "type": "multi_choice", "choices": ["refund", "delivery", "invoice"]},
]


class Api:
    def __init__(self, http, server, key, other_key, tickets) -> None:
        self.http, self.server, self.key, self.other_key, self.tickets = http, server, key, other_key, tickets

    async def call(self, method: str, path: str, body=None, key: str | None = None, **params):
        headers = {"Authorization": f"Bearer {key or self.key}"}
        async with self.http.request(method, self.server.make_url("/api/v1" + path), json=body, params=params,
                                     headers=headers) as resp:
            return resp.status, (await resp.json() if resp.content_type == "application/json" else None)


@pytest.fixture
async def api(database_url, tmp_path):
    db = Database(database_url)
    await migrate(db)
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, "acme")
        other = await admin.create_tenant(conn, "globex")
        key, other_key = await admin.create_api_key(conn, tenant), await admin.create_api_key(conn, other)
        account = await admin.add_account(conn, tenant, "email", "help@acme.test")
        customer = (await conn.run_sync(store.resolve_customer, tenant, "email", "", "zw@example.cn", "Zhang", 1)).id
        ids = [(await conn.run_sync(store.create_ticket, tenant_id=tenant, account_id=account, channel="email",
                                    status="open", customer_id=customer, subject=f"Order {i}", now=1000 + i))[0]
               for i in range(4)]
    async with TestServer(create_app(db, BlobStore(tmp_path / "blobs"), capacity_classes())) as server, \
            aiohttp.ClientSession() as http:
        api = Api(http, server, key, other_key, ids)
        api.db = db
        for body in FIELDS:
            assert (await api.call("POST", "/fields", body))[0] == 201
        yield api
    await db.dispose()


async def test_definitions_are_listed_changed_and_removed(api):
    # Listed oldest first with every key; PUT changes label/required/choices; DELETE removes.
    status, body = await api.call("GET", "/fields")
    assert status == 200 and [f["name"] for f in body["items"]] == [f["name"] for f in FIELDS]
    assert body["items"][4] == {"name": "topics", "type": "multi_choice", "label": "", "required": False,
                                "choices": ["refund", "delivery", "invoice"]}
    assert body["items"][0]["choices"] is None
    status, body = await api.call("PUT", "/fields/source", {"label": "Where from", "required": True,
                                                            "choices": ["web", "shop", "phone", "app"]})
    assert status == 200 and body == {"name": "source", "type": "choice", "label": "Where from", "required": True,
                                      "choices": ["web", "shop", "phone", "app"]}
    assert (await api.call("GET", "/fields/source"))[1] == body
    assert (await api.call("DELETE", "/fields/source"))[0] == 204
    status, body = await api.call("GET", "/fields/source")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert (await api.call("GET", "/fields", key=api.other_key))[1] == {"items": []}  # another tenant's: none


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/fields", {"name": "Order", "type": "text"}, 400, "name must be a slug"),
    ("POST", "/fields", {"name": "a" * 41, "type": "text"}, 400, "name must be a slug"),
    ("POST", "/fields", {"name": "cost", "type": "money"}, 400, "type must be one of text, number"),
    ("POST", "/fields", {"name": "kind", "type": "choice"}, 400, "choices must be a list of 1 to 100"),
    ("POST", "/fields", {"name": "kind", "type": "choice", "choices": ["a,b"]}, 400, "without commas"),
    ("POST", "/fields", {"name": "kind", "type": "choice", "choices": ["a", "a"]}, 400, "must not repeat"),
    ("POST", "/fields", {"name": "note", "type": "text", "choices": ["a"]}, 400, "choices are for choice"),
    ("POST", "/fields", {"name": "note", "type": "text", "colour": "red"}, 400, "'colour' is not a known key"),
    ("POST", "/fields", {"name": "note", "type": "text", "required": "yes"}, 400, "required must be true"),
    ("POST", "/fields", {"name": "amount", "type": "number"}, 409, "a field named amount exists"),
    ("PUT", "/fields/amount", {"type": "text"}, 400, "type cannot change"),
    ("PUT", "/fields/nothing", {"label": "x"}, 404, "field 'nothing' not found"),
    ("DELETE", "/fields/Bad-Name", None, 404, "field 'Bad-Name' not found"),
])
async def test_bad_definitions_are_refused_naming_the_problem(api, method, path, body, status, message):
    got, answer = await api.call(method, path, body)
    assert got == status and message in answer["error"]["message"], answer
    assert len((await api.call("GET", "/fields"))[1]["items"]) == len(FIELDS)


async def test_a_tenant_has_at_most_the_field_limit(api):
    for i in range(MAX_FIELDS - len(FIELDS)):
        assert (await api.call("POST", "/fields", {"name": f"f{i}", "type": "text"}))[0] == 201
    status, body = await api.call("POST", "/fields", {"name": "one_more", "type": "text"})
    assert (status, body["error"]["code"]) == (409, "too_many_fields")


async def test_values_are_set_shown_and_cleared(api):
    # PATCH sets values; the ticket and the list show them; null clears one.
    ticket = api.tickets[0]
    values = {"order_no": "订单-1042", "amount": 12.5, "due": "2026-12-01", "topics": ["refund", "invoice", "refund"]}
    assert (await api.call("PATCH", f"/tickets/{ticket}", {"fields": values}))[0] == 200
    expected = {**values, "topics": ["refund", "invoice"]}
    assert (await api.call("GET", f"/tickets/{ticket}"))[1]["fields"] == expected
    listed = {t["id"]: t["fields"] for t in (await api.call("GET", "/tickets"))[1]["items"]}
    assert listed == {ticket: expected, **{t: {} for t in api.tickets[1:]}}
    assert (await api.call("PATCH", f"/tickets/{ticket}", {"fields": {"amount": None, "due": None}}))[0] == 200
    assert (await api.call("GET", f"/tickets/{ticket}"))[1]["fields"] == {"order_no": "订单-1042",
                                                                           "topics": ["refund", "invoice"]}
    async with api.db.read() as conn:
        rows = (await conn.execute(select(ticket_field_values.c.name, ticket_field_values.c.value_text)
                                   .order_by(ticket_field_values.c.id))).all()
    assert sorted(map(tuple, rows)) == [("order_no", "订单-1042"), ("topics", "invoice"), ("topics", "refund")]


@pytest.mark.parametrize(("fields", "message"), [
    ({"amount": "12"}, "fields.amount: must be a number"),
    ({"amount": True}, "fields.amount: must be a number"),
    ({"due": "2026-02-30"}, "fields.due: must be a date as YYYY-MM-DD"),
    ({"due": "20261201"}, "fields.due: must be a date as YYYY-MM-DD"),
    ({"source": "fax"}, "fields.source: must be one of web, shop, phone"),
    ({"topics": "refund"}, "fields.topics: must be a non-empty list of refund, delivery, invoice"),
    ({"order_no": "x" * 501}, "fields.order_no: must be a non-empty string of at most 500 characters"),
    ({"colour": "red"}, "fields.colour: is not a field of this tenant"),
    ([1, 2], "fields must be an object mapping field names to values"),
])
async def test_bad_values_answer_400_naming_the_field_and_change_nothing(api, fields, message):
    ticket = api.tickets[1]
    assert (await api.call("PATCH", f"/tickets/{ticket}", {"fields": {"order_no": "A1"}}))[0] == 200
    status, body = await api.call("PATCH", f"/tickets/{ticket}", {"fields": fields, "status": "pending"})
    assert (status, body["error"]["message"]) == (400, message)
    after = (await api.call("GET", f"/tickets/{ticket}"))[1]
    assert (after["fields"], after["status"]) == ({"order_no": "A1"}, "open")


async def test_required_fields_must_be_set_before_a_ticket_is_solved(api):
    # amount is required: solving without it is refused; with it in the same request, it is solved.
    ticket = api.tickets[2]
    status, body = await api.call("PATCH", f"/tickets/{ticket}", {"status": "solved"})
    assert (status, body["error"]) == (400, {"code": "required_field",
                                             "message": "fields.amount: is required before the ticket is solved"})
    assert (await api.call("GET", f"/tickets/{ticket}"))[1]["status"] == "open"
    assert (await api.call("PATCH", f"/tickets/{ticket}", {"status": "pending"}))[0] == 200  # open states: fine
    status, body = await api.call("PATCH", f"/tickets/{ticket}", {"status": "solved", "fields": {"amount": 0}})
    assert (status, body["status"]) == (200, "solved")
    status, body = await api.call("PATCH", f"/tickets/{ticket}", {"status": "closed", "fields": {"amount": None}})
    assert (status, body["error"]["message"]) == (400, "fields.amount: is required before the ticket is closed")


async def _set(api, values: list[dict]) -> None:
    for ticket, fields in zip(api.tickets, values, strict=True):
        assert (await api.call("PATCH", f"/tickets/{ticket}", {"fields": fields}))[0] == 200


VALUES = [
    {"order_no": "A1", "amount": 10, "due": "2026-11-30", "source": "web", "topics": ["refund"]},
    {"order_no": "A2", "amount": 99.5, "due": "2026-12-01", "source": "shop", "topics": ["refund", "invoice"]},
    {"order_no": "A1", "amount": -3, "due": "2027-01-15", "topics": ["delivery"]},
    {},
]


@pytest.mark.parametrize(("params", "expected"), [
    ({"field.order_no": "A1"}, [0, 2]),
    ({"field.amount": "99.5"}, [1]),
    ({"field.amount": "10"}, [0]),
    ({"field.amount.gte": "0"}, [0, 1]),
    ({"field.amount.gte": "-3", "field.amount.lte": "10"}, [0, 2]),
    ({"field.due.gte": "2026-12-01"}, [1, 2]),
    ({"field.due.lte": "2026-12-01", "field.due.gte": "2026-12-01"}, [1]),
    ({"field.due": "2027-01-15"}, [2]),
    ({"field.source": "shop"}, [1]),
    ({"field.topics": "refund"}, [0, 1]),
    ({"field.topics": ["refund", "invoice"]}, [1]),
    ({"field.topics": "refund", "field.order_no": "A1"}, [0]),
    ({"field.topics": "delivery", "status": "open"}, [2]),
])
async def test_tickets_filter_by_field_values(api, params, expected):
    await _set(api, VALUES)
    status, body = await api.call("GET", "/tickets", **params)
    assert status == 200
    assert [t["id"] for t in body["items"]] == [api.tickets[i] for i in sorted(expected, reverse=True)]
    assert (await api.call("GET", "/tickets", key=api.other_key, **params))[0] == 400  # not globex's fields


@pytest.mark.parametrize(("params", "message"), [
    ({"field.colour": "red"}, "parameter 'field.colour' names no field of this tenant"),
    ({"field.amount": "ten"}, "parameter 'field.amount' must be a number"),
    ({"field.due.gte": "tomorrow"}, "parameter 'field.due' must be a date as YYYY-MM-DD"),
    ({"field.source": "fax"}, "parameter 'field.source' must be one of web, shop, phone"),
    ({"field.order_no.gte": "A"}, "parameter 'field.order_no.gte' takes .gte and .lte only on number and date"),
    ({"field.amount.over": "1"}, "parameter 'field.amount.over' takes .gte and .lte only on number and date"),
])
async def test_bad_filters_answer_400_naming_the_parameter(api, params, message):
    status, body = await api.call("GET", "/tickets", **params)
    assert status == 400 and body["error"]["message"].startswith(message), body


async def test_removing_a_field_removes_every_value_of_it(api):
    await _set(api, VALUES)
    assert (await api.call("DELETE", "/fields/topics"))[0] == 204
    assert (await api.call("GET", f"/tickets/{api.tickets[1]}"))[1]["fields"] == {
        "order_no": "A2", "amount": 99.5, "due": "2026-12-01", "source": "shop"}
    async with api.db.read() as conn:
        names = set((await conn.execute(select(ticket_field_values.c.name))).scalars())
    assert names == {"order_no", "amount", "due", "source"}
    assert (await api.call("GET", "/tickets", **{"field.topics": "refund"}))[0] == 400


async def test_migration_0010_creates_what_tables_py_declares(api):
    # custom_fields, ticket_field_values and tickets.fields, with their indexes, on both databases.
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    async with api.db.read() as conn:
        found = await conn.run_sync(diff)
    names = ("custom_fields", "ticket_field_values", "'fields'")
    assert [d for d in found if any(n in repr(d) for n in names)] == []
