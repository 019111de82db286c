"""Applying the policy: route a ticket, pull from the queue for an agent, escalate, requeue.

Each decision reads a snapshot, ranks with ``router.policy`` outside any transaction, and
then claims in one short write transaction (see ``ticket_service.store.routing`` for the
compare-and-set). A candidate whose capacity went in the meantime is a lost race: the next
candidate is tried.

Decisions are made in rounds (``Assigner.apply``): the routes and pulls of a batch of events
share one read transaction and, on SQLite, one write transaction, so that a round costs
two hops to the database thread and one turn at SQLite's write lock, whatever its size.
(On PostgreSQL each claim keeps its own transaction: claims of different tickets and agents
in one transaction would take row locks out of the ticket-agent-customer order.) The
transactions are synchronous functions run by ``Database.run_read``/``run_write``.

A tenant's agents and rules come from a snapshot kept for ``snapshot_ttl_s``
(``snapshot.Tenant``), updated with this process's own claims and with fresher agent rows.
When a snapshot that old finds no agent able to take a ticket, the claim re-reads the
agents with room before the ticket is queued, and decides again if one of them fits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

import structlog
from sqlalchemy.engine import Connection, Row

from core import metrics
from core.channel import class_of
from core.ids import now_ms
from router import policy, snapshot
from ticket_service.rule_schema import RuleError
from ticket_service.store import routing as store
from ticket_service.store.db import Database

log = structlog.get_logger()
_MAX_TRIES = 20  # candidates tried per decision before the ticket waits for the next pull
_FIRST_LOOK = 16
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


def held(row) -> bool:
    """Someone holds the ticket, or it is closed: it is not routed."""
    return row.status in store.CLOSED or (row.assignee_id is not None and row.assigned_at is not None)


def _us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


# --- the read transaction of a round: what the decisions are made on ------------------

@dataclass(slots=True)
class _RouteRead:
    row: Row | None
    text: str = ""
    waiting: Row | None = None


class _Queue:
    """The head of the queue, read once per tenant and class for all the pulls of a round,
    deep enough for each pull to find its picks after the earlier pulls took theirs."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.taken = conn, set()
        self.pages: dict[tuple[int, str], list[Row]] = {}
        self.requirements: dict[int, policy.Requirements | None] = {}  # per queue entry
        self._depth: dict[tuple[int, str], int] = {}

    def head(self, tenant_id: int, cls: str, n: int) -> list[Row]:
        """The first ``n`` waiting entries not taken yet (fewer when the queue ends)."""
        key = (tenant_id, cls)
        rows, depth = self.pages.get(key, []), self._depth.get(key, 0)
        while True:
            visible = [r for r in rows if r.ticket_id not in self.taken]
            if len(visible) >= n or len(rows) < depth:
                return visible[:n]
            depth = self._depth[key] = max(2 * depth, n + len(rows) - len(visible))
            rows = self.pages[key] = store.queue_page(self.conn, tenant_id, cls, depth)

    def requirement(self, entry: Row) -> policy.Requirements | None:
        """The entry's requirements at its stage; None when they are not usable (nobody takes it)."""
        if entry.id not in self.requirements:
            self.requirements[entry.id] = waiting_requirements(entry)
        return self.requirements[entry.id]


def waiting_requirements(entry: Row) -> policy.Requirements | None:
    """A waiting ticket's requirements; None, logged and counted, when the stored ones are not
    usable (queued before rules were checked). Routing the ticket again replaces them."""
    try:
        return snapshot.requirements(entry.requirements, entry.stage)
    except RuleError as exc:
        metrics.ROUTER_ERRORS.labels("bad_requirements").inc()
        log.error("router.bad_requirements", tenant_id=entry.tenant_id, ticket_id=entry.ticket_id,
                  rule_id=entry.rule_id, error=exc.message)
        return None


def _may_take(agent: policy.Agent, cls: str, req: policy.Requirements | None) -> bool:
    return req is not None and not policy.exclusions(agent, cls, req)


def _eligible_waiting(queue: _Queue, tenant_id: int, agent: policy.Agent, cls: str, scan: int) -> list[Row]:
    """The best waiting tickets of class ``cls`` this agent may take, up to its free capacity."""
    free = agent.free(cls)
    # Most agents can take the head of the queue: look at a few first, more if needed.
    limit = min(_FIRST_LOOK + free, scan)
    while True:
        entries = queue.head(tenant_id, cls, limit)
        picks = [e for e in entries if _may_take(agent, cls, queue.requirement(e))][:free]
        if len(picks) == free or limit >= scan or len(entries) < limit:
            return picks
        limit = scan


