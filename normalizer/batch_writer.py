"""A whole XREADGROUP batch stored with a fixed handful of statements.

``store_jobs`` reads what the batch's messages need (stored messages by dedup key,
identities by value, tickets by conversation key) with one statement per table, runs each
message through the same ``ingest_message`` as the per-envelope path against ``Batched`` (the
rows read plus the batch's own new rows, not yet written), then writes each table's new
rows with one multi-row statement (``ticket_service.store.inbound_sets``). New ids are
``Pending`` until then: two messages of one new conversation in one batch find the first
one's ticket in the batch's view and land on it.

Ticket numbers: the tenant's counter is read and its row locked at the batch's first new
ticket, and written once with the last number given (per batch, not per message).

A message whose handling writes through the connection itself (a channel that merges
repeats, tags, a callback's call record: ``needs_store``) is stored with ``writer.Direct``
after the batch so far has been written; the rest of the batch is read again after it.

PostgreSQL, chat batches of 128 (``python -m ops.bench --scenarios baseline normalizer``):
about 8 statements a batch instead of about 6 a message; one normalizer stored 518 -> 1,810
messages/s (median of three runs each, old and new tree alternating, on a shared 2-core host).

SQLite, the same bench: the normalizer's CPU per chat message was cut by a batch of small
savings, no change to rows, events or threading: the transaction begun and committed on the
sqlite3 connection (``Database._sync_txn``), message log lines asked for once a batch, one
msgpack packer per thread, a known chat sender resolved with one lookup, thread keys found
without lists, the batch's reads unpacked as plain tuples, the key gate's and the reads' key
sets handled as sets, the batch's account looked up once. User-space instructions per message
in one process (callgrind over 1,280 messages through ``handle_batch``, the DB work inline,
deterministic to 0.5 %): 538k -> 450k (-16 %). ``cpu_us_per_msg_normalizer`` (eight runs each,
old and new tree alternating, the host shared and noisy): 116-170, median 134 -> 92-154,
median 109 (-19 %); stored per second, medians, 5,380 -> 6,290.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from connectors.inbound import Inbound
from normalizer.ingest import (
    Job,
    Outcome,
    Windows,
    ingest_message,
    mark_mail_loop,
    store_key,
)
from normalizer.writer import Direct
from ticket_service.store import inbound_sets as sets
from ticket_service.store import tickets as store
from ticket_service.store.customers import Customer, Identity
from ticket_service.store.tables import (
    attachments,
    customers,
    identities,
    messages,
    ticket_threads,
    tickets,
)


class Pending:
    """An id the batch's write gives (``value``); compared by identity until then."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None


def resolved(value: Any) -> Any:
    return value.value if isinstance(value, Pending) else value


@dataclass(slots=True, eq=False)
class TicketView:
    """A ticket as the batch sees it: read, or new in the batch (``id`` Pending), with the
    batch's changes (activity, reopening, Cc) applied."""

    tenant_id: int
    id: int | Pending
    number: int
    status: str
    customer_id: int | Pending
    priority: int
    closed_at: int | None
    updated_at: int
    auto: bool
    cc: list[str] | None
    rank: int  # newest first, as ``ticket_for_keys``: the id, or past every id for a new ticket
    thread_key: str = ""  # the key the last ``ticket_for_keys`` found it by


@dataclass(slots=True)
class SeenMessage:
    id: int | Pending
    ticket_id: int | Pending | None
    envelope_id: str


_NEW_RANK = 1 << 62


def needs_store(job: Job, inbound: Inbound) -> bool:
    """Whether the message writes through the connection itself (not plannable in a batch)."""
    call = inbound.headers.get("call")
    return (job.channel.on_duplicate is not None or bool(inbound.tags)
            or (isinstance(call, dict) and bool(call.get("callback_of")))
            or (bool(inbound.custom) and bool(job.account.settings.get("field_map"))))


