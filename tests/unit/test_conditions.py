"""Conditions as data: validation names the path of the fault; evaluation over facts."""

import pytest

from rules.conditions import ConditionError, Facts, matches, validate


def facts(**values):
    base = {"event": "ticket.created", "channel": "email", "account": "support@example.com", "status": "new",
            "priority": 0, "vip_tier": 0, "tags": [], "subject": "", "text": "", "fields": {}}
    return Facts({**base, **values})


@pytest.mark.parametrize(("data", "path", "fragment"), [
    ([], "if", "must be an object"),
    ({"every": []}, "if.every", "unknown key"),
    ({"all": {}}, "if.all", "must be a list"),
    ({"all": [{"field": "colour", "op": "is", "value": "red"}]}, "if.all[0].field", "unknown field 'colour'"),
    ({"all": [{"field": "channel", "op": "gt", "value": "a"}]}, "if.all[0].op", "channel takes one of"),
    ({"all": [{"field": "priority", "op": "is", "value": "high"}]}, "if.all[0].value", "must be an integer"),
    ({"all": [{"field": "priority", "op": "is"}]}, "if.all[0].value", "missing"),
    ({"any": [{"field": "channel", "op": "in", "value": []}]}, "if.any[0].value", "non-empty list"),
    ({"any": [{"field": "channel", "op": "in", "value": ["email", 3]}]}, "if.any[0].value[1]", "must be a string"),
    ({"all": [{"field": "text", "op": "regex", "value": "(unclosed"}]}, "if.all[0].value",
     "not a valid regular expression"),
    ({"all": [{"field": "text", "op": "regex", "value": "a" * 201}]}, "if.all[0].value", "1 to 200"),
    ({"all": [{"field": "tags", "op": "present", "value": "x"}]}, "if.all[0].value", "takes no value"),
    ({"all": [{"field": "channel", "op": "is", "value": "email", "calendar": "cn"}]}, "if.all[0].calendar",
     "only business_hours"),
    ({"all": [{"any": [{"all": [{"any": [{"all": []}]}]}]}]}, "if.all[0].any[0].all[0].any[0]", "deeper than 4"),
    ({"all": [{"field": "field.Bad-Name", "op": "is", "value": 1}]}, "if.all[0].field", "unknown field"),
    ({"all": [{"field": "hours_since_created", "op": "gt", "value": -1}]}, "if.all[0].value", "must be a number"),
])
def test_a_bad_condition_set_is_refused_naming_its_path(data, path, fragment):
    with pytest.raises(ConditionError) as caught:
        validate(data)
    assert caught.value.path == path
    assert fragment in caught.value.message


def test_a_valid_set_is_returned_and_an_empty_one_always_holds():
    data = {"all": [{"field": "channel", "op": "is", "value": "wechat"}],
            "any": [{"field": "vip_tier", "op": "gte", "value": 2}, {"field": "tags", "op": "includes", "value": "vip"}]}
    assert validate(data) is data
    assert validate(None) == {}
    assert matches({}, facts()) is True


def test_all_and_any_combine():
    data = validate({"all": [{"field": "channel", "op": "is", "value": "wechat"}],
                     "any": [{"field": "vip_tier", "op": "gte", "value": 2},
                             {"field": "tags", "op": "includes", "value": ["vip", "gold"]}]})
    assert matches(data, facts(channel="wechat", vip_tier=3)) is True
    assert matches(data, facts(channel="wechat", tags=["gold"])) is True
    assert matches(data, facts(channel="wechat", vip_tier=1, tags=["silver"])) is False
    assert matches(data, facts(channel="email", vip_tier=3)) is False


def test_text_tests_fold_case_and_regex_matches_chinese():
    data = validate({"all": [{"field": "text", "op": "contains", "value": "Refund"}]})
    assert matches(data, facts(text="I want a REFUND please")) is True
    assert matches(data, facts(text="thanks")) is False
    chinese = validate({"all": [{"field": "text", "op": "regex", "value": r"退[款货]"}]})
    assert matches(chinese, facts(text="我要退款,订单 123")) is True
    assert matches(chinese, facts(text="订单什么时候到")) is False


def test_a_catastrophic_pattern_gives_up_instead_of_holding_the_worker():
    data = validate({"all": [{"field": "text", "op": "regex", "value": r"(a+)+$"}]})
    assert matches(data, facts(text="a" * 5000 + "!")) is False


def test_custom_fields_compare_by_their_own_type_and_a_missing_fact_fails_positive_tests():
    data = validate({"all": [{"field": "field.order_total", "op": "gte", "value": 1000},
                             {"field": "field.region", "op": "in", "value": ["north", "east"]}]})
    assert matches(data, facts(fields={"order_total": 1500, "region": "east"})) is True
    assert matches(data, facts(fields={"order_total": 999, "region": "east"})) is False
    assert matches(data, facts(fields={"order_total": "lots", "region": "east"})) is False  # no TypeError
    assert matches(data, facts(fields={})) is False
    absent = validate({"all": [{"field": "field.region", "op": "absent"}, {"field": "language", "op": "is_not",
                                                                         "value": "zh"}]})
    assert matches(absent, facts(fields={})) is True


def test_lazy_facts_are_computed_once_and_business_hours_asks_the_named_calendar():
    calls = []

    def text():
        calls.append("text")
        return "hello"

    asked = []

    def hours(calendar):
        asked.append(calendar)
        return calendar == "shanghai"

    f = facts(text=text, business_hours=hours)
    data = validate({"all": [{"field": "text", "op": "contains", "value": "hell"},
                             {"field": "text", "op": "not_contains", "value": "bye"},
                             {"field": "business_hours", "op": "is", "value": True, "calendar": "shanghai"}]})
    assert matches(data, f) is True
    assert calls == ["text"]
    assert asked == ["shanghai"]
    assert matches(validate({"all": [{"field": "business_hours", "op": "is", "value": True}]}), f) is False
    assert asked == ["shanghai", None]