@dataclass(slots=True)
class _Read:
    routes: list[_RouteRead]
    tenants: dict[int, tuple[list[Row], list[Row]]]  # agents and rules of tenants without a snapshot
    agents: list[Row | None]  # of the pulls
    queue: _Queue


def _read(conn: Connection, routes: list[int], pulls: list[tuple[int, int]], cached: set[int],
          scan: int) -> _Read:
    """Each ticket's routing state; the agents and rules of tenants without a snapshot; the
    pulling agents, and the queue pages their picks come from."""
    read = _Read([], {}, [], _Queue(conn))
    rows = store.tickets_for_routing(conn, routes)
    open_ids = [t for t in routes if (row := rows.get(t)) is not None and not held(row)]
    texts, waiting = store.first_message_texts(conn, open_ids), store.queued_entries(conn, open_ids)
    for ticket_id in routes:
        row = rows.get(ticket_id)
        if row is None or held(row):
            read.routes.append(_RouteRead(row))
            continue
        read.routes.append(_RouteRead(row, texts[ticket_id], waiting.get(ticket_id)))
        if row.tenant_id not in cached and row.tenant_id not in read.tenants:
            read.tenants[row.tenant_id] = (store.list_agents(conn, row.tenant_id, online_only=True),
                                           store.list_rules(conn, row.tenant_id))
    agents: dict[tuple[int, int], Row] = {}
    for tenant_id in {tenant_id for tenant_id, _ in pulls}:
        ids = [agent_id for t, agent_id in pulls if t == tenant_id]
        agents.update(((tenant_id, i), row) for i, row in store.get_agents(conn, tenant_id, ids).items())
    for tenant_id, agent_id in pulls:
        row = agents.get((tenant_id, agent_id))
        read.agents.append(row)
        if row is not None and row.status == policy.ONLINE:
            agent = snapshot.agent(row)
            for cls in store.CLASSES:
                if agent.free(cls) > 0:
                    read.queue.taken.update(e.ticket_id for e in _eligible_waiting(read.queue, tenant_id, agent,
                                                                                     cls, scan))
    read.queue.conn = None
    return read


# --- the claims of a round, in one write transaction (on SQLite) -------------------------

@dataclass(slots=True)
class _RouteClaim:
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
    queue: dict | None
    detail: dict  # without the claim; ``detail_json`` is it serialized (outside the write lock)
    detail_json: str
    lost: list[int]
    started: float
    replace: bool = False  # the ticket's waiting entry is not usable: the decision replaces it

    def _detail(self, agent_id: int | None, tried: list[int]) -> store.RawJSON:
        claim = json.dumps({"agent_id": agent_id, "lost_race": self.lost + tried})
        return store.RawJSON(f'{self.detail_json[:-1]}, "claim": {claim}}}')

    def apply(self, conn: Connection) -> _Claimed:
        row, cls = self.row, self.cls
        locked = store.lock_ticket(conn, row.id)
        if locked is None or held(locked):
            return _Claimed("held", locked.assignee_id if locked else None)
        if self.replace:
            store.dequeue(conn, row.id)
        if row.language is None:
            store.set_language(conn, row.id, self.language)
        tried: list[int] = []
        now = now_ms()  # the decision was made at self.now; the ticket is assigned as this commits
        for agent_id in self.candidates:
            if not store.take_capacity(conn, agent_id, cls, now):
                tried.append(agent_id)
                continue
            store.take_ticket(conn, row.id, agent_id, now)  # the row lock makes this succeed
            store.remember_agent(conn, row.customer_id, agent_id)
            store.dequeue(conn, row.id)
            store.record(conn, row.tenant_id, row.id, "assigned", now, agent_id=agent_id,
                         rule_id=self.detail["requirements"]["rule_id"], detail=self._detail(agent_id, tried),
                         elapsed_us=_us(self.started))
            return _Claimed("assigned", agent_id, tried)
        with_room = None
        if self.recheck is not None:
            with_room = store.online_agents_with_room(conn, row.tenant_id, cls)
            if any(not policy.exclusions(snapshot.agent(r), cls, self.recheck) for r in with_room):
                return _Claimed("recheck", None, tried, with_room)
        if self.queue is not None:
            store.enqueue(conn, **self.queue)
            store.record(conn, row.tenant_id, row.id, "queued", now, rule_id=self.queue["rule_id"],
                         detail=self._detail(None, tried), elapsed_us=_us(self.started))
        return _Claimed("queued", None, tried, with_room)


