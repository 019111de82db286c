"""What a round of routing decisions reads, in a fixed number of statements whatever its size.

On PostgreSQL every statement is a round trip, and a statement whose text changes with the
length of a list (an expanding ``IN``) is prepared again for every length. So lists go as
one array parameter (``assign_sets.member``): the routes' tickets with their first message
and waiting entry in one statement, the pulling agents in one, and the queue pages of every
(tenant, class) of the round in one (a ``LATERAL`` join over the unnested pairs). SQLite
runs in-process, where a statement costs no round trip: its pages are one statement each,
and the statements run on the driver (``compiled.Statement``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Mapping

from sqlalchemy import Integer, String, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from ticket_service.store import queue as queue_store
from ticket_service.store.agents import AGENT_COLS
from ticket_service.store.assign_sets import id_params, member
from ticket_service.store.compiled import Statement
from ticket_service.store.tables import agents, customers, messages, routing_queue, tickets

_TICKET_COLS = (
    tickets.c.id, tickets.c.tenant_id, tickets.c.number, tickets.c.status, tickets.c.channel,
    tickets.c.account_id, tickets.c.priority, tickets.c.tags, tickets.c.language,
    tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.customer_id, tickets.c.created_at,
    tickets.c.subject, tickets.c.requirements, customers.c.vip_tier, customers.c.last_agent_id,
)
_QUEUE_COLS = tuple(routing_queue.c)
Waiting = namedtuple("Waiting", [c.key for c in _QUEUE_COLS])  # as a row of ``routing_queue``
_FIRST_IN = (select(func.min(messages.c.id)).where(messages.c.ticket_id == tickets.c.id, messages.c.direction == "in")
             .correlate(tickets).scalar_subquery())


def _for_routing(dialect: str):
    return (select(*_TICKET_COLS, messages.c.subject.label("m_subject"), messages.c.text.label("m_text"),
                   *(c.label(f"q_{c.key}") for c in _QUEUE_COLS))
            .join(customers, customers.c.id == tickets.c.customer_id)
            .outerjoin(messages, messages.c.id == _FIRST_IN)
            .outerjoin(routing_queue, routing_queue.c.ticket_id == tickets.c.id)
            .where(member(tickets.c.id, dialect)))


_FOR_ROUTING = {d: Statement(_for_routing(d)) for d in ("postgresql", "sqlite")}
_AGENTS = {d: Statement(select(*AGENT_COLS).where(member(agents.c.id, d))) for d in ("postgresql", "sqlite")}
_TicketRow = namedtuple("TicketRow", [c.key for c in _TICKET_COLS])


def tickets_for_routing(conn: Connection, ticket_ids: Iterable[int]) -> dict[int, tuple[Row, str, Waiting | None]]:
    """Per ticket id: its routing state (as ``tickets.tickets_for_routing``), the subject and
    text of its first inbound message ("" without one) and its waiting entry, if any."""
    params = id_params(conn, ticket_ids)
    if params["ids"] in ([], "[]"):
        return {}
    found = {}
    n = len(_TICKET_COLS)
    for row in _FOR_ROUTING[conn.dialect.name].all(conn, params):
        t = tuple(row)
        text = "" if t[n] is None and t[n + 1] is None else f"{t[n]}\n{t[n + 1]}"
        waiting = None if t[n + 2] is None else Waiting(*t[n + 2:])
        found[t[0]] = (_TicketRow(*t[:n]), text, waiting)
    return found


def agents_by_id(conn: Connection, agent_ids: Iterable[int]) -> dict[int, Row]:
    """Rows of ``agents.AGENT_COLS`` by id (any tenant: the caller checks the tenant)."""
    params = id_params(conn, agent_ids)
    if params["ids"] in ([], "[]"):
        return {}
    return {row.id: row for row in _AGENTS[conn.dialect.name].all(conn, params)}


def _pages_statement():
    pairs = func.unnest(bindparam("p_tenant", type_=ARRAY(Integer)), bindparam("p_cls", type_=ARRAY(String)),
                        bindparam("p_limit", type_=ARRAY(Integer))).table_valued(
        "tenant_id", "cls", "lim").render_derived(name="p")
    page = (select(routing_queue)
            .where(routing_queue.c.tenant_id == pairs.c.tenant_id, routing_queue.c.channel_class == pairs.c.cls)
            .order_by(routing_queue.c.rank, routing_queue.c.id).limit(pairs.c.lim).lateral("q"))
    return select(page).select_from(pairs.join(page, true())).order_by(
        page.c.tenant_id, page.c.channel_class, page.c.rank, page.c.id)


_PAGES = _pages_statement()


def queue_pages(conn: Connection, limits: Mapping[tuple[int, str], int]) -> dict[tuple[int, str], list[Row]]:
    """Per (tenant, class): the first ``limit`` waiting tickets, best first (``queue.page``)."""
    pages: dict[tuple[int, str], list[Row]] = {key: [] for key in limits}
    if not limits:
        return pages
    if conn.dialect.name != "postgresql":
        return {(t, c): queue_store.page(conn, t, c, n) for (t, c), n in limits.items()}
    keys = list(limits)
    for row in conn.execute(_PAGES, {"p_tenant": [t for t, _ in keys], "p_cls": [c for _, c in keys],
                                     "p_limit": [limits[k] for k in keys]}):
        pages[(row.tenant_id, row.channel_class)].append(row)
    return pages
