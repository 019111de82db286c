"""Who may take a ticket, as the router and the console's queue tab both decide it."""

import pytest

from router import pool as agent_pool
from router.pool import Agent
from ticket_service import eligibility
from ticket_service.eligibility import Requirements
from ticket_service.rule_schema import RuleError


def test_unmet_names_each_missing_skill_and_the_tier_and_the_router_adds_status_and_room():
    req = Requirements(required={"zh": 3, "team:billing": 1}, min_tier=2)
    assert eligibility.unmet({"zh": 2}, 1, req) == ["skill zh 2 < 3", "skill team:billing 0 < 1", "tier 1 < 2"]
    assert eligibility.unmet({"zh": 3, "team:billing": 1, "extra": 9}, 2, req) == []
    # The router's reasons are the same ones, with being online before and free room after.
    away = Agent(1, "a", "away", 1, {"zh": 2}, {"email": 1}, {"email": 1})
    assert agent_pool.exclusions(away, "email", req) == [
        "status away", "skill zh 2 < 3", "skill team:billing 0 < 1", "tier 1 < 2", "email load 1/1"]


def test_serves_is_some_capacity_for_the_class_whatever_the_load():
    assert eligibility.serves({"email": 2, "chat": 0}, "email") is True
    assert eligibility.serves({"email": 2, "chat": 0}, "chat") is False
    assert eligibility.serves({}, "voice") is False


def test_a_triggers_requirement_goes_on_top_at_every_stage_keeping_the_higher_level():
    req = Requirements(required={"zh": 2}, escalate_after_s=60, widen={"required": {}, "min_tier": 0})
    both = eligibility.with_ticket(req, {"required": {"zh": 1, "refunds": 2}})
    assert both.required == {"zh": 2, "refunds": 2}
    # Widened, the rule drops its zh 2; the trigger's zh 1 and refunds 2 stay.
    assert eligibility.widened(both, 2).required == {"zh": 1, "refunds": 2}
    assert eligibility.with_ticket(req, None) is req
    assert eligibility.with_ticket(req, {"team": "billing"}) is req  # "required" is what counts


def test_stored_requirements_are_checked_and_widened_to_their_stage():
    req = Requirements(required={"zh": 3}, preferred={"vip": 1}, escalate_after_s=30,
                       widen={"required": {"zh": 1}, "min_tier": 0}, min_tier=2)
    assert eligibility.stored(req.to_json(), 0) == req
    one = eligibility.stored(req.to_json(), 1)
    assert (one.required, one.min_tier, one.preferred, one.stage) == ({"zh": 3}, 2, {}, 1)
    two = eligibility.stored(req.to_json(), 2)
    assert (two.required, two.min_tier, two.preferred, two.stage) == ({"zh": 1}, 0, {}, 2)
    with pytest.raises(RuleError):
        eligibility.stored({"required": {"zh": "three"}}, 0)