@dataclass(slots=True)
class _PullClaim:
    """Take a waiting ticket for the agent: assigned | stale (someone else took it, or it
    closed: it leaves the queue) | full (the agent's room went; the ticket keeps waiting)."""

    entry: Row
    agent_id: int
    now: int
    detail: dict
    started: float

    def apply(self, conn: Connection) -> _Claimed:
        entry = self.entry
        locked = store.lock_ticket(conn, entry.ticket_id)
        if locked is None or held(locked):
            store.dequeue(conn, entry.ticket_id)
            return _Claimed("stale")
        now = now_ms()  # as this commits, not when the walk was planned
        if not store.take_capacity(conn, self.agent_id, entry.channel_class, now):
            return _Claimed("full")
        store.take_ticket(conn, entry.ticket_id, self.agent_id, now)  # the row lock makes this succeed
        store.remember_agent(conn, locked.customer_id, self.agent_id)
        store.dequeue(conn, entry.ticket_id)
        store.record(conn, entry.tenant_id, entry.ticket_id, "assigned", now, agent_id=self.agent_id,
                     rule_id=entry.rule_id, detail=self.detail, elapsed_us=_us(self.started))
        return _Claimed("assigned", self.agent_id, since=locked.created_at)


@dataclass(slots=True)
class _Claimed:
    kind: str
    agent_id: int | None = None
    lost: list[int] | None = None
    with_room: list[Row] | None = None
    since: int = 0


_Walk = Generator[_PullClaim, _Claimed, tuple[list[tuple[_PullClaim, _Claimed]], bool]]


def _pull(tenant_id: int, agent: policy.Agent, queue: _Queue, gone: set[int], scan: int, now: int,
          started: float) -> _Walk:
    """Take the best waiting tickets the agent may, up to its free capacity, from the pages
    read before: a ticket someone took meanwhile (stale) is passed over for the next one.

    Yields each claim and is sent its outcome (see ``_in_one`` and ``_one_each``). Returns
    the claims, and whether the agent may have room left after stale picks (the pages may
    then end too early: the caller pulls again with a fresh read)."""
    claims, short = [], False
    for cls in store.CLASSES:
        free = agent.free(cls)
        if free <= 0:
            continue
        position, skipped, stale = 0, [], False
        for entry in queue.pages.get((tenant_id, cls), ()):
            if free == 0 or position == scan:
                break
            if entry.ticket_id in gone:
                continue
            position += 1
            req = queue.requirement(entry)
            if not _may_take(agent, cls, req):
                skipped.append(entry.ticket_id)
                continue
            claim = _PullClaim(entry, agent.id, now, {
                "via": "pull", "requirements": req.to_json(), "agent_id": agent.id, "agent": agent.name,
                "queue": {"position": position, "waited_s": (now - entry.queued_at) // 1000,
                          "skipped_ineligible": skipped[:20]},
            }, started)
            gone.add(entry.ticket_id)
            outcome = yield claim
            claims.append((claim, outcome))
            if outcome.kind == "full":
                gone.discard(entry.ticket_id)
                free = 0
                break
            if outcome.kind == "stale":  # as if it had not been in the queue when read
                position, stale = position - 1, True
            else:
                free -= 1
        short |= stale and free > 0
    return claims, short


def _in_one(conn: Connection, walk: _Walk):
    """Run a walk's claims in this transaction; its result."""
    try:
        claim = next(walk)
        while True:
            claim = walk.send(claim.apply(conn))
    except StopIteration as done:
        return done.value


async def _apart(db: Database, claim: _PullClaim | _RouteClaim, shared_s: float) -> _Claimed:
    """A claim in a transaction of its own. Its decision took the round's read and decisions
    (``shared_s``) and this transaction, not the claims before it in the round."""
    claim.started = time.perf_counter() - shared_s
    return await db.run_write(claim.apply)


async def _one_each(db: Database, walk: _Walk, shared_s: float):
    """Run each of a walk's claims in a transaction of its own; its result."""
    try:
        claim = next(walk)
        while True:
            claim = walk.send(await _apart(db, claim, shared_s))
    except StopIteration as done:
        return done.value


def _claim(conn: Connection, walks: list[_Walk], routes: list[_RouteClaim]) -> tuple[list, list[_Claimed]]:
    """The write transaction of a round (on SQLite): the pulls, then the routes' claims."""
    return [_in_one(conn, walk) for walk in walks], [claim.apply(conn) for claim in routes]


# --- requeueing ----------------------------------------------------------

