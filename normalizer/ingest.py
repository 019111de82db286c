"""Inbound messages into the store: dedup, customer, thread, write.

Synchronous code run by ``Database.run_write``: the normalizer stores a whole XREADGROUP
batch in one transaction (``batch_writer.store_jobs``) and, when that fails, each envelope
in its own (``ingest``), so one bad message does not fail its batch. ``ingest_message`` is
the one place the rules are applied, through either writer (``writer.Direct``, statement by
statement, or ``batch_writer.Batched``, set-based over a batch).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from connectors.inbound import Inbound
from core.accounts import Account
from core.channel import Channel, OnDuplicate
from core.envelope import Envelope
from core.ids import now_ms
from normalizer.fields import apply_field_map
from normalizer.threading import Context, ThreadMatch, cc_addresses, find_thread, merged_cc
from normalizer.writer import Direct
from ticket_service.store import customers
from ticket_service.store import tickets as store
from ticket_service.store.account_settings import auto_mail
from ticket_service.store.callbacks import close_callback
from ticket_service.store.db import Database, is_conflict
from ticket_service.store.reply_tokens import is_signed

Writer = Direct  # or ``batch_writer.Batched``: the same methods over a whole batch

log = structlog.get_logger()
_ATTEMPTS = 5
_KEY_MAX = 255


def store_key(key: str) -> str:
    """Keys longer than the column are kept as their hash (Message-IDs may be 998 bytes)."""
    return key if len(key) <= _KEY_MAX else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Kind(StrEnum):
    """What happened to an inbound message; logged as ``message.<kind>``."""

    CREATED = "created"  # opened a ticket
    APPENDED = "appended"  # joined an open ticket
    REOPENED = "reopened"  # reopened a ticket closed within the reopen window
    FOLLOWUP = "followup"  # opened a ticket linked to one closed before the window
    AUTO = "auto"  # machine-made mail that starts and revives nothing (RFC 3834 §2)
    DROPPED = "dropped"  # bulk mail the mailbox wants none of: not stored
    DUPLICATE = "duplicate"  # stored before from another envelope
    REDELIVERED = "redelivered"  # stored before from this envelope (a redelivery)
    UPDATED = "updated"  # a voice call's later event merged into its message


@dataclass(slots=True)
class Outcome:
    """What happened to one message (``Kind``) and where it lives.

    ``auto`` is set when the ticket was opened by bulk mail (its reason): not to be routed.
    """

    kind: Kind
    ticket_id: int | None
    message_id: int
    number: int | None = None
    customer_id: int | None = None
    priority: int = 0
    rule: str = ""
    auto: str = ""
    reopened_from: str = ""  # the status a reopened ticket had (solved, closed)


@dataclass(slots=True)
class Windows:
    """The tenant-independent time rules threading works with."""

    reopen_ms: int
    session_ms: int = 24 * 3600 * 1000
    reply_secret: str = ""  # signs reply tokens; empty: tokens are neither issued nor honoured


@dataclass(slots=True)
class Job:
    """One envelope, parsed: the messages it holds with their attachment rows, stored together."""

    account: Account
    env: Envelope
    messages: list[tuple[Inbound, list[dict]]]
    channel: Channel
    _keys: dict[int, tuple[list[str], str]] = field(default_factory=dict, repr=False)

    def conversation_keys(self, inbound: Inbound) -> tuple[list[str], str]:
        """``conversation_keys`` of one of its messages, worked out once (the batch's read,
        the key gate and threading each ask)."""
        found = self._keys.get(id(inbound))
        if found is None:
            found = self._keys[id(inbound)] = conversation_keys(inbound)
        return found


def store_job(conn: Connection, job: Job, windows: Windows) -> list[Outcome]:
    """One envelope's messages, a statement at a time (``writer.Direct``)."""
    w = Direct(conn)
    return [ingest_message(w, job, inbound, rows, windows) for inbound, rows in job.messages]


