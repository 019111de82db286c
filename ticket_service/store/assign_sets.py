"""Set-based assignment: a round of claims (or a batch of closes) in a fixed number of statements.

One claim on its own costs half a dozen statements (lock the ticket, take the agent's
capacity, set the assignee, remember the customer's agent, leave the queue, record the
decision); on PostgreSQL each is a round trip. These functions take every row of a kind in
one statement whatever the count: lists go as one array parameter (PostgreSQL ``= ANY`` /
``unnest``, SQLite ``json_each``, or ``executemany`` on SQLite's in-process driver), so each
statement text is prepared once. On SQLite they run on the driver (``compiled.Statement``):
through ``conn.execute`` SQLAlchemy's per-statement and per-row work was about a third of
the router's write transaction.

Lock order stays ticket rows, then agent rows, then customer rows (see ``tickets``); within
each kind rows are locked in id order (``ORDER BY id FOR UPDATE``: PostgreSQL locks rows as
they leave the sort), so two routers taking overlapping sets wait for each other instead of
deadlocking. Tickets a pull may pass over are locked with ``SKIP LOCKED``: another router
taking one at that moment is passed over instead of waited for, and never waits itself.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, Table, any_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from core.channel import class_of
from ticket_service.store.agents import AGENT_COLS, CLASSES
from ticket_service.store.compiled import Statement
from ticket_service.store.inbound_sets import _arrays as unnest_arrays
from ticket_service.store.inbound_sets import _unnest, insert_rows
from ticket_service.store.tables import agents, customers, routing_decisions, routing_queue, tickets

CLOSED = ("solved", "closed")
_INT64 = (-(2**63), 2**63 - 1)
_QUEUE_COLUMNS = ("tenant_id", "ticket_id", "channel_class", "vip_tier", "rank", "queued_at", "rule_id",
                  "requirements", "stage", "next_stage_at")


def member(column, dialect: str):
    """``column`` is one of the list bound as ``ids``: one parameter whatever its length."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(Integer)))
    return column.in_(select(func.json_each(bindparam("ids")).table_valued("value").c.value))


def id_params(conn: Connection, ids: Iterable[int]) -> dict[str, Any]:
    ids = sorted(set(ids))
    if conn.dialect.name != "sqlite":
        return {"ids": ids}
    if ids and (ids[0] < _INT64[0] or ids[-1] > _INT64[1]):
        # As the driver refuses such a parameter: JSON would carry it, as a float no id equals.
        raise OverflowError("Python int too large to convert to SQLite INTEGER")
    return {"ids": json.dumps(ids)}


_TICKET_STATE = (tickets.c.id, tickets.c.status, tickets.c.assignee_id, tickets.c.assigned_at, tickets.c.tags,
                 tickets.c.customer_id, tickets.c.created_at, tickets.c.channel)


def _locking(cols, table: Table, skip_locked: bool = False) -> dict[str, Statement]:
    return {d: Statement(select(*cols).where(member(table.c.id, d)).order_by(table.c.id)
                         .with_for_update(skip_locked=skip_locked)) for d in ("postgresql", "sqlite")}


_LOCK_TICKETS = _locking(_TICKET_STATE, tickets)
_LOCK_FREE_TICKETS = _locking(_TICKET_STATE, tickets, skip_locked=True)
_LOCK_AGENTS = _locking(AGENT_COLS, agents)
_LOCK_CUSTOMERS = _locking((customers.c.id,), customers)
_DEQUEUE = {d: Statement(routing_queue.delete().where(member(routing_queue.c.ticket_id, d)))
            for d in ("postgresql", "sqlite")}


def _by_id(conn: Connection, stmts: Mapping[str, Statement], ids: Iterable[int]) -> dict[int, Row]:
    params = id_params(conn, ids)
    if params["ids"] in ([], "[]"):
        return {}
    return {row.id: row for row in stmts[conn.dialect.name].all(conn, params)}


def lock_tickets(conn: Connection, ticket_ids: Iterable[int], skip_locked: bool = False) -> dict[int, Row]:
    """The tickets' assignment state by id, row-locked in id order; with ``skip_locked`` the
    ones another transaction holds are left out (PostgreSQL; SQLite's writer is alone)."""
    return _by_id(conn, _LOCK_FREE_TICKETS if skip_locked else _LOCK_TICKETS, ticket_ids)


def lock_agents(conn: Connection, agent_ids: Iterable[int]) -> dict[int, Row]:
    """Rows of ``agents.AGENT_COLS`` by id, locked in id order until commit."""
    return _by_id(conn, _LOCK_AGENTS, agent_ids)


_UPDATES: dict[tuple, Any] = {}


