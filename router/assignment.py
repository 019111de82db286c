"""Applying the policy: route a ticket, pull from the queue for an agent, escalate, requeue.

Each decision reads a snapshot, ranks with ``router.policy`` outside any transaction, and
then claims in one short write transaction (see ``ticket_service.store.routing`` for the
compare-and-set). A candidate whose capacity went in the meantime is a lost race: the next
candidate is tried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from core import metrics
from core.ids import now_ms
from router import policy, snapshot
from ticket_service.store import routing as store
from ticket_service.store.db import Database

log = structlog.get_logger()
_MAX_TRIES = 20  # candidates tried per decision before the ticket waits for the next pull
_FIRST_LOOK = 16


@dataclass(slots=True)
class Outcome:
    """assigned | queued | held (someone holds it, or it is closed) | missing."""

    kind: str
    ticket_id: int
    agent_id: int | None = None


class _Rollback(Exception):
    """Raised inside a write transaction to undo it."""


def _held(row) -> bool:
    return row.status in store.CLOSED or (row.assignee_id is not None and row.assigned_at is not None)


def _us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


class Assigner:
    def __init__(self, db: Database, aging_ms: int, scan: int = 200) -> None:
        self.db, self.aging_ms, self.scan = db, aging_ms, scan
        self._depth_labels: set[tuple[str, str]] = set()

    # --- a ticket looks for an agent ----------------------------------------------------

    async def route(self, ticket_id: int, received_at: int | None = None, via: str = "event") -> Outcome:
        started, now = time.perf_counter(), now_ms()
        async with self.db.read() as conn:
            row = await store.ticket_for_routing(conn, ticket_id)
            if row is None:
                return Outcome("missing", ticket_id)
            if _held(row):
                return Outcome("held", ticket_id, row.assignee_id)
            text = await store.first_message_text(conn, ticket_id)
            rules = [snapshot.rule(r) for r in await store.list_rules(conn, row.tenant_id)]
            agents = [snapshot.agent(a) for a in await store.list_agents(conn, row.tenant_id, online_only=True)]
            waiting = await store.queued(conn, ticket_id)
        language = row.language or policy.detect_language(text)
        ticket = snapshot.ticket(row, language, text)
        if waiting is not None:
            base = policy.Requirements.from_json(waiting.requirements)
            req, trace = policy.widened(base, waiting.stage), []
        else:
            rule, trace = policy.match_rule(rules, ticket)
            req = policy.requirements(rule)
        decision = policy.decide(ticket, agents, req, now)
        cls = policy.channel_class(ticket.channel)
        detail = {"via": via, "language": language, "rules": trace, "requirements": req.to_json(),
                  **decision.explain()}
        async with self.db.write() as conn:
            locked = await store.lock_ticket(conn, ticket_id)
            if locked is None or _held(locked):
                return Outcome("held", ticket_id, locked.assignee_id if locked else None)
            if row.language is None:
                await store.set_language(conn, ticket_id, language)
            lost: list[int] = []
            for agent, _ in decision.ranked[:_MAX_TRIES]:
                if not await store.take_capacity(conn, agent.id, cls, now):
                    lost.append(agent.id)
                    continue
                await store.take_ticket(conn, ticket_id, agent.id, now)  # the row lock makes this succeed
                await store.remember_agent(conn, row.customer_id, agent.id)
                await store.dequeue(conn, ticket_id)
                detail["claim"] = {"agent_id": agent.id, "lost_race": lost}
                await store.record(conn, row.tenant_id, ticket_id, "assigned", now, agent_id=agent.id,
                                   rule_id=req.rule_id, detail=detail, elapsed_us=_us(started))
                break
            else:
                agent = None
                if waiting is None:
                    await store.enqueue(
                        conn, tenant_id=row.tenant_id, ticket_id=ticket_id, channel_class=cls,
                        vip_tier=row.vip_tier, rank=policy.queue_rank(now, row.vip_tier, req.priority, self.aging_ms),
                        queued_at=now, rule_id=req.rule_id, requirements=req.to_json(),
                        stage=0, next_stage_at=policy.next_stage_at(req, now, 0),
                    )
                    detail["claim"] = {"agent_id": None, "lost_race": lost}
                    await store.record(conn, row.tenant_id, ticket_id, "queued", now, rule_id=req.rule_id,
                                       detail=detail, elapsed_us=_us(started))
        metrics.ROUTER_DECISIONS.labels("lost_race").inc(len(lost))
        if agent is None:
            if waiting is None:
                metrics.ROUTER_DECISIONS.labels("queued").inc()
                log.info("router.queued", ticket_id=ticket_id, rule=req.rule, candidates=len(decision.ranked))
            return Outcome("queued", ticket_id)
        self._assigned(ticket_id, agent.id, received_at or row.created_at, via)
        return Outcome("assigned", ticket_id, agent.id)

    def _assigned(self, ticket_id: int, agent_id: int, since_ms: int, via: str) -> None:
        metrics.ROUTER_DECISIONS.labels("assigned").inc()
        metrics.INGRESS_TO_ASSIGNED.observe(max(now_ms() - since_ms, 0) / 1000)
        log.info("router.assigned", ticket_id=ticket_id, agent_id=agent_id, via=via)

    # --- an agent with room pulls the best waiting ticket it may take -------------------

    async def pull(self, tenant_id: int, agent_id: int) -> int:
        """Fill the agent's free capacity from the queue; returns how many tickets it took."""
        taken = 0
        while True:
            started, now = time.perf_counter(), now_ms()
            async with self.db.read() as conn:
                row = await store.get_agent(conn, tenant_id, agent_id)
                if row is None or row.status != policy.ONLINE:
                    return taken
                agent = snapshot.agent(row)
                picks = [pick for cls in store.CLASSES if agent.free(cls) > 0
                         for pick in await self._eligible_waiting(conn, tenant_id, agent, cls)]
            if not picks:
                return taken
            read_us = _us(started)
            picks.sort(key=lambda pick: (pick[0].rank, pick[0].id))
            stale = False
            for entry, req, position, skipped in picks:
                result = await self._claim_waiting(entry, agent, now, {
                    "via": "pull", "requirements": req.to_json(), "agent_id": agent.id, "agent": agent.name,
                    "queue": {"position": position, "waited_s": (now - entry.queued_at) // 1000,
                              "skipped_ineligible": skipped[:20]},
                }, read_us)
                taken += result == "assigned"
                stale |= result == "stale"
            if not stale:  # a stale pick left a slot free: look again
                return taken

    async def _eligible_waiting(self, conn, tenant_id: int, agent: policy.Agent, cls: str) -> list[tuple]:
        """The best waiting tickets of class ``cls`` this agent may take, up to its free capacity."""
        free = agent.free(cls)
        # Most agents can take the head of the queue: look at a few first, more if needed.
        limit = min(_FIRST_LOOK + free, self.scan)
        while True:
            entries = await store.queue_page(conn, tenant_id, cls, limit)
            picks, skipped = [], []
            for position, entry in enumerate(entries, 1):
                req = policy.widened(policy.Requirements.from_json(entry.requirements), entry.stage)
                if policy.exclusions(agent, cls, req):
                    skipped.append(entry.ticket_id)
                    continue
                picks.append((entry, req, position, list(skipped)))
                if len(picks) == free:
                    return picks
            if limit >= self.scan or len(entries) < limit:
                return picks
            limit = self.scan

    async def _claim_waiting(self, entry, agent: policy.Agent, now: int, detail: dict, read_us: int) -> str:
        """assigned | stale (someone else took it, or it closed) | full (the agent's room went)."""
        started = time.perf_counter()
        try:
            async with self.db.write() as conn:
                took = await store.take_ticket(conn, entry.ticket_id, agent.id, now)
                if took is None:
                    await store.dequeue(conn, entry.ticket_id)
                    return "stale"
                if not await store.take_capacity(conn, agent.id, entry.channel_class, now):
                    raise _Rollback
                await store.remember_agent(conn, took.customer_id, agent.id)
                await store.dequeue(conn, entry.ticket_id)
                await store.record(conn, entry.tenant_id, entry.ticket_id, "assigned", now, agent_id=agent.id,
                                   rule_id=entry.rule_id, detail=detail, elapsed_us=read_us + _us(started))
        except _Rollback:
            metrics.ROUTER_DECISIONS.labels("lost_race").inc()
            return "full"
        self._assigned(entry.ticket_id, agent.id, took.created_at, "pull")
        return "assigned"

    # --- waiting too long, agents leaving, drift ----------------------------------------

    async def escalate_due(self, limit: int = 200) -> int:
        """Move waiting tickets past their rule's escalation time to the next stage; retry them."""
        now = now_ms()
        async with self.db.read() as conn:
            due = await store.due_escalations(conn, now, limit)
        for entry in due:
            base = policy.Requirements.from_json(entry.requirements)
            stage = max(policy.escalation_stage(base, now - entry.queued_at), entry.stage)
            async with self.db.write() as conn:
                locked = await store.lock_ticket(conn, entry.ticket_id)
                if locked is None or _held(locked):
                    await store.dequeue(conn, entry.ticket_id)
                    continue
                await store.set_stage(conn, entry.ticket_id, stage, policy.next_stage_at(base, entry.queued_at, stage))
                if stage > entry.stage:
                    tags = list(locked.tags or [])
                    if policy.ESCALATED_TAG not in tags:
                        await store.set_tags(conn, entry.ticket_id, [*tags, policy.ESCALATED_TAG])
                    await store.record(conn, entry.tenant_id, entry.ticket_id, "escalated", now, rule_id=entry.rule_id,
                                       detail={"stage": stage, "requirements": policy.widened(base, stage).to_json(),
                                               "waited_s": (now - entry.queued_at) // 1000})
            if stage > entry.stage:
                metrics.ROUTER_DECISIONS.labels("escalated").inc()
                log.info("router.escalated", ticket_id=entry.ticket_id, stage=stage)
                await self.route(entry.ticket_id, via="escalation")
        return len(due)

    async def agent_changed(self, tenant_id: int, agent_id: int, status: str) -> None:
        """Online: pull. Away/offline: per tenant setting, hand back tickets not started yet."""
        if status == policy.ONLINE:
            await self.pull(tenant_id, agent_id)
            return
        async with self.db.read() as conn:
            settings = await store.tenant_settings(conn, tenant_id)
            tickets = await store.not_started(conn, agent_id)
        if status not in store.requeue_statuses(settings):
            return
        for ticket_id in tickets:
            now = now_ms()
            async with self.db.write() as conn:
                freed = await store.unassign(conn, ticket_id, now, only_status=store.NOT_STARTED)
                if freed is not None:
                    await store.record(conn, tenant_id, ticket_id, "requeued", now, agent_id=freed,
                                       detail={"reason": f"agent {status}"})
            if freed is not None:
                await self.route(ticket_id, via="requeue")

    async def reconcile(self) -> None:
        """Correct load drift, let every agent with room pull, and publish queue depths."""
        async with self.db.read() as conn:
            tenants = await store.tenant_ids(conn)
        for tenant_id in tenants:
            async with self.db.write() as conn:
                fixes = await store.reconcile_loads(conn, tenant_id)
            for agent_id, cls, was, now in fixes:
                log.warning("router.load_drift", agent_id=agent_id, channel_class=cls, was=was, now=now)
            async with self.db.read() as conn:
                room = await store.agents_with_room(conn, tenant_id)
            for agent_id in room:
                await self.pull(tenant_id, agent_id)
        await self.publish_depths()

    async def publish_depths(self) -> None:
        async with self.db.read() as conn:
            depths = await store.queue_depths(conn)
        seen = set()
        for slug, tier, count in depths:
            metrics.ROUTER_QUEUE_DEPTH.labels(slug, str(tier)).set(count)
            seen.add((slug, str(tier)))
        for labels in self._depth_labels - seen:
            metrics.ROUTER_QUEUE_DEPTH.labels(*labels).set(0)
        self._depth_labels = seen