class Batched:
    """``writer.Direct``'s methods over a batch: reads answered from the rows read up front
    and the batch's own changes, writes kept until ``flush``."""

    def __init__(self, conn: Connection, items: Iterable[tuple[Job, Inbound]]) -> None:
        self.conn = conn
        self.seen: dict[tuple[int, str, str], SeenMessage] = {}
        self.idents: dict[tuple[int, str, str, str], Customer] = {}
        self.threads: dict[tuple[int, int, str], TicketView] = {}
        self.tickets: dict[int | Pending, TicketView] = {}
        self.numbers: dict[int, int] = {}
        self.new_customers: list[tuple[Customer, dict]] = []
        self.new_identities: list[dict] = []
        self.new_tickets: list[tuple[TicketView, dict]] = []
        self.new_keys: dict[tuple[int, int, str], dict] = {}
        self.repoints: dict[tuple[int, int, str], int | Pending] = {}
        self.changes: dict[int, dict[str, Any]] = {}
        self.touched: dict[int, int] = {}  # ticket id -> latest activity
        self.messages: list[tuple[Pending, dict]] = []
        self.attachments: list[dict] = []
        self._read(list(items))

    def _read(self, items: list[tuple[Job, Inbound]]) -> None:
        seen, values, keys = set(), set(), set()
        for job, inbound in items:
            tenant, account = job.account.tenant_id, job.account.id
            seen.add((tenant, job.env.channel, store_key(inbound.dedup_key)))
            values.add((tenant, inbound.sender.value))
            if inbound.also:
                values.update((tenant, i.value[:320]) for i in inbound.also if i.value)
            thread_keys, session = job.conversation_keys(inbound)
            for key in thread_keys:
                keys.add((tenant, account, key))
            if session:
                keys.add((tenant, account, session))
        # Rows as tuples in their select's column order (``inbound_sets``).
        for tenant_id, channel, dedup_key, message_id, ticket_id, envelope_id in sets.seen_messages(self.conn, seen):
            self.seen[(tenant_id, channel, dedup_key)] = SeenMessage(message_id, ticket_id, envelope_id)
        by_customer: dict[int, Customer] = {}
        for tenant_id, kind, scope, value, customer_id, vip_tier in sets.identities_by_value(self.conn, values):
            customer = by_customer.get(customer_id)
            if customer is None:
                customer = by_customer[customer_id] = Customer(customer_id, vip_tier)
            self.idents[(tenant_id, kind, scope, value)] = customer
        tickets = self.tickets
        for (ticket_id, number, status, customer_id, priority, closed_at, updated_at, auto, cc, tenant_id, account_id,
             thread_key) in sets.tickets_by_thread_key(self.conn, keys):
            view = tickets.get(ticket_id)
            if view is None:
                view = tickets[ticket_id] = TicketView(tenant_id, ticket_id, number, status, customer_id, priority,
                                                       closed_at, updated_at, auto, cc, ticket_id)
            self.threads[(tenant_id, account_id, thread_key)] = view

    def _view(self, tenant_id: int, row) -> TicketView:
        view = self.tickets.get(row.id)
        if view is None:
            view = self.tickets[row.id] = TicketView(
                tenant_id, row.id, row.number, row.status, row.customer_id, row.priority, row.closed_at,
                row.updated_at, row.auto, row.cc, row.id)
        return view

    # --- reads ------------------------------------------------------------------------

    def find_message(self, tenant_id: int, channel: str, dedup_key: str) -> SeenMessage | None:
        return self.seen.get((tenant_id, channel, dedup_key))

    def resolve_customer(self, tenant_id: int, primary: Identity, also: list[Identity], name: str,
                         now: int) -> Customer:
        """As ``customers.resolve``: the first known identity's customer, else a new one;
        identities not known yet are added to it."""
        if not also:
            # A chat message: one identity, known after its sender's first message.
            known_owner = self.idents.get((tenant_id, *primary))
            if known_owner is not None:
                return known_owner
        wanted = list(dict.fromkeys([primary, *also]))
        known = {i: c for i in wanted if (c := self.idents.get((tenant_id, *i))) is not None}
        owner = next((known[i] for i in wanted if i in known), None)
        if owner is None:
            owner = Customer(Pending(), 0)  # type: ignore[arg-type]
            self.new_customers.append((owner, {"tenant_id": tenant_id, "name": name[:200], "created_at": now}))
        for kind, scope, value in wanted:
            if (kind, scope, value) not in known:
                self.idents[(tenant_id, kind, scope, value)] = owner
                self.new_identities.append({"tenant_id": tenant_id, "customer_id": owner.id, "kind": kind,
                                            "scope": scope, "value": value, "created_at": now})
        return owner

    def ticket_for_keys(self, tenant_id: int, account_id: int, keys: Iterable[str]) -> TicketView | None:
        """The newest ticket any of ``keys`` leads to (the first key's, of equal ones)."""
        best, best_key = None, ""
        for key in keys:
            view = self.threads.get((tenant_id, account_id, key))
            if view is not None and (best is None or view.rank > best.rank):
                best, best_key = view, key
        if best is not None:
            best.thread_key = best_key
        return best

    def ticket_by_id(self, tenant_id: int, ticket_id: int) -> TicketView | None:
        view = self.tickets.get(ticket_id)
        if view is not None:
            return view if view.tenant_id == tenant_id else None
        row = store.ticket_by_id(self.conn, tenant_id, ticket_id)
        return None if row is None else self._view(tenant_id, row)

    def ticket_by_number(self, tenant_id: int, number: int) -> TicketView | None:
        for view, _ in self.new_tickets:
            if view.tenant_id == tenant_id and view.number == number:
                return view
        row = store.ticket_by_number(self.conn, tenant_id, number)
        return None if row is None else self._view(tenant_id, row)

    def ticket_has_message(self, tenant_id: int, ticket_id: int | Pending, dedup_keys: Iterable[str]) -> bool:
        dedup_keys = set(dedup_keys)
        if any(row["tenant_id"] == tenant_id and row["ticket_id"] == ticket_id and row["dedup_key"] in dedup_keys
               for _, row in self.messages):
            return True
        return not isinstance(ticket_id, Pending) and store.ticket_has_message(self.conn, tenant_id, ticket_id,
                                                                             dedup_keys)

    # --- writes, kept until flush -----------------------------------------------------

    def create_ticket(self, **values: Any) -> tuple[Pending, int]:
        tenant, now = values["tenant_id"], values.pop("now")
        if tenant not in self.numbers:
            self.numbers[tenant] = sets.lock_ticket_number(self.conn, tenant)
        number = self.numbers[tenant] = self.numbers[tenant] + 1
        values.setdefault("tags", [])
        view = TicketView(tenant, Pending(), number, values["status"], values["customer_id"],
                          values.get("priority", 0), None, now, bool(values.get("auto", False)), values.get("cc"),
                          _NEW_RANK + len(self.new_tickets))
        self.tickets[view.id] = view
        self.new_tickets.append((view, {"number": number, "created_at": now, **values}))
        return view.id, number  # type: ignore[return-value]

    def bind_thread_keys(self, tenant_id: int, account_id: int, ticket_id: int | Pending, keys: Iterable[str],
                         now: int, repoint: bool = False) -> None:
        if not keys:
            return  # a message without conversation keys (chat: its session is bound apart)
        view = self.tickets[ticket_id]
        for key in dict.fromkeys(k for k in keys if k):
            where = (tenant_id, account_id, key)
            if where not in self.threads:
                self.new_keys[where] = {"tenant_id": tenant_id, "account_id": account_id, "thread_key": key,
                                        "ticket_id": ticket_id, "created_at": now}
            elif not repoint:
                continue
            elif where in self.new_keys:
                self.new_keys[where]["ticket_id"] = ticket_id
            else:
                self.repoints[where] = ticket_id
            self.threads[where] = view

    def touch_ticket(self, ticket_id: int | Pending, now: int, reopen: bool = False,
                     cc: list[str] | None = None) -> None:
        view = self.tickets[ticket_id]
        view.updated_at = now
        change: dict[str, Any] = {}
        if reopen:
            view.status, view.closed_at = "open", None
            change.update(status="open", closed_at=None)
        if cc is not None:
            view.cc = change["cc"] = cc
        if isinstance(ticket_id, Pending):
            return  # written as it ends up
        if change or ticket_id in self.changes:
            self.changes.setdefault(ticket_id, {}).update(change, updated_at=now)
        else:
            self.touched[ticket_id] = now

    def clear_auto(self, ticket_id: int | Pending) -> None:
        self.tickets[ticket_id].auto = False
        if not isinstance(ticket_id, Pending):
            self.changes.setdefault(ticket_id, {})["auto"] = False

    def add_message(self, **values: Any) -> Pending:
        values.setdefault("headers", {})
        message_id = Pending()
        self.seen[(values["tenant_id"], values["channel"], values["dedup_key"])] = SeenMessage(
            message_id, values["ticket_id"], values["envelope_id"])
        self.messages.append((message_id, values))
        return message_id

    def add_attachments(self, rows: list[dict[str, Any]]) -> None:
        self.attachments += rows

    # --- the write --------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the batch made, one statement per table (rows in key order)."""
        conn = self.conn
        ids = sets.insert_returning_ids(conn, customers, [row for _, row in self.new_customers])
        for (customer, _), new_id in zip(self.new_customers, ids, strict=True):
            customer.id.value = new_id  # type: ignore[attr-defined]
        sets.insert_rows(conn, identities, sorted(
            _resolve(self.new_identities, "customer_id"),
            key=lambda r: (r["tenant_id"], r["kind"], r["scope"], r["value"])))
        for tenant_id, last in sorted(self.numbers.items()):
            sets.set_ticket_number(conn, tenant_id, last)
        rows = [_ticket_row(view, row) for view, row in self.new_tickets]
        for (view, _), new_id in zip(self.new_tickets, sets.insert_runs(conn, tickets, rows), strict=True):
            view.id.value = new_id  # type: ignore[union-attr]
        sets.repoint_thread_keys(conn, [(*where, resolved(t)) for where, t in self.repoints.items()])
        sets.insert_rows(conn, ticket_threads, _resolve([self.new_keys[k] for k in sorted(self.new_keys)], "ticket_id"))
        rows = _resolve([row for _, row in self.messages], "ticket_id", "customer_id")
        for (message_id, _), new_id in zip(self.messages, sets.insert_runs(conn, messages, rows), strict=True):
            message_id.value = new_id
        sets.insert_rows(conn, attachments, _resolve(self.attachments, "message_id"))
        # Existing tickets last: an UPDATE holds the ticket's row until the commit, and another
        # replica's batch with a message on that ticket waits for it (on PostgreSQL; SQLite has
        # one writer). Written first, they were held through every insert above as well.
        for ticket_id in self.changes:
            self.touched.pop(ticket_id, None)
        sets.update_tickets(conn, self.changes)
        if self.touched:
            sets.touch_tickets(conn, self.touched, max(self.touched.values()))


