"""The inbox (``/``): my tickets, the queue I may take, all (supervisors); filters, search, pages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict
from sqlalchemy import ColumnElement, Select, String, cast, exists, func, or_, select
from sqlalchemy.engine import Connection

from console import auth, render, sla
from console.actions import CLASSES
from core.channel import class_of
from core.ids import now_ms
from ticket_service import eligibility
from ticket_service.api import field_filters
from ticket_service.api.errors import ApiError
from ticket_service.api.routing import TICKET_STATUSES
from ticket_service.field_schema import Field
from ticket_service.rule_schema import RuleError
from ticket_service.store import agents as agents_store
from ticket_service.store import fields as fields_store
from ticket_service.store.tables import (
    agents,
    customers,
    identities,
    messages,
    routing_queue,
    tickets,
)

PAGE = 25
MAX_PAGE = 1000
TABS = ("mine", "queue", "all")
CHANNELS = ("email", "wechat", "weibo", "webform", "voice", "sdk", "sms")
OPEN = ("new", "open", "pending")
_MAX_QUERY = 200


@dataclass(frozen=True, slots=True)
class Filters:
    tab: str
    statuses: tuple[str, ...]
    channel: str
    vip: int | None
    tag: str
    q: str
    page: int
    sla: str = ""
    fields: tuple[tuple[str, str], ...] = ()  # (``field.NAME[.gte|.lte]``, value) as the API takes them

    @classmethod
    def parse(cls, query, user: auth.User) -> Filters:
        """The inbox's query string; values it does not know are ignored, not an error page."""
        tabs = TABS if user.can("supervisor") else TABS[:2]
        tab = query.get("tab") if query.get("tab") in tabs else "mine"
        statuses = tuple(s for s in query.getall("status", []) if s in TICKET_STATUSES)
        channel = query.get("channel") if query.get("channel") in CHANNELS else ""
        vip = _int(query.get("vip"), 0, 9)
        page = _int(query.get("page"), 1, MAX_PAGE) or 1
        tag = query.get("tag", "").strip()[:64]
        sla_state = query.get("sla") if query.get("sla") in sla.FILTERS else ""
        return cls(tab, statuses, channel, vip, tag, query.get("q", "").strip()[:_MAX_QUERY], page, sla_state,
                   _field_params(query))


def _field_params(query) -> tuple[tuple[str, str], ...]:
    """The non-empty ``field.*`` parameters (an empty control means "any"), at most the API's limit."""
    pairs = [(k, v.strip()[:_MAX_QUERY]) for k, v in query.items()
             if k.startswith(field_filters.PREFIX) and len(k) <= 60 and v.strip()]
    return tuple(pairs[:field_filters.MAX_FILTERS])


def field_conditions(f: Filters, tenant_id: int, defs: dict[str, Field]) -> tuple[list[ColumnElement], list[str]]:
    """The custom field filters through the API's own lookups, each checked alone: one the API
    refuses is left out and its message shown, the others still apply."""
    out, refused = [], []
    for param, value in f.fields:
        try:
            out += field_filters.conditions(MultiDict([(param, value)]), tenant_id, defs)
        except ApiError as exc:
            refused.append(exc.message)
    return out, refused


def _int(raw: str | None, low: int, high: int) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return min(max(int(raw), low), high)


