"""Applying the policy in rounds: route tickets, pull from the queue for agents, requeue.

A round reads (``reads.read_round``: a fixed number of statements whatever its size), decides
every request from that read and the tenant snapshots, then claims (``claim_round``). On
PostgreSQL the read, the decisions and the claims are one write transaction: a round costs
one BEGIN/COMMIT and a fixed number of round trips. On SQLite the read is a transaction of
its own and the decisions are made outside any, so the one write lock is held only for the
claims. The claim locks the round's tickets, then its agents, each set in id order, so two
routers' rounds keep the ticket-agent-customer lock order.

A tenant's agents and rules come from a snapshot kept for ``snapshot_ttl_s``
(``snapshot.Tenant``), updated with this process's own claims and with fresher agent rows.
When a snapshot that old finds no agent able to take a ticket, the claim re-reads the
agents with room before the ticket is queued, and decides again if one of them fits.

``python -m ops.bench --scenarios email --normalizers 1`` (SQLite, 50 agents online, a
shared 2-core machine, three alternating runs): 356-394 -> 214-232 µs of router CPU per
mail once a decision walked the pool only as far as it explains (``Decision``), kept its
snapshot count when its agent took the ticket, detected the language with regular
expressions and ran its statements on the driver (``compiled.Statement``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from sqlalchemy.engine import Connection

from core import metrics
from core.channel import class_of
from core.ids import now_ms
from router import policy, snapshot
from router.claim_round import LOCKED_TRIES, claim_round
from router.claims import Claimed, PullWalk, RouteClaim
from router.pool import decide
from router.queue import waiting_requirements
from router.reads import RoundRead, RouteRead, read_round
from ticket_service import eligibility
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import Database

log = structlog.get_logger()
# Candidates a route's claim is given: the ones its round locks and tries, and one more to say
# there are others (the route is then decided again in the next round, without the full ones).
_CANDIDATES = LOCKED_TRIES + 1
_ROUND = 64  # requests decided together: one read, and on SQLite one write transaction
SNAPSHOT_TTL_S = 1.0  # how long a tenant's agents and rules are routed from without re-reading


@dataclass(slots=True)
class Outcome:
    """assigned | queued | held (someone holds it, or it is closed) | missing."""

    kind: str
    ticket_id: int
    agent_id: int | None = None


@dataclass(slots=True, eq=False)
class Route:
    """A ticket looks for an agent. The fields after ``via`` carry a decision across rounds."""

    ticket_id: int
    received_at: int | None = None
    via: str = "event"
    started: float = 0.0
    now: int = 0
    lost: list[int] = field(default_factory=list)
    rechecked: bool = False


@dataclass(slots=True, eq=False)
class Pull:
    """An agent with room takes the best waiting tickets it may, up to its free capacity."""

    tenant_id: int
    agent_id: int
    taken: int = 0


@dataclass(slots=True)
class _Plan:
    """A round's decisions: (pull, its walk) and (route, its tenant's snapshot, its claim, the
    agent the snapshot counted it on)."""

    pulls: list[tuple[Pull, PullWalk]] = field(default_factory=list)
    routes: list[tuple[Route, snapshot.Tenant, RouteClaim, int | None]] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.pulls or self.routes)

    @property
    def walks(self) -> list[PullWalk]:
        return [walk for _, walk in self.pulls]

    @property
    def claims(self) -> list[RouteClaim]:
        return [claim for _, _, claim, _ in self.routes]


def _key(request: Route | Pull) -> tuple:
    return (request.ticket_id,) if isinstance(request, Route) else (request.tenant_id, request.agent_id)


def _requeue(conn: Connection, tenant_id: int, ticket_id: int, now: int, status: str,
             classes: Mapping[str, str]) -> int | None:
    freed = tickets_store.unassign(conn, ticket_id, now, only_status=tickets_store.NOT_STARTED, classes=classes)
    if freed is not None:
        decisions_store.record(conn, tenant_id, ticket_id, "requeued", now, agent_id=freed,
                               detail={"reason": f"agent {status}"})
    return freed


def _requeue_candidates(conn: Connection, tenant_id: int, agent_id: int) -> tuple[dict, list[int]]:
    return agents_store.tenant_settings(conn, tenant_id), tickets_store.not_started(conn, agent_id)


class Assigner:
    def __init__(self, db: Database, aging_ms: int, classes: Mapping[str, str], scan: int = 200,
                 snapshot_ttl_s: float = SNAPSHOT_TTL_S) -> None:
        """``classes``: each channel's capacity class, as the channel registry says."""
        self.db, self.aging_ms, self.scan, self.snapshot_ttl_s = db, aging_ms, scan, snapshot_ttl_s
        self.classes = classes
        self._tenants: dict[int, snapshot.Tenant] = {}
        # (tenant, ticket, agent, via) of every committed assignment not yet announced as
        # ``ticket.assigned``: the worker takes them (``take_assigned``) after each round.
        self.assigned: list[tuple[int, int, int, str]] = []

    def take_assigned(self) -> list[tuple[int, int, int, str]]:
        taken, self.assigned = self.assigned, []
        return taken

    def forget(self, tenant_id: int | None = None) -> None:
        """Drop the snapshot of a tenant (or all): the next decision reads it again."""
        if tenant_id is None:
            self._tenants.clear()
        else:
            self._tenants.pop(tenant_id, None)

    async def route(self, ticket_id: int, received_at: int | None = None, via: str = "event") -> Outcome:
        return (await self.apply([Route(ticket_id, received_at, via)]))[0]

    async def pull(self, tenant_id: int, agent_id: int) -> int:
        """Fill the agent's free capacity from the queue; returns how many tickets it took."""
        return (await self.apply([Pull(tenant_id, agent_id)]))[0]

    async def apply(self, requests: list[Route | Pull]) -> list[Outcome | int]:
        """Route the tickets and fill the agents, in order; per request its ``Outcome`` or the
        tickets the agent took. A ticket or agent named twice is handled once."""
        unique: dict[tuple, Route | Pull] = {}
        for request in requests:
            first = unique.setdefault(_key(request), request)
            if isinstance(request, Route) and request.received_at is not None:
                first.received_at = min(first.received_at or request.received_at, request.received_at)
        results: dict[int, Outcome | int] = {}
        pending = list(unique.values())
        while pending:
            again = []
            for start in range(0, len(pending), _ROUND):
                again += await self._round(pending[start:start + _ROUND], results)
            pending = again
        return [results[id(unique[_key(r)])] for r in requests]

    async def _round(self, requests: list[Route | Pull], results: dict[int, Outcome | int]) -> list[Route | Pull]:
        """One read, the decisions, the claims. Returns the requests that need another round."""
        started, now = time.perf_counter(), now_ms()
        routes = [r for r in requests if isinstance(r, Route)]
        pulls = [r for r in requests if isinstance(r, Pull)]
        for route in routes:
            route.started, route.now = route.started or started, route.now or now
        oldest = time.monotonic() - self.snapshot_ttl_s
        cached = {t: snap for t, snap in self._tenants.items() if snap.read_at > oldest}
        args = ([r.ticket_id for r in routes], [(p.tenant_id, p.agent_id) for p in pulls], set(cached), self.scan)
        if self.db.is_sqlite:
            # In-process: the read costs no round trip, and deciding outside the write
            # transaction keeps SQLite's one write lock (and its thread) free meanwhile.
            read = await self.db.run_read(read_round, *args)
            plan = self._plan(read, routes, pulls, cached, results, started, now)
            claimed = await self.db.run_write(claim_round, plan.walks, plan.claims) if plan.any else []
        else:
            # On PostgreSQL the read is part of the claim's transaction: one BEGIN/COMMIT and
            # one connection per round. Deciding has no statement in it, so nothing else runs
            # on this event loop meanwhile (``run_sync`` only switches at a statement).
            def whole(conn: Connection) -> tuple[_Plan, list[Claimed]]:
                plan = self._plan(read_round(conn, *args), routes, pulls, cached, results, started, now)
                return plan, claim_round(conn, plan.walks, plan.claims) if plan.any else []

            plan, claimed = await self.db.run_write(whole)
        if not plan.any:
            return []
        again: list[Route | Pull] = [pull for pull, walk in plan.pulls if self._pulled(pull, walk, now)]
        for pull, walk in plan.pulls:
            if not walk.short:
                results[id(pull)] = pull.taken
        for (route, snap, claim, planned), outcome in zip(plan.routes, claimed, strict=True):
            # The snapshot counted the ticket on the planned agent; when that agent took it,
            # the count stands unless undoing it and counting the claim would change something.
            counted = (planned is not None and outcome.kind == "assigned" and outcome.agent_id == planned
                       and snap.stands(planned, claim.cls, claim.now))
            if planned is not None and not counted:
                snap.undo(planned, claim.cls)
            self._routed(route, claim, snap, outcome, results, again, counted)
        return again

    def _plan(self, read: RoundRead, routes: list[Route], pulls: list[Pull], cached: dict[int, snapshot.Tenant],
              results: dict[int, Outcome | int], started: float, now: int) -> _Plan:
        """The round's decisions from its read: the pulls' walks and the routes' claims."""
        for tenant_id, (agent_rows, rule_rows) in read.tenants.items():
            cached[tenant_id] = self._tenants[tenant_id] = snapshot.Tenant(agent_rows, rule_rows, time.monotonic())
        plan = _Plan()
        gone: set[int] = set()
        for pull, row in zip(pulls, read.agents, strict=True):
            agent = None if row is None else snapshot.agent(row)
            if agent is not None and (snap := self._tenants.get(pull.tenant_id)) is not None:
                snap.put(agent)  # as it is before this round's claims
            if agent is not None and agent.status == policy.ONLINE and any(
                    read.queue.page(pull.tenant_id, cls) for cls in policy.CLASSES if agent.free(cls) > 0):
                plan.pulls.append((pull, PullWalk(pull.tenant_id, agent, read.queue, gone, self.scan, now, started)))
            else:
                results[id(pull)] = pull.taken
        for route, route_read in zip(routes, read.routes, strict=True):
            row = route_read.row
            if row is None:
                results[id(route)] = Outcome("missing", route.ticket_id)
            elif tickets_store.held(row):
                results[id(route)] = Outcome("held", route.ticket_id, row.assignee_id)
            else:
                snap = cached[row.tenant_id]
                claim = self._plan_route(route, route_read, snap, row.tenant_id in read.tenants)
                planned = claim.candidates[0] if claim.candidates else None
                if planned is not None:
                    snap.took(planned, claim.cls, route.now)  # so the next decisions see it
                plan.routes.append((route, snap, claim, planned))
        return plan

    def _pulled(self, pull: Pull, walk: PullWalk, now: int) -> bool:
        """Count what the walk took; True when it should pull again (stale picks left room)."""
        snap = self._tenants.get(pull.tenant_id)
        for claim, outcome in walk.claims:
            cls = claim.entry.channel_class
            if outcome.kind == "assigned":
                pull.taken += 1
                if snap is not None:
                    snap.took(walk.agent.id, cls, now)
                self._assigned(pull.tenant_id, claim.entry.ticket_id, walk.agent.id, outcome.since, "pull")
            elif outcome.kind == "full":
                metrics.ROUTER_DECISIONS.labels("lost_race").inc()
                if snap is not None:
                    snap.full(walk.agent.id, cls)
        return walk.short

    def _plan_route(self, route: Route, read: RouteRead, snap: snapshot.Tenant, fresh: bool) -> RouteClaim:
        row, now = read.row, route.now
        language = row.language or policy.detect_language(read.text)
        ticket = snapshot.ticket(row, language, read.text)
        waiting = read.waiting
        req = None if waiting is None else waiting_requirements(waiting)
        replace, trace = waiting is not None and req is None, []
        if req is None:
            rule, trace = policy.match_rule(snap.rules, ticket)
            req = policy.requirements(rule)
        extra = (row.requirements or {}).get("required")
        req = eligibility.with_ticket(req, row.requirements)  # a trigger's require_skills / require_team
        cls = class_of(self.classes, ticket.channel)
        decision = decide(ticket, snap.pool, req, now, self.classes)
        detail = {"via": route.via, "language": language, "rules": trace, "requirements": req.to_json(),
                  **decision.explain()}
        if extra:
            detail["ticket_requirements"] = dict(row.requirements)
        since = waiting.queued_at if replace else now  # a replaced entry keeps its place
        queue = None if waiting is not None and not replace else {
            "tenant_id": row.tenant_id, "ticket_id": row.id, "channel_class": cls, "vip_tier": row.vip_tier,
            "rank": policy.queue_rank(since, row.vip_tier, req.priority, self.aging_ms), "queued_at": since,
            "rule_id": req.rule_id, "requirements": req.to_json(), "stage": 0,
            "next_stage_at": policy.next_stage_at(req, since, 0),
        }
        # A snapshot from an earlier read is re-checked before the ticket is queued.
        recheck = None if fresh or route.rechecked else req
        # The candidates come from the walk down the pool ``explain`` made for its ten (``Decision``).
        return RouteClaim(row, language, decision.top_ids(_CANDIDATES), cls, now, recheck,
                          queue, detail, list(route.lost), route.started, replace)

    def _routed(self, route: Route, claim: RouteClaim, snap: snapshot.Tenant, outcome: Claimed, results: dict,
                again: list, counted: bool = False) -> None:
        """What a route's claim came to, in the snapshot and the results (``counted``: the
        snapshot counts the assignment already)."""
        for agent_id in outcome.lost:
            snap.full(agent_id, claim.cls)
        if outcome.with_room is not None:
            snap.recheck(claim.cls, outcome.with_room)
        route.lost += outcome.lost
        if outcome.kind in ("recheck", "lost"):
            route.rechecked |= outcome.kind == "recheck"
            again.append(route)
            return
        if outcome.kind == "held":
            results[id(route)] = Outcome("held", route.ticket_id, outcome.agent_id)
            return
        metrics.ROUTER_DECISIONS.labels("lost_race").inc(len(route.lost))
        if outcome.kind == "queued":
            if claim.queue is not None:
                metrics.ROUTER_DECISIONS.labels("queued").inc()
                log.info("router.queued", ticket_id=route.ticket_id, rule=claim.detail["requirements"]["rule"],
                         candidates=claim.detail["candidates_total"])
            results[id(route)] = Outcome("queued", route.ticket_id)
        else:
            if not counted:
                snap.took(outcome.agent_id, claim.cls, claim.now)
            self._assigned(claim.row.tenant_id, route.ticket_id, outcome.agent_id,
                           route.received_at or claim.row.created_at, route.via)
            results[id(route)] = Outcome("assigned", route.ticket_id, outcome.agent_id)

    def _assigned(self, tenant_id: int, ticket_id: int, agent_id: int, since_ms: int, via: str) -> None:
        self.assigned.append((tenant_id, ticket_id, agent_id, via))
        metrics.ROUTER_DECISIONS.labels("assigned").inc()
        metrics.INGRESS_TO_ASSIGNED.observe(max(now_ms() - since_ms, 0) / 1000)
        log.info("router.assigned", ticket_id=ticket_id, agent_id=agent_id, via=via)

    async def agent_changed(self, tenant_id: int, agent_id: int, status: str) -> None:
        """Online: pull. Away/offline: per tenant setting, hand back tickets not started yet;
        disabled: as offline."""
        self.forget(tenant_id)
        if status == policy.ONLINE:
            await self.pull(tenant_id, agent_id)
            return
        settings, tickets = await self.db.run_read(_requeue_candidates, tenant_id, agent_id)
        as_status = "offline" if status == agents_store.DISABLED else status
        if as_status not in agents_store.requeue_statuses(settings):
            return
        for ticket_id in tickets:
            if await self.db.run_write(_requeue, tenant_id, ticket_id, now_ms(), status, self.classes) is not None:
                await self.route(ticket_id, via="requeue")
