"""The rule schema accepts every shape the policy reads and nothing it would trip over."""

import pytest

from router import policy, snapshot
from ticket_service import rule_schema
from ticket_service.api import body
from ticket_service.api.errors import ApiError
from ticket_service.rule_schema import RuleError

FULL = {
    "name": "vip chinese", "position": 1, "priority": 3, "min_tier": 2, "escalate_after_s": 60,
    "match": {"channels": ["email", "wechat"], "accounts": [1, 2], "tags": ["b2b"], "languages": ["zh"],
              "keywords": ["退款", "refund"], "min_customer_tier": 1},
    "required": {"chinese": 4}, "preferred": {"refunds": 2}, "widen": {"required": {"chinese": 2}, "min_tier": 0},
}


def test_a_rule_with_every_field_is_kept_as_given_and_the_policy_can_use_it():
    fields = rule_schema.rule(FULL)
    assert fields == FULL
    rule = policy.Rule(id=1, **{k: v for k, v in fields.items() if k != "position"})
    ticket = policy.Ticket(1, "email", 2, customer_tier=1, tags=("b2b",), language="zh", text="申请退款")
    assert policy.rule_misses(rule, ticket) == []
    req = policy.requirements(rule)
    # What the router stores for a waiting ticket reads back to the same requirements, at each stage.
    for stage in range(3):
        assert snapshot.requirements(req.to_json(), stage) == policy.widened(req, stage)


@pytest.mark.parametrize("changed,message", [
    ({"widen": {"required": "zz"}}, "widen.required must map skill names to non-negative integers"),
    ({"widen": []}, "widen must be an object"),
    ({"widen": {"min_tier": "2"}}, "widen.min_tier must be an integer from 0 to 2147483647"),
    ({"match": {"languages": "zh"}}, "match.languages must be a list"),
    ({"match": {"keywords": [""]}}, "match.keywords entry must be a non-empty string"),
    ({"required": {"": 1}}, "required skill name must be a non-empty string"),
    ({"preferred": {f"s{i}": 1 for i in range(21)}}, "preferred has over 20 skills"),
    ({"min_tier": 2**31}, "min_tier must be an integer from 0 to 2147483647"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"owner": "me"}, "rule has an unknown field 'owner' (known: name, position, match, required, preferred, "
                      "priority, min_tier, escalate_after_s, widen)"),
])
def test_each_bad_field_is_named(changed, message):
    with pytest.raises(RuleError) as refused:
        rule_schema.rule({**FULL, **changed})
    assert (refused.value.status, refused.value.message) == (400, message)


def test_stored_requirements_that_the_policy_would_trip_over_are_refused():
    good = policy.requirements(policy.Rule(1, "r", required={"zh": 1})).to_json()
    with pytest.raises(RuleError, match="^widen.required must map"):
        snapshot.requirements({**good, "widen": {"required": "zz"}}, 2)
    with pytest.raises(RuleError, match="^stage must be an integer"):
        snapshot.requirements({**good, "stage": "2"}, 0)
    with pytest.raises(RuleError, match="^requirements must be an object"):
        snapshot.requirements(["zz"], 0)


def test_a_trace_quotes_a_few_values_of_a_long_list_cut_short():
    rule = policy.Rule(1, "many", match={"keywords": ["k" * 60, "b", "c", "d", "e"], "tags": ["x", "y"]})
    misses = policy.rule_misses(rule, policy.Ticket(1, "email", 1, text="nothing"))
    assert misses == ["tags ['x', 'y'] missing", f"none of the keywords ['{'k' * 40}…', 'b', 'c'] and 2 more"]
    rules = [policy.Rule(i, f"r{i}", match={"keywords": ["zz"]}) for i in range(30)] + [policy.Rule(99, "hit")]
    hit, trace = policy.match_rule(rules, policy.Ticket(1, "email", 1))
    assert hit.id == 99 and len(trace) == 22
    assert trace[20] == {"rules_not_listed": 10} and trace[21]["rule_id"] == 99


@pytest.mark.parametrize("raw,message", [
    (b"[" * 5000, "body nests deeper than 8 levels"),
    (b'{"a": [[[[[[[[1]]]]]]]]}', "body.a[0][0][0][0][0][0][0] nests deeper than 8 levels"),
    (b'{"a": Infinity}', "body is not JSON"),
    (b"\xff", "body is not JSON"),
])
def test_api_bodies_that_nest_too_deep_or_are_not_json_are_400(raw, message):
    with pytest.raises(ApiError) as refused:
        body.parse(raw)
    assert (refused.value.status, refused.value.code, refused.value.message) == (400, "invalid_body", message)