async def ingest(db: Database, job: Job, windows: Windows) -> list[Outcome]:
    """Store one envelope's messages exactly once, in their own transaction.

    A race with another worker rolls back and is retried: a unique key (the same identity or
    conversation key first seen by both; the retry finds the winner's rows), or a deadlock
    PostgreSQL broke by aborting this transaction. Left failed, such an entry would wait for
    the visibility timeout before anyone tried it again.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await db.run_write(store_job, job, windows)
        except DBAPIError as exc:
            if attempt == _ATTEMPTS or not is_conflict(exc):
                raise
            log.info("ingest.race_retry", attempt=attempt, error=type(exc.orig).__name__)
    raise AssertionError("unreachable")


def ingest_message(w: Writer, job: Job, inbound: Inbound, attachments: list[dict], windows: Windows) -> Outcome:
    """Dedup, resolve, thread and write one message through ``w`` (``Direct`` or ``Batched``)."""
    account, env, tenant = job.account, job.env, job.account.tenant_id
    dedup_key = store_key(inbound.dedup_key)
    seen = w.find_message(tenant, env.channel, dedup_key)
    if seen and job.channel.on_duplicate is not None:
        return _merge(w, job, inbound, seen, windows, job.channel.on_duplicate)
    if seen:
        kind = Kind.REDELIVERED if seen.envelope_id == env.id else Kind.DUPLICATE
        return Outcome(kind, seen.ticket_id, seen.id)
    mark_mail_loop(inbound, tenant, windows)
    if inbound.auto_kind == "bulk" and auto_mail(account.settings) == "drop":
        return Outcome(Kind.DROPPED, None, 0, rule=inbound.auto_reason)  # the mailbox wants none of it
    now = now_ms()
    sender = inbound.sender
    outcome, customer, match = _thread(w, job, inbound, now, windows)
    outcome.message_id = w.add_message(
        tenant_id=tenant, ticket_id=outcome.ticket_id, channel=env.channel, account_id=account.id,
        dedup_key=dedup_key, envelope_id=env.id, direction="in", customer_id=customer.id,
        sender=sender.value[:320], sender_name=sender.name[:200], subject=inbound.subject[:1000],
        text=inbound.text, html=inbound.html, headers=inbound.headers, auto_reason=inbound.auto_reason[:64],
        created_at=env.received_at, sent_at=inbound.sent_at, thread_rule=_thread_rule(match, outcome),
        thread_trail=match.trail,
    )
    if attachments:
        w.add_attachments([dict(a, tenant_id=tenant, message_id=outcome.message_id) for a in attachments])
    _close_task(w, tenant, inbound.headers, now)
    if inbound.tags and outcome.ticket_id is not None and outcome.kind != Kind.AUTO:
        store.tag_ticket(w.conn, outcome.ticket_id, inbound.tags, customer.vip_tier)
    if inbound.custom and outcome.ticket_id is not None and outcome.kind != Kind.AUTO and account.settings.get("field_map"):
        apply_field_map(w.conn, tenant, outcome.ticket_id, account.settings["field_map"], inbound.custom)
    outcome.customer_id = customer.id
    outcome.rule = match.rule
    return outcome


def _thread(w: Writer, job: Job, inbound: Inbound, now: int, windows: Windows):
    """Resolve the sender, find the conversation, place the message: (outcome, customer, match)."""
    account, env = job.account, job.env
    tenant, sender = account.tenant_id, inbound.sender
    customer = w.resolve_customer(
        tenant, (sender.kind, sender.scope, sender.value),
        [(i.kind, i.scope, i.value[:320]) for i in inbound.also if i.value] if inbound.also else [], sender.name, now,
    )
    keys, session = job.conversation_keys(inbound)
    match = find_thread(
        w, Context(tenant, account.id, customer.id, inbound, keys, session, windows.session_ms, now,
                      windows.reply_secret, job.channel.reply_token_places)
    )
    outcome = _place(w, account, env, inbound, customer, match, keys, now, windows.reopen_ms)
    match.note("placed", outcome.ticket_id is not None, _placement(match, outcome, inbound))
    stays = match.rule == "session" and outcome.ticket_id == match.ticket.id
    if session and outcome.ticket_id is not None and outcome.kind != Kind.AUTO and not stays:
        # The session follows the conversation to whichever ticket it now lives on.
        w.bind_thread_keys(tenant, account.id, outcome.ticket_id, [session], now, repoint=True)
    return outcome, customer, match


def conversation_keys(inbound: Inbound) -> tuple[list[str], str]:
    """The message's conversation keys (references, root, own id) and its chat session key, as stored."""
    keys = [store_key(k) for k in dict.fromkeys([*inbound.thread_refs, inbound.thread_root, inbound.own_key]) if k]
    return keys, store_key(inbound.session_key) if inbound.session_key else ""


