"""Claims: taking a ticket for an agent in the store, after the decision was made.

A claim locks the ticket, takes the agent's capacity with a compare-and-set and sets the
assignee (see ``ticket_service.store.tickets``); a candidate whose room went in the
meantime is a lost race, and the next one is tried. The claims of a round are settled
together, in one write transaction (``router.claim_round``); these are what each asks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Row

from router import policy
from router.pool import Agent
from router.queue import QueueHead, may_take
from ticket_service.store import agents as agents_store

CLASSES = agents_store.CLASSES


def elapsed_us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


@dataclass(slots=True)
class Claimed:
    """What a claim came to: assigned | queued | held | recheck | lost (its locked candidates
    were all full: decided again) for a route; assigned | stale | full for a pull."""

    kind: str
    agent_id: int | None = None
    lost: list[int] = field(default_factory=list)
    with_room: list[Row] | None = None
    since: int = 0


@dataclass(slots=True)
class RouteClaim:
    """Take the first candidate with room; else queue the ticket.

    With ``recheck`` (the requirements) the candidates came from an older snapshot: before
    queueing, the agents with room are read, and when one of them is eligible the round
    leaves the ticket alone and decides again (kind ``recheck``).
    """

    row: Row
    language: str
    candidates: list[int]  # best first: the round tries the locked ones, any beyond say there are more
    cls: str
    now: int
    recheck: policy.Requirements | None
    queue: dict | None  # the waiting entry to add when nobody takes the ticket
    detail: dict  # the decision's trail, without the claim
    lost: list[int]
    started: float
    replace: bool = False  # the ticket's waiting entry is not usable: the decision replaces it

    def detail_with(self, agent_id: int | None, tried: list[int]) -> dict:
        """The decision's trail with the claim: who took it, whose room went first."""
        return {**self.detail, "claim": {"agent_id": agent_id, "lost_race": self.lost + tried}}


@dataclass(slots=True)
class PullClaim:
    """Take a waiting ticket for the agent: assigned | stale (someone else took it, or it
    closed: it leaves the queue) | full (the agent's room went; the ticket keeps waiting)."""

    entry: Row
    agent_id: int
    now: int
    detail: dict
    started: float


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