def _pg_update(table: Table, columns: tuple[str, ...], prefix: str):
    """PostgreSQL ``UPDATE table … FROM unnest(…) AS prefix``, one array ``prefix_column`` each."""
    names = ("id", *columns)
    v = func.unnest(*[bindparam(f"{prefix}_{c}", type_=ARRAY(table.c[c].type)) for c in names]).table_valued(
        *names).render_derived(name=prefix)
    return update(table).where(table.c.id == v.c.id).values({table.c[c]: v.c[c] for c in columns}), v


def _pg_arrays(rows: Sequence[dict[str, Any]], columns: tuple[str, ...], prefix: str) -> dict[str, list]:
    rows = sorted(rows, key=lambda r: r["id"])
    return {f"{prefix}_{c}": [r[c] for r in rows] for c in ("id", *columns)}


def _update_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> None:
    """Per row (``id`` and ``columns``) set the columns: PostgreSQL ``UPDATE … FROM unnest(…)``,
    SQLite one statement run over the rows on the driver (``compiled.Statement.many``:
    SQLAlchemy's ``executemany`` costs about 10 µs a row). Rows in id order."""
    if not rows:
        return
    dialect = conn.dialect.name
    key = (dialect, table.name, columns)
    stmt = _UPDATES.get(key)
    if stmt is None:
        if dialect == "postgresql":
            stmt = _pg_update(table, columns, "v")[0]
        else:
            stmt = Statement(update(table).where(table.c.id == bindparam("v_id")).values(
                {table.c[c]: bindparam(f"v_{c}") for c in columns}))
        stmt = _UPDATES[key] = stmt
    if dialect == "postgresql":
        conn.execute(stmt, _pg_arrays(rows, columns, "v"))
    else:
        rows = sorted(rows, key=lambda r: r["id"])
        stmt.many(conn, [{f"v_{c}": r[c] for c in ("id", *columns)} for r in rows])


_LOAD_COLUMNS = (*(f"load_{c}" for c in CLASSES), "last_assigned_at")


