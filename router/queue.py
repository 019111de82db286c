"""The head of the waiting queue as a round of decisions sees it, and who may take what."""

from __future__ import annotations

import structlog
from sqlalchemy.engine import Connection, Row

from core import metrics
from router import policy, snapshot
from router.pool import Agent, exclusions
from ticket_service.rule_schema import RuleError
from ticket_service.store import queue as queue_store
from ticket_service.store import route_sets

log = structlog.get_logger()
_FIRST_LOOK = 16  # waiting tickets looked at before a deeper read, beyond the agent's free room


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


def may_take(agent: Agent, cls: str, req: policy.Requirements | None) -> bool:
    return req is not None and not exclusions(agent, cls, req)


class QueueHead:
    """The head of the queue, read once per tenant and class for all the pulls of a round,
    deep enough for each pull to find its picks after the earlier pulls took theirs.

    ``read`` only while the round's read transaction is open; afterwards the pages are fixed.
    """

    def __init__(self) -> None:
        self.taken: set[int] = set()
        self.pages: dict[tuple[int, str], list[Row]] = {}
        self._requirements: dict[int, policy.Requirements | None] = {}  # per queue entry
        self._depth: dict[tuple[int, str], int] = {}

    def prefetch(self, conn: Connection, free: dict[tuple[int, str], int], scan: int) -> None:
        """Read every (tenant, class) page of the round at once (``route_sets.queue_pages``),
        deep enough when the pulls take from the head, with room for picks another router's
        round holds (passed over); ``free``: the pulls' free room per (tenant, class)."""
        limits = {key: min(_FIRST_LOOK + n * 2, scan + n) for key, n in free.items() if key not in self.pages}
        for key, rows in route_sets.queue_pages(conn, limits).items():
            self.pages[key], self._depth[key] = rows, limits[key]

    def page(self, tenant_id: int, cls: str) -> list[Row]:
        return self.pages.get((tenant_id, cls), [])

    def head(self, conn: Connection, tenant_id: int, cls: str, n: int) -> list[Row]:
        """The first ``n`` waiting entries not taken yet (fewer when the queue ends)."""
        key = (tenant_id, cls)
        rows, depth = self.pages.get(key, []), self._depth.get(key, 0)
        while True:
            visible = [r for r in rows if r.ticket_id not in self.taken]
            if len(visible) >= n or len(rows) < depth:
                return visible[:n]
            depth = self._depth[key] = max(2 * depth, n + len(rows) - len(visible))
            rows = self.pages[key] = queue_store.page(conn, tenant_id, cls, depth)

    def requirement(self, entry: Row) -> policy.Requirements | None:
        """The entry's requirements at its stage; None when they are not usable (nobody takes it)."""
        if entry.id not in self._requirements:
            self._requirements[entry.id] = waiting_requirements(entry)
        return self._requirements[entry.id]

    def reserve(self, conn: Connection, tenant_id: int, agent: Agent, cls: str, scan: int) -> None:
        """Read deep enough for the best waiting ``cls`` tickets this agent may take, up to its
        free capacity, and mark them taken for the pulls read after it."""
        free = agent.free(cls)
        # Most agents can take the head of the queue: look at a few first, more if needed.
        limit = min(_FIRST_LOOK + free, scan)
        while True:
            entries = self.head(conn, tenant_id, cls, limit)
            picks = [e for e in entries if may_take(agent, cls, self.requirement(e))][:free]
            if len(picks) == free or limit >= scan or len(entries) < limit:
                self.taken.update(e.ticket_id for e in picks)
                return
            limit = scan
