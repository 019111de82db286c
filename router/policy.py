"""Routing policy: rules, the requirements they set, escalation and the queue's order.

Pure functions: nothing here touches the database or the clock; the worker passes ``now``
in. A rule's conditions are a table of matchers (``MATCHERS``), each saying why it missed,
so a decision can be explained afterwards. Ranking agents is ``router.pool``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from router.language import detect_language
from ticket_service.eligibility import Requirements, widened
from ticket_service.store.agents import CLASSES

# Requirements and their widening live in ticket_service.eligibility: the console's queue tab
# goes by them too.
__all__ = ["CLASSES", "Requirements", "detect_language", "widened"]
ONLINE = "online"
STATUSES = ("online", "away", "offline")
ESCALATED_TAG = "escalated"



@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    channel: str
    account_id: int
    customer_tier: int = 0
    priority: int = 0
    tags: Sequence[str] = ()
    language: str = ""
    text: str = ""  # subject and body of the first message, for keyword rules
    previous_agent: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a tenant's ordered rule table; empty match fields match anything."""

    id: int
    name: str
    match: Mapping[str, Any] = field(default_factory=dict)
    required: Mapping[str, int] = field(default_factory=dict)
    preferred: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    min_tier: int = 0
    escalate_after_s: int | None = None
    widen: Mapping[str, Any] = field(default_factory=dict)  # {"required": {...}, "min_tier": n}


# Fields a rule and its requirements share: the rule's policy (``rule_schema.POLICY_FIELDS``).
_POLICY = frozenset(f.name for f in fields(Rule)) & frozenset(f.name for f in fields(Requirements))


# --- rules ----------------------------------------------------------------------------

# A decision's trace is stored with it: what it quotes from rules is bounded, so a rule's
# size (up to rule_schema.MAX_RULE_BYTES) is not copied into every decision.
TRACE_RULES = 20  # missed rules listed in a trace; the rest are counted
TRACE_VALUES = 3  # values of a rule's list quoted in a miss
TRACE_CHARS = 40  # characters of each quoted value
TRACE_REASONS = 5  # reasons listed per excluded agent
# Agents listed in a decision's explanation (each list has its total beside it): the best
# candidates with their scores, then the excluded with their reasons. Building and storing
# every one of them was half of a decision's CPU with 50 agents online.
TRACE_CANDIDATES = 10
TRACE_EXCLUDED = 20


def _quoted(values: Iterable[Any]) -> str:
    """The first few values, each cut short: ``['a', 'b', 'c'] and 4 more``."""
    values = list(values)
    shown = [v[:TRACE_CHARS] + "…" if isinstance(v, str) and len(v) > TRACE_CHARS else v
             for v in values[:TRACE_VALUES]]
    more = len(values) - len(shown)
    return f"{shown}" + (f" and {more} more" if more > 0 else "")


def _cut(value: str) -> str:
    return value if len(value) <= TRACE_CHARS else value[:TRACE_CHARS] + "…"


def _channels(value: list, ticket: Ticket) -> str | None:
    return None if ticket.channel in value else f"channel {_cut(ticket.channel)} not in {_quoted(value)}"


def _accounts(value: list, ticket: Ticket) -> str | None:
    return None if ticket.account_id in value else f"account {ticket.account_id} not in {_quoted(value)}"


def _tags(value: list, ticket: Ticket) -> str | None:
    missing = set(value) - set(ticket.tags)
    return f"tags {_quoted(sorted(missing))} missing" if missing else None


def _languages(value: list, ticket: Ticket) -> str | None:
    if ticket.language in value:
        return None
    return f"language {_cut(ticket.language) or '?'} not in {_quoted(value)}"


def _min_customer_tier(value: int, ticket: Ticket) -> str | None:
    return f"customer tier {ticket.customer_tier} < {value}" if ticket.customer_tier < int(value) else None


def _keywords(value: list, ticket: Ticket) -> str | None:
    text = ticket.text.casefold()
    return None if any(k.casefold() in text for k in value) else f"none of the keywords {_quoted(value)}"


# A rule's ``match`` field -> a function of (its value, the ticket): None on a hit, else why
# it missed. An empty or absent condition matches anything. Misses are listed in this order.
MATCHERS: Mapping[str, Callable[[Any, Ticket], str | None]] = {
    "channels": _channels, "accounts": _accounts, "tags": _tags, "languages": _languages,
    "min_customer_tier": _min_customer_tier, "keywords": _keywords,
}


def rule_misses(rule: Rule, ticket: Ticket) -> list[str]:
    """Why ``rule`` does not match ``ticket``, one reason per condition missed; empty when it matches."""
    why = []
    for name, matcher in MATCHERS.items():
        value = rule.match.get(name)
        if value and (miss := matcher(value, ticket)) is not None:
            why.append(miss)
    return why


def match_rule(rules: Iterable[Rule], ticket: Ticket) -> tuple[Rule | None, list[dict]]:
    """The first matching rule in table order, and the trace of the rules looked at: the first
    ``TRACE_RULES`` misses, then ``{"rules_not_listed": n}`` for any more, then the hit."""
    trace: list[dict] = []
    unlisted = 0
    hit = None
    for rule in rules:
        misses = rule_misses(rule, ticket)
        if misses and len(trace) >= TRACE_RULES:
            unlisted += 1
            continue
        trace.append({"rule_id": rule.id, "rule": rule.name, "hit": not misses, "misses": misses})
        if not misses:
            hit = rule
            break
    if unlisted:
        trace.insert(TRACE_RULES, {"rules_not_listed": unlisted})
    return hit, trace


def requirements(rule: Rule | None) -> Requirements:
    """What the matched rule asks for; without a rule any online agent with capacity will do."""
    if rule is None:
        return Requirements()
    policy = {f.name: getattr(rule, f.name) for f in fields(Rule) if f.name in _POLICY}
    return Requirements(rule_id=rule.id, rule=rule.name, **{k: v if not isinstance(v, Mapping) else dict(v)
                                                           for k, v in policy.items()})


# --- escalation -----------------------------------------------------------------------

def max_stage(req: Requirements) -> int:
    """Stage 1 drops preferred skills; stage 2 applies the rule's ``widen`` when it has one."""
    if not req.escalate_after_s:
        return 0
    return 2 if req.widen else 1


def escalation_stage(req: Requirements, waited_ms: int) -> int:
    if not req.escalate_after_s:
        return 0
    return min(int(waited_ms // (req.escalate_after_s * 1000)), max_stage(req))


def next_stage_at(req: Requirements, queued_at: int, stage: int) -> int | None:
    """When the stage after ``stage`` is due, or None when there is none."""
    if stage >= max_stage(req):
        return None
    return queued_at + (stage + 1) * req.escalate_after_s * 1000


# --- the waiting queue ----------------------------------------------------------------

def queue_rank(queued_at: int, vip_tier: int, priority: int, aging_ms: int) -> int:
    """Sort key of a waiting ticket, lowest first.

    Each VIP tier counts as ``aging_ms`` of waiting and each point of rule priority as a
    tenth of it. Because the boost is a fixed offset from the enqueue time, the order never
    changes while tickets wait (so an index serves it), and any ticket that has waited
    longer than a newer one's boost is served first: nothing starves.
    """
    return queued_at - vip_tier * aging_ms - priority * aging_ms // 10
