"""Agents, routing rules, a ticket's routing trail, and changes that free capacity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from core.bus import Bus
from core.channel import class_of
from core.ids import now_ms
from core.json_http import json_response
from core.keys import TICKET_EVENTS
from ticket_service import events, rule_schema
from ticket_service.api.auth import authenticated
from ticket_service.api.body import integer, invalid, json_object
from ticket_service.api.errors import ApiError, not_found, parse_id
from ticket_service.api.fields import checked_values
from ticket_service.api.spec import ID_PARAM, NULLABLE_STRING, TIME, items_of, obj, operation, ref
from ticket_service.api.tickets import DB, PREFIX, iso_ms
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import fields as fields_store
from ticket_service.store import queue as queue_store
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as tickets_store

BUS = web.AppKey("api_bus", Bus)
# Each channel's capacity class (the channel registry's), for manual assignment.
CLASSES = web.AppKey("api_channel_classes", Mapping)
_MAX_NAME, _MAX_EMAIL = 200, 320  # agents.name VARCHAR(200), agents.email VARCHAR(320)
_MAX_AGENT_SKILLS = 100
STATUSES = ("online", "away", "offline")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")


def _levels(value: Any, name: str) -> dict[str, int]:
    try:
        return rule_schema.levels(value, name, _MAX_AGENT_SKILLS)
    except rule_schema.RuleError as exc:
        raise invalid(exc.message) from None


async def _publish(request: web.Request, kind: str, tenant_id: int, **fields: Any) -> None:
    """Tell the routers; without a bus the router's periodic pass catches up."""
    bus = request.app.get(BUS)
    if bus is not None:
        await bus.publish(TICKET_EVENTS, events.event_envelope(kind, str(tenant_id), "", "", tenant_id=tenant_id,
                                                               **fields))


def agent_json(row) -> dict:
    return {
        "id": row.id, "name": row.name, "email": row.email, "status": row.status, "tier": row.tier,
        "skills": dict(row.skills or {}),
        "capacity": {c: getattr(row, f"cap_{c}") for c in agents_store.CLASSES},
        "load": {c: getattr(row, f"load_{c}") for c in agents_store.CLASSES},
        "last_assigned_at": iso_ms(row.last_assigned_at or None),
    }


def rule_json(row) -> dict:
    fields = rules_store.fields(row)
    return {"id": row.id, **{name: fields[name] for name in rule_schema.FIELDS}}


@authenticated
async def list_agents(request: web.Request, tenant_id: int) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = await conn.run_sync(agents_store.list_agents, tenant_id)
    return json_response({"items": [agent_json(r) for r in rows]})


@authenticated
async def create_agent(request: web.Request, tenant_id: int) -> web.Response:
    """POST /agents: {name, email, tier, skills: {skill: level}, capacity: {email, chat, voice}, status}."""
    body = await json_object(request)
    name, email = body.get("name"), body.get("email")
    if not isinstance(name, str) or not name or not isinstance(email, str) or "@" not in email:
        raise invalid("name and email are required")
    if len(name) > _MAX_NAME or len(email) > _MAX_EMAIL:
        raise invalid(f"name must be at most {_MAX_NAME} and email at most {_MAX_EMAIL} characters")
    status = body.get("status", "offline")
    if status not in STATUSES:
        raise invalid(f"status must be one of {', '.join(STATUSES)}")
    tier = integer(body.get("tier", 0), "tier")
    capacity = body.get("capacity", {})
    if not isinstance(capacity, dict) or set(capacity) - set(agents_store.CLASSES):
        raise invalid(f"capacity must map the classes {', '.join(agents_store.CLASSES)} to integers")
    capacity = {cls: integer(n, f"capacity.{cls}") for cls, n in capacity.items()}
    try:
        async with request.app[DB].write() as conn:
            agent_id = await conn.run_sync(agents_store.create_agent, tenant_id, name, email, status=status,
                                           tier=tier, skills=_levels(body.get("skills", {}), "skills"),
                                           capacity=capacity)
            row = await conn.run_sync(agents_store.get_agent, tenant_id, agent_id)
    except IntegrityError:
        raise ApiError(409, "conflict", f"an agent with email {email} exists") from None
    if status == "online":
        await _publish(request, events.AGENT_CHANGED, tenant_id, agent_id=agent_id, status=status)
    return json_response(agent_json(row), status=201)


