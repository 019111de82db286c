"""Who may take a ticket: the requirements it waits with, and the tests an agent passes.

Pure functions, shared by the router (``router.pool.exclusions`` adds being online and free
room, which change by the minute) and the console's *Queue* tab (the tickets an agent may
take), so both go by one rule. Nothing here touches the database or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ticket_service import rule_schema


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
        """The fields spelled out, not walked with ``dataclasses.fields``: every pull decision
        serialises its requirements inside the claim's write transaction. ``timeit`` on a
        one-skill rule: 3.1 µs a call walked (``fields`` plus an ABC ``isinstance`` per
        value), 0.35 µs spelled out; under cProfile of ``python -m ops.bench --scenarios
        router`` the walk was 0.32 s of the routers' 5.9 s in the database thread."""
        return {
            "required": dict(self.required), "preferred": dict(self.preferred), "min_tier": self.min_tier,
            "priority": self.priority, "rule_id": self.rule_id, "rule": self.rule,
            "escalate_after_s": self.escalate_after_s, "widen": dict(self.widen), "stage": self.stage,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Requirements:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


def widened(req: Requirements, stage: int) -> Requirements:
    """The requirements at escalation ``stage``: stage 1 drops preferred skills, stage 2
    applies the rule's ``widen`` when it has one."""
    if stage <= 0:
        return req
    out = replace(req, preferred={}, stage=stage)
    if stage >= 2 and req.widen:
        out = replace(
            out, required=dict(req.widen.get("required", req.required)),
            min_tier=int(req.widen.get("min_tier", req.min_tier)),
        )
    return out


def stored(data: object, stage: int) -> Requirements:
    """A waiting ticket's stored requirements (``to_json``) at ``stage``; ``RuleError`` when they
    are not usable (queued before rules were checked)."""
    return widened(Requirements.from_json(rule_schema.requirements(data)), stage)


def with_ticket(req: Requirements, ticket_requirements: Mapping[str, Any] | None) -> Requirements:
    """``req`` with what a trigger's ``require_skills`` / ``require_team`` stored on the ticket
    (``tickets.requirements``) on top, at every escalation stage."""
    extra = (ticket_requirements or {}).get("required")
    if not extra:
        return req
    return Requirements.from_json(rule_schema.with_required(req.to_json(), extra))


def unmet(skills: Mapping[str, int], tier: int, req: Requirements) -> list[str]:
    """Why an agent with ``skills`` and ``tier`` does not qualify under ``req`` (each required
    skill below its level, a tier below the minimum); empty when it qualifies. A team is the
    skill ``team:<name>``."""
    why = []
    for skill, level in req.required.items():
        have = skills.get(skill, 0)
        if have < level:
            why.append(f"skill {skill} {have} < {level}")
    if tier < req.min_tier:
        why.append(f"tier {tier} < {req.min_tier}")
    return why


def serves(capacity: Mapping[str, int], cls: str) -> bool:
    """Whether an agent takes tickets of channel class ``cls`` at all (some capacity for it)."""
    return capacity.get(cls, 0) > 0