def set_agent_loads(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Agents locked by ``lock_agents``: each one's new loads and ``last_assigned_at``."""
    _update_rows(conn, agents, _LOAD_COLUMNS, rows)


_ASSIGN_COLUMNS = ("assignee_id", "assigned_at", "updated_at")


def _assigned_rows(assigned: Mapping[int, int], now: int) -> list[dict[str, Any]]:
    return [{"id": t, "assignee_id": a, "assigned_at": now, "updated_at": now} for t, a in assigned.items()]


def assign_tickets(conn: Connection, assigned: Mapping[int, int], now: int) -> None:
    """Ticket id -> agent id, for tickets locked and found free (``lock_tickets``)."""
    _update_rows(conn, tickets, _ASSIGN_COLUMNS, _assigned_rows(assigned, now))


def _take_and_assign():
    loads = _pg_update(agents, _LOAD_COLUMNS, "a")[0].cte("taken")
    return _pg_update(tickets, _ASSIGN_COLUMNS, "t")[0].add_cte(loads)


_TAKE_AND_ASSIGN = _take_and_assign()


def take_and_assign(conn: Connection, loads: Sequence[dict[str, Any]], assigned: Mapping[int, int], now: int) -> None:
    """``set_agent_loads`` and ``assign_tickets``; one statement on PostgreSQL (every row is
    locked already, so the order the two parts run in does not matter)."""
    rows = _assigned_rows(assigned, now)
    if conn.dialect.name != "postgresql" or not loads or not rows:
        set_agent_loads(conn, loads)
        _update_rows(conn, tickets, _ASSIGN_COLUMNS, rows)
        return
    conn.execute(_TAKE_AND_ASSIGN, {**_pg_arrays(loads, _LOAD_COLUMNS, "a"), **_pg_arrays(rows, _ASSIGN_COLUMNS, "t")})


def set_languages(conn: Connection, languages: Mapping[int, str]) -> None:
    _update_rows(conn, tickets, ("language",), [{"id": t, "language": lang} for t, lang in languages.items()])


def _remember():
    # The CTE locks the rows in id order before the UPDATE touches them: it only updates
    # rows joined to a locked one (``ORDER BY … FOR UPDATE`` locks as rows leave the sort).
    locked = (select(customers.c.id).where(member(customers.c.id, "postgresql")).order_by(customers.c.id)
              .with_for_update().cte("locked"))
    stmt, v = _pg_update(customers, ("last_agent_id",), "c")
    return stmt.where(locked.c.id == v.c.id)


_REMEMBER = _remember()


def remember_agents(conn: Connection, last_agents: Mapping[int, int]) -> None:
    """Customer id -> the agent its next ticket prefers (sticky); rows locked in id order first
    (on PostgreSQL in the same statement)."""
    if not last_agents:
        return
    rows = [{"id": c, "last_agent_id": a} for c, a in last_agents.items()]
    if conn.dialect.name == "postgresql":
        conn.execute(_REMEMBER, {**id_params(conn, last_agents), **_pg_arrays(rows, ("last_agent_id",), "c")})
        return
    _LOCK_CUSTOMERS[conn.dialect.name].all(conn, id_params(conn, last_agents))
    _update_rows(conn, customers, ("last_agent_id",), rows)


def dequeue(conn: Connection, ticket_ids: Iterable[int]) -> None:
    params = id_params(conn, ticket_ids)
    if params["ids"] not in ([], "[]"):
        _DEQUEUE[conn.dialect.name].rowcount(conn, params)


def record_decisions(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``routing_decisions`` rows, each with every column of ``decisions.record``."""
    insert_rows(conn, routing_decisions, _capped(rows))


def _capped(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "elapsed_us": min(r["elapsed_us"], 2**31 - 1)} for r in rows]


_DEQUEUE_AND_RECORD: dict[tuple, Any] = {}


def dequeue_and_record(conn: Connection, ticket_ids: Iterable[int], rows: Sequence[dict[str, Any]]) -> None:
    """``dequeue`` and ``record_decisions``; one statement on PostgreSQL."""
    params = id_params(conn, ticket_ids)
    if conn.dialect.name != "postgresql" or not rows or not params["ids"]:
        dequeue(conn, ticket_ids)
        record_decisions(conn, rows)
        return
    rows = _capped(rows)
    columns = tuple(rows[0])
    stmt = _DEQUEUE_AND_RECORD.get(columns)
    if stmt is None:
        stmt = _DEQUEUE_AND_RECORD[columns] = _unnest(routing_decisions, columns, False).add_cte(
            _DEQUEUE["postgresql"].stmt.cte("leave"))
    conn.execute(stmt, {**params, **unnest_arrays(routing_decisions, columns, rows)})


_ENQUEUE: dict[str, Any] = {}


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Waiting entries (every column of ``_QUEUE_COLUMNS``); a ticket already waiting keeps its entry."""
    if not rows:
        return
    rows = [{c: r[c] for c in _QUEUE_COLUMNS} for r in rows]
    if conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(routing_queue).on_conflict_do_nothing(index_elements=["ticket_id"]), rows)
        return
    stmt = _ENQUEUE.get("postgresql")
    if stmt is None:
        types = {c: routing_queue.c[c].type for c in _QUEUE_COLUMNS}
        arrays = [bindparam(c, type_=ARRAY(postgresql.TEXT if c == "requirements" else types[c]))
                  for c in _QUEUE_COLUMNS]
        v = func.unnest(*arrays).table_valued(*_QUEUE_COLUMNS, with_ordinality="ord").render_derived()
        values = [func.cast(v.c[c], postgresql.JSONB).cast(types[c]) if c == "requirements" else v.c[c]
                  for c in _QUEUE_COLUMNS]
        stmt = _ENQUEUE["postgresql"] = postgresql.insert(routing_queue).from_select(
            list(_QUEUE_COLUMNS), select(*values).order_by(v.c.ord)).on_conflict_do_nothing(
            index_elements=["ticket_id"])
    conn.execute(stmt, {c: [json.dumps(r[c]) if c == "requirements" else r[c] for r in rows]
                        for c in _QUEUE_COLUMNS})


# --- closing, as agents finishing work do it ----------------------------------------------

_CLOSE_SET = {d: update(tickets).where(member(tickets.c.id, d)).values(
    updated_at=bindparam("v_now"), assigned_at=None, status=bindparam("v_status"),
    status_at=case((tickets.c.status == bindparam("v_status"), tickets.c.status_at), else_=bindparam("v_now")),
    closed_at=case((tickets.c.status.in_(CLOSED), tickets.c.closed_at), else_=bindparam("v_now")))
    for d in ("postgresql", "sqlite")}


def close_tickets(conn: Connection, ticket_ids: Iterable[int], status: str, now: int,
                  classes: Mapping[str, str]) -> list[tuple[int, int | None]]:
    """``tickets.close_ticket`` for many tickets in four statements: (ticket, agent freed or None)
    per ticket that exists, in id order."""
    held = lock_tickets(conn, ticket_ids)
    if not held:
        return []
    conn.execute(_CLOSE_SET[conn.dialect.name], {**id_params(conn, held), "v_now": now, "v_status": status})
    freed = {t: row.assignee_id for t, row in held.items() if row.assignee_id is not None
             and row.assigned_at is not None and row.status not in CLOSED}
    counts = Counter((row.assignee_id, class_of(classes, row.channel)) for t, row in held.items() if t in freed)
    locked = lock_agents(conn, {agent for agent, _ in counts})
    set_agent_loads(conn, [{"id": a, "last_assigned_at": row.last_assigned_at,
                            **{f"load_{c}": max(getattr(row, f"load_{c}") - counts.get((a, c), 0), 0)
                               for c in CLASSES}} for a, row in locked.items()])
    return [(t, freed.get(t)) for t in held]