@authenticated
async def set_agent_status(request: web.Request, tenant_id: int) -> web.Response:
    """PUT /agents/{id}/status {"status": "online" | "away" | "offline"}."""
    agent_id = parse_id(request.match_info["id"])
    status = (await json_object(request)).get("status")
    if status not in STATUSES:
        raise invalid(f"status must be one of {', '.join(STATUSES)}")
    def change(conn: Connection) -> tuple[Row | None, Row | None]:
        before = agents_store.set_agent_status(conn, tenant_id, agent_id, status, now_ms())
        return before, None if before is None else agents_store.get_agent(conn, tenant_id, agent_id)

    try:
        before, row = await request.app[DB].run_write(change)
    except agents_store.Disabled as exc:
        raise ApiError(409, "agent_disabled", str(exc)) from None
    if before is None:
        raise not_found("agent", agent_id)
    if before.status != status:
        await _publish(request, events.AGENT_CHANGED, tenant_id, agent_id=agent_id, status=status)
    return json_response(agent_json(row))


@authenticated
async def list_rules(request: web.Request, tenant_id: int) -> web.Response:
    async with request.app[DB].read() as conn:
        rows = await conn.run_sync(rules_store.list_rules, tenant_id)
    return json_response({"items": [rule_json(r) for r in rows]})


def rule_fields(body: dict) -> dict:
    """Validated rule columns from a request body (shared with the CLI)."""
    try:
        return rule_schema.rule(body)
    except rule_schema.RuleError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


@authenticated
async def create_rule(request: web.Request, tenant_id: int) -> web.Response:
    """POST /routing/rules: insert at ``position`` (1 = first) or append."""
    fields = rule_fields(await json_object(request))
    try:
        async with request.app[DB].write() as conn:
            rule_id = await conn.run_sync(rules_store.add_rule, tenant_id, now_ms(), **fields)
            rows = await conn.run_sync(rules_store.list_rules, tenant_id)
    except rule_schema.RuleError as exc:  # the tenant's rule table is full
        raise ApiError(exc.status, exc.code, exc.message) from None
    return json_response(rule_json(next(r for r in rows if r.id == rule_id)), status=201)


@authenticated
async def delete_rule(request: web.Request, tenant_id: int) -> web.Response:
    rule_id = parse_id(request.match_info["id"])
    async with request.app[DB].write() as conn:
        if not await conn.run_sync(rules_store.delete_rule, tenant_id, rule_id):
            raise not_found("rule", rule_id)
    return web.Response(status=204)


def routing_trail(conn: Connection, tenant_id: int, ticket_id: int) -> dict | None:
    """Who holds the ticket, whether it waits, and every decision with its reasons."""
    row = tickets_store.ticket_for_routing(conn, ticket_id)
    if row is None or row.tenant_id != tenant_id:
        return None
    waiting = queue_store.entry(conn, ticket_id)
    return {
        "ticket_id": row.id, "number": row.number, "status": row.status, "language": row.language,
        "assignee_id": row.assignee_id if row.assigned_at or row.status in tickets_store.CLOSED else None,
        "customer_vip_tier": row.vip_tier,
        "waiting": None if waiting is None else {
            "since": iso_ms(waiting.queued_at), "stage": waiting.stage, "channel_class": waiting.channel_class,
        },
        "decisions": [{
            "at": iso_ms(d.created_at), "outcome": d.outcome, "agent_id": d.agent_id, "rule_id": d.rule_id,
            "elapsed_us": d.elapsed_us, **d.detail,
        } for d in decisions_store.decisions(conn, tenant_id, ticket_id)],
    }


@authenticated
async def get_routing(request: web.Request, tenant_id: int) -> web.Response:
    """GET /tickets/{id}/routing: the routing decisions of one ticket, oldest first."""
    ticket_id = parse_id(request.match_info["id"])
    async with request.app[DB].read() as conn:
        trail = await conn.run_sync(routing_trail, tenant_id, ticket_id)
    if trail is None:
        raise not_found("ticket", ticket_id)
    return json_response(trail)


def change_ticket(conn: Connection, tenant_id: int, ticket_id: int, body: dict, status: str | None,
                  now: int, classes: Mapping[str, str]) -> tuple[int | None, str, dict]:
    """The change in one transaction (API and console); returns the agent whose capacity was
    freed, the status before, and the trail. ApiError 404/409 for an unknown ticket or agent, an
    agent without room."""
    freed = None
    row = tickets_store.ticket_for_routing(conn, ticket_id)
    if row is None or row.tenant_id != tenant_id:
        raise not_found("ticket", ticket_id)
    if "fields" in body or status in tickets_store.CLOSED:
        _set_fields(conn, tenant_id, ticket_id, body.get("fields", {}), status)
    if "assignee" in body:
        freed = tickets_store.unassign(conn, ticket_id, now, classes=classes)
        target = body["assignee"]
        if target is not None:
            _assign(conn, tenant_id, row, target, now, class_of(classes, row.channel))
    if status in tickets_store.CLOSED:
        freed = tickets_store.close_ticket(conn, ticket_id, status, now, classes=classes) or freed
        queue_store.dequeue(conn, ticket_id)
    elif status is not None:
        tickets_store.set_status(conn, ticket_id, status, now)
    return freed, row.status, routing_trail(conn, tenant_id, ticket_id)


