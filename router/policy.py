"""Routing policy: pure functions over a snapshot of agents, rules and one ticket.

Nothing here touches the database or the clock; the worker passes ``now`` in. Every
function that rejects or ranks says why, so a decision can be explained afterwards.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.channel import CAPACITY_CLASSES

CLASSES = CAPACITY_CLASSES
ONLINE = "online"
STATUSES = ("online", "away", "offline")
ESCALATED_TAG = "escalated"


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    name: str
    status: str
    tier: int
    skills: Mapping[str, int]
    capacity: Mapping[str, int]
    load: Mapping[str, int]
    last_assigned_at: int = 0

    def free(self, cls: str) -> int:
        return self.capacity.get(cls, 0) - self.load.get(cls, 0)

    def load_ratio(self, cls: str) -> float:
        cap = self.capacity.get(cls, 0)
        return self.load.get(cls, 0) / cap if cap > 0 else math.inf


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


@dataclass(frozen=True, slots=True)
class Requirements:
    """What an agent needs to take a ticket, and how that widens while it waits."""

    required: Mapping[str, int] = field(default_factory=dict)
    preferred: Mapping[str, int] = field(default_factory=dict)
    min_tier: int = 0
    priority: int = 0
    rule_id: int | None = None
    rule: str = ""
    escalate_after_s: int | None = None
    widen: Mapping[str, Any] = field(default_factory=dict)
    stage: int = 0

    def to_json(self) -> dict:
        return {
            "required": dict(self.required), "preferred": dict(self.preferred), "min_tier": self.min_tier,
            "priority": self.priority, "rule_id": self.rule_id, "rule": self.rule,
            "escalate_after_s": self.escalate_after_s, "widen": dict(self.widen), "stage": self.stage,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Requirements:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


# --- language -------------------------------------------------------------------------

def _script(ch: str) -> str:
    code = ord(ch)
    if 0x3040 <= code <= 0x30FF:
        return "kana"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "hangul"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if ch.isalpha() and code < 0x250:
        return "latin"
    return ""


def detect_language(text: str) -> str:
    """``zh``/``ja``/``ko`` for CJK text, ``latin`` for Latin-script text, ``""`` when unsure."""
    counts = {"han": 0, "kana": 0, "hangul": 0, "latin": 0}
    for ch in text[:4000]:
        script = _script(ch)
        if script:
            counts[script] += 1
    # One CJK character carries about a word; Latin letters count per ~4 to a word.
    cjk = counts["han"] + counts["kana"] + counts["hangul"]
    if cjk == 0 and counts["latin"] == 0:
        return ""
    if cjk * 4 < counts["latin"]:
        return "latin"
    if counts["kana"]:
        return "ja"
    if counts["hangul"] > counts["han"]:
        return "ko"
    return "zh"


# --- rules ----------------------------------------------------------------------------

# A decision's trace is stored with it: what it quotes from rules is bounded, so a rule's
# size (up to rule_schema.MAX_RULE_BYTES) is not copied into every decision.
TRACE_RULES = 20  # missed rules listed in a trace; the rest are counted
TRACE_VALUES = 3  # values of a rule's list quoted in a miss
TRACE_CHARS = 40  # characters of each quoted value
TRACE_REASONS = 5  # reasons listed per excluded agent


def _quoted(values: Iterable[Any]) -> str:
    """The first few values, each cut short: ``['a', 'b', 'c'] and 4 more``."""
    values = list(values)
    shown = [v[:TRACE_CHARS] + "…" if isinstance(v, str) and len(v) > TRACE_CHARS else v
             for v in values[:TRACE_VALUES]]
    more = len(values) - len(shown)
    return f"{shown}" + (f" and {more} more" if more > 0 else "")


def _cut(value: str) -> str:
    return value if len(value) <= TRACE_CHARS else value[:TRACE_CHARS] + "…"


def rule_misses(rule: Rule, ticket: Ticket) -> list[str]:
    """Why ``rule`` does not match ``ticket``; empty when it matches."""
    m, why = rule.match, []
    if m.get("channels") and ticket.channel not in m["channels"]:
        why.append(f"channel {_cut(ticket.channel)} not in {_quoted(m['channels'])}")
    if m.get("accounts") and ticket.account_id not in m["accounts"]:
        why.append(f"account {ticket.account_id} not in {_quoted(m['accounts'])}")
    if m.get("tags") and not set(m["tags"]) <= set(ticket.tags):
        why.append(f"tags {_quoted(sorted(set(m['tags']) - set(ticket.tags)))} missing")
    if m.get("languages") and ticket.language not in m["languages"]:
        why.append(f"language {_cut(ticket.language) or '?'} not in {_quoted(m['languages'])}")
    if ticket.customer_tier < int(m.get("min_customer_tier", 0)):
        why.append(f"customer tier {ticket.customer_tier} < {m['min_customer_tier']}")
    if m.get("keywords"):
        text = ticket.text.casefold()
        if not any(k.casefold() in text for k in m["keywords"]):
            why.append(f"none of the keywords {_quoted(m['keywords'])}")
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
    return Requirements(
        required=dict(rule.required), preferred=dict(rule.preferred), min_tier=rule.min_tier,
        priority=rule.priority, rule_id=rule.id, rule=rule.name,
        escalate_after_s=rule.escalate_after_s, widen=dict(rule.widen),
    )


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


def widened(req: Requirements, stage: int) -> Requirements:
    """The requirements at escalation ``stage``."""
    if stage <= 0:
        return req
    out = replace(req, preferred={}, stage=stage)
    if stage >= 2 and req.widen:
        out = replace(
            out, required=dict(req.widen.get("required", req.required)),
            min_tier=int(req.widen.get("min_tier", req.min_tier)),
        )
    return out


# --- eligibility and order ------------------------------------------------------------

def exclusions(agent: Agent, cls: str, req: Requirements) -> list[str]:
    """Why ``agent`` cannot take a ticket of class ``cls`` under ``req``; empty when eligible."""
    why = []
    if agent.status != ONLINE:
        why.append(f"status {agent.status}")
    for skill, level in req.required.items():
        have = agent.skills.get(skill, 0)
        if have < level:
            why.append(f"skill {skill} {have} < {level}")
    if agent.tier < req.min_tier:
        why.append(f"tier {agent.tier} < {req.min_tier}")
    if agent.free(cls) <= 0:
        why.append(f"{cls} load {agent.load.get(cls, 0)}/{agent.capacity.get(cls, 0)}")
    return why


@dataclass(frozen=True, slots=True)
class Score:
    sticky: bool
    preferred: int  # preferred skills met
    load_ratio: float
    idle_ms: int

    def key(self) -> tuple:
        # Higher is better for each part; sorted() ascending, hence the negations.
        return (not self.sticky, -self.preferred, self.load_ratio, -self.idle_ms)

    def to_json(self) -> dict:
        return {"sticky": self.sticky, "preferred": self.preferred,
                "load_ratio": round(self.load_ratio, 4), "idle_s": self.idle_ms // 1000}


def score(agent: Agent, cls: str, req: Requirements, previous_agent: int | None, now: int) -> Score:
    met = sum(1 for skill, level in req.preferred.items() if agent.skills.get(skill, 0) >= level)
    return Score(agent.id == previous_agent, met, agent.load_ratio(cls), max(now - agent.last_assigned_at, 0))


class Pool:
    """Agents indexed for many decisions (the router keeps one per tenant).

    Per channel class the online agents with room are kept sorted by (load ratio, last
    assigned, id): the order ``decide`` ranks in but for the sticky agent, preferred skills
    and idle time clamped at zero, so a decision walks only as far as the candidates it needs.
    Who passes a requirement's status, tier and skills tests is cached per requirement.
    """

    __slots__ = ("_agents", "_order", "_room", "_eligible")

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[int, Agent] = {a.id: a for a in sorted(agents, key=lambda a: a.id)}
        self._order: dict[str, list[tuple]] = {}
        self._room: dict[str, set[int]] = {}
        for cls in CLASSES:
            with_room = [a for a in self._agents.values() if a.status == ONLINE and a.free(cls) > 0]
            self._order[cls] = sorted(_base_key(a, cls) for a in with_room)
            self._room[cls] = {a.id for a in with_room}
        self._eligible: dict[tuple, frozenset[int]] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        """The agents in id order."""
        return iter(sorted(self._agents.values(), key=lambda a: a.id))

    def get(self, agent_id: int) -> Agent | None:
        return self._agents.get(agent_id)

    def put(self, agent: Agent) -> None:
        """Add an agent, or replace it with a newer version of itself."""
        old = self._agents.get(agent.id)
        if old is None:
            self._agents[agent.id] = agent
            self._eligible.clear()
        else:
            self._unindex(old)
            if (old.status, old.tier, old.skills) != (agent.status, agent.tier, agent.skills):
                self._eligible.clear()
            self._agents[agent.id] = agent
        if agent.status == ONLINE:
            for cls in CLASSES:
                if agent.free(cls) > 0:
                    bisect.insort(self._order[cls], _base_key(agent, cls))
                    self._room[cls].add(agent.id)

    def remove(self, agent_id: int) -> None:
        old = self._agents.pop(agent_id, None)
        if old is not None:
            self._unindex(old)
            self._eligible.clear()

    def _unindex(self, agent: Agent) -> None:
        for cls in CLASSES:
            if agent.id in self._room[cls]:
                order = self._order[cls]
                del order[bisect.bisect_left(order, _base_key(agent, cls))]
                self._room[cls].discard(agent.id)

    def eligible(self, req: Requirements) -> frozenset[int]:
        """The agents that pass ``req``'s status, tier and required skills tests."""
        key = (tuple(sorted(req.required.items())), req.min_tier)
        ids = self._eligible.get(key)
        if ids is None:
            required = tuple(req.required.items())
            ids = self._eligible[key] = frozenset(
                a.id for a in self._agents.values()
                if a.status == ONLINE and a.tier >= req.min_tier and not _lacks(a.skills, required))
        return ids


