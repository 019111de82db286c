"""Tickets: what the normalizer writes inside one transaction, and assignment and closing.

Assignment: lock order, everywhere, is ticket row, then agent row, then customer row. A
claim locks the ticket (``lock_ticket``: nobody may hold it), takes capacity with a
compare-and-set on the agent's load (``agents.take_capacity``) and sets the assignee, all
in one transaction, so no ticket gets two assignees on SQLite (one writer) or PostgreSQL
(row locks, and READ COMMITTED re-checks the ``WHERE`` of an UPDATE that waited for a lock).
A ticket holds capacity while it has an assignee, an ``assigned_at`` and an open status;
solving or closing it keeps the assignee (history) and clears ``assigned_at``.

Synchronous on purpose: the normalizer runs a whole batch of messages through them in one
transaction with ``Database.run_write`` (a thread with a plain SQLite connection, or
``run_sync`` over asyncpg). Async callers use ``await conn.run_sync(fn, ...)``. Statements
are built once, with bind parameters; the ones each message runs are ``Statement``s, which
SQLite runs on its driver directly (see ``compiled``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from core.channel import class_of
from ticket_service.store import agents as agents_store
from ticket_service.store import customers as customers_store
from ticket_service.store.compiled import Statement
from ticket_service.store.tables import (
    attachments,
    customers,
    messages,
    tenants,
    ticket_threads,
    tickets,
)

CLOSED = ("solved", "closed")
NOT_STARTED = "new"
_TICKET_COLS = (
    tickets.c.id, tickets.c.number, tickets.c.status, tickets.c.customer_id,
    tickets.c.priority, tickets.c.closed_at, tickets.c.updated_at, tickets.c.auto, tickets.c.cc,
)

_FIND_MESSAGE = Statement(select(messages.c.id, messages.c.ticket_id, messages.c.envelope_id).where(
    messages.c.tenant_id == bindparam("tenant_id"), messages.c.channel == bindparam("channel"),
    messages.c.dedup_key == bindparam("dedup_key"),
))
# Parameter names differ from the columns': an UPDATE reserves the column names for SET.
_THREAD_SCOPE = (
    ticket_threads.c.tenant_id == bindparam("in_tenant"), ticket_threads.c.account_id == bindparam("in_account"),
    ticket_threads.c.thread_key.in_(bindparam("keys", expanding=True)),
)
# ``thread_key``: which of the keys led there, for the threading trail.
_TICKET_FOR_KEYS = (
    select(*_TICKET_COLS, ticket_threads.c.thread_key).join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id)
    .where(*_THREAD_SCOPE).order_by(tickets.c.id.desc()).limit(1)
)
# The common case of one key (a chat session) without the cost of expanding an IN list.
_ONE_KEY = (*_THREAD_SCOPE[:2], ticket_threads.c.thread_key == bindparam("key"))
_TICKET_FOR_KEY = Statement(
    select(*_TICKET_COLS, ticket_threads.c.thread_key).join(ticket_threads, ticket_threads.c.ticket_id == tickets.c.id).where(*_ONE_KEY)
)
_BOUND_KEYS = select(ticket_threads.c.thread_key).where(*_THREAD_SCOPE)
_BOUND_KEY = Statement(select(ticket_threads.c.thread_key).where(*_ONE_KEY))
_REPOINT_KEYS = update(ticket_threads).where(*_THREAD_SCOPE).values(ticket_id=bindparam("to_ticket"))
_REPOINT_KEY = Statement(update(ticket_threads).where(*_ONE_KEY).values(ticket_id=bindparam("to_ticket")))
_INSERT_THREAD_KEY = Statement(insert(ticket_threads))
_TICKET_BY_NUMBER = Statement(select(*_TICKET_COLS).where(
    tickets.c.tenant_id == bindparam("tenant_id"), tickets.c.number == bindparam("number")))
_TICKET_BY_ID = Statement(select(*_TICKET_COLS).where(
    tickets.c.tenant_id == bindparam("tenant_id"), tickets.c.id == bindparam("ticket_id")))
# The row lock on the tenant serializes numbering (PostgreSQL); SQLite has one writer.
_NEXT_NUMBER = Statement(
    update(tenants).where(tenants.c.id == bindparam("tenant_id"))
    .values(next_ticket_number=tenants.c.next_ticket_number + 1).returning(tenants.c.next_ticket_number)
)
_INSERT_TICKET = Statement(insert(tickets))
_INSERT_MESSAGE = Statement(insert(messages))
_INSERT_ATTACHMENTS = insert(attachments)
_TOUCH = Statement(update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(updated_at=bindparam("now")))
_REOPEN = Statement(update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    updated_at=bindparam("now"), status="open", status_at=bindparam("now"), closed_at=None))
# The same with new Cc addresses: still one statement for the message's ticket.
_TOUCH_CC = Statement(update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    updated_at=bindparam("now"), cc=bindparam("new_cc", type_=tickets.c.cc.type)))
_REOPEN_CC = Statement(update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    updated_at=bindparam("now"), status="open", status_at=bindparam("now"), closed_at=None,
    cc=bindparam("new_cc", type_=tickets.c.cc.type)))
_CLEAR_AUTO = Statement(update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(auto=False))
_TICKET_HAS_MESSAGE = select(messages.c.id).where(
    messages.c.tenant_id == bindparam("tenant_id"), messages.c.ticket_id == bindparam("ticket_id"),
    messages.c.dedup_key.in_(bindparam("keys", expanding=True)),
).limit(1)
_TICKET_HAS_KEY = Statement(select(messages.c.id).where(
    messages.c.tenant_id == bindparam("tenant_id"), messages.c.ticket_id == bindparam("ticket_id"),
    messages.c.dedup_key == bindparam("key"),
).limit(1))
_MESSAGE_HEADERS = Statement(select(messages.c.headers).where(messages.c.id == bindparam("id")).with_for_update())
_TICKET_TAGS = select(tickets.c.tags, tickets.c.priority).where(tickets.c.id == bindparam("id")).with_for_update()
_SET_TAGS = update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    tags=bindparam("new_tags"), priority=bindparam("new_priority"))


def find_message(conn: Connection, tenant_id: int, channel: str, dedup_key: str) -> Row | None:
    return _FIND_MESSAGE.first(conn, {"tenant_id": tenant_id, "channel": channel, "dedup_key": dedup_key})


def resolve_customer(conn: Connection, tenant_id: int, kind: str, scope: str, value: str, name: str,
                     now: int) -> customers_store.Customer:
    """The customer behind one identity, created on first contact (``customers.resolve``)."""
    return customers_store.resolve(conn, tenant_id, (kind, scope, value), [], name, now)


def ticket_for_keys(conn: Connection, tenant_id: int, account_id: int, keys: Iterable[str]) -> Row | None:
    """The newest ticket holding any of these conversation keys (and, as ``thread_key``, which)."""
    keys = list(keys)
    if not keys:
        return None
    if len(keys) == 1:
        return _TICKET_FOR_KEY.first(conn, {"in_tenant": tenant_id, "in_account": account_id, "key": keys[0]})
    return conn.execute(_TICKET_FOR_KEYS, {"in_tenant": tenant_id, "in_account": account_id, "keys": keys}).first()


def ticket_by_number(conn: Connection, tenant_id: int, number: int) -> Row | None:
    return _TICKET_BY_NUMBER.first(conn, {"tenant_id": tenant_id, "number": number})


def create_ticket(conn: Connection, **values: Any) -> tuple[int, int]:
    """Insert a ticket with the tenant's next number; returns (id, number)."""
    number = _NEXT_NUMBER.scalar(conn, {"tenant_id": values["tenant_id"]})
    if number is None:
        raise LookupError(f"no tenant {values['tenant_id']}")
    now = values.pop("now")
    values.setdefault("tags", [])
    row = {"number": number, "created_at": now, "updated_at": now, "status_at": now, **values}
    return _INSERT_TICKET.insert(conn, row), number


