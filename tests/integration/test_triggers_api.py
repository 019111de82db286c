"""/api/v1/triggers and /api/v1/automations: definitions checked with the path of the fault,
kept in order, and each tenant's its own."""

import pytest
from rules_support import rules_world

TAG = {"name": "tag refunds", "on": ["ticket.created"],
       "if": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
       "then": [{"type": "add_tags", "tags": ["refund"]}]}


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        yield world


@pytest.mark.parametrize(("change", "path"), [
    ({"then": [{"type": "add_tags", "tags": ["a"]}, {"type": "set_priority", "priority": 1},
               {"type": "reply", "template": "Hello {{ ticket.number"}]}, "then[2].template"),
    ({"if": {"all": [{"field": "status", "op": "gt", "value": "open"}]}}, "if.all[0].op"),
    ({"if": {"all": [{"field": "status", "op": "is", "value": "open"}, {"field": "colour", "op": "is", "value": 1}]}},
     "if.all[1].field"),
    ({"on": ["ticket.created", "ticket.exploded"]}, "on[1]"),
    ({"then": [{"type": "launch_rocket"}]}, "then[0].type"),
    ({"then": [{"type": "set_status", "status": "archived"}]}, "then[0].status"),
    ({"then": [{"type": "notify", "template": "x", "agents": [1, "two"]}]}, "then[0].agents[1]"),
    ({"then": [{"type": "call_webhook", "url": "ftp://example.com"}]}, "then[0].url"),
    ({"then": []}, "then"),
    ({"name": ""}, "name"),
    ({"colour": "red"}, "colour"),
])
async def test_a_bad_trigger_answers_400_naming_the_path_and_stores_nothing(rules, change, path):
    status, body = await rules.call("POST", "/triggers", {**TAG, **change})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_field"
    assert body["error"]["message"].startswith(f"{path}: ")
    assert await rules.call("GET", "/triggers") == (200, {"items": []})


async def test_an_automation_needs_a_time_test_and_a_bounded_size(rules):
    status, body = await rules.call("POST", "/automations", {
        "name": "no time", "if": {"all": [{"field": "status", "op": "is", "value": "pending"}]},
        "then": [{"type": "set_status", "status": "closed"}]})
    assert (status, body["error"]["message"].split(":")[0]) == (400, "if.all")
    big = {**TAG, "then": [{"type": "reply", "template": "x" * 9_000}] * 5}
    status, body = await rules.call("POST", "/triggers", big)
    assert status == 400 and body["error"]["message"].startswith("body: ")
    assert "over the limit of 32768" in body["error"]["message"]


async def test_triggers_keep_their_order_and_are_replaced_moved_and_removed(rules):
    a = await rules.add("trigger", {**TAG, "name": "a"})
    b = await rules.add("trigger", {**TAG, "name": "b"})
    c = await rules.add("trigger", {**TAG, "name": "c", "position": 1})
    assert (a["position"], b["position"], c["position"]) == (1, 2, 1)
    status, listed = await rules.call("GET", "/triggers")
    assert [t["name"] for t in listed["items"]] == ["c", "a", "b"]
    assert listed["items"][1] == {**a, "position": 2, "updated_at": listed["items"][1]["updated_at"]}
    status, moved = await rules.call("PUT", f"/triggers/{b['id']}", {**TAG, "name": "b2", "position": 1,
                                                                      "active": False})
    assert status == 200 and (moved["name"], moved["position"], moved["active"]) == ("b2", 1, False)
    assert [t["name"] for t in (await rules.call("GET", "/triggers"))[1]["items"]] == ["b2", "c", "a"]
    assert (await rules.call("DELETE", f"/triggers/{c['id']}"))[0] == 204
    assert (await rules.call("GET", f"/triggers/{c['id']}"))[0] == 404
    status, one = await rules.call("GET", f"/triggers/{a['id']}")
    assert (status, one["on"], one["if"], one["then"]) == (200, TAG["on"], TAG["if"], TAG["then"])


async def test_another_tenant_neither_sees_nor_changes_a_tenants_triggers(rules):
    mine = await rules.add("trigger", TAG)
    auto = await rules.add("automation", {
        "name": "close", "if": {"all": [{"field": "hours_since_solved", "op": "gt", "value": 24}]},
        "then": [{"type": "set_status", "status": "closed"}]})
    other = rules.other_key
    assert await rules.call("GET", "/triggers", key=other) == (200, {"items": []})
    assert await rules.call("GET", "/automations", key=other) == (200, {"items": []})
    for method, body in (("GET", None), ("PUT", TAG), ("DELETE", None)):
        status, answer = await rules.call(method, f"/triggers/{mine['id']}", body, key=other)
        assert (status, answer["error"]["code"]) == (404, "not_found")
    status, _ = await rules.call("DELETE", f"/automations/{auto['id']}", key=other)
    assert status == 404
    assert (await rules.call("GET", f"/triggers/{mine['id']}"))[1]["name"] == TAG["name"]
    assert (await rules.call("GET", "/tickets/1/audit", key=other))[0] == 404
    assert (await rules.call("GET", "/triggers", key="nope"))[0] == 401


async def test_the_openapi_description_covers_every_route(rules):
    from rules.api import PATHS

    routes = {(r.method, r.resource.canonical.removeprefix("/api/v1")) for r in rules.http.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"
              and any(p in r.resource.canonical for p in ("/triggers", "/automations", "/audit"))}
    described = {(m.upper(), path) for path, item in PATHS.items() for m in item if m != "parameters"}
    assert routes == described
    assert len(routes) == 11
