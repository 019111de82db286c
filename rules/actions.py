"""Actions as data: what a trigger or automation does (its ``then``), checked with the path
of the fault (``then[2].template``). Applying them is ``rules.effects``.

An action is an object with a ``type`` and that type's fields:

- ``add_tags`` / ``remove_tags`` / ``set_tags`` ``{"tags": [...]}``
- ``set_priority`` ``{"priority": 0..100}``; ``set_status`` ``{"status": "open" | ...}``
- ``set_field`` ``{"name", "value"}``: a custom field of the ticket, the value as
  ``PATCH /tickets/{id}`` takes it (null clears it)
- ``require_skills`` ``{"skills": {"refunds": 2}}``; ``require_team`` ``{"team": "billing"}``
  (an agent is in team *billing* when it has the skill ``team:billing``)
- ``reply`` ``{"template"}``: a reply to the customer on their channel, rendered with Jinja2
  in its sandbox over ``ticket`` (``id number subject status channel priority tags``) and
  ``customer`` (``name``)
- ``notify`` ``{"template", "agents"?: [ids], "emails"?: [...]}``: mail to agents (none
  named: the assignee), from the tenant's mailbox
- ``call_webhook`` ``{"url"}`` or ``{"webhook_id"}``
"""

from __future__ import annotations

import math
import re
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rules.conditions import ConditionError
from ticket_service.field_schema import MAX_CHOICES

MAX_ACTIONS = 20
MAX_TAGS = 20
MAX_TAG = 100
MAX_TEMPLATE = 10_000
MAX_RECIPIENTS = 20
MAX_SKILLS = 20
MAX_NAME = 64
MAX_PRIORITY = 100
MAX_URL = 2000
STATUSES = ("new", "open", "pending", "solved", "closed")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")

MAX_OUTPUT = 200_000  # characters a template may make with * (the sandbox bounds range() itself)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox (no walks to Python internals, the values it is given stay as they
    are), also refusing ``"x" * 10**9`` and ``9 ** 64 ** 64``: a tenant's template must not
    hold the worker that serves every tenant."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and isinstance(left, (int, float)) and (
                abs(right) > 64 or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 4096)):
            raise SecurityError("a power over 4096 bits")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT:
                    raise SecurityError(f"result over {MAX_OUTPUT} items")
        return super().call_binop(context, operator, left, right)


# One environment for every template; autoescape off: replies are plain text.
TEMPLATES = _Sandbox(autoescape=False)


def _fields(spec: dict[str, Any], path: str, allowed: set[str], required: set[str]) -> None:
    extra = set(spec) - allowed - {"type"}
    if extra:
        raise ConditionError(f"{path}.{sorted(map(str, extra))[0]}", f"unknown key for {spec['type']}")
    for name in sorted(required - set(spec)):
        raise ConditionError(f"{path}.{name}", "missing")


