"""The agents of a tenant, indexed for many decisions, and the ranking of candidates."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from core.channel import class_of
from router.policy import (
    CLASSES,
    ONLINE,
    TRACE_CANDIDATES,
    TRACE_EXCLUDED,
    TRACE_REASONS,
    Requirements,
    Ticket,
)
from ticket_service import eligibility


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

    def with_load(self, cls: str, load: int, last_assigned_at: int | None = None) -> Agent:
        """This agent with another ``cls`` load; ``dataclasses.replace`` costs twice as much
        (4.2 vs 2.2 µs), and the snapshot changes an agent's load for every decision."""
        return Agent(self.id, self.name, self.status, self.tier, self.skills, self.capacity, {**self.load, cls: load},
                     self.last_assigned_at if last_assigned_at is None else last_assigned_at)


def exclusions(agent: Agent, cls: str, req: Requirements) -> list[str]:
    """Why ``agent`` cannot take a ticket of class ``cls`` under ``req``; empty when eligible."""
    why = [f"status {agent.status}"] if agent.status != ONLINE else []
    why += eligibility.unmet(agent.skills, agent.tier, req)  # what the console's queue tab goes by too
    if agent.free(cls) <= 0:
        why.append(f"{cls} load {agent.load.get(cls, 0)}/{agent.capacity.get(cls, 0)}")
    return why


def rank_key(agent: Agent, cls: str, req: Requirements, previous_agent: int | None, now: int) -> tuple:
    """The one ranking key, lowest first: the customer's last agent (sticky), most preferred
    skills met, lowest load ratio, longest idle (clamped at zero), then agent id."""
    skills, preferred = agent.skills, req.preferred
    met = sum(1 for skill, level in preferred.items() if skills.get(skill, 0) >= level) if preferred else 0
    idle = now - agent.last_assigned_at
    return (agent.id != previous_agent, -met, agent.load_ratio(cls), -idle if idle > 0 else 0, agent.id)


@dataclass(frozen=True, slots=True)
class Score:
    """A candidate's ranking key, read out for people."""

    sticky: bool
    preferred: int  # preferred skills met
    load_ratio: float
    idle_ms: int

    @classmethod
    def from_key(cls, key: tuple) -> Score:
        return cls(not key[0], -key[1], key[2], -key[3])

    def key(self) -> tuple:
        """``rank_key`` without the agent id (the inverse of ``from_key``)."""
        return (not self.sticky, -self.preferred, self.load_ratio, -self.idle_ms)

    def to_json(self) -> dict:
        return {"sticky": self.sticky, "preferred": self.preferred,
                "load_ratio": round(self.load_ratio, 4), "idle_s": self.idle_ms // 1000}


def score(agent: Agent, cls: str, req: Requirements, previous_agent: int | None, now: int) -> Score:
    return Score.from_key(rank_key(agent, cls, req, previous_agent, now))


class Pool:
    """Agents indexed for many decisions (the router keeps one per tenant).

    Per channel class the online agents with room are kept sorted by (load ratio, last
    assigned, id): the order ``rank_key`` ranks in but for the sticky agent, preferred skills
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

    @property
    def by_id(self) -> Mapping[int, Agent]:
        return self._agents

    def get(self, agent_id: int) -> Agent | None:
        return self._agents.get(agent_id)

    def by_load(self, cls: str) -> list[tuple[float, int, int]]:
        """(load ratio, last assigned, id) of the online agents with ``cls`` room, lowest first."""
        return self._order[cls]

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

    def candidates(self, cls: str, req: Requirements) -> frozenset[int]:
        """The agents eligible under ``req`` with ``cls`` room."""
        return self.eligible(req) & self._room[cls]


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
        self._candidates = pool.candidates(cls, req)
        self._head: list[tuple] = []  # rank keys of the best candidates, best first
        self._complete = False

    def _key(self, agent: Agent) -> tuple:
        return rank_key(agent, self._cls, self._req, self._previous, self._now)

    def _order(self, n: int) -> list[tuple]:
        """The rank keys of the ``n`` best candidates, best first."""
        if n <= len(self._head) or self._complete:
            return self._head[:n]
        agents, candidates, previous = self._pool.by_id, self._candidates, self._previous
        if n * 4 >= len(candidates):
            self._head, self._complete = sorted(self._key(agents[i]) for i in candidates), True
            return self._head[:n]
        # Walk the pool's order. Candidates meeting every preferred skill come first, in that
        # order, except that idle time stops at zero: agents tied at zero go by id. So once
        # n of them are found (and any tied with the last one), nobody further can rank better.
        keys = [self._key(agents[previous])] if previous in candidates else []
        best, found, tie = -len(self._req.preferred), 0, None
        for ratio, last, agent_id in self._pool.by_load(self._cls):
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
        agents = self._pool.by_id
        return [(agents[k[4]], Score.from_key(k)) for k in self._order(n)]

    def top_ids(self, n: int) -> list[int]:
        """The ids of the ``n`` best candidates, best first (``top`` without the scores)."""
        return [k[4] for k in self._order(n)]

    @property
    def ranked(self) -> list[tuple[Agent, Score]]:
        return self.top(len(self._candidates))

    def _excluded_ids(self) -> list[int]:
        if len(self._candidates) == len(self._pool.by_id):  # candidates are pool agents: none excluded
            return []
        return sorted(self._pool.by_id.keys() - self._candidates)

    @property
    def excluded(self) -> list[tuple[Agent, list[str]]]:
        agents = self._pool.by_id
        return [(agents[i], exclusions(agents[i], self._cls, self._req)) for i in self._excluded_ids()]

    @property
    def candidates_total(self) -> int:
        return len(self._candidates)

    def explain(self, candidates: int = TRACE_CANDIDATES, excluded: int = TRACE_EXCLUDED) -> dict:
        agents = self._pool.by_id
        out = self._excluded_ids()
        return {
            # Read out of the ranking key as ``Score.from_key(k).to_json()`` does, without the object.
            "candidates": [{"agent_id": k[4], "agent": agents[k[4]].name,
                            "score": {"sticky": not k[0], "preferred": -k[1], "load_ratio": round(k[2], 4),
                                      "idle_s": -k[3] // 1000}}
                           for k in self._order(candidates)],
            "candidates_total": len(self._candidates),
            "excluded": [{"agent_id": i, "agent": agents[i].name,
                          "reasons": _listed(exclusions(agents[i], self._cls, self._req))} for i in out[:excluded]],
            "excluded_total": len(out),
        }


def _listed(reasons: list[str]) -> list[str]:
    if len(reasons) <= TRACE_REASONS:
        return reasons
    return [*reasons[:TRACE_REASONS], f"and {len(reasons) - TRACE_REASONS} more"]


def decide(ticket: Ticket, agents: Pool | Iterable[Agent], req: Requirements, now: int,
           classes: Mapping[str, str]) -> Decision:
    """Rank the eligible agents for ``ticket`` (``rank_key``); excluded agents are listed in id order."""
    pool = agents if isinstance(agents, Pool) else Pool(agents)
    return Decision(pool, class_of(classes, ticket.channel), req, ticket.previous_agent, now)
