"""Claims: taking a ticket for an agent in the store, after the decision was made.

A claim locks the ticket, takes the agent's capacity with a compare-and-set and sets the
assignee (see ``ticket_service.store.tickets``); a candidate whose room went in the
meantime is a lost race, and the next one is tried. ``apply(conn)`` runs inside a write
transaction that the round (``router.batch``) opens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Row

from core.ids import now_ms
from router import policy, snapshot
from router.pool import Agent, exclusions
from router.queue import QueueHead, may_take
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import queue as queue_store
from ticket_service.store import tickets as tickets_store

CLASSES = agents_store.CLASSES


def elapsed_us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


@dataclass(slots=True)
class Claimed:
    """What a claim came to: assigned | queued | held | recheck (a route); assigned | stale | full (a pull)."""

    kind: str
    agent_id: int | None = None
    lost: list[int] = field(default_factory=list)
    with_room: list[Row] | None = None
    since: int = 0


def _assign(conn: Connection, tenant_id: int, ticket_id: int, customer_id: int, agent_id: int, now: int,
            rule_id: int | None, detail: dict, started: float) -> None:
    tickets_store.take_ticket(conn, ticket_id, agent_id, now)  # the row lock makes this succeed
    agents_store.remember_agent(conn, customer_id, agent_id)
    queue_store.dequeue(conn, ticket_id)
    decisions_store.record(conn, tenant_id, ticket_id, "assigned", now, agent_id=agent_id, rule_id=rule_id,
                           detail=detail, elapsed_us=elapsed_us(started))


@dataclass(slots=True)
class RouteClaim:
    """Take the first candidate with room; else queue the ticket.

    With ``recheck`` (the requirements) the candidates came from an older snapshot: before
    queueing, the agents with room are read, and when one of them is eligible the round
    leaves the ticket alone and decides again (kind ``recheck``).
    """

    row: Row
    language: str
    candidates: list[int]
    cls: str
    now: int
    recheck: policy.Requirements | None
    queue: dict | None  # the waiting entry to add when nobody takes the ticket
    detail: dict  # the decision's trail, without the claim
    lost: list[int]
    started: float
    replace: bool = False  # the ticket's waiting entry is not usable: the decision replaces it

    def _detail(self, agent_id: int | None, tried: list[int]) -> dict:
        return {**self.detail, "claim": {"agent_id": agent_id, "lost_race": self.lost + tried}}

    def apply(self, conn: Connection) -> Claimed:
        row, cls = self.row, self.cls
        locked = tickets_store.lock_ticket(conn, row.id)
        if locked is None or tickets_store.held(locked):
            return Claimed("held", locked.assignee_id if locked else None)
        if self.replace:
            queue_store.dequeue(conn, row.id)
        if row.language is None:
            tickets_store.set_language(conn, row.id, self.language)
        tried: list[int] = []
        now = now_ms()  # the decision was made at self.now; the ticket is assigned as this commits
        for agent_id in self.candidates:
            if not agents_store.take_capacity(conn, agent_id, cls, now):
                tried.append(agent_id)
                continue
            _assign(conn, row.tenant_id, row.id, row.customer_id, agent_id, now,
                    self.detail["requirements"]["rule_id"], self._detail(agent_id, tried), self.started)
            return Claimed("assigned", agent_id, tried)
        with_room = None
        if self.recheck is not None:
            with_room = agents_store.online_agents_with_room(conn, row.tenant_id, cls)
            if any(not exclusions(snapshot.agent(r), cls, self.recheck) for r in with_room):
                return Claimed("recheck", None, tried, with_room)
        if self.queue is not None:
            queue_store.enqueue(conn, **self.queue)
            decisions_store.record(conn, row.tenant_id, row.id, "queued", now, rule_id=self.queue["rule_id"],
                                   detail=self._detail(None, tried), elapsed_us=elapsed_us(self.started))
        return Claimed("queued", None, tried, with_room)


@dataclass(slots=True)
class PullClaim:
    """Take a waiting ticket for the agent: assigned | stale (someone else took it, or it
    closed: it leaves the queue) | full (the agent's room went; the ticket keeps waiting)."""

    entry: Row
    agent_id: int
    now: int
    detail: dict
    started: float

    def apply(self, conn: Connection) -> Claimed:
        entry = self.entry
        locked = tickets_store.lock_ticket(conn, entry.ticket_id)
        if locked is None or tickets_store.held(locked):
            queue_store.dequeue(conn, entry.ticket_id)
            return Claimed("stale")
        now = now_ms()  # as this commits, not when the walk was planned
        if not agents_store.take_capacity(conn, self.agent_id, entry.channel_class, now):
            return Claimed("full")
        _assign(conn, entry.tenant_id, entry.ticket_id, locked.customer_id, self.agent_id, now, entry.rule_id,
                self.detail, self.started)
        return Claimed("assigned", self.agent_id, since=locked.created_at)


class PullWalk:
    """An agent with room walks the queue pages read for the round, taking the best waiting
    tickets it may, up to its free capacity; a ticket someone took meanwhile (stale) is
    passed over for the next one.

    ``next_claim()`` gives the next claim to run, ``settle()`` takes its outcome; when
    ``next_claim()`` gives None the walk is done: ``claims`` holds what happened, and
    ``short`` says the agent may have room left after stale picks (the pages may have ended
    too early: the caller pulls again with a fresh read).
    """

    def __init__(self, tenant_id: int, agent: Agent, queue: QueueHead, gone: set[int], scan: int, now: int,
                 started: float) -> None:
        self.tenant_id, self.agent, self.queue, self.gone = tenant_id, agent, queue, gone
        self.scan, self.now, self.started = scan, now, started
        self.claims: list[tuple[PullClaim, Claimed]] = []
        self.short = False
        self._classes = [cls for cls in CLASSES if agent.free(cls) > 0]
        self._cls: str | None = None

    def _start(self, cls: str) -> None:
        self._cls, self._entries = cls, iter(self.queue.page(self.tenant_id, cls))
        self._free, self._position, self._skipped, self._stale = self.agent.free(cls), 0, [], False

    def next_claim(self) -> PullClaim | None:
        while True:
            if self._cls is None:
                if not self._classes:
                    return None
                self._start(self._classes.pop(0))
            claim = self._next_in_class()
            if claim is not None:
                return claim
            self.short |= self._stale and self._free > 0
            self._cls = None

    def _next_in_class(self) -> PullClaim | None:
        if self._free <= 0:
            return None
        for entry in self._entries:
            if self._position == self.scan:
                return None
            if entry.ticket_id in self.gone:
                continue
            self._position += 1
            req = self.queue.requirement(entry)
            if not may_take(self.agent, self._cls, req):
                self._skipped.append(entry.ticket_id)
                continue
            self.gone.add(entry.ticket_id)
            return PullClaim(entry, self.agent.id, self.now, _pull_detail(self.agent, req, entry, self._position,
                                                                           self.now, self._skipped), self.started)
        return None

    def settle(self, claim: PullClaim, outcome: Claimed) -> None:
        self.claims.append((claim, outcome))
        if outcome.kind == "full":
            self.gone.discard(claim.entry.ticket_id)
            self._free = 0
        elif outcome.kind == "stale":  # as if it had not been in the queue when read
            self._position, self._stale = self._position - 1, True
        else:
            self._free -= 1


def _pull_detail(agent: Agent, req: policy.Requirements, entry: Row, position: int, now: int,
                 skipped: list[int]) -> Mapping:
    return {"via": "pull", "requirements": req.to_json(), "agent_id": agent.id, "agent": agent.name,
            "queue": {"position": position, "waited_s": (now - entry.queued_at) // 1000,
                      "skipped_ineligible": skipped[:20]}}