def bind_thread_keys(
    conn: Connection, tenant_id: int, account_id: int, ticket_id: int, keys: Iterable[str],
    now: int, repoint: bool = False,
) -> None:
    """Make each key lead to this ticket. Existing keys move only with ``repoint``."""
    keys = list(dict.fromkeys(k for k in keys if k))
    if not keys:
        return
    if len(keys) == 1:  # a chat session, a first mail: no IN list to expand
        scope = {"in_tenant": tenant_id, "in_account": account_id, "key": keys[0]}
        existing = {row.thread_key for row in _BOUND_KEY.all(conn, scope)}
        if repoint and existing:
            _REPOINT_KEY.rowcount(conn, {**scope, "to_ticket": ticket_id})
    else:
        scope = {"in_tenant": tenant_id, "in_account": account_id, "keys": keys}
        existing = set(conn.execute(_BOUND_KEYS, scope).scalars())
        if repoint and existing:
            conn.execute(_REPOINT_KEYS, {**scope, "to_ticket": ticket_id})
    for key in keys:
        if key not in existing:
            _INSERT_THREAD_KEY.insert(conn, {"tenant_id": tenant_id, "account_id": account_id, "thread_key": key,
                                             "ticket_id": ticket_id, "created_at": now})


def add_message(conn: Connection, **values: Any) -> int:
    values.setdefault("headers", {})
    return _INSERT_MESSAGE.insert(conn, values)


