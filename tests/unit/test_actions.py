"""Actions as data: each fault named by its path, and templates that cannot hold a worker."""

import pytest

from rules.actions import TEMPLATES, validate
from rules.conditions import ConditionError


def _path(actions) -> str:
    with pytest.raises(ConditionError) as caught:
        validate(actions)
    return caught.value.path


def test_each_fault_names_its_path():
    assert _path([{"type": "add_tags", "tags": ["a", ""]}]) == "then[0].tags[1]"
    assert _path([{"type": "set_priority", "priority": True}]) == "then[0].priority"
    assert _path([{"type": "require_skills", "skills": {"mandarin": -1}}]) == "then[0].skills.mandarin"
    assert _path([{"type": "set_field", "name": "Bad Name", "value": 1}]) == "then[0].name"
    assert _path([{"type": "call_webhook", "url": "https://x.test", "webhook_id": 1}]) == "then[0]"
    assert _path([{"type": "notify", "template": "x", "emails": ["not an address"]}]) == "then[0].emails[0]"
    assert _path([{"type": "reply", "template": "hi", "colour": "red"}]) == "then[0].colour"
    assert _path([{"type": "add_tags", "tags": ["a"]}] * 21) == "then"


def test_a_valid_list_comes_back_as_given():
    actions = [{"type": "set_tags", "tags": []}, {"type": "require_team", "team": "billing"},
               {"type": "call_webhook", "webhook_id": 4}, {"type": "reply", "template": "#{{ ticket.number }}"}]
    assert validate(actions) == actions


def test_the_short_form_is_stored_in_the_long_one_and_named_in_faults():
    short = [{"action": "add_tags", "value": ["refund"]}, {"action": "set_priority", "value": 2},
             {"action": "require_skills", "value": {"mandarin": 3}}, {"action": "call_webhook", "value": 7},
             {"action": "call_webhook", "value": "https://crm.example.com/hook"},
             {"action": "set_field", "value": {"name": "order_no", "value": "A1"}},
             {"action": "reply", "value": "Ticket #{{ ticket.number }}"}]
    assert validate(short) == [
        {"type": "add_tags", "tags": ["refund"]}, {"type": "set_priority", "priority": 2},
        {"type": "require_skills", "skills": {"mandarin": 3}}, {"type": "call_webhook", "webhook_id": 7},
        {"type": "call_webhook", "url": "https://crm.example.com/hook"},
        {"type": "set_field", "name": "order_no", "value": "A1"},
        {"type": "reply", "template": "Ticket #{{ ticket.number }}"}]
    assert _path([{"action": "add_tags", "value": ["refund"]}, {"action": "reply", "value": "{{ x"}]) == "then[1].template"
    assert _path([{"action": "explode", "value": 1}]) == "then[0].action"
    assert _path([{"action": "set_priority", "value": 1, "extra": 2}]) == "then[0].extra"
    assert _path([{"action": "notify", "value": "hi"}]) == "then[0].value"


@pytest.mark.parametrize("template", ['{{ "x" * 1000000000 }}', "{{ 2 ** 100000000 }}", "{{ 9 ** 64 ** 64 ** 64 }}",
                                      "{{ ticket.__class__.__mro__ }}", "{% for i in range(10**9) %}x{% endfor %}"])
def test_the_sandbox_refuses_what_would_hold_the_worker(template):
    from jinja2.exceptions import SecurityError

    with pytest.raises((SecurityError, OverflowError)):
        TEMPLATES.from_string(template).render(ticket={"number": 1})
