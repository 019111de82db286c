"""What set_priority, the tag actions, set_status and require_team do to a ticket when the rules
worker fires them: the values stored, shown by GET /api/v1/tickets/{id} and in the audit."""

from __future__ import annotations

import asyncio

import pytest
from rules_support import rules_world
from support import make_mail

from connectors.registry import capacity_classes
from router.worker import Router
from ticket_service.store import agents as agents_store

TRIAGE = {"name": "triage", "on": ["ticket.created"], "then": [
    {"action": "set_priority", "value": 70},
    {"type": "set_tags", "tags": ["refund", "web", "old"]},
    {"action": "add_tags", "value": ["urgent", "refund"]},
    {"type": "remove_tags", "tags": ["old", "absent"]}]}
PARK = {"name": "park", "on": ["ticket.created"], "then": [{"type": "set_status", "status": "pending"}]}


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        yield world


async def _ticket(system, subject="Refund for order 1042", sender="zhang.wei@example.cn"):
    await system.publish(make_mail(subject=subject, sender=sender)[0])
    await system.drain()
    return (await system.tickets())[-1]


async def _audit(rules, ticket_id: int) -> list[tuple[str, str, list]]:
    """(trigger name, result, actions) of the ticket's firings, oldest first."""
    status, page = await rules.call("GET", f"/tickets/{ticket_id}/audit")
    assert status == 200
    return [(f["source"]["name"], f["result"], f["actions"]) for f in reversed(page["items"])]


async def test_priority_tags_and_status_set_by_triggers_are_on_the_ticket_and_in_the_audit(rules):
    system = rules.system
    await rules.add("trigger", TRIAGE)
    park = await rules.add("trigger", PARK)
    ticket = await _ticket(system)
    await rules.run_triggers()
    status, body = await rules.call("GET", f"/tickets/{ticket.id}")
    assert status == 200
    assert (body["priority"], body["tags"], body["status"]) == (70, ["refund", "web", "urgent"], "pending")
    assert await _audit(rules, ticket.id) == [
        ("triage", "applied", [{"type": "set_priority", "priority": 70},
                               {"type": "set_tags", "tags": ["refund", "web", "old"]},
                               {"type": "add_tags", "tags": ["refund", "web", "old", "urgent"]},
                               {"type": "remove_tags", "tags": ["refund", "web", "urgent"]}]),
        ("park", "applied", [{"type": "set_status", "status": "pending", "from": "new"}])]
    changes = [(e["ticket_id"], e["from"], e["to"], e["origin"], e["trigger_id"]) for e in await system.events()
               if e["type"] == "ticket.status_changed"]
    assert changes == [(ticket.id, "new", "pending", "trigger", park["id"])]
    [row] = await system.tickets()
    assert (row.priority, row.tags, row.status) == (70, ["refund", "web", "urgent"], "pending")


async def test_a_trigger_solves_a_ticket_whose_required_field_is_empty(rules):
    # The required-field check is for people (API, console); a trigger's set_status is not held by it.
    system = rules.system
    assert (await rules.call("POST", "/fields", {"name": "amount", "type": "number", "required": True}))[0] == 201
    await rules.add("trigger", {"name": "solve thanks", "on": ["ticket.created"],
                                "if": {"all": [{"field": "subject", "op": "contains", "value": "thank"}]},
                                "then": [{"type": "set_status", "status": "solved"}]})
    thanks = await _ticket(system, "Thank you, all sorted", sender="li.na@example.cn")
    await rules.run_triggers()
    status, body = await rules.call("GET", f"/tickets/{thanks.id}")
    assert (status, body["status"], body["fields"]) == (200, "solved", {})
    assert await _audit(rules, thanks.id) == [
        ("solve thanks", "applied", [{"type": "set_status", "status": "solved", "from": "new"}])]
    closed = [(e["ticket_id"], e["origin"]) for e in await system.events() if e["type"] == "ticket.closed"]
    assert closed == [(thanks.id, "trigger")]
    # A person solving another ticket through the API is asked for the field.
    other = await _ticket(system, "Where is my refund?")
    status, body = await rules.call("PATCH", f"/tickets/{other.id}", {"status": "solved"})
    assert (status, body["error"]["code"]) == (400, "required_field")


async def test_require_team_routes_the_ticket_to_an_agent_of_that_team_only(rules):
    system = rules.system
    async with system.db.write() as conn:
        ann = await conn.run_sync(agents_store.create_agent, system.tenant, "Ann", "ann@acme.test",
                                  status="online", capacity={"email": 5})
        bo = await conn.run_sync(agents_store.create_agent, system.tenant, "Bo", "bo@acme.test",
                                 status="online", capacity={"email": 5}, skills={"team:billing": 1})
    await rules.add("trigger", {"name": "billing", "on": ["ticket.created"],
                                "then": [{"action": "require_team", "value": "billing"}]})
    ticket = await _ticket(system)
    await rules.run_triggers()
    router = Router(system.bus, system.settings, system.db, capacity_classes())
    await asyncio.wait_for(router.run(drain=True), 60)
    [row] = await system.tickets()
    assert (row.requirements, row.assignee_id) == ({"required": {"team:billing": 1}}, bo)
    assert await _audit(rules, ticket.id) == [
        ("billing", "applied", [{"type": "require_team", "required": {"team:billing": 1}}])]
    status, body = await rules.call("GET", f"/tickets/{ticket.id}")
    assert (status, body["assignee"]) == (200, {"id": bo, "name": "Bo"})
    [decision] = (await rules.call("GET", f"/tickets/{ticket.id}/routing"))[1]["decisions"]
    assert (decision["outcome"], decision["ticket_requirements"]) == ("assigned", {"required": {"team:billing": 1}})
    assert [(x["agent_id"], x["reasons"]) for x in decision["excluded"]] == [(ann, ["skill team:billing 0 < 1"])]