def add_attachments(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_ATTACHMENTS, rows)


def touch_ticket(conn: Connection, ticket_id: int, now: int, reopen: bool = False,
                 cc: list[str] | None = None) -> None:
    """Mark activity (and reopen); ``cc``, when given, replaces the ticket's Cc list."""
    if cc is None:
        (_REOPEN if reopen else _TOUCH).rowcount(conn, {"ticket_id": ticket_id, "now": now})
    else:
        (_REOPEN_CC if reopen else _TOUCH_CC).rowcount(conn, {"ticket_id": ticket_id, "now": now, "new_cc": cc})


def clear_auto(conn: Connection, ticket_id: int) -> None:
    """The ticket is no longer bulk mail's alone (its reason stays, for the record)."""
    _CLEAR_AUTO.rowcount(conn, {"ticket_id": ticket_id})


def ticket_by_id(conn: Connection, tenant_id: int, ticket_id: int) -> Row | None:
    return _TICKET_BY_ID.first(conn, {"tenant_id": tenant_id, "ticket_id": ticket_id})


def ticket_has_message(conn: Connection, tenant_id: int, ticket_id: int, dedup_keys: Iterable[str]) -> bool:
    """Whether one of these ids is a message stored on the ticket (not merely a thread key)."""
    dedup_keys = list(dedup_keys)
    if not dedup_keys:
        return False
    if conn.dialect.driver == "pysqlite":
        # One key at a time on the driver: an expanding IN goes through SQLAlchemy's whole
        # execution path, about 60 µs of the normalizer's CPU for a reply mail that names
        # its ticket's messages (a look-up costs 2-3 µs a key here, with no round trip).
        params = {"tenant_id": tenant_id, "ticket_id": ticket_id}
        return any(_TICKET_HAS_KEY.first(conn, {**params, "key": key}) is not None for key in dedup_keys)
    found = conn.execute(_TICKET_HAS_MESSAGE, {"tenant_id": tenant_id, "ticket_id": ticket_id, "keys": dedup_keys})
    return found.first() is not None


def message_headers(conn: Connection, message_id: int) -> dict:
    """A message's headers, its row locked until commit (a read-modify-write follows)."""
    row = _MESSAGE_HEADERS.first(conn, {"id": message_id})
    return dict(row.headers or {}) if row else {}


def update_message(conn: Connection, message_id: int, **values: Any) -> None:
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def tag_ticket(conn: Connection, ticket_id: int, tags: Iterable[str], priority: int) -> None:
    """Add tags to a ticket and raise its priority to at least ``priority``."""
    row = conn.execute(_TICKET_TAGS, {"id": ticket_id}).one()
    merged = list(dict.fromkeys([*(row.tags or []), *tags]))
    if merged != list(row.tags or []) or priority > row.priority:
        conn.execute(_SET_TAGS, {"ticket_id": ticket_id, "new_tags": merged,
                                 "new_priority": max(priority, row.priority)})


# --- assignment and closing -------------------------------------------------------------

B = bindparam  # parameters of UPDATE statements are named b_*: never a column's name
# A new status, and ``status_at`` moved only when the status really changes.
_NEW_STATUS = {"status": B("b_status"),
               "status_at": case((tickets.c.status == B("b_status"), tickets.c.status_at), else_=B("b_now"))}
