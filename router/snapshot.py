"""Store rows into the policy's snapshot types, and the router's per-tenant snapshot cache."""

from __future__ import annotations

import structlog
from sqlalchemy.engine import Row

from core import metrics
from router import policy
from router.pool import Agent, Pool
from ticket_service import eligibility, rule_schema
from ticket_service.store import agents as store
from ticket_service.store import rules as rules_store

log = structlog.get_logger()

_AT = {column.name: i for i, column in enumerate(store.AGENT_COLS)}
_ID, _NAME, _STATUS, _TIER, _SKILLS, _LAST = (_AT[n] for n in ("id", "name", "status", "tier", "skills",
                                                              "last_assigned_at"))
_CAP = tuple((c, _AT[f"cap_{c}"]) for c in store.CLASSES)
_LOAD = tuple((c, _AT[f"load_{c}"]) for c in store.CLASSES)


def agent(row: Row) -> Agent:
    """An agent from a row of ``store.AGENT_COLS`` (by position: snapshots convert many)."""
    t = tuple(row)
    return Agent(
        id=t[_ID], name=t[_NAME], status=t[_STATUS], tier=t[_TIER], skills=dict(t[_SKILLS] or {}),
        capacity={c: t[i] for c, i in _CAP}, load={c: t[i] for c, i in _LOAD}, last_assigned_at=t[_LAST],
    )


def rule(row: Row) -> policy.Rule:
    """A stored rule, checked as the API checks a new one; ``RuleError`` when it is not usable."""
    fields = rule_schema.rule(rules_store.fields(row))
    fields.pop("position", None)
    return policy.Rule(id=row.id, **fields)


def usable_rules(rows: list[Row]) -> list[policy.Rule]:
    """The rules routing goes by: a stored rule the API would refuse (written before rules
    were checked, or by hand) is passed over, logged and counted, so it breaks nobody's routing."""
    rules = []
    for row in rows:
        try:
            rules.append(rule(row))
        except rule_schema.RuleError as exc:
            metrics.ROUTER_ERRORS.labels("bad_rule").inc()
            log.error("router.bad_rule", tenant_id=row.tenant_id, rule_id=row.id, error=exc.message)
    return rules


def requirements(data: object, stage: int) -> policy.Requirements:
    """A waiting ticket's stored requirements at ``stage``; ``RuleError`` when they are not usable."""
    return eligibility.stored(data, stage)


def ticket(row: Row, language: str, text: str) -> policy.Ticket:
    return policy.Ticket(
        id=row.id, channel=row.channel, account_id=row.account_id, customer_tier=row.vip_tier,
        priority=row.priority, tags=tuple(row.tags or ()), language=language, text=text,
        previous_agent=row.last_agent_id,
    )


class Tenant:
    """A tenant's online agents and rules as read at ``read_at``, kept current with what this
    process learns afterwards: its own claims, lost races, fresher agent rows.

    Routing from it is safe while it is a little stale: a claim is a compare-and-set, so an
    agent that filled up meanwhile is a lost race and the next candidate is tried.
    """

    __slots__ = ("pool", "rules", "read_at")

    def __init__(self, agent_rows: list[Row], rule_rows: list[Row], read_at: float) -> None:
        self.pool = Pool(agent(r) for r in agent_rows)
        self.rules = usable_rules(rule_rows)
        self.read_at = read_at

    def put(self, fresh: Agent) -> None:
        """An agent read after the snapshot: replace it, add it, or drop it when not online."""
        if fresh.status == policy.ONLINE:
            self.pool.put(fresh)
        else:
            self.pool.remove(fresh.id)

    def took(self, agent_id: int, cls: str, now: int) -> None:
        """This process gave the agent one more ``cls`` ticket (``take_capacity``)."""
        a = self.pool.get(agent_id)
        if a is not None:
            self.pool.put(a.with_load(cls, a.load.get(cls, 0) + 1, now))

    def undo(self, agent_id: int, cls: str) -> None:
        """A ``took`` that did not happen after all."""
        a = self.pool.get(agent_id)
        if a is not None:
            self.pool.put(a.with_load(cls, max(a.load.get(cls, 0) - 1, 0)))

    def stands(self, agent_id: int, cls: str, now: int) -> bool:
        """Whether a ``took`` at ``now`` that did happen may stay as it is: ``undo`` and
        ``took`` again would leave the agent as they found it (the usual case, skipped)."""
        a = self.pool.get(agent_id)
        return a is None or (a.load.get(cls, 0) >= 1 and a.last_assigned_at == now)

    def full(self, agent_id: int, cls: str) -> None:
        """A claim on the agent failed: it has no ``cls`` room (or is not online) any more."""
        a = self.pool.get(agent_id)
        if a is not None and a.free(cls) > 0:
            self.pool.put(a.with_load(cls, a.capacity.get(cls, 0)))

    def recheck(self, cls: str, with_room: list[Row]) -> None:
        """Fresh rows of every online agent with ``cls`` room: any other agent has none."""
        fresh = {r.id for r in with_room}
        for a in list(self.pool):
            if a.id not in fresh:
                self.full(a.id, cls)
        for r in with_room:
            self.put(agent(r))
