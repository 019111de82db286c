"""A trigger's set_field goes the way of PATCH /tickets/{id} {"fields": ...}: checked against the
tenant's field when saved and when it fires, and indexed for the ticket list's field filters."""

from __future__ import annotations

import pytest
from rules_support import rules_world
from sqlalchemy import select
from support import make_mail

from ticket_service.store.tables import ticket_field_values

FIELDS = [
    {"name": "source", "type": "choice", "choices": ["web", "shop", "phone"]},
    {"name": "amount", "type": "number"},
    {"name": "topics", "type": "multi_choice", "choices": ["refund", "delivery", "invoice"]},
]
SHOP = {"name": "from the shop", "on": ["ticket.created"],
        "then": [{"action": "set_field", "value": {"name": "source", "value": "shop"}},
                 {"type": "set_field", "name": "topics", "value": ["refund", "invoice", "refund"]}]}


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        for body in FIELDS:
            assert (await world.call("POST", "/fields", body))[0] == 201
        yield world


async def _ticket(system, subject="Refund for order 1042"):
    await system.publish(make_mail(subject=subject, sender="zhang.wei@example.cn")[0])
    await system.drain()
    return (await system.tickets())[-1]


async def _listed(rules, query: str) -> list[int]:
    status, body = await rules.call("GET", f"/tickets?{query}")
    assert status == 200, body
    return [t["id"] for t in body["items"]]


async def test_a_choice_set_by_a_trigger_is_found_by_the_ticket_lists_field_filter(rules):
    system = rules.system
    trigger = await rules.add("trigger", {**SHOP, "if": {"all": [
        {"field": "subject", "op": "contains", "value": "refund"}]}})
    other = await _ticket(system, "Just a question")
    ticket = await _ticket(system)
    await rules.run_triggers()
    assert (await rules.call("GET", f"/tickets/{other.id}"))[1]["fields"] == {}
    assert await _listed(rules, "field.source=shop") == [ticket.id]
    assert await _listed(rules, "field.source=web") == []
    assert await _listed(rules, "field.topics=invoice") == [ticket.id]
    status, body = await rules.call("GET", f"/tickets/{ticket.id}")
    assert (status, body["fields"]) == (200, {"source": "shop", "topics": ["refund", "invoice"]})
    async with system.db.read() as conn:
        rows = (await conn.execute(select(ticket_field_values.c.name, ticket_field_values.c.value_text).where(
            ticket_field_values.c.ticket_id == ticket.id))).all()
    assert sorted(map(tuple, rows)) == [("source", "shop"), ("topics", "invoice"), ("topics", "refund")]
    [firing] = (await rules.call("GET", f"/tickets/{ticket.id}/audit"))[1]["items"]
    assert (firing["source"]["id"], firing["result"], firing["actions"]) == (trigger["id"], "applied", [
        {"type": "set_field", "name": "source", "value": "shop"},
        {"type": "set_field", "name": "topics", "value": ["refund", "invoice"]}])


@pytest.mark.parametrize(("action", "message"), [
    ({"type": "set_field", "name": "colour", "value": "red"},
     "then[1].name: colour is not a custom field of this tenant"),
    ({"type": "set_field", "name": "source", "value": "fax"}, "then[1].value: source must be one of web, shop, phone"),
    ({"type": "set_field", "name": "amount", "value": "12"}, "then[1].value: amount must be a number"),
    ({"type": "set_field", "name": "amount", "value": True}, "then[1].value: amount must be a number"),
    ({"type": "set_field", "name": "topics", "value": ["refund", "fax"]},
     "then[1].value: topics must be a non-empty list of refund, delivery, invoice"),
    ({"type": "set_field", "name": "topics", "value": "refund"},
     "then[1].value: topics must be a non-empty list of refund, delivery, invoice"),
    ({"type": "set_field", "name": "source", "value": {"a": 1}}, "then[1].value: a string, number, list of"),
])
async def test_a_set_field_that_does_not_fit_the_tenants_field_is_refused_naming_its_path(rules, action, message):
    then = [{"type": "add_tags", "tags": ["x"]}, action]
    status, body = await rules.call("POST", "/triggers", {**SHOP, "then": then})
    assert (status, body["error"]["code"]) == (400, "invalid_field")
    assert body["error"]["message"].startswith(message), body
    status, body = await rules.call("POST", "/automations", {
        "name": "late", "if": {"all": [{"field": "hours_since_created", "op": "gt", "value": 1}]}, "then": then})
    assert status == 400 and body["error"]["message"].startswith(message), body
    saved = await rules.add("trigger", SHOP)
    status, body = await rules.call("PUT", f"/triggers/{saved['id']}", {**SHOP, "then": then})
    assert status == 400 and body["error"]["message"].startswith(message), body
    assert [t["then"] for t in (await rules.call("GET", "/triggers"))[1]["items"]] == [saved["then"]]
    assert (await rules.call("GET", "/automations"))[1] == {"items": []}


async def test_a_field_is_checked_against_the_saving_tenants_definitions(rules):
    # globex has no field "source": acme's trigger is fine, the same one for globex is not.
    status, body = await rules.call("POST", "/triggers", SHOP, key=rules.other_key)
    assert (status, body["error"]["message"]) == (
        400, "then[0].name: source is not a custom field of this tenant")
    assert (await rules.call("POST", "/triggers", {**SHOP, "then": [
        {"type": "set_field", "name": "source", "value": None}]}))[0] == 201  # null clears: fits any field


async def test_a_value_that_no_longer_fits_is_the_triggers_error_in_the_audit_not_written(rules):
    # Saved while "shop" was a choice; the field lost it since: the firing fails as a whole.
    system = rules.system
    trigger = await rules.add("trigger", {**SHOP, "then": [{"type": "add_tags", "tags": ["shop"]}, *SHOP["then"]]})
    status, _ = await rules.call("PUT", "/fields/source", {"choices": ["web", "phone"]})
    assert status == 200
    ticket = await _ticket(system)
    await rules.run_triggers()
    [firing] = (await rules.call("GET", f"/tickets/{ticket.id}/audit"))[1]["items"]
    assert (firing["source"]["id"], firing["result"], firing["actions"]) == (trigger["id"], "error", [])
    assert firing["error"] == "set_field: then[1].value: source must be one of web, phone"
    status, body = await rules.call("GET", f"/tickets/{ticket.id}")
    assert (body["fields"], body["tags"]) == ({}, [])
    assert await _listed(rules, "field.topics=refund") == []
    # A removed field: the same.
    assert (await rules.call("DELETE", "/fields/topics"))[0] == 204
    assert (await rules.call("PUT", "/fields/source", {"choices": ["web", "shop"]}))[0] == 200
    second = await _ticket(system, "Another refund")
    await rules.run_triggers()
    [firing] = (await rules.call("GET", f"/tickets/{second.id}/audit"))[1]["items"]
    assert (firing["result"], firing["error"]) == ("error", "set_field: then[2].name: topics is not a custom field "
                                                            "of this tenant")
    assert (await rules.call("GET", f"/tickets/{second.id}"))[1]["fields"] == {}