def ticket_select(tenant_id: int) -> Select:
    """A tenant's tickets with their customer and assignee, as the inbox and ticket page show them."""
    return (
        select(tickets.c.id, tickets.c.number, tickets.c.subject, tickets.c.status, tickets.c.channel,
               tickets.c.priority, tickets.c.tags, tickets.c.created_at, tickets.c.updated_at, tickets.c.auto,
               tickets.c.customer_id, tickets.c.assignee_id, customers.c.name.label("customer_name"),
               customers.c.vip_tier, agents.c.name.label("assignee_name"))
        .select_from(tickets.join(customers, customers.c.id == tickets.c.customer_id)
                     .outerjoin(agents, agents.c.id == tickets.c.assignee_id))
        .where(tickets.c.tenant_id == tenant_id)
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(tenant_id: int, q: str):
    """Customer name or identity (email, phone, openid), ticket subject, or any message's text."""
    pattern = _like(q)
    identity = exists().where(identities.c.tenant_id == tenant_id, identities.c.customer_id == tickets.c.customer_id,
                              identities.c.value.ilike(pattern, escape="\\"))
    text = exists().where(messages.c.tenant_id == tenant_id, messages.c.ticket_id == tickets.c.id,
                          messages.c.text.ilike(pattern, escape="\\"))
    return or_(customers.c.name.ilike(pattern, escape="\\"), tickets.c.subject.ilike(pattern, escape="\\"),
               identity, text)


def filtered(stmt: Select, f: Filters, user: auth.User, extra: list[ColumnElement] | tuple = (),
             now: int = 0) -> Select:
    if f.tab == "mine":
        stmt = stmt.where(tickets.c.assignee_id == user.id)
    elif f.tab == "queue":
        stmt = stmt.where(tickets.c.assignee_id.is_(None), tickets.c.status.in_(OPEN), tickets.c.auto.is_(False))
    if f.statuses:
        stmt = stmt.where(tickets.c.status.in_(f.statuses))
    if f.channel:
        stmt = stmt.where(tickets.c.channel == f.channel)
    if f.vip is not None:
        stmt = stmt.where(customers.c.vip_tier >= f.vip)
    if f.tag:
        # Tags are a JSON list; its text holds each tag as "tag" on SQLite and PostgreSQL alike.
        stmt = stmt.where(cast(tickets.c.tags, String).like(_like(f'"{f.tag}"'), escape="\\"))
    if f.q:
        stmt = stmt.where(_search(user.tenant_id, f.q))
    if f.sla:
        stmt = stmt.where(sla.condition(user.tenant_id, f.sla, now))
    return stmt.where(*extra)


def takeable(conn: Connection, user: auth.User, f: Filters, classes: Mapping[str, str], extra=(),
             now: int = 0) -> list[int]:
    """The queue tab's tickets this agent may take under the page's filters, newest activity first.

    The router's test (``ticket_service.eligibility``): the requirements the ticket waits with
    (its routing rule's at its escalation stage, a trigger's ``require_skills``/``require_team``
    on top; a ticket not queued yet: the trigger's alone), and a channel class the agent has
    capacity for. Not whether the agent is online or has room this minute: that decides when
    the router hands a ticket over, not which tickets are the agent's to take. Requirements are
    JSON, so the test runs here, over one short row per queued ticket, each distinct
    requirement checked once.
    """
    me = agents_store.get_agent(conn, user.tenant_id, user.id)
    if me is None:
        return []
    skills, capacity = dict(me.skills or {}), {c: getattr(me, f"cap_{c}") for c in agents_store.CLASSES}
    stmt = (filtered(select(tickets.c.id, tickets.c.channel, tickets.c.requirements,
                            routing_queue.c.requirements.label("waiting"), routing_queue.c.stage)
                     .select_from(tickets.join(customers, customers.c.id == tickets.c.customer_id)
                                  .outerjoin(routing_queue, routing_queue.c.ticket_id == tickets.c.id))
                     .where(tickets.c.tenant_id == user.tenant_id), replace(f, tab="queue"), user, extra, now)
            .order_by(tickets.c.updated_at.desc(), tickets.c.id.desc()))
    verdicts: dict[tuple, bool] = {}
    out = []
    for row in conn.execute(stmt):
        if not eligibility.serves(capacity, class_of(classes, row.channel)):
            continue
        key = (json.dumps(row.waiting, sort_keys=True), row.stage, json.dumps(row.requirements, sort_keys=True))
        if key not in verdicts:
            verdicts[key] = _qualifies(skills, me.tier, row)
        if verdicts[key]:
            out.append(row.id)
    return out


def _qualifies(skills: dict, tier: int, row) -> bool:
    try:
        waiting = eligibility.Requirements() if row.waiting is None else eligibility.stored(row.waiting, row.stage)
    except RuleError:
        return False  # requirements the router cannot read: it gives the ticket to nobody either
    return not eligibility.unmet(skills, tier, eligibility.with_ticket(waiting, row.requirements))


def _ordered(stmt: Select) -> Select:
    return stmt.order_by(tickets.c.updated_at.desc(), tickets.c.id.desc())


def page_of(conn: Connection, user: auth.User, f: Filters, extra=(), now: int = 0,
            mine_to_take: list[int] | None = None) -> tuple[list, bool]:
    """One page, newest activity first, and whether an older page follows. ``mine_to_take``:
    the agent's queue (``takeable``), which the queue tab then lists instead of every waiting ticket."""
    start = (f.page - 1) * PAGE
    if f.tab == "queue" and mine_to_take is not None:
        ids = mine_to_take[start:start + PAGE]
        rows = conn.execute(_ordered(ticket_select(user.tenant_id).where(tickets.c.id.in_(ids)))).all() if ids else []
        return rows, len(mine_to_take) > start + PAGE
    stmt = _ordered(filtered(ticket_select(user.tenant_id), f, user, extra, now)).offset(start).limit(PAGE + 1)
    rows = conn.execute(stmt).all()
    return rows[:PAGE], len(rows) > PAGE


def counts(conn: Connection, user: auth.User, f: Filters, extra=(), now: int = 0,
           mine_to_take: list[int] | None = None) -> dict[str, int]:
    """Tickets per tab under the same filters, for the tab labels."""
    tabs = TABS if user.can("supervisor") else TABS[:2]
    out = {}
    for tab in tabs:
        if tab == "queue" and mine_to_take is not None:
            out[tab] = len(mine_to_take)
            continue
        scoped = replace(f, tab=tab, page=1)
        stmt = filtered(select(func.count()).select_from(
            tickets.join(customers, customers.c.id == tickets.c.customer_id)).where(
                tickets.c.tenant_id == user.tenant_id), scoped, user, extra, now)
        out[tab] = conn.execute(stmt).scalar() or 0
    return out


def _link(f: Filters, **changes) -> str:
    values = {"tab": f.tab, "status": list(f.statuses), "channel": f.channel,
              "vip": "" if f.vip is None else str(f.vip), "tag": f.tag, "q": f.q, "sla": f.sla,
              "page": str(f.page)} | changes
    pairs = [(k, v) for k, vs in values.items() for v in (vs if isinstance(vs, list) else [vs]) if v not in ("", None)]
    pairs += list(f.fields)
    return "/?" + urlencode(pairs)


@auth.signed_in()
async def inbox(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    f = Filters.parse(request.query, user)
    classes = request.app[CLASSES]
    now = now_ms()

    def read(conn: Connection):
        defs = fields_store.definitions(conn, user.tenant_id)
        extra, refused = field_conditions(f, user.tenant_id, defs)
        # Supervisors' queue is every waiting ticket; an agent's, the ones it may take.
        mine = None if user.can("supervisor") else takeable(conn, user, f, classes, extra, now)
        rows, more = page_of(conn, user, f, extra, now, mine)
        badges = sla.badges(conn, user.tenant_id, [r.id for r in rows], now)
        return rows, more, counts(conn, user, f, extra, now, mine), defs, refused, badges

    async with request.app[auth.DB].read() as conn:
        rows, more, per_tab, defs, refused, badges = await conn.run_sync(read)
    return render.render(request, "inbox.html", {
        "title_key": "inbox.title", "page": "inbox", "f": f, "rows": rows, "counts": per_tab,
        "statuses": TICKET_STATUSES, "channels": CHANNELS, "sla_states": sla.FILTERS, "badges": badges,
        "defs": list(defs.values()), "chosen": dict(f.fields), "refused": refused,
        "newer": _link(f, page=str(f.page - 1)) if f.page > 1 else None,
        "older": _link(f, page=str(f.page + 1)) if more else None,
        "tab_link": {tab: _link(f, tab=tab, page="1") for tab in per_tab},
    })


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", inbox)