def _resolve(rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    """The rows with the ids the write gave put in for ``Pending`` in ``columns`` (the only
    ones that can hold one), in place: the rows are the batch's own and written once."""
    for row in rows:
        for column in columns:
            if type(value := row.get(column)) is Pending:
                row[column] = value.value
    return rows


def _ticket_row(view: TicketView, row: dict[str, Any]) -> dict[str, Any]:
    """A new ticket as the batch left it (later messages' activity, Cc, a person's reply)."""
    row = _resolve([dict(row)], "customer_id", "parent_id")[0]
    row["updated_at"], row["status"] = view.updated_at, view.status
    if view.cc is not None:
        row["cc"] = view.cc
    if "auto" in row:
        row["auto"] = view.auto
    return row


def store_jobs(conn: Connection, jobs: list[Job], windows: Windows) -> list[list[Outcome]]:
    """A whole batch in the caller's one transaction, written set-based (``Batched``)."""
    sets.plan_for_values(conn)
    items = [(job, inbound, rows) for job in jobs for inbound, rows in job.messages]
    direct = []
    for job, inbound, _ in items:
        mark_mail_loop(inbound, job.account.tenant_id, windows)
        direct.append(needs_store(job, inbound))
    w = Batched(conn, [(job, inbound) for (job, inbound, _), d in zip(items, direct, strict=True) if not d])
    outcomes = []
    for n, (job, inbound, rows) in enumerate(items):
        if not direct[n]:
            outcomes.append(ingest_message(w, job, inbound, rows, windows))
            continue
        w.flush()
        outcomes.append(ingest_message(Direct(conn), job, inbound, rows, windows))
        w = Batched(conn, [(j, i) for (j, i, _), d in zip(items[n + 1:], direct[n + 1:], strict=True) if not d])
    w.flush()
    for outcome in outcomes:
        outcome.ticket_id = resolved(outcome.ticket_id)
        outcome.message_id = resolved(outcome.message_id)
        outcome.customer_id = resolved(outcome.customer_id)
    counts = itertools.accumulate(len(job.messages) for job in jobs)
    starts = [0, *counts]
    return [outcomes[starts[i]:starts[i + 1]] for i in range(len(jobs))]