def _base_key(agent: Agent, cls: str) -> tuple:
    return (agent.load_ratio(cls), agent.last_assigned_at, agent.id)


def _lacks(skills: Mapping[str, int], required: tuple[tuple[str, int], ...]) -> bool:
    for skill, level in required:
        if skills.get(skill, 0) < level:
            return True
    return False


class Decision:
    """Eligible agents best first with their scores, and every excluded agent with reasons.

    Made from a ``Pool`` when asked for: the candidates a decision needs (``top``,
    ``explain``) cost a walk down the pool's order, not a pass over every agent; ``ranked``
    and ``excluded`` give them all. Ask before the pool changes.
    """

    __slots__ = ("_pool", "_cls", "_req", "_previous", "_now", "_candidates", "_head", "_complete")

    def __init__(self, pool: Pool, cls: str, req: Requirements, previous_agent: int | None, now: int) -> None:
        self._pool, self._cls, self._req, self._previous, self._now = pool, cls, req, previous_agent, now
        self._candidates = pool.eligible(req) & pool._room[cls]
        self._head: list[tuple] = []  # sort keys of the best candidates, best first
        self._complete = False

    def _key(self, agent: Agent) -> tuple:
        """``(Score.key(), agent id)``, as one tuple."""
        skills = agent.skills
        met = sum(1 for skill, level in self._req.preferred.items() if skills.get(skill, 0) >= level)
        idle = self._now - agent.last_assigned_at
        return (agent.id != self._previous, -met, agent.load_ratio(self._cls), -idle if idle > 0 else 0, agent.id)

    def _order(self, n: int) -> list[tuple]:
        """The sort keys of the ``n`` best candidates, best first."""
        if n <= len(self._head) or self._complete:
            return self._head[:n]
        agents, candidates, previous = self._pool._agents, self._candidates, self._previous
        if n * 4 >= len(candidates):
            self._head, self._complete = sorted(self._key(agents[i]) for i in candidates), True
            return self._head[:n]
        # Walk the pool's order. Candidates meeting every preferred skill come first, in that
        # order, except that idle time stops at zero: agents tied at zero go by id. So once
        # n of them are found (and any tied with the last one), nobody further can rank better.
        keys = [self._key(agents[previous])] if previous in candidates else []
        best, found, tie = -len(self._req.preferred), 0, None
        for ratio, last, agent_id in self._pool._order[self._cls]:
            if agent_id not in candidates or agent_id == previous:
                continue
            if tie is not None and (ratio != tie or last < self._now):
                break
            key = self._key(agents[agent_id])
            keys.append(key)
            if tie is None and key[1] == best:
                found += 1
                if found >= n:
                    if last < self._now:
                        break
                    tie = ratio
        else:
            self._complete = True
        keys.sort()
        self._head = keys if self._complete else keys[:n]
        return self._head[:n]

    def top(self, n: int) -> list[tuple[Agent, Score]]:
        """The ``n`` best candidates, best first."""
        agents, cls, req, previous, now = self._pool._agents, self._cls, self._req, self._previous, self._now
        return [(agents[k[4]], score(agents[k[4]], cls, req, previous, now)) for k in self._order(n)]

    @property
    def ranked(self) -> list[tuple[Agent, Score]]:
        return self.top(len(self._candidates))

    def _excluded_ids(self) -> list[int]:
        return sorted(self._pool._agents.keys() - self._candidates)

    @property
    def excluded(self) -> list[tuple[Agent, list[str]]]:
        agents = self._pool._agents
        return [(agents[i], exclusions(agents[i], self._cls, self._req)) for i in self._excluded_ids()]

    @property
    def candidates_total(self) -> int:
        return len(self._candidates)

    def explain(self, limit: int = 50) -> dict:
        agents = self._pool._agents
        excluded = self._excluded_ids()
        return {
            # Score(...).to_json() straight from the sort key.
            "candidates": [{"agent_id": k[4], "agent": agents[k[4]].name, "score": {
                "sticky": not k[0], "preferred": -k[1], "load_ratio": round(k[2], 4), "idle_s": -k[3] // 1000,
            }} for k in self._order(limit)],
            "candidates_total": len(self._candidates),
            "excluded": [{"agent_id": i, "agent": agents[i].name,
                          "reasons": _listed(exclusions(agents[i], self._cls, self._req))} for i in excluded[:limit]],
            "excluded_total": len(excluded),
        }


def _listed(reasons: list[str]) -> list[str]:
    if len(reasons) <= TRACE_REASONS:
        return reasons
    return [*reasons[:TRACE_REASONS], f"and {len(reasons) - TRACE_REASONS} more"]


def decide(ticket: Ticket, agents: Pool | Iterable[Agent], req: Requirements, now: int, cls: str) -> Decision:
    """Rank the eligible agents for ``ticket`` (of capacity class ``cls``): sticky, preferred
    skills, load ratio, longest idle.

    Excluded agents are listed in id order.
    """
    pool = agents if isinstance(agents, Pool) else Pool(agents)
    return Decision(pool, cls, req, ticket.previous_agent, now)


# --- the waiting queue ----------------------------------------------------------------

def queue_rank(queued_at: int, vip_tier: int, priority: int, aging_ms: int) -> int:
    """Sort key of a waiting ticket, lowest first.

    Each VIP tier counts as ``aging_ms`` of waiting and each point of rule priority as a
    tenth of it. Because the boost is a fixed offset from the enqueue time, the order never
    changes while tickets wait (so an index serves it), and any ticket that has waited
    longer than a newer one's boost is served first: nothing starves.
    """
    return queued_at - vip_tier * aging_ms - priority * aging_ms // 10
