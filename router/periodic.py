"""The router's periodic pass: due escalations, load drift, pulls for agents with room, queue depths.

Each entry is handled on its own: a due escalation, a tenant's load correction or an agent's
pull that fails is logged at error with its tenant and ticket or agent, counted
(``switchboard_router_errors_total``) and passed over, and the pass goes on with the others.
Only a database outage ends the pass early: nothing after it could succeed either.
"""

from __future__ import annotations

import structlog
from sqlalchemy.engine import Connection, Row

from core import metrics
from core.ids import now_ms
from router import policy, snapshot
from router.batch import Assigner, Pull
from router.outcome import Decision
from ticket_service.rule_schema import RuleError
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import queue as queue_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import is_outage

log = structlog.get_logger()
DUE_PAGE = 200  # due escalations read per pass
RETRY_MS = 60_000  # a due escalation that failed waits this long before it is due again


def _waiting(conn: Connection, entry: Row) -> Row | None:
    """The ticket row-locked while it still waits; a ticket held or closed meanwhile leaves the queue."""
    locked = tickets_store.lock_ticket(conn, entry.ticket_id)
    if locked is None or tickets_store.held(locked):
        queue_store.dequeue(conn, entry.ticket_id)
        return None
    return locked


def _still_waiting(conn: Connection, entry: Row) -> bool:
    return _waiting(conn, entry) is not None


def _escalate(conn: Connection, entry: Row, stage: int, base: policy.Requirements, now: int) -> bool:
    """Move a waiting ticket to ``stage``; False when it is no longer waiting (it is dequeued)."""
    locked = _waiting(conn, entry)
    if locked is None:
        return False
    queue_store.set_stage(conn, entry.ticket_id, stage, policy.next_stage_at(base, entry.queued_at, stage))
    if stage > entry.stage:
        tags = list(locked.tags or [])
        if policy.ESCALATED_TAG not in tags:
            tickets_store.set_tags(conn, entry.ticket_id, [*tags, policy.ESCALATED_TAG])
        decisions_store.record(conn, entry.tenant_id, entry.ticket_id, Decision.ESCALATED, now, rule_id=entry.rule_id,
                     detail={"stage": stage, "requirements": policy.widened(base, stage).to_json(),
                             "waited_s": (now - entry.queued_at) // 1000})
    return True


def failed(exc: Exception, kind: str, **context: object) -> None:
    """Log and count one entry of the pass that failed; an outage is raised on."""
    if is_outage(exc):
        raise exc
    metrics.ROUTER_ERRORS.labels(kind).inc()
    log.error(f"router.{kind}_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc, **context)


class Periodic:
    """The periodic pass of one router process (one instance per interval runs it)."""

    def __init__(self, assigner: Assigner) -> None:
        self.assigner, self.db = assigner, assigner.db
        self._depth_labels: set[tuple[str, str]] = set()

    async def run(self) -> None:
        await self.escalate_due()
        await self.reconcile()

    async def escalate_due(self, limit: int = DUE_PAGE) -> int:
        """Move waiting tickets past their rule's escalation time to the next stage; retry them."""
        now = now_ms()
        due = await self.db.run_read(queue_store.due_escalations, now, limit)
        for entry in due:
            try:
                await self._escalate_one(entry, now)
            except Exception as exc:
                failed(exc, "escalation", tenant_id=entry.tenant_id, ticket_id=entry.ticket_id)
                await self._postpone(entry, now + RETRY_MS)
        return len(due)

    async def _escalate_one(self, entry: Row, now: int) -> None:
        try:
            base = snapshot.requirements(entry.requirements, 0)
        except RuleError:
            # Stored before rules were checked: route the ticket again, by the rules as they are
            # now; the new decision replaces the waiting entry (see ``Assigner._plan_route``).
            if await self.db.run_write(_still_waiting, entry):
                await self.assigner.route(entry.ticket_id, via="repair")
            return
        stage = max(policy.escalation_stage(base, now - entry.queued_at), entry.stage)
        if not await self.db.run_write(_escalate, entry, stage, base, now):
            return
        if stage > entry.stage:
            metrics.ROUTER_DECISIONS.labels(Decision.ESCALATED).inc()
            log.info("router.escalated", tenant_id=entry.tenant_id, ticket_id=entry.ticket_id, stage=stage)
            await self.assigner.route(entry.ticket_id, via="escalation")

    async def _postpone(self, entry: Row, at: int) -> None:
        """So that entries that keep failing cannot fill the page of due escalations."""
        try:
            await self.db.run_write(queue_store.postpone_stage, entry.ticket_id, at)
        except Exception as exc:
            failed(exc, "escalation", tenant_id=entry.tenant_id, ticket_id=entry.ticket_id)

    async def reconcile(self) -> None:
        """Correct load drift, let every agent with room pull, and publish queue depths."""
        self.assigner.forget()
        for tenant_id in await self.db.run_read(tickets_store.tenant_ids):
            try:
                fixes = await self.db.run_write(agents_store.reconcile_loads, tenant_id,
                                                 self.assigner.classes)
            except Exception as exc:
                failed(exc, "reconcile", tenant_id=tenant_id)
                fixes = []
            for agent_id, cls, was, now in fixes:
                log.warning("router.load_drift", tenant_id=tenant_id, agent_id=agent_id, channel_class=cls,
                            was=was, now=now)
            await self._pulls(tenant_id)
        await self.publish_depths()

    async def _pulls(self, tenant_id: int) -> None:
        """The tenant's agents with room pull together; when that fails, each on its own."""
        try:
            room = await self.db.run_read(agents_store.agents_with_room, tenant_id)
        except Exception as exc:
            failed(exc, "pull", tenant_id=tenant_id)
            return
        try:
            await self.assigner.apply([Pull(tenant_id, agent_id) for agent_id in room])
            return
        except Exception as exc:
            failed(exc, "pull", tenant_id=tenant_id, agents=len(room))
        for agent_id in room:
            try:
                await self.assigner.pull(tenant_id, agent_id)
            except Exception as exc:
                failed(exc, "pull", tenant_id=tenant_id, agent_id=agent_id)

    async def publish_depths(self) -> None:
        depths = await self.db.run_read(queue_store.depths)
        seen = set()
        for slug, tier, count in depths:
            metrics.ROUTER_QUEUE_DEPTH.labels(slug, str(tier)).set(count)
            seen.add((slug, str(tier)))
        for labels in self._depth_labels - seen:
            metrics.ROUTER_QUEUE_DEPTH.labels(*labels).set(0)
        self._depth_labels = seen