def _requeue(conn: Connection, tenant_id: int, ticket_id: int, now: int, status: str,
             classes: Mapping[str, str]) -> int | None:
    freed = store.unassign(conn, ticket_id, now, classes, only_status=store.NOT_STARTED)
    if freed is not None:
        store.record(conn, tenant_id, ticket_id, "requeued", now, agent_id=freed,
                     detail={"reason": f"agent {status}"})
    return freed


def _requeue_candidates(conn: Connection, tenant_id: int, agent_id: int) -> tuple[dict, list[int]]:
    return store.tenant_settings(conn, tenant_id), store.not_started(conn, agent_id)


class Assigner:
    def __init__(self, db: Database, aging_ms: int, classes: Mapping[str, str], scan: int = 200,
                 snapshot_ttl_s: float = SNAPSHOT_TTL_S) -> None:
        self.db, self.aging_ms, self.scan, self.snapshot_ttl_s = db, aging_ms, scan, snapshot_ttl_s
        self.classes = classes  # channel -> capacity class, from the channel registry
        self._tenants: dict[int, snapshot.Tenant] = {}

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
            key = (request.ticket_id,) if isinstance(request, Route) else (request.tenant_id, request.agent_id)
            first = unique.setdefault(key, request)
            if isinstance(request, Route) and request.received_at is not None:
                first.received_at = min(first.received_at or request.received_at, request.received_at)
        results: dict[int, Outcome | int] = {}
        pending = list(unique.values())
        while pending:
            again = []
            for start in range(0, len(pending), _ROUND):
                again += await self._round(pending[start:start + _ROUND], results)
            pending = again
        return [results[id(unique[(r.ticket_id,) if isinstance(r, Route) else (r.tenant_id, r.agent_id)])]
                for r in requests]

    async def _round(self, requests: list[Route | Pull], results: dict[int, Outcome | int]) -> list[Route | Pull]:
        """One read and the decisions; then, in one write transaction (on SQLite), the pulls'
        and the routes' claims. Returns the requests that need another round."""
        started, now = time.perf_counter(), now_ms()
        routes = [r for r in requests if isinstance(r, Route)]
        pulls = [r for r in requests if isinstance(r, Pull)]
        for route in routes:
            route.started, route.now = route.started or started, route.now or now
        oldest = time.monotonic() - self.snapshot_ttl_s
        cached = {t: snap for t, snap in self._tenants.items() if snap.read_at > oldest}
        read = await self.db.run_read(_read, [r.ticket_id for r in routes],
                                      [(p.tenant_id, p.agent_id) for p in pulls], set(cached), self.scan)
        for tenant_id, (agent_rows, rule_rows) in read.tenants.items():
            cached[tenant_id] = self._tenants[tenant_id] = snapshot.Tenant(agent_rows, rule_rows, time.monotonic())

        pulling: list[tuple[Pull, policy.Agent]] = []
        for pull, row in zip(pulls, read.agents, strict=True):
            agent = None if row is None else snapshot.agent(row)
            if agent is not None and (snap := self._tenants.get(pull.tenant_id)) is not None:
                snap.put(agent)  # as it is before this round's claims
            if agent is not None and agent.status == policy.ONLINE and any(
                    read.queue.pages.get((pull.tenant_id, cls)) for cls in store.CLASSES if agent.free(cls) > 0):
                pulling.append((pull, agent))
            else:
                results[id(pull)] = pull.taken
        plans: list[tuple[Route, snapshot.Tenant, int | None]] = []
        claims: list[_RouteClaim] = []
        for route, route_read in zip(routes, read.routes, strict=True):
            row = route_read.row
            if row is None:
                results[id(route)] = Outcome("missing", route.ticket_id)
            elif held(row):
                results[id(route)] = Outcome("held", route.ticket_id, row.assignee_id)
            else:
                snap = cached[row.tenant_id]
                claims.append(self._plan_route(route, route_read, snap, row.tenant_id in read.tenants))
                planned = claims[-1].candidates[0] if claims[-1].candidates else None
                if planned is not None:
                    snap.took(planned, claims[-1].cls, route.now)  # so the next decisions see it
                plans.append((route, snap, planned))
        if not claims and not pulling:
            return []

        gone: set[int] = set()
        walks = [_pull(pull.tenant_id, agent, read.queue, gone, self.scan, now, started)
                 for pull, agent in pulling]
        if self.db.is_sqlite:
            pulled, claimed = await self.db.run_write(_claim, walks, claims)
        else:  # a transaction per claim (see the module docstring)
            shared_s = time.perf_counter() - started
            pulled = [await _one_each(self.db, walk, shared_s) for walk in walks]
            claimed = [await _apart(self.db, claim, shared_s) for claim in claims]
        again: list[Route | Pull] = []
        for (pull, agent), (pull_claims, short) in zip(pulling, pulled, strict=True):
            snap = self._tenants.get(pull.tenant_id)
            for claim, outcome in pull_claims:
                cls = claim.entry.channel_class
                if outcome.kind == "assigned":
                    pull.taken += 1
                    if snap is not None:
                        snap.took(agent.id, cls, now)
                    self._assigned(claim.entry.ticket_id, agent.id, outcome.since, "pull")
                elif outcome.kind == "full":
                    metrics.ROUTER_DECISIONS.labels("lost_race").inc()
                    if snap is not None:
                        snap.full(agent.id, cls)
            if short:  # stale picks left a slot free: look again
                again.append(pull)
            else:
                results[id(pull)] = pull.taken
        for (route, snap, planned), claim, outcome in zip(plans, claims, claimed, strict=True):
            if planned is not None:
                snap.undo(planned, claim.cls)
            self._routed(route, claim, snap, outcome, results, again)
        return again

    def _plan_route(self, route: Route, read: _RouteRead, snap: snapshot.Tenant, fresh: bool) -> _RouteClaim:
        row, now = read.row, route.now
        language = row.language or policy.detect_language(read.text)
        ticket = snapshot.ticket(row, language, read.text)
        waiting = read.waiting
        req = None if waiting is None else waiting_requirements(waiting)
        replace, trace = waiting is not None and req is None, []
        if req is None:
            rule, trace = policy.match_rule(snap.rules, ticket)
            req = policy.requirements(rule)
        cls = class_of(self.classes, ticket.channel)
        decision = policy.decide(ticket, snap.pool, req, now, cls)
        detail = {"via": route.via, "language": language, "rules": trace, "requirements": req.to_json(),
                  **decision.explain()}
        since = waiting.queued_at if replace else now  # a replaced entry keeps its place
        queue = None if waiting is not None and not replace else {
            "tenant_id": row.tenant_id, "ticket_id": row.id, "channel_class": cls, "vip_tier": row.vip_tier,
            "rank": policy.queue_rank(since, row.vip_tier, req.priority, self.aging_ms), "queued_at": since,
            "rule_id": req.rule_id, "requirements": req.to_json(), "stage": 0,
            "next_stage_at": policy.next_stage_at(req, since, 0),
        }
        # A snapshot from an earlier read is re-checked before the ticket is queued.
        recheck = None if fresh or route.rechecked else req
        return _RouteClaim(row, language, [agent.id for agent, _ in decision.top(_MAX_TRIES)], cls, now, recheck,
                           queue, detail, json.dumps(detail), list(route.lost), route.started, replace)

    def _routed(self, route: Route, claim: _RouteClaim, snap: snapshot.Tenant, outcome: _Claimed, results: dict,
                again: list) -> None:
        for agent_id in outcome.lost or ():
            snap.full(agent_id, claim.cls)
        if outcome.with_room is not None:
            snap.recheck(claim.cls, outcome.with_room)
        route.lost += outcome.lost or []
        if outcome.kind == "recheck":
            route.rechecked = True
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
            snap.took(outcome.agent_id, claim.cls, claim.now)
            self._assigned(route.ticket_id, outcome.agent_id, route.received_at or claim.row.created_at, route.via)
            results[id(route)] = Outcome("assigned", route.ticket_id, outcome.agent_id)

    def _assigned(self, ticket_id: int, agent_id: int, since_ms: int, via: str) -> None:
        metrics.ROUTER_DECISIONS.labels("assigned").inc()
        metrics.INGRESS_TO_ASSIGNED.observe(max(now_ms() - since_ms, 0) / 1000)
        log.info("router.assigned", ticket_id=ticket_id, agent_id=agent_id, via=via)

    # --- agents leaving ---------------------------------------------------------------------

    async def agent_changed(self, tenant_id: int, agent_id: int, status: str) -> None:
        """Online: pull. Away/offline: per tenant setting, hand back tickets not started yet."""
        self.forget(tenant_id)
        if status == policy.ONLINE:
            await self.pull(tenant_id, agent_id)
            return
        settings, tickets = await self.db.run_read(_requeue_candidates, tenant_id, agent_id)
        if status not in store.requeue_statuses(settings):
            return
        for ticket_id in tickets:
            if await self.db.run_write(_requeue, tenant_id, ticket_id, now_ms(), status, self.classes) is not None:
                await self.route(ticket_id, via="requeue")