def _set_fields(conn: Connection, tenant_id: int, ticket_id: int, raw: Any, status: str | None) -> None:
    """Set custom field values; solving or closing needs every required field set (as a help
    desk asks for them before a ticket is done), checked after this request's own values."""
    defs = fields_store.definitions(conn, tenant_id)
    changes = checked_values(defs, raw)
    current = fields_store.set_values(conn, tenant_id, ticket_id, changes, defs) if changes else (
        fields_store.values(conn, tenant_id, ticket_id))
    missing = fields_store.missing_required(defs, current) if status in tickets_store.CLOSED else []
    if missing:
        raise ApiError(400, "required_field", f"fields.{missing[0]}: is required before the ticket is {status}")


def _assign(conn: Connection, tenant_id: int, row, target: int, now: int, cls: str) -> None:
    """A manual assignment: the agent must be online with free ``cls`` capacity."""
    if agents_store.get_agent(conn, tenant_id, target) is None:
        raise not_found("agent", target)
    if (tickets_store.take_ticket(conn, row.id, target, now) is None
            or not agents_store.take_capacity(conn, target, cls, now)):
        raise ApiError(409, "no_capacity", f"agent {target} is not online with free {cls} capacity")
    agents_store.remember_agent(conn, row.customer_id, target)
    queue_store.dequeue(conn, row.id)
    decisions_store.record(conn, tenant_id, row.id, "assigned", now, agent_id=target, detail={"via": "manual"})


@authenticated
async def update_ticket(request: web.Request, tenant_id: int) -> web.Response:
    """PATCH /tickets/{id} {"status"?, "assignee"?: agent id | null, "fields"?: {name: value | null}}:
    solve, close, reassign, set custom field values."""
    ticket_id = parse_id(request.match_info["id"])
    body = await json_object(request)
    status = body.get("status")
    if status is not None and status not in TICKET_STATUSES:
        raise invalid(f"status must be one of {', '.join(TICKET_STATUSES)}")
    if body.get("assignee") is not None:
        integer(body["assignee"], "assignee", low=1)
    freed, before, trail = await request.app[DB].run_write(change_ticket, tenant_id, ticket_id, body, status,
                                                           now_ms(), request.app[CLASSES])
    for kind, fields in change_events(ticket_id, body, status, before, freed):
        await _publish(request, kind, tenant_id, **fields)
    return json_response(trail)


def change_events(ticket_id: int, body: dict, status: str | None, before: str,
                  freed: int | None) -> list[tuple[str, dict]]:
    """What a ``change_ticket`` announces on ``ticket.events``: for the router (closed/updated,
    with the agent whose room was freed) and for the rules (status changed, assigned)."""
    out: list[tuple[str, dict]] = []
    if status in tickets_store.CLOSED:
        out.append((events.TICKET_CLOSED, {"ticket_id": ticket_id, "freed_agent_id": freed}))
    elif "assignee" in body:
        out.append((events.TICKET_UPDATED, {"ticket_id": ticket_id, "freed_agent_id": freed}))
    if status is not None and status != before:
        out.append((events.TICKET_STATUS_CHANGED, {"ticket_id": ticket_id, "from": before, "to": status}))
    if body.get("assignee") is not None:
        out.append((events.TICKET_ASSIGNED, {"ticket_id": ticket_id, "agent_id": body["assignee"], "via": "manual"}))
    return out


def setup_routes(app: web.Application, bus: Bus | None, classes: Mapping[str, str]) -> None:
    app[CLASSES] = classes
    if bus is not None:
        app[BUS] = bus
    if classes is not None:
        app[CLASSES] = classes
    app.router.add_get(f"{PREFIX}/agents", list_agents)
    app.router.add_post(f"{PREFIX}/agents", create_agent)
    app.router.add_put(f"{PREFIX}/agents/{{id}}/status", set_agent_status)
    app.router.add_get(f"{PREFIX}/routing/rules", list_rules)
    app.router.add_post(f"{PREFIX}/routing/rules", create_rule)
    app.router.add_delete(f"{PREFIX}/routing/rules/{{id}}", delete_rule)
    app.router.add_get(f"{PREFIX}/tickets/{{id}}/routing", get_routing)
    app.router.add_patch(f"{PREFIX}/tickets/{{id}}", update_ticket)