def _close_task(w: Writer, tenant_id: int, headers: dict, now: int) -> None:
    """A message that reports on a callback task (a call naming ``callback_of``) closes it."""
    call = headers.get("call")
    if isinstance(call, dict) and call.get("callback_of"):
        close_callback(w.conn, tenant_id, call, now)


def _merge(w: Writer, job: Job, inbound: Inbound, seen, windows: Windows, hook: OnDuplicate) -> Outcome:
    """A channel that merges repeats (voice: later events of one call, any order, any retry)
    updates the stored message with what its hook makes of the repeat."""
    account, env, conn = job.account, job.env, w.conn
    headers = store.message_headers(conn, seen.id)
    change = hook(headers, inbound)
    if change is None:
        return Outcome(Kind.REDELIVERED if seen.envelope_id == env.id else Kind.DUPLICATE, seen.ticket_id, seen.id)
    values = dict(headers=change.headers, text=change.text, subject=change.subject[:1000])
    tags = list(change.tags)
    _close_task(w, account.tenant_id, change.headers, now_ms())
    if seen.ticket_id is None and not inbound.auto_reason:
        # The first events did not name the sender (a call's recording callback): place it now.
        inbound.subject = values["subject"]
        outcome, customer, match = _thread(w, job, inbound, now_ms(), windows)
        store.update_message(conn, seen.id, ticket_id=outcome.ticket_id, customer_id=customer.id,
                             sender=inbound.sender.value[:320], sender_name=inbound.sender.name[:200],
                             auto_reason="", thread_rule=_thread_rule(match, outcome), thread_trail=match.trail,
                             **values)
        if tags:
            store.tag_ticket(conn, outcome.ticket_id, tags, customer.vip_tier)
        outcome.message_id, outcome.customer_id, outcome.rule = seen.id, customer.id, match.rule
        return outcome
    store.update_message(conn, seen.id, **values)
    if tags and seen.ticket_id is not None:
        row = store.ticket_by_id(conn, account.tenant_id, seen.ticket_id)
        tier = customers.vip_tier(conn, row.customer_id if row else None)
        store.tag_ticket(conn, seen.ticket_id, tags, tier)
    return Outcome(Kind.UPDATED, seen.ticket_id, seen.id)