_FOR_ROUTING = (
    select(
        tickets.c.id, tickets.c.tenant_id, tickets.c.number, tickets.c.status, tickets.c.channel,
        tickets.c.account_id, tickets.c.priority, tickets.c.tags, tickets.c.language,
        tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.customer_id, tickets.c.created_at,
        tickets.c.subject, tickets.c.requirements,
        customers.c.vip_tier, customers.c.last_agent_id,
    )
    .join(customers, customers.c.id == tickets.c.customer_id)
    .where(tickets.c.id.in_(B("ticket_ids", expanding=True)))
)
_FIRST_MESSAGES = select(messages.c.ticket_id, messages.c.subject, messages.c.text).where(messages.c.id.in_(
    select(func.min(messages.c.id))
    .where(messages.c.ticket_id.in_(B("ticket_ids", expanding=True)), messages.c.direction == "in")
    .group_by(messages.c.ticket_id)
    .scalar_subquery()
))
_OPEN = and_(*(tickets.c.status != status for status in CLOSED))  # not NOT IN: no per-call expansion
_UNHELD = (tickets.c.assignee_id.is_(None) | tickets.c.assigned_at.is_(None)) & _OPEN
_LOCK_TICKET = Statement(
    select(tickets.c.id, tickets.c.status, tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.tags,
           tickets.c.customer_id, tickets.c.created_at)
    .where(tickets.c.id == B("ticket_id")).with_for_update()
)
_TAKE_TICKET = Statement(
    update(tickets)
    .where(tickets.c.id == B("b_ticket"), _UNHELD)
    .values(assignee_id=B("b_agent"), assigned_at=B("b_now"), updated_at=B("b_now"))
    .returning(tickets.c.customer_id, tickets.c.created_at)
)
_SET_LANGUAGE = Statement(update(tickets).where(tickets.c.id == B("b_ticket")).values(language=B("b_language")))
_REPLACE_TAGS = Statement(update(tickets).where(tickets.c.id == B("b_ticket"))
                          .values(tags=B("b_tags", type_=tickets.c.tags.type)))
_SET_STATUS = Statement(update(tickets).where(tickets.c.id == B("b_ticket"))
                        .values(updated_at=B("b_now"), **_NEW_STATUS))
_HOLDER = Statement(select(tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.status, tickets.c.channel)
                    .where(tickets.c.id == B("ticket_id")).with_for_update())
_UNASSIGN = update(tickets).where(tickets.c.id == B("b_ticket")).values(
    assignee_id=None, assigned_at=None, updated_at=B("b_now"))
_UNASSIGN_WITH_STATUS = Statement(_UNASSIGN.values(**_NEW_STATUS))
_CLOSE = update(tickets).where(tickets.c.id == B("b_ticket")).values(
    updated_at=B("b_now"), assigned_at=None, **_NEW_STATUS)
_CLOSE_FIRST_TIME = Statement(_CLOSE.values(closed_at=B("b_now")))
_UNASSIGN, _CLOSE = Statement(_UNASSIGN), Statement(_CLOSE)
_NOT_STARTED = Statement(
    select(tickets.c.id)
    .where(tickets.c.assignee_id == B("agent_id"), tickets.c.status == NOT_STARTED,
           tickets.c.assigned_at.is_not(None))
    .order_by(tickets.c.id)
)
_TENANT_IDS = Statement(select(tenants.c.id).order_by(tenants.c.id))


def held(row: Row) -> bool:
    """Someone holds the ticket, or it is closed: it is not routed."""
    return row.status in CLOSED or (row.assignee_id is not None and row.assigned_at is not None)


def _by(conn: Connection, stmt, ticket_ids: list[int], key: str) -> dict[int, Row]:
    if not ticket_ids:
        return {}
    return {getattr(row, key): row for row in conn.execute(stmt, {"ticket_ids": ticket_ids})}


def tickets_for_routing(conn: Connection, ticket_ids: list[int]) -> dict[int, Row]:
    """The routing state of each ticket (with its customer's VIP tier and last agent), by id."""
    return _by(conn, _FOR_ROUTING, ticket_ids, "id")


def ticket_for_routing(conn: Connection, ticket_id: int) -> Row | None:
    return tickets_for_routing(conn, [ticket_id]).get(ticket_id)


