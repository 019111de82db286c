"""What the router decided for a ticket: the ``outcome`` of a ``routing_decisions`` row and
the label of ``switchboard_router_decisions_total``."""

from __future__ import annotations

from enum import StrEnum


class Decision(StrEnum):
    ASSIGNED = "assigned"  # an agent claimed the ticket
    QUEUED = "queued"  # no eligible agent with room: the ticket waits in the queue
    ESCALATED = "escalated"  # a waiting ticket moved to its next stage of wider requirements
    LOST_RACE = "lost_race"  # the chosen agent filled up first (counted, not recorded)
    SKIPPED = "skipped"  # opened by bulk mail: no agent is given it