def _place(w: Writer, account: Account, env: Envelope, inbound: Inbound, customer, match: ThreadMatch,
           keys: list[str], now: int, reopen_window_ms: int) -> Outcome:
    """Pick or make the ticket and bind the conversation keys to it."""
    tenant, ticket = account.tenant_id, match.ticket
    if inbound.auto_reason and (ticket is not None or not _opens_auto_ticket(account, inbound)):
        # RFC 3834 §2: automatic responses must not start or revive a conversation.
        return Outcome(Kind.AUTO, ticket.id if ticket else None, 0, ticket.number if ticket else None)
    if inbound.auto_reason:
        return _auto_ticket(w, account, env, inbound, customer, keys, now)
    if ticket is not None and ticket.auto:
        w.clear_auto(ticket.id)  # a person wrote in the conversation: it is work to route now
    if ticket is not None and ticket.status not in store.CLOSED:
        w.touch_ticket(ticket.id, now, cc=merged_cc(ticket.cc, inbound))
        w.bind_thread_keys(tenant, account.id, ticket.id, keys, now)
        return Outcome(Kind.APPENDED, ticket.id, 0, ticket.number, priority=ticket.priority)
    if ticket is not None and now - (ticket.closed_at or 0) <= reopen_window_ms:
        w.touch_ticket(ticket.id, now, reopen=True, cc=merged_cc(ticket.cc, inbound))
        w.bind_thread_keys(tenant, account.id, ticket.id, keys, now)
        return Outcome(Kind.REOPENED, ticket.id, 0, ticket.number, priority=ticket.priority,
                       reopened_from=ticket.status)
    ticket_id, number = w.create_ticket(
        tenant_id=tenant, subject=(inbound.subject or "(no subject)")[:1000], status="new",
        channel=env.channel, account_id=account.id, priority=customer.vip_tier, customer_id=customer.id,
        parent_id=ticket.id if ticket is not None else None, now=now, **_cc(inbound),
    )
    # A follow-up after the reopen window takes the conversation over from the old ticket.
    w.bind_thread_keys(tenant, account.id, ticket_id, keys, now, repoint=ticket is not None)
    kind = Kind.FOLLOWUP if ticket is not None else Kind.CREATED
    return Outcome(kind, ticket_id, 0, number, priority=customer.vip_tier)


def _cc(inbound: Inbound) -> dict:
    """A new ticket's Cc column: left NULL without addresses (chat), so lookups parse nothing."""
    cc = cc_addresses(inbound)
    return {"cc": cc} if cc else {}


def mark_mail_loop(inbound: Inbound, tenant_id: int, windows: Windows) -> None:
    """Our own outbound mail that came back (its Message-ID carries our signature): a mail loop."""
    if windows.reply_secret and not inbound.auto_reason and is_signed(windows.reply_secret, tenant_id,
                                                                       inbound.own_key):
        inbound.auto_reason = "own-message-id"
        inbound.auto_kind = "reply"


def _thread_rule(match: ThreadMatch, outcome: Outcome) -> str:
    """What the message stores as its threading rule: the rule that hit, else how it was placed."""
    if match.rule:
        return match.rule
    return "new_ticket" if outcome.ticket_id is not None else "none"


def _placement(match: ThreadMatch, outcome: Outcome, inbound: Inbound) -> str:
    """The trail's last word: where the message went once a rule hit or none did."""
    number, kind = outcome.number, outcome.kind
    if kind == "auto":
        where = f"attached to ticket {number} without reopening it" if number is not None else "on no ticket"
        return f"{where}: sent by a program ({inbound.auto_reason})"
    if kind == "created" and outcome.auto:
        return f"new ticket {number}, marked auto ({outcome.auto}): not routed"
    if kind == "followup":
        return f"new ticket {number}: ticket {match.ticket.number} was closed past the reopen window"
    if kind == "reopened":
        return f"reopened ticket {number}: closed within the reopen window"
    return f"appended to ticket {number}" if kind == "appended" else f"new ticket {number}"


def _opens_auto_ticket(account: Account, inbound: Inbound) -> bool:
    return inbound.auto_kind == "bulk" and auto_mail(account.settings) == "ticket"


def _auto_ticket(w: Writer, account: Account, env: Envelope, inbound: Inbound, customer, keys: list[str],
                 now: int) -> Outcome:
    """Bulk or machine-made mail with no conversation to join: a ticket marked auto, not routed."""
    reason = inbound.auto_reason[:64]
    ticket_id, number = w.create_ticket(
        tenant_id=account.tenant_id, subject=(inbound.subject or "(no subject)")[:1000], status="new",
        channel=env.channel, account_id=account.id, priority=customer.vip_tier, customer_id=customer.id,
        auto=True, auto_reason=reason, now=now,
    )
    # The next notification of the same thread (an incident's updates) joins this ticket.
    w.bind_thread_keys(account.tenant_id, account.id, ticket_id, keys, now)
    return Outcome(Kind.CREATED, ticket_id, 0, number, priority=customer.vip_tier, auto=reason)