def _string(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ConditionError(path, f"a non-empty string of at most {limit} characters")
    return value


def _strings(value: Any, path: str, limit: int, each: int, empty: bool = False) -> list[str]:
    if not isinstance(value, list) or len(value) > limit or (not value and not empty):
        raise ConditionError(path, f"a list of {0 if empty else 1} to {limit} strings")
    return [_string(v, f"{path}[{i}]", each) for i, v in enumerate(value)]


def _integer(value: Any, path: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ConditionError(path, f"an integer from {low} to {high}")
    return value


def _template(value: Any, path: str) -> str:
    text = _string(value, path, MAX_TEMPLATE)
    try:
        TEMPLATES.parse(text)
    except TemplateSyntaxError as exc:
        raise ConditionError(path, f"not a valid template: {exc.message} (line {exc.lineno})") from None
    return text


def _tags(spec: dict, path: str) -> None:
    _fields(spec, path, {"tags"}, {"tags"})
    _strings(spec["tags"], f"{path}.tags", MAX_TAGS, MAX_TAG, empty=spec["type"] == "set_tags")


def _priority(spec: dict, path: str) -> None:
    _fields(spec, path, {"priority"}, {"priority"})
    _integer(spec["priority"], f"{path}.priority", 0, MAX_PRIORITY)


def _status(spec: dict, path: str) -> None:
    _fields(spec, path, {"status"}, {"status"})
    if spec["status"] not in STATUSES:
        raise ConditionError(f"{path}.status", f"one of {', '.join(STATUSES)}")


def _set_field(spec: dict, path: str) -> None:
    _fields(spec, path, {"name", "value"}, {"name", "value"})
    if not isinstance(spec["name"], str) or not _FIELD_NAME.match(spec["name"]):
        raise ConditionError(f"{path}.name", "a custom field name: a-z, 0-9 and _, starting with a letter")
    # Its shape only: the tenant's definition of the field checks the rest (rules.field_actions).
    value = spec["value"]
    if isinstance(value, list):
        _strings(value, f"{path}.value", MAX_CHOICES, 1000)
    elif value is not None and not isinstance(value, (str, int, float)):
        raise ConditionError(f"{path}.value", "a string, number, list of strings or null")
    elif isinstance(value, str) and len(value) > 1000:
        raise ConditionError(f"{path}.value", "at most 1000 characters")


def _skills(spec: dict, path: str) -> None:
    _fields(spec, path, {"skills"}, {"skills"})
    skills = spec["skills"]
    if not isinstance(skills, dict) or not skills or len(skills) > MAX_SKILLS:
        raise ConditionError(f"{path}.skills", f"an object of 1 to {MAX_SKILLS} skills and their levels")
    for name, level in skills.items():
        _string(name, f"{path}.skills", MAX_NAME)
        _integer(level, f"{path}.skills.{name}", 0, 2**31 - 1)


def _team(spec: dict, path: str) -> None:
    _fields(spec, path, {"team"}, {"team"})
    _string(spec["team"], f"{path}.team", MAX_NAME - len("team:"))


def _reply(spec: dict, path: str) -> None:
    _fields(spec, path, {"template"}, {"template"})
    _template(spec["template"], f"{path}.template")


def _notify(spec: dict, path: str) -> None:
    _fields(spec, path, {"template", "agents", "emails"}, {"template"})
    _template(spec["template"], f"{path}.template")
    agents = spec.get("agents", [])
    if not isinstance(agents, list) or len(agents) > MAX_RECIPIENTS:
        raise ConditionError(f"{path}.agents", f"a list of at most {MAX_RECIPIENTS} agent ids")
    for i, agent in enumerate(agents):
        _integer(agent, f"{path}.agents[{i}]", 1, 2**31 - 1)
    for i, email in enumerate(_strings(spec.get("emails", []), f"{path}.emails", MAX_RECIPIENTS, 320, empty=True)):
        if "@" not in email or any(c in email for c in ' <>,;"\r\n'):
            raise ConditionError(f"{path}.emails[{i}]", "an email address")


def _webhook(spec: dict, path: str) -> None:
    _fields(spec, path, {"url", "webhook_id"}, set())
    if ("url" in spec) == ("webhook_id" in spec):
        raise ConditionError(path, 'takes either "url" or "webhook_id"')
    if "url" in spec:
        url = _string(spec["url"], f"{path}.url", MAX_URL)
        if not re.match(r"https?://[^\s/]+", url):
            raise ConditionError(f"{path}.url", "an http:// or https:// URL")
    else:
        _integer(spec["webhook_id"], f"{path}.webhook_id", 1, 2**31 - 1)


CHECKS = {
    "add_tags": _tags, "remove_tags": _tags, "set_tags": _tags, "set_priority": _priority,
    "set_status": _status, "set_field": _set_field, "require_skills": _skills, "require_team": _team,
    "reply": _reply, "notify": _notify, "call_webhook": _webhook,
}


# The short form ``{"action": "add_tags", "value": ["refund"]}``: which key ``value`` fills.
# set_field and notify take an object as ``value`` ({"name", "value"} / {"template", ...}).
_VALUE_KEY = {"add_tags": "tags", "remove_tags": "tags", "set_tags": "tags", "set_priority": "priority",
              "set_status": "status", "require_skills": "skills", "require_team": "team", "reply": "template"}


def _canonical(spec: dict, where: str) -> dict:
    """``{"action": name, "value": v}`` as the stored ``{"type": name, <key>: v}``."""
    if set(spec) - {"action", "value"}:
        raise ConditionError(f"{where}.{sorted(set(spec) - {'action', 'value'})[0]}",
                             'the short form takes only "action" and "value"')
    kind, value = spec["action"], spec.get("value")
    if kind not in CHECKS:
        raise ConditionError(f"{where}.action", f"one of {', '.join(CHECKS)}")
    if kind in _VALUE_KEY:
        return {"type": kind, _VALUE_KEY[kind]: value}
    if kind == "call_webhook":
        return {"type": kind, ("webhook_id" if isinstance(value, int) else "url"): value}
    if not isinstance(value, dict) or "type" in value:
        raise ConditionError(f"{where}.value", f"{kind} takes an object")
    return {"type": kind, **value}


def validate(data: Any, path: str = "then") -> list[dict]:
    """``data`` as a list of actions in the stored form, or ``ConditionError`` naming the path
    of the fault. Each action is ``{"type": name, ...its keys}`` or the short form
    ``{"action": name, "value": v}``."""
    if not isinstance(data, list) or not data:
        raise ConditionError(path, f"a list of 1 to {MAX_ACTIONS} actions")
    if len(data) > MAX_ACTIONS:
        raise ConditionError(path, f"more than {MAX_ACTIONS} actions")
    out = []
    for i, spec in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(spec, dict):
            raise ConditionError(where, 'an object {"type": ..., ...} or {"action": ..., "value": ...}')
        if "action" in spec:
            spec = _canonical(spec, where)
        kind = spec.get("type")
        if kind not in CHECKS:
            raise ConditionError(f"{where}.type", f"one of {', '.join(CHECKS)}")
        CHECKS[kind](spec, where)
        out.append(spec)
    return out