_INT, _TEXT = {"type": "integer"}, {"type": "string"}
_PER_CLASS = obj(agents_store.CLASSES, **{c: _INT for c in agents_store.CLASSES})
_SKILLS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
SCHEMAS = {
    "Agent": obj(("id", "name", "email", "status", "tier", "skills", "capacity", "load", "last_assigned_at"),
                 id=_INT, name=_TEXT, email=_TEXT, status={"enum": [*STATUSES, agents_store.DISABLED]}, tier=_INT,
                 skills=_SKILLS,
                 capacity=_PER_CLASS, load=_PER_CLASS, last_assigned_at=TIME),
    "Rule": obj(("id", *rule_schema.FIELDS), id=_INT, name=_TEXT, position=_INT, match={"type": "object"},
                required=_SKILLS, preferred=_SKILLS, priority=_INT, min_tier=_INT,
                escalate_after_s={"type": ["integer", "null"]}, widen={"type": "object"}),
    "RoutingTrail": obj(
        ("ticket_id", "number", "status", "language", "assignee_id", "customer_vip_tier", "waiting", "decisions"),
        ticket_id=_INT, number=_INT, status={"enum": list(TICKET_STATUSES)}, language=NULLABLE_STRING,
        assignee_id={"type": ["integer", "null"]}, customer_vip_tier=_INT,
        waiting={"anyOf": [{"type": "null"}, obj(("since", "stage", "channel_class"), since=TIME, stage=_INT,
                                                  channel_class=_TEXT)]},
        decisions={"type": "array", "items": obj(
            ("at", "outcome", "agent_id", "rule_id", "elapsed_us"), open_=True, at=TIME, outcome=_TEXT,
            agent_id={"type": ["integer", "null"]}, rule_id={"type": ["integer", "null"]}, elapsed_us=_INT)}),
}
_NEW_AGENT = obj(("name", "email"), name=_TEXT, email=_TEXT, status={"enum": list(STATUSES)}, tier=_INT,
                 skills=_SKILLS, capacity={"type": "object", "additionalProperties": _INT})
_NEW_RULE = obj(("name",), name=_TEXT, position={"type": ["integer", "null"]}, match={"type": "object"},
                required=_SKILLS, preferred=_SKILLS, priority={"type": ["integer", "null"]},
                min_tier={"type": ["integer", "null"]}, escalate_after_s={"type": ["integer", "null"]},
                widen={"type": "object"})
_TICKET_CHANGE = obj((), open_=True, status={"enum": list(TICKET_STATUSES)},
                     assignee={"type": ["integer", "null"], "minimum": 1},
                     fields={"type": "object", "description": "custom field values by name; null clears one"})
PATHS = {
    "/agents": {
        "get": operation("The tenant's agents", {200: ("Agents", items_of(ref("Agent")))}),
        "post": operation("Add an agent", {201: ("The agent", ref("Agent"))}, 400, 409, 413, body=_NEW_AGENT),
    },
    "/agents/{id}/status": {"put": operation(
        "Set an agent's status (online agents pull waiting tickets); a disabled agent's answers 409 "
        "(`switchboard user enable` lifts it)", {200: ("The agent", ref("Agent"))},
        400, 404, 409, 413, params=[ID_PARAM], body=obj(("status",), status={"enum": list(STATUSES)}))},
    "/routing/rules": {
        "get": operation("The routing rule table in order", {200: ("Rules", items_of(ref("Rule")))}),
        "post": operation("Add a routing rule at a position (first match wins)", {201: ("The rule", ref("Rule"))},
                          400, 409, 413, body=_NEW_RULE),
    },
    "/routing/rules/{id}": {"delete": operation("Delete a routing rule", {204: ("Deleted", None)}, 400, 404,
                                                params=[ID_PARAM])},
    "/tickets/{id}/routing": {"get": operation("A ticket's routing decisions with their reasons",
                                               {200: ("The routing trail", ref("RoutingTrail"))}, 400, 404,
                                               params=[ID_PARAM])},
    "/tickets/{id}": {"patch": operation(
        "Solve, close or reassign a ticket, set its custom field values (required fields must be set "
        "before it is solved or closed)", {200: ("The routing trail after the change", ref("RoutingTrail"))},
        400, 404, 409, 413, params=[ID_PARAM], body=_TICKET_CHANGE)},
}