def first_message_texts(conn: Connection, ticket_ids: list[int]) -> dict[int, str]:
    """Subject and text of each ticket's first inbound message, by ticket id ("" without one)."""
    rows = _by(conn, _FIRST_MESSAGES, ticket_ids, "ticket_id")
    return {ticket_id: f"{row.subject}\n{row.text}" if (row := rows.get(ticket_id)) else ""
            for ticket_id in ticket_ids}


def lock_ticket(conn: Connection, ticket_id: int) -> Row | None:
    """The ticket's routing state, row-locked on PostgreSQL (SQLite's writer already is alone)."""
    return _LOCK_TICKET.first(conn, {"ticket_id": ticket_id})


def take_ticket(conn: Connection, ticket_id: int, agent_id: int, now: int) -> Row | None:
    """Set the assignee where nobody holds the ticket yet and it is still open.

    Returns the ticket's (customer_id, created_at), or None when it was not free to take.
    """
    return _TAKE_TICKET.first(conn, {"b_ticket": ticket_id, "b_agent": agent_id, "b_now": now})


def set_language(conn: Connection, ticket_id: int, language: str) -> None:
    _SET_LANGUAGE.rowcount(conn, {"b_ticket": ticket_id, "b_language": language})


def set_tags(conn: Connection, ticket_id: int, tags: list[str]) -> None:
    _REPLACE_TAGS.rowcount(conn, {"b_ticket": ticket_id, "b_tags": tags})


def set_status(conn: Connection, ticket_id: int, status: str, now: int) -> None:
    """An open status (closing is ``close_ticket``)."""
    _SET_STATUS.rowcount(conn, {"b_ticket": ticket_id, "b_status": status, "b_now": now})


def _holds(row: Row) -> bool:
    return row.assignee_id is not None and row.assigned_at is not None and row.status not in CLOSED


def unassign(conn: Connection, ticket_id: int, now: int, classes: Mapping[str, str], status: str | None = None,
             only_status: str | None = None) -> int | None:
    """Clear the assignee (and optionally set ``status``), freeing the agent's capacity.

    Returns the agent that was freed, or None when the ticket had no assignee (or was not
    in ``only_status``). Capacity counts open tickets only, so a closed ticket frees nothing.
    """
    row = _HOLDER.first(conn, {"ticket_id": ticket_id})
    if row is None or row.assignee_id is None or (only_status and row.status != only_status):
        return None
    if status:
        _UNASSIGN_WITH_STATUS.rowcount(conn, {"b_ticket": ticket_id, "b_now": now, "b_status": status})
    else:
        _UNASSIGN.rowcount(conn, {"b_ticket": ticket_id, "b_now": now})
    if _holds(row):
        agents_store.free_capacity(conn, row.assignee_id, class_of(classes, row.channel))
        return row.assignee_id
    return None


def close_ticket(conn: Connection, ticket_id: int, status: str, now: int,
                 classes: Mapping[str, str]) -> int | None:
    """Solve or close: the assignee stays on the ticket, its capacity is freed. Returns them."""
    row = _HOLDER.first(conn, {"ticket_id": ticket_id})
    if row is None:
        return None
    (_CLOSE if row.status in CLOSED else _CLOSE_FIRST_TIME).rowcount(
        conn, {"b_ticket": ticket_id, "b_status": status, "b_now": now})
    if _holds(row):
        agents_store.free_capacity(conn, row.assignee_id, class_of(classes, row.channel))
        return row.assignee_id
    return None


def not_started(conn: Connection, agent_id: int) -> list[int]:
    """The tickets the agent holds and has not started, oldest first."""
    return [row.id for row in _NOT_STARTED.all(conn, {"agent_id": agent_id})]


def tenant_ids(conn: Connection) -> list[int]:
    return [row.id for row in _TENANT_IDS.all(conn, {})]


def ticket_id_by_number(conn: Connection, tenant_id: int, number: int) -> int | None:
    row = ticket_by_number(conn, tenant_id, number)
    return None if row is None else row.id


def set_priority(conn: Connection, tenant_id: int, ticket_id: int, priority: int) -> None:
    """Set by hand (console); a ticket already waiting keeps its place in the queue."""
    conn.execute(update(tickets).where(tickets.c.tenant_id == tenant_id, tickets.c.id == ticket_id)
                 .values(priority=priority))
