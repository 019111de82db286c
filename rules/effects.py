"""Applying a trigger's or automation's actions inside the transaction that records the firing.

Each action re-reads what it changes, so the next action (and the next trigger) sees its
effect. The ticket events an action causes are collected in ``Firing.published`` and go
out after the commit, marked with the firing's origin: triggers never run on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from core.ids import new_id
from rules import field_actions
from rules.actions import TEMPLATES
from rules.conditions import ConditionError
from ticket_service import events, rule_schema
from ticket_service.portal_links import PortalLinks
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import fields as fields_store
from ticket_service.store import queue as queue_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.replies import Draft, ReplyError, store_reply
from ticket_service.store.tables import (
    agents,
    channel_accounts,
    customers,
    outbox,
    routing_queue,
    tickets,
)

MAX_TEXT = 200_000  # a rendered template, as an agent's reply (api.replies.MAX_TEXT)


class ActionError(Exception):
    """An action that cannot be applied to this ticket (the tenant's to fix): recorded in audit."""


class Webhooks(Protocol):
    """The seam to webhooks out: queue one delivery in the firing's transaction."""

    def enqueue(self, conn: Connection, tenant_id: int, target: Mapping[str, Any], event: Mapping[str, Any]) -> Any:
        ...


@dataclass
class Firing:
    """One trigger or automation firing on one ticket, and what it did."""

    conn: Connection
    tenant_id: int
    ticket_id: int
    now: int
    origin: str  # rules.event.ORIGIN_TRIGGER | ORIGIN_AUTOMATION
    key: str  # unique per firing: the idempotency key of the replies it writes
    event: Mapping[str, Any]
    secret_key: str = ""
    classes: Mapping[str, str] = field(default_factory=dict)
    webhooks: Webhooks | None = None
    links: PortalLinks | None = None  # the customer's status page (``ticket.status_url``)
    applied: list[dict] = field(default_factory=list)
    published: list[tuple[str, dict]] = field(default_factory=list)

    def ticket(self) -> Row:
        return self.conn.execute(select(tickets).where(tickets.c.id == self.ticket_id).with_for_update()).one()

    def announce(self, kind: str, **fields: Any) -> None:
        self.published.append((kind, fields))


def apply(firing: Firing, actions: list[dict]) -> None:
    for i, spec in enumerate(actions):
        summary = _APPLY[spec["type"]](firing, spec, i)
        firing.applied.append({"type": spec["type"], **summary})


def _tags(f: Firing, spec: dict, _: int) -> dict:
    have = list(f.ticket().tags or [])
    given = list(dict.fromkeys(spec["tags"]))
    if spec["type"] == "add_tags":
        tags = list(dict.fromkeys([*have, *given]))
    elif spec["type"] == "remove_tags":
        tags = [t for t in have if t not in given]
    else:
        tags = given
    if tags != have:
        tickets_store.set_tags(f.conn, f.ticket_id, tags)
    return {"tags": tags}


def _priority(f: Firing, spec: dict, _: int) -> dict:
    f.conn.execute(update(tickets).where(tickets.c.id == f.ticket_id).values(priority=spec["priority"]))
    return {"priority": spec["priority"]}


def _status(f: Firing, spec: dict, _: int) -> dict:
    before, to = f.ticket().status, spec["status"]
    if before == to:
        return {"status": to, "changed": False}
    if to in tickets_store.CLOSED:
        freed = tickets_store.close_ticket(f.conn, f.ticket_id, to, f.now, f.classes)
        queue_store.dequeue(f.conn, f.ticket_id)
        f.announce(events.TICKET_CLOSED, freed_agent_id=freed)
    else:
        tickets_store.set_status(f.conn, f.ticket_id, to, f.now)
    f.announce(events.TICKET_STATUS_CHANGED, **{"from": before, "to": to})
    return {"status": to, "from": before}


def _set_field(f: Firing, spec: dict, i: int) -> dict:
    """As ``PATCH /tickets/{id} {"fields": ...}`` does: checked against the field's definition
    now (it may have changed since the trigger was saved), written with its filter index rows."""
    defs = fields_store.definitions(f.conn, f.tenant_id)
    try:
        stored = field_actions.value(defs, spec, f"then[{i}]")
    except ConditionError as exc:
        raise ActionError(f"set_field: {exc}") from None
    fields_store.set_values(f.conn, f.tenant_id, f.ticket_id, {spec["name"]: stored}, defs)
    return {"name": spec["name"], "value": stored}


def _require(f: Firing, spec: dict, _: int) -> dict:
    """Store the skills on the ticket (the router adds them to its rule's), on its waiting
    entry if it waits, and hand it back if an agent who lacks them holds it unstarted."""
    wanted = dict(spec["skills"]) if spec["type"] == "require_skills" else {f"team:{spec['team']}": 1}
    row = f.ticket()
    have = dict(row.requirements or {})
    required = rule_schema.with_required(have, wanted)["required"]
    f.conn.execute(update(tickets).where(tickets.c.id == f.ticket_id).values(requirements={**have, "required": required}))
    waiting = queue_store.entry(f.conn, f.ticket_id)
    if waiting is not None:
        merged = rule_schema.with_required(dict(waiting.requirements or {}), required)
        f.conn.execute(update(routing_queue).where(routing_queue.c.id == waiting.id).values(requirements=merged))
        return {"required": required, "waiting": True}
    if row.assignee_id is None or row.assigned_at is None or row.status != tickets_store.NOT_STARTED:
        return {"required": required}
    agent = agents_store.get_agent(f.conn, f.tenant_id, row.assignee_id)
    skills = dict(agent.skills or {}) if agent is not None else {}
    if all(skills.get(name, 0) >= level for name, level in required.items()):  # as router.pool reads them
        return {"required": required}
    freed = tickets_store.unassign(f.conn, f.ticket_id, f.now, f.classes, only_status=tickets_store.NOT_STARTED)
    decisions_store.record(f.conn, f.tenant_id, f.ticket_id, "requeued", f.now, agent_id=freed, detail={
        "reason": f"the {f.origin} requires skills the agent lacks", "required": required})
    f.announce(events.TICKET_UPDATED, freed_agent_id=freed)
    return {"required": required, "handed_back_by": freed}


def render(f: Firing, template: str) -> str:
    """The template over the ticket as it is now; ``ActionError`` for what it cannot render.

    ``ticket.status_url`` is a signed link to the customer's status page, valid from the
    firing's time (empty when the installation has no ``secret_key`` to sign it with)."""
    row = f.ticket()
    name = f.conn.execute(select(customers.c.name).where(customers.c.id == row.customer_id)).scalar() or ""
    status_url = f.links.portal_link(f.tenant_id, row, issued_at=f.now / 1000) if f.links else ""
    values = {
        "ticket": {"id": row.id, "number": row.number, "subject": row.subject, "status": row.status,
                   "channel": row.channel, "priority": row.priority, "tags": list(row.tags or []),
                   "status_url": status_url},
        "customer": {"name": name},
    }
    try:
        text = TEMPLATES.from_string(template).render(values)
    except (TemplateError, SecurityError, ArithmeticError, TypeError, ValueError) as exc:
        raise ActionError(f"template: {exc}") from None
    if not text.strip():
        raise ActionError("template: rendered to nothing")
    if len(text) > MAX_TEXT:
        raise ActionError(f"template: rendered to over {MAX_TEXT} characters")
    return text


def _reply(f: Firing, spec: dict, i: int) -> dict:
    draft = Draft(kind="reply", text=render(f, spec["template"]), idempotency_key=f"{f.key}:{i}", auto_reason=f.origin)
    try:
        message_id, _ = store_reply(f.conn, f.tenant_id, f.ticket_id, draft, f.secret_key, f.now)
    except ReplyError as exc:
        raise ActionError(f"reply: {exc.message}") from None
    return {"message_id": message_id}


def _recipients(f: Firing, spec: dict, row: Row) -> list[tuple[str, str]]:
    ids = list(spec.get("agents") or ())
    if not ids and not spec.get("emails"):
        if row.assignee_id is None:
            raise ActionError("notify: the ticket has no assignee and the action names nobody")
        ids = [row.assignee_id]
    found = {a.id: a for a in f.conn.execute(select(agents.c.id, agents.c.name, agents.c.email).where(
        agents.c.tenant_id == f.tenant_id, agents.c.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ActionError(f"notify: no agent {missing[0]}")
    return [(found[i].email, found[i].name) for i in ids] + [(e, "") for e in spec.get("emails") or ()]


def _notify(f: Firing, spec: dict, i: int) -> dict:
    """A mail to each agent, sent by the email sender from the tenant's first mailbox."""
    row = f.ticket()
    mailbox = f.conn.execute(select(channel_accounts.c.id, channel_accounts.c.address).where(
        channel_accounts.c.tenant_id == f.tenant_id, channel_accounts.c.channel == "email",
        channel_accounts.c.active).order_by(channel_accounts.c.id).limit(1)).first()
    if mailbox is None:
        raise ActionError("notify: the tenant has no email account to send from")
    text, sent = render(f, spec["template"]), []
    domain = mailbox.address.partition("@")[2] or "switchboard.local"
    for n, (email, name) in enumerate(dict.fromkeys(_recipients(f, spec, row))):
        message_id = tickets_store.add_message(
            f.conn, tenant_id=f.tenant_id, ticket_id=f.ticket_id, channel="email", account_id=mailbox.id,
            dedup_key=f"idem:{f.key}:{i}:{n}", envelope_id=new_id(), direction="out", kind="notify",
            customer_id=row.customer_id, sender=mailbox.address, subject=f"Ticket #{row.number}: {row.subject}"[:1000],
            text=text, html="", created_at=f.now)
        # No reply-to token: an agent's answer to a notification must not land on the ticket.
        f.conn.execute(outbox.insert().values(
            tenant_id=f.tenant_id, ticket_id=f.ticket_id, message_id=message_id, channel="email", mode="send",
            account_id=mailbox.id, recipient=email, recipient_name=name[:200],
            handle=f"<notify.{new_id().lower()}@{domain}>", reply_to="", in_reply_to="", refs=[], status="queued",
            attempts=0, next_attempt_at=f.now, created_at=f.now))
        sent.append(email)
    return {"to": sent}


def _webhook(f: Firing, spec: dict, _: int) -> dict:
    if f.webhooks is None:
        raise ActionError("call_webhook: webhooks out are not available in this installation")
    target = {k: v for k, v in spec.items() if k != "type"}
    f.webhooks.enqueue(f.conn, f.tenant_id, target, {**f.event, "ticket_id": f.ticket_id, "origin": f.origin})
    return target


_APPLY = {
    "add_tags": _tags, "remove_tags": _tags, "set_tags": _tags, "set_priority": _priority, "set_status": _status,
    "set_field": _set_field, "require_skills": _require, "require_team": _require, "reply": _reply,
    "notify": _notify, "call_webhook": _webhook,
}
