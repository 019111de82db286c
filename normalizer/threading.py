"""Threading rules: which existing ticket, if any, a message belongs to.

Rules run in order; each says why it hit or missed, so a decision can be explained. The
normalizer stores the rule and the trail with the message (``messages.thread_rule`` and
``thread_trail``); ``GET /api/v1/tickets/{id}`` and ``switchboard ticket explain`` show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.inbound import Inbound
from core.channel import no_token_places
from ticket_service.store import reply_tokens

Row = Any  # a ticket as the rules read it: a store row, or a batch's view of one


class Lookup(Protocol):
    """What the rules read: the store itself (``writer.Direct``) or a batch's view of it
    (``batch_writer.Batched``), which also sees the batch's own tickets not yet written."""

    def ticket_for_keys(self, tenant_id: int, account_id: int, keys: Iterable[str]) -> Row | None: ...

    def ticket_by_id(self, tenant_id: int, ticket_id: int) -> Row | None: ...

    def ticket_by_number(self, tenant_id: int, number: int) -> Row | None: ...

    def ticket_has_message(self, tenant_id: int, ticket_id: int, dedup_keys: Iterable[str]) -> bool: ...


@dataclass(slots=True)
class Context:
    tenant_id: int
    account_id: int
    customer_id: int
    inbound: Inbound
    keys: list[str]  # the message's conversation keys, already normalized
    session_key: str = ""  # chat channels: the sender's session key, already normalized
    session_window_ms: int = 0
    now: int = 0
    reply_secret: str = ""  # signs reply tokens; empty: tokens are neither issued nor honoured
    token_places: Callable[[Inbound], list[str]] = no_token_places  # the channel's: where a token may be


TRAIL_MAX = 8  # entries: one per rule tried, and where the message was placed
WHY_MAX = 200  # characters of one entry's reason
CC_MAX = 50  # addresses a ticket keeps from its messages' Cc; later ones are not kept


@dataclass(slots=True)
class ThreadMatch:
    """The ticket a rule found, the rule's name, and each rule tried: ``[rule, hit, why]``.

    Entries are stored as lists, not objects: a third of the bytes and of the encoding time
    on every message; the API names the fields.
    """

    ticket: Row | None = None
    rule: str = ""
    trail: list[list] = field(default_factory=list)

    def note(self, rule: str, hit: bool, why: str) -> None:
        """Add an entry to the trail, bounded in count and length."""
        if len(self.trail) < TRAIL_MAX:
            self.trail.append([rule, hit, why[:WHY_MAX]])


def cc_addresses(inbound: Inbound) -> list[str]:
    """The message's Cc addresses other than the sender's (parse lower-cases them), bounded."""
    value = inbound.headers.get("cc")
    if not value or not isinstance(value, list):
        return []
    found = [a for a in dict.fromkeys(value) if isinstance(a, str) and "@" in a and a != inbound.sender.value]
    return [a[:320] for a in found[:CC_MAX]]


def merged_cc(known: list[str] | None, inbound: Inbound) -> list[str] | None:
    """A ticket's Cc list with this message's new addresses; None when there is nothing to add.

    A message without a Cc (every chat message) returns at once: no list is built for it
    (0.55 -> 0.24 us a WeChat message, timeit, Python 3.11).
    """
    if not inbound.headers.get("cc"):
        return None
    known = known or []
    new = [a for a in cc_addresses(inbound) if a not in known]
    if not new or len(known) >= CC_MAX:
        return None
    return [*known, *new][:CC_MAX]


Rule = Callable[[Lookup, Context], tuple[Row | None, str]]


def by_session(look: Lookup, ctx: Context) -> tuple[Row | None, str]:
    """Chat: the ticket this sender's session last landed on, if active within the window."""
    if not ctx.session_key:
        return None, "not a chat message"
    ticket = look.ticket_for_keys(ctx.tenant_id, ctx.account_id, [ctx.session_key])
    if ticket is None:
        return None, "no session"
    idle_s = (ctx.now - ticket.updated_at) // 1000
    if ctx.now - ticket.updated_at > ctx.session_window_ms:
        return None, f"session of ticket {ticket.number} idle {idle_s}s, past the window"
    return ticket, f"session on ticket {ticket.number}, idle {idle_s}s"


_KEY_SHOWN = 120  # characters of a conversation key quoted in the trail


def by_reply_token(look: Lookup, ctx: Context) -> tuple[Row | None, str]:
    """Our signed token in In-Reply-To/References, the To/Cc plus-address or the body marker."""
    if not ctx.reply_secret:
        return None, "reply tokens off"
    places = ctx.token_places(ctx.inbound)
    for ticket_id in reply_tokens.verified_ticket_ids(ctx.reply_secret, ctx.tenant_id, places):
        ticket = look.ticket_by_id(ctx.tenant_id, ticket_id)
        if ticket is not None:
            return ticket, f"signed reply token of ticket {ticket.number}"
    if any(reply_tokens.TOKEN.search(p.lower()) for p in places):
        return None, "token forged, stale or of a deleted ticket: ignored"
    return None, "no reply token"


def by_reference(look: Lookup, ctx: Context) -> tuple[Row | None, str]:
    """A key of this message (In-Reply-To, References, its own id) is held by a ticket.

    Someone other than the ticket's customer joins it only by answering one of its stored
    messages: a shared root, such as a newsletter everyone replies to, is not enough.
    """
    ticket = look.ticket_for_keys(ctx.tenant_id, ctx.account_id, ctx.keys)
    if ticket is None:
        return None, "no known key"
    if ticket.customer_id != ctx.customer_id and not look.ticket_has_message(
        ctx.tenant_id, ticket.id, ctx.keys
    ):
        return None, f"ticket {ticket.number} holds only a shared root and belongs to another customer"
    return ticket, f"{ticket.thread_key[:_KEY_SHOWN]} held by ticket {ticket.number}"


def by_ticket_number(look: Lookup, ctx: Context) -> tuple[Row | None, str]:
    """A ticket number quoted (subject, form), only when the sender is that ticket's customer
    or was on the Cc of one of its messages: a number alone is guessable."""
    number = ctx.inbound.ticket_number
    if number is None:
        return None, "no ticket number"
    ticket = look.ticket_by_number(ctx.tenant_id, number)
    if ticket is None:
        return None, f"no ticket {number}"
    if ticket.customer_id == ctx.customer_id:
        return ticket, f"ticket {number} of this customer"
    sender = ctx.inbound.sender
    if sender.kind == "email" and sender.value in (ticket.cc or ()):
        return ticket, f"sender on the Cc of ticket {number}"
    return None, f"sender is neither the customer of ticket {number} nor on its Cc"


RULES: tuple[tuple[str, Rule], ...] = (
    ("session", by_session),
    ("reply_token", by_reply_token),
    ("reference", by_reference),
    ("ticket_number", by_ticket_number),
)


def find_thread(look: Lookup, ctx: Context) -> ThreadMatch:
    """The first rule that finds a ticket wins; the trail holds every rule tried."""
    match = ThreadMatch()
    for name, rule in RULES:
        ticket, why = rule(look, ctx)
        match.note(name, ticket is not None, why)
        if ticket is not None:
            match.ticket, match.rule = ticket, name
            break
    return match
